//! GraphQL types of schedules.

use async_graphql::{ComplexObject, Context, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};

use super::service::{self, Action, RunStatus, ScheduleAction, ScheduleSpec};
use crate::agents::types::SpawnAgentInput;
use crate::entity::{schedule, schedule_run};
use crate::error::AppError;
use crate::tasks::types::CreateTaskInput;
use crate::time::from_millis;

/// Input of `createSchedule` and `updateSchedule`.
#[derive(Debug, Clone, InputObject)]
pub struct ScheduleInput {
    pub name: String,
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.
    pub cron: String,
    /// IANA zone name; `UTC` by default.
    pub timezone: Option<String>,
    pub action: ScheduleAction,
    /// For SPAWN_AGENT: the agent's label and first message.
    pub agent: Option<SpawnAgentInput>,
    /// For CREATE_TASK: the task to create.
    pub task: Option<CreateTaskInput>,
    /// For CREATE_TASK: also dispatch the new task to a new agent.
    pub dispatch: Option<bool>,
    /// `true` by default.
    pub enabled: Option<bool>,
}

impl TryFrom<ScheduleInput> for ScheduleSpec {
    type Error = AppError;

    fn try_from(input: ScheduleInput) -> Result<Self, AppError> {
        let action = match input.action {
            ScheduleAction::SpawnAgent => {
                let agent =
                    input.agent.ok_or_else(|| AppError::invalid("agent", "SPAWN_AGENT needs agent: {label, task}"))?;
                Action::Spawn { label: agent.label, task: agent.task }
            }
            ScheduleAction::CreateTask => {
                let task =
                    input.task.ok_or_else(|| AppError::invalid("task", "CREATE_TASK needs task: a CreateTaskInput"))?;
                Action::Create { task: task.into(), dispatch: input.dispatch.unwrap_or(false) }
            }
        };
        Ok(ScheduleSpec {
            name: input.name,
            cron: input.cron,
            timezone: input.timezone,
            action,
            enabled: input.enabled.unwrap_or(true),
        })
    }
}

/// A schedule.
pub struct Schedule(pub schedule::Model);

#[async_graphql::Object]
impl Schedule {
    async fn id(&self) -> async_graphql::ID {
        self.0.id.clone().into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn cron(&self) -> &str {
        &self.0.cron
    }
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    async fn action(&self) -> ScheduleAction {
        ScheduleAction::parse(&self.0.action).unwrap_or(ScheduleAction::CreateTask)
    }
    /// The action's input: `{label, task}`, or `{task: CreateTaskInput, dispatch}`.
    async fn input(&self) -> Option<Json<serde_json::Value>> {
        crate::entity::stored_json(Some(&self.0.input))
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// When it fires next (UTC); null while disabled.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        service::next_of(&self.0)
    }
    /// The last scheduled time it ran for.
    async fn last_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_run_at.map(from_millis)
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        from_millis(self.0.updated_at)
    }
    /// Its runs, newest first; `first` 1..100 (default 20).
    async fn runs(&self, ctx: &Context<'_>, first: Option<i32>) -> async_graphql::Result<Vec<ScheduleRun>> {
        use async_graphql::ResultExt;
        let first = crate::pagination::page_size(Some(first.unwrap_or(20))).extend()?;
        let db = ctx.data::<sea_orm::DatabaseConnection>()?;
        Ok(service::runs(db, &self.0.id, first).await.extend()?.into_iter().map(ScheduleRun::from).collect())
    }
}

/// One run of a schedule.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct ScheduleRun {
    pub id: async_graphql::ID,
    pub schedule_id: async_graphql::ID,
    pub status: RunStatus,
    /// The agent it spawned (or dispatched the task to).
    pub agent_id: Option<async_graphql::ID>,
    /// The task it created.
    pub task_id: Option<async_graphql::ID>,
    /// Why it failed.
    pub error: Option<String>,
    /// Asked for with `runScheduleNow`, not a cron time.
    pub manual: bool,
    #[graphql(skip)]
    pub scheduled_for_ms: i64,
    #[graphql(skip)]
    pub started_at_ms: i64,
}

#[ComplexObject]
impl ScheduleRun {
    async fn scheduled_for(&self) -> DateTime<Utc> {
        from_millis(self.scheduled_for_ms)
    }
    async fn started_at(&self) -> DateTime<Utc> {
        from_millis(self.started_at_ms)
    }
}

impl From<schedule_run::Model> for ScheduleRun {
    fn from(m: schedule_run::Model) -> Self {
        ScheduleRun {
            id: m.id.into(),
            schedule_id: m.schedule_id.into(),
            status: RunStatus::parse(&m.status).unwrap_or(RunStatus::Failed),
            agent_id: m.agent_id.map(Into::into),
            task_id: m.task_id.map(Into::into),
            error: m.error,
            manual: m.manual,
            scheduled_for_ms: m.scheduled_for,
            started_at_ms: m.started_at,
        }
    }
}
