//! Schedules: create, change, delete; and their runs, each `(schedule, scheduledFor)` exactly
//! once however many instances tick.
//!
//! A run is claimed before it acts by moving the schedule's `next_run_at` on with a
//! conditional update (`... WHERE id = ? AND next_run_at = <scheduledFor>`): only the instance
//! whose update changed the row acts. A task-creating run claims, creates the task and records
//! itself in one transaction, so it happens exactly once even across a crash. A spawning run
//! asks the runtime after its claim committed: a crash between the two loses that one run
//! rather than running it twice. After downtime the missed time runs once, and the next run
//! is the first one after now.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};

use super::plan::Plan;
use crate::agents::AgentHub;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::{UnitOfWork, Writer};
use crate::entity::stored_enum;
use crate::entity::{schedule, schedule_run};
use crate::error::{AppError, AppResult};
use crate::events::EventBus;
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::tasks::commands::{self, NewTask};
use crate::time::{from_millis, now_millis};
use crate::validate;
use crate::work::Work;

/// Most schedules one server keeps.
pub const MAX_SCHEDULES: u64 = 500;
/// Due schedules run per tick (the rest run on the next).
const DUE_BATCH: u64 = 50;

/// What a schedule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum ScheduleAction {
    SpawnAgent,
    CreateTask,
}
stored_enum!(ScheduleAction { SpawnAgent => "SPAWN_AGENT", CreateTask => "CREATE_TASK" });

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum RunStatus {
    Ok,
    Failed,
}
stored_enum!(RunStatus { Ok => "OK", Failed => "FAILED" });

/// A schedule's action with its input, as stored (`schedules.input`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Action {
    /// Spawn an agent labelled `label` with `task` as its first message.
    Spawn { label: String, task: String },
    /// Create a task; with `dispatch`, send it to a new agent at once.
    Create {
        task: NewTask,
        #[serde(default)]
        dispatch: bool,
    },
}

impl Action {
    fn kind(&self) -> ScheduleAction {
        match self {
            Action::Spawn { .. } => ScheduleAction::SpawnAgent,
            Action::Create { .. } => ScheduleAction::CreateTask,
        }
    }

    /// Fails as the action itself would on its input, before it is stored.
    fn check(&self) -> AppResult<()> {
        match self {
            Action::Spawn { label, task } => {
                crate::agents::service::check_spawn(label, task).map_err(|e| AppError::Validation(format!("agent.{e}")))
            }
            Action::Create { task, .. } => {
                commands::check_new(task).map_err(|e| AppError::Validation(format!("task.{e}")))
            }
        }
    }
}

/// A schedule as given to `createSchedule` / `updateSchedule`.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub cron: String,
    pub timezone: Option<String>,
    pub action: Action,
    pub enabled: bool,
}

/// Everything a run needs: where changes go, and the agents.
pub struct Scheduler {
    pub writer: Writer,
    pub hub: Arc<AgentHub>,
    pub bus: EventBus,
    pub work: Arc<Work>,
}

/// The stored input of a schedule.
pub fn action_of(row: &schedule::Model) -> AppResult<Action> {
    serde_json::from_str(&row.input).map_err(|e| AppError::Internal(format!("schedule {} input: {e}", row.id)))
}

fn zone_of(spec: &ScheduleSpec) -> String {
    spec.timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()).unwrap_or("UTC").to_owned()
}

/// Checks `spec`; returns its plan and the next time it fires from `now` (none when disabled).
fn checked(spec: &ScheduleSpec, now: i64) -> AppResult<(String, Option<i64>)> {
    validate::name("name", &spec.name)?;
    validate::max_len("cron", &spec.cron, 200)?;
    let zone = zone_of(spec);
    let plan = Plan::parse(&spec.cron, &zone)?;
    spec.action.check()?;
    let next = spec.enabled.then(|| plan.next_after(from_millis(now))).flatten().map(|t| t.timestamp_millis());
    Ok((zone, next))
}

fn audited(row: &schedule::Model) -> serde_json::Value {
    serde_json::json!({
        "name": row.name,
        "cron": row.cron,
        "timezone": row.timezone,
        "action": row.action,
        "input": serde_json::from_str::<serde_json::Value>(&row.input).unwrap_or_default(),
        "enabled": row.enabled,
    })
}

fn input_text(action: &Action) -> AppResult<String> {
    serde_json::to_string(action).map_err(|e| AppError::Internal(format!("encoding a schedule's input: {e}")))
}

/// Creates a schedule.
pub async fn create(writer: &Writer, actor: &Actor, spec: ScheduleSpec) -> AppResult<schedule::Model> {
    let now = now_millis();
    let (zone, next) = checked(&spec, now)?;
    let input = input_text(&spec.action)?;
    let actor = actor.clone();
    writer
        .run(move |uow| {
            Box::pin(async move {
                let kept = schedule::Entity::find().count(uow.txn()).await?;
                validate::room_for_one_more(kept, MAX_SCHEDULES, "schedules")?;
                let row = schedule::ActiveModel {
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    name: Set(spec.name.trim().to_owned()),
                    cron: Set(spec.cron.trim().to_owned()),
                    timezone: Set(zone),
                    action: Set(spec.action.kind().as_str().to_owned()),
                    input: Set(input),
                    enabled: Set(spec.enabled),
                    next_run_at: Set(next),
                    last_run_at: Set(None),
                    created_by: Set(actor.name.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(uow.txn())
                .await?;
                log_change(uow, &actor, "schedule_created", &row);
                audit::record(
                    uow,
                    &actor,
                    Change::new("schedule.create").target("schedule", &row.id).after(audited(&row)),
                );
                Ok(row)
            })
        })
        .await
}

fn log_change(uow: &mut UnitOfWork, actor: &Actor, action: &str, row: &schedule::Model) {
    let meta =
        serde_json::json!({ "name": row.name, "cron": row.cron, "timezone": row.timezone, "enabled": row.enabled });
    log_activity(
        uow,
        NewActivity::new(ActivityKind::System, &actor.name, action).target("schedule", &row.id).metadata(meta),
    );
}

async fn existing(db: &impl ConnectionTrait, id: &str) -> AppResult<schedule::Model> {
    validate::uuid("id", id)?;
    schedule::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("schedule {id} not found")))
}

/// Replaces schedule `id` with `spec`; its next run is reckoned afresh from now.
pub async fn update(writer: &Writer, actor: &Actor, id: &str, spec: ScheduleSpec) -> AppResult<schedule::Model> {
    let now = now_millis();
    let (zone, next) = checked(&spec, now)?;
    let input = input_text(&spec.action)?;
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let before = existing(uow.txn(), &id).await?;
                let mut row: schedule::ActiveModel = before.clone().into();
                row.name = Set(spec.name.trim().to_owned());
                row.cron = Set(spec.cron.trim().to_owned());
                row.timezone = Set(zone);
                row.action = Set(spec.action.kind().as_str().to_owned());
                row.input = Set(input);
                row.enabled = Set(spec.enabled);
                row.next_run_at = Set(next);
                row.updated_at = Set(now);
                let row = row.update(uow.txn()).await?;
                log_change(uow, &actor, "schedule_updated", &row);
                let change =
                    Change::new("schedule.update").target("schedule", &id).diff(audited(&before), audited(&row));
                audit::record(uow, &actor, change);
                Ok(row)
            })
        })
        .await
}

/// Deletes schedule `id` and its run history.
pub async fn delete(writer: &Writer, actor: &Actor, id: &str) -> AppResult<()> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let before = existing(uow.txn(), &id).await?;
                schedule_run::Entity::delete_many()
                    .filter(schedule_run::Column::ScheduleId.eq(id.as_str()))
                    .exec(uow.txn())
                    .await?;
                schedule::Entity::delete_by_id(id.as_str()).exec(uow.txn()).await?;
                log_change(uow, &actor, "schedule_deleted", &before);
                audit::record(
                    uow,
                    &actor,
                    Change::new("schedule.delete").target("schedule", &id).before(audited(&before)),
                );
                Ok(())
            })
        })
        .await
}

/// Every schedule, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<schedule::Model>> {
    Ok(schedule::Entity::find()
        .order_by_asc(schedule::Column::CreatedAt)
        .order_by_asc(schedule::Column::Id)
        .all(db)
        .await?)
}

/// Schedule `id`, if it exists.
pub async fn get(db: &impl ConnectionTrait, id: &str) -> AppResult<Option<schedule::Model>> {
    validate::uuid("id", id)?;
    Ok(schedule::Entity::find_by_id(id).one(db).await?)
}

/// The last `first` runs of schedule `id`, newest first.
pub async fn runs(db: &impl ConnectionTrait, id: &str, first: u64) -> AppResult<Vec<schedule_run::Model>> {
    Ok(schedule_run::Entity::find()
        .filter(schedule_run::Column::ScheduleId.eq(id))
        .order_by_desc(schedule_run::Column::StartedAt)
        .order_by_desc(schedule_run::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}

/// What one run did.
struct Outcome {
    status: RunStatus,
    agent_id: Option<String>,
    task_id: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn failed(error: &AppError) -> Outcome {
        Outcome { status: RunStatus::Failed, agent_id: None, task_id: None, error: Some(error.public_message()) }
    }
}

/// Writes run `scheduled_for` of `schedule` with its activity; returns it.
async fn record(
    uow: &mut UnitOfWork,
    schedule: &schedule::Model,
    scheduled_for: i64,
    manual: bool,
    outcome: Outcome,
) -> AppResult<schedule_run::Model> {
    let row = schedule_run::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        schedule_id: Set(schedule.id.clone()),
        scheduled_for: Set(scheduled_for),
        started_at: Set(now_millis()),
        status: Set(outcome.status.as_str().to_owned()),
        agent_id: Set(outcome.agent_id),
        task_id: Set(outcome.task_id),
        error: Set(outcome.error),
        manual: Set(manual),
    }
    .insert(uow.txn())
    .await?;
    let action = if outcome.status == RunStatus::Ok { "schedule_ran" } else { "schedule_failed" };
    let meta = serde_json::json!({
        "schedule": schedule.name,
        "scheduledFor": from_millis(scheduled_for),
        "manual": manual,
        "agentId": row.agent_id,
        "taskId": row.task_id,
        "error": row.error,
    });
    log_activity(
        uow,
        NewActivity::new(ActivityKind::System, "system", action).target("schedule", &schedule.id).metadata(meta),
    );
    Ok(row)
}

/// Claims time `scheduled_for` of `schedule` for this instance by moving `next_run_at` on to
/// `next`; false when another instance (or a change of the schedule) got there first.
async fn claim(
    db: &impl ConnectionTrait,
    schedule: &schedule::Model,
    scheduled_for: i64,
    next: Option<i64>,
) -> AppResult<bool> {
    let moved = schedule::Entity::update_many()
        .col_expr(schedule::Column::NextRunAt, Expr::value(next))
        .col_expr(schedule::Column::LastRunAt, Expr::value(scheduled_for))
        .filter(schedule::Column::Id.eq(schedule.id.as_str()))
        .filter(schedule::Column::Enabled.eq(true))
        .filter(schedule::Column::NextRunAt.eq(scheduled_for))
        .exec(db)
        .await?;
    Ok(moved.rows_affected == 1)
}

impl Scheduler {
    /// Runs every schedule due at `now` once; returns how many this instance ran.
    pub async fn run_due(&self, now: i64) -> AppResult<usize> {
        let due = schedule::Entity::find()
            .filter(schedule::Column::Enabled.eq(true))
            .filter(schedule::Column::NextRunAt.lte(now))
            .order_by_asc(schedule::Column::NextRunAt)
            .limit(DUE_BATCH)
            .all(self.writer.db())
            .await?;
        let mut ran = 0;
        for row in due {
            let Some(scheduled_for) = row.next_run_at else { continue };
            // After downtime the missed time runs once; the next is the first one after now.
            let next = Plan::parse(&row.cron, &row.timezone)
                .ok()
                .and_then(|plan| plan.next_after(from_millis(Ord::max(now, scheduled_for))))
                .map(|t| t.timestamp_millis());
            match self.fire(&row, scheduled_for, Some(next), false).await {
                Ok(Some(_)) => ran += 1,
                Ok(None) => {}
                Err(err) => tracing::error!(schedule = %row.id, error = %err, "a scheduled run could not be recorded"),
            }
        }
        Ok(ran)
    }

    /// Runs schedule `id` now, enabled or not, outside its cron times.
    pub async fn run_now(&self, actor: &Actor, id: &str) -> AppResult<schedule_run::Model> {
        let row = existing(self.writer.db(), id).await?;
        let run = self.fire(&row, now_millis(), None, true).await?;
        let run = run.ok_or_else(|| AppError::Internal("a manual run was not recorded".into()))?;
        let actor = actor.clone();
        let change = Change::new("schedule.run_now")
            .target("schedule", id)
            .after(serde_json::json!({ "runId": run.id, "status": run.status }));
        self.writer
            .run(move |uow| {
                Box::pin(async move {
                    audit::record(uow, &actor, change);
                    Ok(())
                })
            })
            .await?;
        Ok(run)
    }

    /// Performs `schedule`'s action for `scheduled_for`. With `claim_next`, it is a cron time
    /// and is first claimed by moving the schedule on to that value; `None` when another
    /// instance claimed it.
    async fn fire(
        &self,
        schedule: &schedule::Model,
        scheduled_for: i64,
        claim_next: Option<Option<i64>>,
        manual: bool,
    ) -> AppResult<Option<schedule_run::Model>> {
        let action = action_of(schedule)?;
        match action {
            Action::Create { task, dispatch } => {
                let schedule_row = schedule.clone();
                let created = self
                    .writer
                    .run(move |uow| {
                        Box::pin(async move {
                            if let Some(next) = claim_next
                                && !claim(uow.txn(), &schedule_row, scheduled_for, next).await?
                            {
                                return Ok(None);
                            }
                            let outcome = match commands::create_in(uow, &Actor::system(), task).await {
                                Ok(task) => Outcome {
                                    status: RunStatus::Ok,
                                    agent_id: None,
                                    task_id: Some(task.id),
                                    error: None,
                                },
                                // Checked when the schedule was saved; a rule tightened since fails here.
                                Err(err @ AppError::Validation(_)) => Outcome::failed(&err),
                                Err(err) => return Err(err),
                            };
                            record(uow, &schedule_row, scheduled_for, manual, outcome).await.map(Some)
                        })
                    })
                    .await?;
                match created {
                    Some(run) if dispatch && run.task_id.is_some() => self.dispatch(run).await.map(Some),
                    other => Ok(other),
                }
            }
            Action::Spawn { label, task } => {
                if let Some(next) = claim_next {
                    let schedule_row = schedule.clone();
                    let won = self
                        .writer
                        .run(move |uow| {
                            Box::pin(async move { claim(uow.txn(), &schedule_row, scheduled_for, next).await })
                        })
                        .await?;
                    if !won {
                        return Ok(None);
                    }
                }
                let outcome =
                    match crate::agents::service::spawn(&self.hub, &self.bus, &Actor::system(), &label, &task).await {
                        Ok(agent) => {
                            Outcome { status: RunStatus::Ok, agent_id: Some(agent.id), task_id: None, error: None }
                        }
                        Err(err) => Outcome::failed(&err),
                    };
                let schedule_row = schedule.clone();
                let run = self
                    .writer
                    .run(move |uow| {
                        Box::pin(async move { record(uow, &schedule_row, scheduled_for, manual, outcome).await })
                    })
                    .await?;
                Ok(Some(run))
            }
        }
    }

    /// Sends the task run `run` created to a new agent; the run says how that went.
    async fn dispatch(&self, run: schedule_run::Model) -> AppResult<schedule_run::Model> {
        let Some(task_id) = run.task_id.clone() else { return Ok(run) };
        let (agent_id, status, error) =
            match crate::work::dispatch::dispatch(&self.work, &Actor::system(), &task_id, None, None).await {
                Ok(task) => (task.assigned_agent, RunStatus::Ok, None),
                Err(err) => {
                    let why = format!("the task was created; dispatching it failed: {}", err.public_message());
                    (None, RunStatus::Failed, Some(why))
                }
            };
        self.writer
            .run(move |uow| {
                Box::pin(async move {
                    let mut row: schedule_run::ActiveModel = run.into();
                    row.agent_id = Set(agent_id);
                    row.status = Set(status.as_str().to_owned());
                    row.error = Set(error);
                    Ok(row.update(uow.txn()).await?)
                })
            })
            .await
    }
}

/// The next time `row` fires (none while it is disabled).
pub fn next_of(row: &schedule::Model) -> Option<DateTime<Utc>> {
    row.enabled.then_some(row.next_run_at).flatten().map(from_millis)
}
