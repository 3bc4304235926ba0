//! The writer's hook: before a transaction commits, turn the events its changes queued into
//! webhook deliveries (the outbox) and fire the rules they trigger, in that transaction.

use futures_util::future::BoxFuture;
use sea_orm::EntityTrait;

use super::notify::{self, Firing};
use super::rules::AlertKind;
use super::webhooks::{self, Outgoing};
use super::{Active, Alerts, budget};
use crate::db::{BeforeCommit, UnitOfWork};
use crate::entity::{activity, alert_rule, comment, notification, task};
use crate::error::AppResult;
use crate::events::{Event, TaskChange, TaskEventKind};
use crate::time::{from_millis, now_millis};

impl BeforeCommit for Alerts {
    fn before_commit<'a>(&'a self, uow: &'a mut UnitOfWork) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(self.on_commit(uow))
    }

    /// Without enabled rules or webhooks, a change fires and delivers nothing.
    fn has_work(&self) -> bool {
        !self.active().is_empty()
    }
}

/// A notification under its GraphQL field names (the `alert.fired` payload).
pub fn notification_json(row: &notification::Model) -> serde_json::Value {
    serde_json::json!({
        "id": row.id.to_string(),
        "kind": row.kind,
        "severity": row.severity,
        "title": row.title,
        "body": row.body,
        "ruleId": row.rule_id,
        "targetType": row.target_type,
        "targetId": row.target_id,
        "createdAt": from_millis(row.created_at),
    })
}

impl Alerts {
    /// Handles every event queued in `uow`, including those it queues itself (a fired rule's
    /// notification becomes an `alert.fired` delivery).
    async fn on_commit(&self, uow: &mut UnitOfWork) -> AppResult<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        // The deliverer hears of what is queued here from the commit's own events.
        let mut next = 0;
        while let Some(event) = uow.queued_events().get(next).cloned() {
            next += 1;
            match &event {
                Event::Task(change) => self.on_task(uow, &active, change).await?,
                Event::Activity(row) => self.on_activity(uow, &active, row).await?,
                Event::Notification(row) => {
                    let data = notification_json(row);
                    webhooks::enqueue(uow, &active.webhooks, &Outgoing { event: "alert.fired", data, dedupe_key: None })
                        .await?
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn on_task(&self, uow: &mut UnitOfWork, active: &Active, change: &TaskChange) -> AppResult<()> {
        let (event, data) = match (&change.kind, &change.task) {
            (TaskEventKind::Created, Some(row)) => ("task.created", crate::tasks::json::task(row)),
            (TaskEventKind::Updated, Some(row)) => ("task.updated", crate::tasks::json::task(row)),
            _ => ("task.deleted", serde_json::json!({ "id": change.task_id })),
        };
        webhooks::enqueue(uow, &active.webhooks, &Outgoing { event, data, dedupe_key: None }).await?;
        if let Some(row) = &change.task {
            if change.kind == TaskEventKind::Created {
                assigned(uow, active, row).await?;
            }
            overdue(uow, active, row, now_millis()).await?;
        }
        Ok(())
    }

    async fn on_activity(&self, uow: &mut UnitOfWork, active: &Active, row: &activity::Model) -> AppResult<()> {
        let meta: serde_json::Value =
            row.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
        let target = row.target_id.as_deref().unwrap_or_default();
        match row.action.as_str() {
            "commented" => {
                let Some(found) = meta["commentId"].as_str() else { return Ok(()) };
                let Some(comment) = comment::Entity::find_by_id(found).one(uow.txn()).await? else { return Ok(()) };
                let mut data = crate::tasks::json::comment(&comment);
                data["taskId"] = comment.task_id.clone().into();
                webhooks::enqueue(uow, &active.webhooks, &Outgoing { event: "comment.created", data, dedupe_key: None })
                    .await
            }
            // A change that (re)assigns a task: its current agent is the one assigned.
            "updated" | "dispatched" if reassigns(&row.action, &meta) => {
                if let Some(task) = task::Entity::find_by_id(target).one(uow.txn()).await? {
                    assigned(uow, active, &task).await?;
                }
                Ok(())
            }
            "metrics_recorded" if active.rules(AlertKind::CostBudget).next().is_some() => {
                let hub = self.hub();
                let model = hub.as_ref().and_then(|hub| hub.get(target)).and_then(|agent| agent.model);
                let models = budget::ModelAgents::of(hub.as_deref());
                budget::check(uow, active, Some((target, model.as_deref())), &models, chrono::Utc::now()).await
            }
            _ => Ok(()),
        }
    }
}

/// Whether an activity `action` with `meta` gave its task an agent.
fn reassigns(action: &str, meta: &serde_json::Value) -> bool {
    action != "updated" || meta["fields"].as_array().is_some_and(|fields| fields.iter().any(|f| f == "assignedAgent"))
}

/// Whether a task rule applies to `row` (no agent named, or the task's).
fn applies(rule: &alert_rule::Model, row: &task::Model) -> bool {
    rule.agent_id.is_none() || rule.agent_id == row.assigned_agent
}

/// Fires the TASK_ASSIGNED rules for `row`'s agent (once per task and agent).
async fn assigned(uow: &mut UnitOfWork, active: &Active, row: &task::Model) -> AppResult<()> {
    let Some(agent) = &row.assigned_agent else { return Ok(()) };
    for rule in active.rules(AlertKind::TaskAssigned).filter(|r| applies(r, row)) {
        let firing = Firing {
            occurrence: format!("task:{}:agent:{agent}", row.id),
            title: format!("Task \"{}\" assigned to {agent}", row.title),
            body: format!("Task {} (\"{}\", {}) is assigned to agent {agent}.", row.id, row.title, row.status),
            target_type: "task",
            target_id: row.id.clone(),
        };
        notify::fire(uow, rule, firing).await?;
    }
    Ok(())
}

/// Fires the TASK_OVERDUE rules for `row` if its due date passed and it is not DONE (once per
/// task and due date).
pub(crate) async fn overdue(uow: &mut UnitOfWork, active: &Active, row: &task::Model, now: i64) -> AppResult<()> {
    for rule in active.rules(AlertKind::TaskOverdue) {
        overdue_for(uow, rule, row, now).await?;
    }
    Ok(())
}

/// Fires TASK_OVERDUE `rule` for `row`, if it applies and the task is overdue.
pub(crate) async fn overdue_for(
    uow: &mut UnitOfWork,
    rule: &alert_rule::Model,
    row: &task::Model,
    now: i64,
) -> AppResult<()> {
    let Some(due) = row.due_date.filter(|due| *due < now && row.status != "DONE") else { return Ok(()) };
    if !applies(rule, row) {
        return Ok(());
    }
    let firing = Firing {
        occurrence: format!("task:{}:due:{due}", row.id),
        title: format!("Task \"{}\" is overdue", row.title),
        body: format!(
            "Task {} (\"{}\") was due {} and is {}{}.",
            row.id,
            row.title,
            from_millis(due).to_rfc3339(),
            row.status,
            row.assigned_agent.as_deref().map(|a| format!(", assigned to {a}")).unwrap_or_default()
        ),
        target_type: "task",
        target_id: row.id.clone(),
    };
    notify::fire(uow, rule, firing).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_the_agent_field_count_as_assignments() {
        assert!(reassigns("updated", &serde_json::json!({ "fields": ["title", "assignedAgent"] })));
        assert!(!reassigns("updated", &serde_json::json!({ "fields": ["title"] })));
        assert!(reassigns("dispatched", &serde_json::json!({})));
    }
}
