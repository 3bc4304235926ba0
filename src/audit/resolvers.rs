//! GraphQL of the audit log: `auditLog` (ADMIN, checked by `permissions`), newest first.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Json, Object, ResultExt};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::AuditFilter;
use crate::auth::{ActorKind, viewer};
use crate::entity::{audit_entry, stored_json};
use crate::pagination;
use crate::time::from_millis;

/// Cursor tag of audit entries.
const CURSOR_TAG: &str = "u";

/// One entry of the audit log.
pub struct AuditEntry(audit_entry::Model);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        self.0.id.to_string().into()
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn actor_kind(&self) -> ActorKind {
        ActorKind::parse(&self.0.actor_kind).unwrap_or(ActorKind::System)
    }
    /// `<domain>.<verb>`, e.g. `task.update` or `auth.login_failed`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    async fn target_id(&self) -> Option<&str> {
        self.0.target_id.as_deref()
    }
    /// What the change replaced (for an update, the fields it changed).
    async fn before(&self) -> Option<Json<serde_json::Value>> {
        stored_json(self.0.before.as_deref())
    }
    /// What the change left.
    async fn after(&self) -> Option<Json<serde_json::Value>> {
        stored_json(self.0.after.as_deref())
    }
    async fn client_address(&self) -> Option<&str> {
        self.0.client_address.as_deref()
    }
    async fn timestamp(&self) -> DateTime<Utc> {
        from_millis(self.0.timestamp)
    }
}

/// `totalCount` of the audit log, counted only when asked for.
pub struct AuditCount {
    filter: AuditFilter,
}

#[Object]
impl AuditCount {
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(super::count(db, &self.filter).await.extend()? as i64)
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log, newest first (ADMIN).
    #[graphql(complexity = "crate::pagination::cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEntry, AuditCount>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        let first = pagination::page_size(first).extend()?;
        let before = after.as_deref().map(|c| pagination::decode_seq(c, CURSOR_TAG)).transpose().extend()?;
        let filter = filter.unwrap_or_default();
        let (rows, has_next) = super::list(db, &filter, first, before).await.extend()?;
        let mut connection = Connection::with_additional_fields(after.is_some(), has_next, AuditCount { filter });
        connection
            .edges
            .extend(rows.into_iter().map(|row| Edge::new(pagination::seq_cursor(CURSOR_TAG, row.id), AuditEntry(row))));
        Ok(connection)
    }
}
