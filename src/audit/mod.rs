//! The audit log: one entry per change, login and logout, naming the authenticated actor, the
//! client address and the values before and after. An entry is written in the transaction of
//! its change (a change rolled back leaves no entry); nothing in the API edits or deletes one.
//! Entries older than the configured retention are pruned; by default all are kept.

pub mod resolvers;

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Select, Set};

use crate::auth::Actor;
use crate::db::UnitOfWork;
use crate::entity::audit_entry;
use crate::error::AppResult;
use crate::time::now_millis;

/// A change about to be recorded: `<domain>.<verb>`, what it touched, and the values before
/// and after (of what changed, for an update).
#[derive(Debug, Clone)]
pub struct Change {
    action: &'static str,
    target: Option<(String, String)>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl Change {
    /// An entry for `action`, e.g. `task.update`.
    pub fn new(action: &'static str) -> Self {
        Change { action, target: None, before: None, after: None }
    }
    /// What the change touched.
    pub fn target(mut self, target_type: &str, target_id: &str) -> Self {
        self.target = Some((target_type.to_owned(), target_id.to_owned()));
        self
    }
    /// The values the change replaced.
    pub fn before(mut self, value: serde_json::Value) -> Self {
        self.before = Some(value);
        self
    }
    /// The values the change left.
    pub fn after(mut self, value: serde_json::Value) -> Self {
        self.after = Some(value);
        self
    }
    /// For an update: of two objects, the fields that differ, before and after.
    pub fn diff(self, before: serde_json::Value, after: serde_json::Value) -> Self {
        let (old, new) = diff(before, after);
        self.before(old).after(new)
    }
}

/// Of two JSON objects, the fields whose values differ: (before, after).
pub fn diff(before: serde_json::Value, after: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    use serde_json::{Map, Value};
    let (Value::Object(old), Value::Object(new)) = (before, after) else {
        return (Value::Null, Value::Null);
    };
    let changed: Vec<&String> = new.keys().filter(|k| old.get(*k) != new.get(*k)).collect();
    let pick = |map: &Map<String, Value>| -> Map<String, Value> {
        changed.iter().map(|k| ((*k).clone(), map.get(*k).cloned().unwrap_or_default())).collect()
    };
    (Value::Object(pick(&old)), Value::Object(pick(&new)))
}

/// The entry for `actor`'s `change`.
fn entry(actor: &Actor, change: Change) -> audit_entry::ActiveModel {
    let (target_type, target_id) = change.target.unzip();
    audit_entry::ActiveModel {
        actor: Set(actor.name.clone()),
        actor_kind: Set(actor.kind.as_str().to_owned()),
        action: Set(change.action.to_owned()),
        target_type: Set(target_type),
        target_id: Set(target_id),
        before: Set(change.before.map(|v| v.to_string())),
        after: Set(change.after.map(|v| v.to_string())),
        client_address: Set(actor.client.clone()),
        timestamp: Set(now_millis()),
        ..Default::default()
    }
}

/// Records `actor`'s `change` in the unit's transaction (the entry is inserted with the other
/// rows of the batch, just before the commit).
pub fn record(uow: &mut UnitOfWork, actor: &Actor, change: Change) {
    uow.insert_audit_at_commit(entry(actor, change));
}

/// Writes the entry for `actor`'s `change` now, in `db` (a transaction outside the writer).
pub async fn record_now(db: &impl ConnectionTrait, actor: &Actor, change: Change) -> AppResult<()> {
    entry(actor, change).insert(db).await?;
    Ok(())
}

/// Filters of `auditLog`.
#[derive(Debug, Clone, Default, async_graphql::InputObject)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

fn filtered(filter: &AuditFilter) -> AppResult<Select<audit_entry::Entity>> {
    use crate::pagination::{equal_to, since};
    use audit_entry::Column;
    let select = audit_entry::Entity::find();
    let select = equal_to(select, "filter.actor", filter.actor.as_ref(), Column::Actor)?;
    let select = equal_to(select, "filter.action", filter.action.as_ref(), Column::Action)?;
    let select = equal_to(select, "filter.targetId", filter.target_id.as_ref(), Column::TargetId)?;
    since(select, "filter.since", filter.since, Column::Timestamp)
}

/// One page of entries, newest first, strictly older than `before_id`.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &AuditFilter,
    first: u64,
    before_id: Option<i64>,
) -> AppResult<(Vec<audit_entry::Model>, bool)> {
    crate::pagination::newest_first(db, filtered(filter)?, audit_entry::Column::Id, first, before_id).await
}

/// Number of entries matching `filter`.
pub async fn count(db: &impl ConnectionTrait, filter: &AuditFilter) -> AppResult<u64> {
    Ok(filtered(filter)?.count(db).await?)
}

/// Deletes the entries older than `keep` (the retention); returns how many went.
pub async fn prune(db: &impl ConnectionTrait, keep: std::time::Duration) -> AppResult<u64> {
    let cutoff = now_millis().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let gone = audit_entry::Entity::delete_many().filter(audit_entry::Column::Timestamp.lt(cutoff)).exec(db).await?;
    Ok(gone.rows_affected)
}

/// Prunes every hour until shutdown (every instance may: a prune is idempotent).
pub async fn prune_forever(changes: crate::db::Writer, keep: std::time::Duration, mut stop: crate::shutdown::Signal) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => match changes.run(move |uow| Box::pin(async move { prune(uow.txn(), keep).await })).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "pruned the audit log"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
            },
            _ = stop.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ActorKind;

    #[tokio::test]
    async fn an_entry_lives_and_dies_with_its_transaction() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let actor = Actor { name: "alice".into(), kind: ActorKind::User, client: Some("10.0.0.1".into()) };
        let mut uow = UnitOfWork::begin(&db).await.unwrap();
        record(&mut uow, &actor, Change::new("task.create").target("task", "t1"));
        drop(uow); // rolled back
        assert_eq!(count(&db, &AuditFilter::default()).await.unwrap(), 0);

        let mut uow = UnitOfWork::begin(&db).await.unwrap();
        let change = Change::new("task.update").target("task", "t1").before(serde_json::json!({"title": "a"}));
        record(&mut uow, &actor, change.after(serde_json::json!({"title": "b"})));
        uow.commit(&crate::events::EventBus::default()).await.unwrap();
        let (rows, more) = list(&db, &AuditFilter::default(), 10, None).await.unwrap();
        assert!(!more);
        assert_eq!(rows[0].action, "task.update");
        assert_eq!(rows[0].actor_kind, "USER");
        assert_eq!(rows[0].before.as_deref(), Some(r#"{"title":"a"}"#));
        assert_eq!(rows[0].client_address.as_deref(), Some("10.0.0.1"));

        assert_eq!(prune(&db, std::time::Duration::from_secs(60)).await.unwrap(), 0, "young entries stay");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(prune(&db, std::time::Duration::ZERO).await.unwrap(), 1);
    }
}
