//! The `task_runs` rows: started by a dispatch or a claim, ended once (a conditional update
//! from RUNNING, so a run that two paths see end is ended by one of them only).

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::auth::Actor;
use crate::entity::{task, task_run};
use crate::error::AppResult;
use crate::snapshot::{AgentState, Usage};
use crate::tasks::types::TaskRunKind;
use crate::time::now_millis;

/// Prefix of the claim holder a dispatch puts on a task while it sends it.
const DISPATCH_HOLDER: &str = "dispatch:";

/// Who holds a claim `actor` takes: its kind and name (`API_KEY:ci-bot`).
pub fn holder_of(actor: &Actor) -> String {
    format!("{}:{}", actor.kind.as_str(), actor.name)
}

/// A fresh holder for one dispatch's reservation.
pub fn dispatch_holder() -> String {
    format!("{DISPATCH_HOLDER}{}", uuid::Uuid::new_v4())
}

/// Whether `holder` is a dispatch's reservation rather than a claimer.
pub fn is_dispatch_holder(holder: Option<&str>) -> bool {
    holder.is_some_and(|h| h.starts_with(DISPATCH_HOLDER))
}

/// Clears the reservation `holder` put on task `id` (if it is still there).
pub async fn clear_reservation(db: &impl ConnectionTrait, id: &str, holder: &str) -> AppResult<bool> {
    let cleared = task::Entity::update_many()
        .col_expr(task::Column::ClaimHolder, Expr::value(Option::<String>::None))
        .col_expr(task::Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
        .filter(task::Column::Id.eq(id))
        .filter(task::Column::ClaimHolder.eq(holder))
        .exec(db)
        .await?;
    Ok(cleared.rows_affected == 1)
}

fn new_run(task_id: &str, kind: TaskRunKind, agent_id: &str, started_by: &str) -> task_run::ActiveModel {
    task_run::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        task_id: Set(task_id.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        agent_id: Set(agent_id.to_owned()),
        run_id: Set(None),
        status: Set(AgentState::Running.as_str().to_owned()),
        started_by: Set(started_by.to_owned()),
        started_at: Set(now_millis()),
        ended_at: Set(None),
        base_tokens: Set(0),
        base_cost: Set(0.0),
        tokens: Set(0),
        cost: Set(0.0),
        result: Set(None),
    }
}

/// Records the run of a claim `actor` just took on task `task_id`.
pub async fn start_claim(db: &impl ConnectionTrait, task_id: &str, actor: &Actor) -> AppResult<task_run::Model> {
    Ok(new_run(task_id, TaskRunKind::Claim, &actor.name, &actor.name).insert(db).await?)
}

/// Records run `run_id` of agent `agent_id` working on task `task_id`; the agent had used
/// `base` before it (the run's own usage is measured from there).
pub async fn start_dispatch(
    db: &impl ConnectionTrait,
    task_id: &str,
    agent_id: &str,
    run_id: &str,
    base: Usage,
    actor: &Actor,
) -> AppResult<task_run::Model> {
    let mut row = new_run(task_id, TaskRunKind::Dispatch, agent_id, &actor.name);
    row.run_id = Set(Some(run_id.to_owned()));
    row.base_tokens = Set(base.tokens);
    row.base_cost = Set(base.cost);
    Ok(row.insert(db).await?)
}

/// The running claim run of task `task_id` ends with `status`.
pub async fn end_claim_run(
    db: &impl ConnectionTrait,
    task_id: &str,
    status: AgentState,
    result: Option<String>,
) -> AppResult<()> {
    task_run::Entity::update_many()
        .col_expr(task_run::Column::Status, Expr::value(status.as_str()))
        .col_expr(task_run::Column::EndedAt, Expr::value(now_millis()))
        .col_expr(task_run::Column::Result, Expr::value(result))
        .filter(task_run::Column::TaskId.eq(task_id))
        .filter(task_run::Column::Kind.eq(TaskRunKind::Claim.as_str()))
        .filter(task_run::Column::Status.eq(AgentState::Running.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// How a dispatched run ended, as measured.
pub struct RunResult {
    pub status: AgentState,
    pub tokens: i64,
    pub cost: f64,
    pub result: Option<String>,
}

/// Ends dispatched run `run` with `outcome`; false when it had ended already.
pub async fn end_dispatch_run(
    db: &impl ConnectionTrait,
    run: &task_run::Model,
    outcome: &RunResult,
) -> AppResult<bool> {
    let ended = task_run::Entity::update_many()
        .col_expr(task_run::Column::Status, Expr::value(outcome.status.as_str()))
        .col_expr(task_run::Column::EndedAt, Expr::value(now_millis()))
        .col_expr(task_run::Column::Tokens, Expr::value(outcome.tokens))
        .col_expr(task_run::Column::Cost, Expr::value(outcome.cost))
        .col_expr(task_run::Column::Result, Expr::value(outcome.result.clone()))
        .filter(task_run::Column::Id.eq(run.id.as_str()))
        .filter(task_run::Column::Status.eq(AgentState::Running.as_str()))
        .exec(db)
        .await?;
    Ok(ended.rows_affected == 1)
}

/// Runs not ended yet.
fn open_runs() -> sea_orm::Select<task_run::Entity> {
    task_run::Entity::find().filter(task_run::Column::Status.eq(AgentState::Running.as_str()))
}

/// Dispatched runs not ended yet.
fn open_dispatches() -> sea_orm::Select<task_run::Entity> {
    open_runs().filter(task_run::Column::Kind.eq(TaskRunKind::Dispatch.as_str()))
}

/// The running run of task `task_id`, if any.
pub async fn running_of(db: &impl ConnectionTrait, task_id: &str) -> AppResult<Option<task_run::Model>> {
    Ok(open_runs().filter(task_run::Column::TaskId.eq(task_id)).one(db).await?)
}

/// The running dispatched run with runtime id `run_id`, if any.
pub async fn running_dispatch(db: &impl ConnectionTrait, run_id: &str) -> AppResult<Option<task_run::Model>> {
    Ok(open_dispatches().filter(task_run::Column::RunId.eq(run_id)).one(db).await?)
}

/// The dispatched run agent `agent_id` is working on, if any.
pub async fn running_on_agent(db: &impl ConnectionTrait, agent_id: &str) -> AppResult<Option<task_run::Model>> {
    Ok(open_dispatches().filter(task_run::Column::AgentId.eq(agent_id)).one(db).await?)
}

/// Every dispatched run still running (to follow again after a restart or a new leader).
pub async fn running_dispatches(db: &impl ConnectionTrait) -> AppResult<Vec<task_run::Model>> {
    Ok(open_dispatches().all(db).await?)
}
