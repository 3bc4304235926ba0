//! GraphQL types of the agents domain.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, InputObject, Object, ResultExt, SimpleObject};
use chrono::{DateTime, Utc};

use super::runtime::{AgentInfo, AgentOutputItem, AgentState, Approval, Decision, TranscriptEntry};
use super::service;
use crate::agents::loaders::TotalsOf;
use crate::entity::agent_metric;
use crate::error::AppError;
use crate::events::AgentsChange;
use crate::loaders::DbLoader;
use crate::pagination;
use crate::snapshot::{ApprovalState, OutputKind};
use crate::tasks::types::Task;
use crate::time::from_millis;

/// Largest transcript page.
const MAX_TRANSCRIPT: i32 = 1000;
/// Cursor tag of metrics.
const METRIC_CURSOR: &str = "m";

/// An agent (a runtime session).
pub struct Agent(pub AgentInfo);

/// Totals of an agent: recorded metrics plus the usage found in its transcript.
#[derive(Debug, Clone, SimpleObject)]
pub struct AgentMetricsSummary {
    pub tokens: i64,
    pub cost: f64,
    pub runtime_seconds: i64,
    pub tasks_completed: i64,
}

/// A connection's `totalCount`.
#[derive(SimpleObject)]
pub struct TotalCount {
    pub total_count: i64,
}

#[Object]
impl Agent {
    /// The runtime's session key, e.g. `agent:main:subagent:<uuid>`.
    async fn id(&self) -> async_graphql::ID {
        self.0.id.clone().into()
    }
    async fn label(&self) -> Option<&str> {
        self.0.label.as_deref()
    }
    async fn status(&self) -> AgentState {
        self.0.status
    }
    /// The gateway's own word for the state, when it gives one (OpenClaw: running, done,
    /// failed, killed, timeout).
    async fn runtime_status(&self) -> Option<&str> {
        self.0.runtime_status.as_deref()
    }
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn session_id(&self) -> Option<&str> {
        self.0.session_id.as_deref()
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at
    }
    async fn input_tokens(&self) -> Option<i64> {
        self.0.input_tokens
    }
    async fn output_tokens(&self) -> Option<i64> {
        self.0.output_tokens
    }
    /// Recorded metrics plus transcript usage.
    async fn metrics(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentMetricsSummary> {
        let loader = ctx.data::<DataLoader<DbLoader>>()?;
        let recorded = loader.load_one(TotalsOf(self.0.id.clone())).await.map_err(|e| e.extend())?.unwrap_or_default();
        Ok(AgentMetricsSummary {
            tokens: recorded.tokens.saturating_add(self.0.usage.tokens),
            cost: recorded.cost + self.0.usage.cost,
            runtime_seconds: recorded.runtime_seconds,
            tasks_completed: recorded.tasks_completed,
        })
    }
    /// Recorded metrics, newest first.
    #[graphql(complexity = "crate::pagination::cost(first, child_complexity)")]
    async fn metrics_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, AgentMetric, TotalCount>> {
        let db = ctx.data::<sea_orm::DatabaseConnection>()?;
        let first = pagination::page_size(first).extend()?;
        let before = after.as_deref().map(|c| pagination::decode_seq(c, METRIC_CURSOR)).transpose().extend()?;
        let (rows, has_next, total) = service::metrics_page(db, &self.0.id, first, before).await.extend()?;
        let mut connection =
            Connection::with_additional_fields(after.is_some(), has_next, TotalCount { total_count: total });
        connection
            .edges
            .extend(rows.into_iter().map(|m| Edge::new(pagination::seq_cursor(METRIC_CURSOR, m.id), AgentMetric(m))));
        Ok(connection)
    }
    /// The last `limit` messages (default 50, max 1000), oldest first.
    #[graphql(complexity = "limit.unwrap_or(50).clamp(1, MAX_TRANSCRIPT) as usize * child_complexity")]
    async fn transcript(&self, ctx: &Context<'_>, limit: Option<i32>) -> async_graphql::Result<Vec<TranscriptMessage>> {
        let limit = limit.unwrap_or(50);
        if !(1..=MAX_TRANSCRIPT).contains(&limit) {
            return Err(AppError::invalid("limit", format!("must be between 1 and {MAX_TRANSCRIPT}"))).extend();
        }
        let hub = ctx.data::<Arc<super::AgentHub>>()?;
        let entries = hub.runtime().transcript(&self.0.id, limit as usize).await.map_err(AppError::from).extend()?;
        Ok(entries.into_iter().map(TranscriptMessage).collect())
    }
    /// Tasks assigned to this agent.
    async fn tasks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Task>> {
        let db = ctx.data::<sea_orm::DatabaseConnection>()?;
        let rows = service::assigned_tasks(db, &self.0.id).await.extend()?;
        Ok(rows.into_iter().map(Task).collect())
    }
}

/// One recorded metrics sample.
pub struct AgentMetric(pub agent_metric::Model);

#[Object]
impl AgentMetric {
    async fn id(&self) -> async_graphql::ID {
        self.0.id.to_string().into()
    }
    async fn agent_id(&self) -> async_graphql::ID {
        self.0.agent_id.clone().into()
    }
    async fn session_id(&self) -> Option<&str> {
        self.0.session_id.as_deref()
    }
    async fn tokens(&self) -> i64 {
        self.0.tokens
    }
    async fn cost(&self) -> f64 {
        self.0.cost
    }
    async fn runtime_seconds(&self) -> i64 {
        self.0.runtime_seconds
    }
    async fn tasks_completed(&self) -> i64 {
        self.0.tasks_completed
    }
    async fn timestamp(&self) -> DateTime<Utc> {
        from_millis(self.0.timestamp)
    }
}

/// One message of a transcript.
pub struct TranscriptMessage(pub TranscriptEntry);

#[Object]
impl TranscriptMessage {
    async fn role(&self) -> &str {
        &self.0.role
    }
    async fn text(&self) -> &str {
        &self.0.text
    }
    async fn timestamp(&self) -> Option<DateTime<Utc>> {
        self.0.timestamp
    }
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn tokens(&self) -> Option<i64> {
        self.0.tokens
    }
    async fn cost(&self) -> Option<f64> {
        self.0.cost
    }
}

/// Input of `spawnAgent`.
#[derive(Debug, Clone, InputObject)]
pub struct SpawnAgentInput {
    pub label: String,
    pub task: String,
}

/// Input of `recordAgentMetrics`.
#[derive(Debug, Clone, InputObject)]
pub struct RecordMetricsInput {
    pub session_id: Option<String>,
    pub tokens: Option<i64>,
    pub cost: Option<f64>,
    pub runtime_seconds: Option<i64>,
    pub tasks_completed: Option<i64>,
}

/// A snapshot of every agent and the ids that changed.
pub struct AgentStatusEvent(pub Arc<AgentsChange>);

#[Object]
impl AgentStatusEvent {
    async fn agents(&self) -> Vec<Agent> {
        self.0.agents.iter().cloned().map(Agent).collect()
    }
    async fn changed(&self) -> Vec<async_graphql::ID> {
        self.0.changed.iter().cloned().map(Into::into).collect()
    }
}

/// One item of what an agent writes while it writes it.
pub struct AgentOutput(pub Arc<AgentOutputItem>);

#[Object]
impl AgentOutput {
    async fn agent_id(&self) -> async_graphql::ID {
        self.0.agent_id.clone().into()
    }
    async fn run_id(&self) -> Option<&str> {
        self.0.run_id.as_deref()
    }
    async fn kind(&self) -> OutputKind {
        self.0.kind
    }
    /// `TEXT`: the new text only (joining the deltas gives the reply). `STATUS`: the phase.
    /// `FINAL`: the whole reply. `ERROR`: what went wrong.
    async fn text(&self) -> Option<&str> {
        self.0.text.as_deref()
    }
    async fn tool_name(&self) -> Option<&str> {
        self.0.tool_name.as_deref()
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// A command an agent asks to run, and what a human decided.
pub struct ExecApproval(pub Approval);

#[Object]
impl ExecApproval {
    async fn id(&self) -> async_graphql::ID {
        self.0.id.clone().into()
    }
    async fn command(&self) -> &str {
        &self.0.command
    }
    async fn cwd(&self) -> Option<&str> {
        self.0.cwd.as_deref()
    }
    /// The agent that asks (its session key), when the gateway says.
    async fn agent_id(&self) -> Option<async_graphql::ID> {
        self.0.agent_id.clone().map(Into::into)
    }
    async fn session_key(&self) -> Option<&str> {
        self.0.session_key.as_deref()
    }
    async fn status(&self) -> ApprovalState {
        self.0.status
    }
    async fn decision(&self) -> Option<Decision> {
        self.0.decision
    }
    /// Who decided: a user of this server, or the gateway client that did.
    async fn decided_by(&self) -> Option<&str> {
        self.0.decided_by.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
}
