//! GraphQL types of the feed.

use async_graphql::{Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::service::{ActivityKind, CountByKey};
use crate::entity::activity;
use crate::pagination;
use crate::time::from_millis;

/// Cursor tag of activities.
pub const CURSOR_TAG: &str = "a";

/// One logged activity.
pub struct Activity(pub std::sync::Arc<activity::Model>);

#[Object]
impl Activity {
    async fn id(&self) -> async_graphql::ID {
        self.0.id.to_string().into()
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> ActivityKind {
        ActivityKind::parse(&self.0.kind).unwrap_or(ActivityKind::System)
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    async fn target_id(&self) -> Option<&str> {
        self.0.target_id.as_deref()
    }
    async fn metadata(&self) -> Option<Json<serde_json::Value>> {
        crate::entity::stored_json(self.0.metadata.as_deref())
    }
    async fn timestamp(&self) -> DateTime<Utc> {
        from_millis(self.0.timestamp)
    }
    /// Resume cursor: pass it as `after` to `feed` or to the `activity` subscription.
    async fn cursor(&self) -> String {
        pagination::seq_cursor(CURSOR_TAG, self.0.id)
    }
}

/// Feed and board statistics.
#[derive(SimpleObject)]
pub struct FeedStats {
    pub total_activities: i64,
    #[graphql(name = "recent24h")]
    pub recent_24h: i64,
    pub by_type: Vec<CountByKey>,
    /// Top 10 actors.
    pub by_actor: Vec<CountByKey>,
    pub tasks_by_status: Vec<CountByKey>,
    pub active_agents: i64,
    pub total_tokens: i64,
    pub total_cost: f64,
    /// Runs of tasks (dispatches to agents and claims).
    pub task_runs: i64,
    /// Tokens and dollars the tasks' runs used (part of the totals above).
    pub task_tokens: i64,
    pub task_cost: f64,
}
