//! GraphQL types of the tasks domain.

use async_graphql::{ComplexObject, Context, Enum, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};

use async_graphql::dataloader::DataLoader;

use crate::agents::types::Agent;
use crate::entity::{comment, task, task_run};
use crate::error::AppError;
use crate::loaders::DbLoader;
use crate::snapshot::AgentState;
use crate::tasks::loaders::{CommentsOf, RunsOf};
use crate::time::from_millis;

use crate::entity::stored_enum;

/// Where a task stands on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Todo,
    InProgress,
    Review,
    Done,
    Blocked,
}
stored_enum!(TaskStatus { Todo => "TODO", InProgress => "IN_PROGRESS", Review => "REVIEW", Done => "DONE", Blocked => "BLOCKED" });

/// How urgent a task is; stored as its rank so ordering is numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskPriority {
    Low,
    Medium,
    High,
    Urgent,
}

impl TaskPriority {
    /// Rank for storage and ordering.
    pub fn rank(self) -> i16 {
        self as i16
    }
    /// The priority of a stored rank.
    pub fn from_rank(rank: i16) -> Option<Self> {
        [Self::Low, Self::Medium, Self::High, Self::Urgent].get(usize::try_from(rank).ok()?).copied()
    }
    /// The GraphQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Urgent => "URGENT",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

/// What a task list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum TaskOrderField {
    #[default]
    CreatedAt,
    UpdatedAt,
    DueDate,
    Priority,
}
stored_enum!(TaskOrderField { CreatedAt => "CREATED_AT", UpdatedAt => "UPDATED_AT", DueDate => "DUE_DATE", Priority => "PRIORITY" });

/// Order of a task list; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, InputObject, Default)]
pub struct TaskOrder {
    pub field: TaskOrderField,
    pub direction: OrderDirection,
}

/// Filters for `tasks`; all given filters must match. An empty list filters nothing.
#[derive(Debug, Clone, InputObject, Default)]
pub struct TaskFilter {
    pub status: Option<Vec<TaskStatus>>,
    pub priority: Option<Vec<TaskPriority>>,
    pub assigned_agent: Option<String>,
    pub tag: Option<String>,
    /// Case-insensitive substring of the title or description.
    pub search: Option<String>,
}

/// Input of `createTask`.
#[derive(Debug, Clone, InputObject)]
pub struct CreateTaskInput {
    pub title: String,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<TaskPriority>,
    pub assigned_agent: Option<String>,
    pub due_date: Option<DateTime<Utc>>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Json<serde_json::Value>>,
}

/// Input of `updateTask`: only the fields given change; `null` clears a nullable field.
#[derive(Debug, Clone, InputObject, Default)]
pub struct UpdateTaskInput {
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<TaskPriority>,
    pub assigned_agent: MaybeUndefined<String>,
    pub due_date: MaybeUndefined<DateTime<Utc>>,
    pub tags: Option<Vec<String>>,
    pub metadata: MaybeUndefined<Json<serde_json::Value>>,
}

impl From<CreateTaskInput> for crate::tasks::commands::NewTask {
    fn from(input: CreateTaskInput) -> Self {
        crate::tasks::commands::NewTask {
            title: input.title,
            description: input.description,
            status: input.status,
            priority: input.priority,
            assigned_agent: input.assigned_agent,
            due_date: input.due_date,
            tags: input.tags.unwrap_or_default(),
            metadata: input.metadata.map(|m| m.0),
        }
    }
}

impl From<UpdateTaskInput> for crate::tasks::commands::TaskChanges {
    fn from(input: UpdateTaskInput) -> Self {
        crate::tasks::commands::TaskChanges {
            title: input.title,
            description: input.description.into(),
            status: input.status,
            priority: input.priority,
            assigned_agent: input.assigned_agent.into(),
            due_date: input.due_date.into(),
            tags: input.tags,
            metadata: Option::<Option<Json<serde_json::Value>>>::from(input.metadata).map(|m| m.map(|j| j.0)),
        }
    }
}

/// A task on the board.
pub struct Task(pub task::Model);

#[Object]
impl Task {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn status(&self) -> Result<TaskStatus, AppError> {
        TaskStatus::parse(&self.0.status).ok_or_else(|| AppError::Internal(format!("stored status {}", self.0.status)))
    }
    async fn priority(&self) -> Result<TaskPriority, AppError> {
        TaskPriority::from_rank(self.0.priority)
            .ok_or_else(|| AppError::Internal(format!("stored priority {}", self.0.priority)))
    }
    /// An agent id, free text.
    async fn assigned_agent(&self) -> Option<&str> {
        self.0.assigned_agent.as_deref()
    }
    /// The assigned agent, when the runtime knows it.
    async fn agent(&self, ctx: &Context<'_>) -> Option<Agent> {
        let id = self.0.assigned_agent.as_deref()?;
        ctx.data_opt::<std::sync::Arc<crate::agents::AgentHub>>()?.get(id).map(Agent)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        from_millis(self.0.updated_at)
    }
    async fn due_date(&self) -> Option<DateTime<Utc>> {
        self.0.due_date.map(from_millis)
    }
    async fn tags(&self) -> Vec<String> {
        serde_json::from_str(&self.0.tags).unwrap_or_default()
    }
    async fn metadata(&self) -> Option<Json<serde_json::Value>> {
        crate::entity::stored_json(self.0.metadata.as_deref())
    }
    /// Comments, oldest first.
    async fn comments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Comment>> {
        use async_graphql::ErrorExtensions;
        let loader = ctx.data::<DataLoader<DbLoader>>()?;
        let rows = loader.load_one(CommentsOf(self.0.id.clone())).await.map_err(|e| e.extend())?;
        Ok(rows.unwrap_or_default().into_iter().map(Comment::from).collect())
    }
    async fn comment_count(&self) -> i32 {
        self.0.comment_count
    }
    /// Every run of the task (dispatches and claims), oldest first.
    async fn runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TaskRun>> {
        Ok(self.load_runs(ctx).await?.into_iter().map(TaskRun).collect())
    }
    /// Tokens used by the task's runs, summed.
    async fn tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.load_runs(ctx).await?.iter().fold(0i64, |sum, r| sum.saturating_add(r.tokens)))
    }
    /// Dollar cost of the task's runs, summed.
    async fn cost(&self, ctx: &Context<'_>) -> async_graphql::Result<f64> {
        Ok(self.load_runs(ctx).await?.iter().map(|r| r.cost).sum())
    }
    /// Who holds the task's claim (`claimTask`), while one is held.
    async fn claimed_by(&self) -> Option<&str> {
        self.0.claimed_by.as_deref()
    }
    /// When the claim lapses unless `heartbeatTask` renews it.
    async fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.claimed_by.as_ref().and(self.0.lease_expires_at).map(from_millis)
    }
}

impl Task {
    async fn load_runs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<task_run::Model>> {
        use async_graphql::ErrorExtensions;
        let loader = ctx.data::<DataLoader<DbLoader>>()?;
        Ok(loader.load_one(RunsOf(self.0.id.clone())).await.map_err(|e| e.extend())?.unwrap_or_default())
    }
}

/// How a run reached its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum TaskRunKind {
    /// `dispatchTask` sent it to an agent of the runtime.
    Dispatch,
    /// A principal took it with `claimTask`.
    Claim,
}
stored_enum!(TaskRunKind { Dispatch => "DISPATCH", Claim => "CLAIM" });

/// One time a task was worked on: a dispatch to an agent, or a claim.
pub struct TaskRun(pub task_run::Model);

#[Object]
impl TaskRun {
    async fn id(&self) -> async_graphql::ID {
        self.0.id.clone().into()
    }
    async fn task_id(&self) -> async_graphql::ID {
        self.0.task_id.clone().into()
    }
    /// The agent's session key (a dispatch) or the claimer's name (a claim).
    async fn agent_id(&self) -> async_graphql::ID {
        self.0.agent_id.clone().into()
    }
    async fn kind(&self) -> TaskRunKind {
        TaskRunKind::parse(&self.0.kind).unwrap_or(TaskRunKind::Dispatch)
    }
    /// The runtime's run id (dispatches only).
    async fn run_id(&self) -> Option<&str> {
        self.0.run_id.as_deref()
    }
    /// RUNNING until the run ends; then DONE, FAILED or KILLED.
    async fn status(&self) -> AgentState {
        AgentState::parse(&self.0.status).unwrap_or(AgentState::Unknown)
    }
    /// Who dispatched or claimed.
    async fn started_by(&self) -> &str {
        &self.0.started_by
    }
    async fn started_at(&self) -> DateTime<Utc> {
        from_millis(self.0.started_at)
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at.map(from_millis)
    }
    /// Tokens the agent used in this run.
    async fn tokens(&self) -> i64 {
        self.0.tokens
    }
    /// Dollars the agent spent in this run.
    async fn cost(&self) -> f64 {
        self.0.cost
    }
    /// The agent's final reply, the claimer's result, or why the run failed.
    async fn result(&self) -> Option<&str> {
        self.0.result.as_deref()
    }
}

/// A comment on a task.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Comment {
    pub id: async_graphql::ID,
    pub task_id: async_graphql::ID,
    pub author: String,
    pub content: String,
    #[graphql(skip)]
    pub created_at_ms: i64,
}

#[ComplexObject]
impl Comment {
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.created_at_ms)
    }
}

impl From<comment::Model> for Comment {
    fn from(m: comment::Model) -> Self {
        Comment {
            id: m.id.into(),
            task_id: m.task_id.into(),
            author: m.author,
            content: m.content,
            created_at_ms: m.created_at,
        }
    }
}

/// A change to a task, as delivered by `taskUpdated`.
pub struct TaskEvent(pub std::sync::Arc<crate::events::TaskChange>);

#[Object]
impl TaskEvent {
    async fn kind(&self) -> crate::events::TaskEventKind {
        self.0.kind
    }
    async fn task_id(&self) -> async_graphql::ID {
        self.0.task_id.clone().into()
    }
    /// The task after the change; null for DELETED.
    async fn task(&self) -> Option<Task> {
        self.0.task.clone().map(Task)
    }
}
