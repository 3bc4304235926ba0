//! The committed `schema.graphql` matches the schema the code builds.

/// Regenerate with `UPDATE_SCHEMA=1 cargo test --test api schema`.
#[test]
fn committed_sdl_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = mission_control::schema::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test --test api schema` and commit it"
    );
}

/// Every name the API contract fixes is in the schema.
#[test]
fn contract_names_are_present() {
    let sdl = mission_control::schema::sdl();
    for name in [
        "type Task",
        "type Comment",
        "type Agent",
        "type AgentMetricsSummary",
        "type AgentMetric",
        "type TranscriptMessage",
        "type Activity",
        "type FeedStats",
        "type CountByKey",
        "type TaskConnection",
        "type ActivityConnection",
        "type AgentMetricConnection",
        "input TaskFilter",
        "enum TaskOrderField",
        "input TaskOrder",
        "enum OrderDirection",
        "input FeedFilter",
        "input CreateTaskInput",
        "input UpdateTaskInput",
        "input SpawnAgentInput",
        "input RecordMetricsInput",
        "type TaskEvent",
        "type AgentStatusEvent",
        "enum TaskStatus",
        "enum TaskPriority",
        "enum AgentStatus",
        "enum ActivityType",
        "enum TaskEventKind",
        "scalar DateTime",
        "scalar JSON",
        "commentCount: Int!",
        "recent24h: Int!",
        "metricsHistory(first: Int, after: String): AgentMetricConnection!",
        "taskUpdated(taskId: ID): TaskEvent!",
        "agentStatus: AgentStatusEvent!",
        "deleteTask(id: ID!): ID!",
        "sendAgentMessage(id: ID!, message: String!): Boolean!",
        "feedStats: FeedStats!",
        // Round 2: agents on the gateway.
        "enum AgentOutputKind",
        "type AgentOutput",
        "enum ApprovalStatus",
        "enum ApprovalDecision",
        "type ExecApproval",
        "approvals(status: ApprovalStatus): [ExecApproval!]!",
        "resolveApproval(id: ID!, decision: ApprovalDecision!): ExecApproval!",
        "agentOutput(id: ID!): AgentOutput!",
        "approvals: ExecApproval!",
        "runtimeStatus: String",
        // Round 2: accounts and roles.
        "enum Role",
        "enum ActorKind",
        "type User",
        "type Me",
        "input CreateUserInput",
        "input UpdateUserInput",
        "me: Me!",
        "users: [User!]!",
        "createUser(input: CreateUserInput!): User!",
        "updateUser(id: ID!, input: UpdateUserInput!): User!",
        "deleteUser(id: ID!): ID!",
        "type ApiKey",
        "type CreatedApiKey",
        "type AuditEntry",
        "type AuditEntryConnection",
        "input AuditFilter",
        "input CreateApiKeyInput",
        "apiKeys: [ApiKey!]!",
        "auditLog(filter: AuditFilter, first: Int, after: String): AuditEntryConnection!",
        "createApiKey(input: CreateApiKeyInput!): CreatedApiKey!",
        "revokeApiKey(id: ID!): ApiKey!",
        "before: JSON",
        "clientAddress: String",
        // Round 2: work between the board and the agents.
        "type TaskRun",
        "runs: [TaskRun!]!",
        "claimedBy: String",
        "leaseExpiresAt: DateTime",
        "dispatchTask(id: ID!, agentId: ID, label: String): Task!",
        "claimTask(filter: TaskFilter, leaseSeconds: Int): Task",
        "heartbeatTask(id: ID!): Task!",
        "completeTask(id: ID!, status: TaskStatus!, result: String): Task!",
        "releaseTask(id: ID!): Task!",
        "endedAt: DateTime",
        "result: String",
        // Round 2: schedules.
        "enum ScheduleAction",
        "input ScheduleInput",
        "enum RunStatus",
        "type ScheduleRun",
        "type Schedule",
        "schedules: [Schedule!]!",
        "schedule(id: ID!): Schedule",
        "createSchedule(input: ScheduleInput!): Schedule!",
        "updateSchedule(id: ID!, input: ScheduleInput!): Schedule!",
        "deleteSchedule(id: ID!): ID!",
        "runScheduleNow(id: ID!): ScheduleRun!",
        "runs(first: Int): [ScheduleRun!]!",
        "nextRunAt: DateTime",
    ] {
        assert!(sdl.contains(name), "schema lacks `{name}`");
    }
}
