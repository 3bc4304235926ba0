//! Who may run what: the one table of rights, checked for every operation before it runs.
//!
//! Each root field of the schema needs a role. VIEWER reads and subscribes; OPERATOR also
//! changes tasks, comments, agents, metrics and approvals; ADMIN also manages users and API keys
//! and reads the audit log (and, as they come, webhooks, alert rules and schedules). A root field missing
//! from this table needs ADMIN, so a new mutation is closed until it is given a role here
//! (a test lists every mutation of the schema against this table).

use async_graphql::parser::types::OperationType;

use super::Role;

/// Mutations and the least role that may run them.
const MUTATIONS: &[(&str, Role)] = &[
    ("createTask", Role::Operator),
    ("updateTask", Role::Operator),
    ("deleteTask", Role::Operator),
    ("addComment", Role::Operator),
    ("dispatchTask", Role::Operator),
    ("claimTask", Role::Operator),
    ("heartbeatTask", Role::Operator),
    ("completeTask", Role::Operator),
    ("releaseTask", Role::Operator),
    ("spawnAgent", Role::Operator),
    ("killAgent", Role::Operator),
    ("sendAgentMessage", Role::Operator),
    ("resolveApproval", Role::Operator),
    ("recordAgentMetrics", Role::Operator),
    ("createUser", Role::Admin),
    ("updateUser", Role::Admin),
    ("deleteUser", Role::Admin),
    ("createApiKey", Role::Admin),
    ("revokeApiKey", Role::Admin),
    ("createSchedule", Role::Admin),
    ("updateSchedule", Role::Admin),
    ("deleteSchedule", Role::Admin),
    ("runScheduleNow", Role::Admin),
    ("markNotificationsRead", Role::Operator),
    ("createAlertRule", Role::Admin),
    ("updateAlertRule", Role::Admin),
    ("deleteAlertRule", Role::Admin),
    ("createWebhook", Role::Admin),
    ("updateWebhook", Role::Admin),
    ("deleteWebhook", Role::Admin),
];

/// Queries (and subscriptions) that need more than VIEWER.
const RESTRICTED_READS: &[(&str, Role)] =
    &[("users", Role::Admin), ("apiKeys", Role::Admin), ("auditLog", Role::Admin), ("webhooks", Role::Admin)];

/// The least role that may select `field` at the root of an operation of type `ty`.
pub fn required(ty: OperationType, field: &str) -> Role {
    let find = |table: &[(&str, Role)]| table.iter().find(|(name, _)| *name == field).map(|(_, role)| *role);
    match ty {
        OperationType::Mutation => find(MUTATIONS).unwrap_or(Role::Admin),
        OperationType::Query | OperationType::Subscription => find(RESTRICTED_READS).unwrap_or(Role::Viewer),
    }
}

/// Every mutation this table names (for the test that keeps it complete).
pub fn named_mutations() -> impl Iterator<Item = &'static str> {
    MUTATIONS.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_unknown_mutations_are_closed() {
        assert!(Role::Admin.allows(Role::Operator) && Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator) && !Role::Operator.allows(Role::Admin));
        assert_eq!(required(OperationType::Mutation, "createTask"), Role::Operator);
        assert_eq!(required(OperationType::Mutation, "somethingNew"), Role::Admin);
        assert_eq!(required(OperationType::Query, "tasks"), Role::Viewer);
        assert_eq!(required(OperationType::Query, "users"), Role::Admin);
        assert_eq!(Role::stored("operator").graphql_name(), "OPERATOR");
        assert_eq!(Role::stored("no such role"), Role::Viewer, "an unknown stored word is the least role");
    }
}
