//! Push: `dispatchTask` sends a task to an agent of the runtime, and the run's end moves the
//! task on (REVIEW, or DONE by configuration; BLOCKED when it failed or was killed) with a
//! completion receipt: the agent's final reply, its tokens, cost and duration.
//!
//! The task is reserved before the runtime is asked (so two dispatches cannot both send it),
//! the run is recorded once the runtime accepted it, and only then followed, so the run's end
//! always finds its record. A send that fails leaves the task as it was, with the error in its
//! activity.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::Work;
use super::runs::{self, RunResult};
use crate::agents::RunEnd;
use crate::agents::service as agents;
use crate::audit::{self, Change};
use crate::auth::{Actor, ActorKind};
use crate::db::UnitOfWork;
use crate::entity::{task, task_run};
use crate::error::{AppError, AppResult};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::snapshot::{AgentInfo, AgentState, Usage};
use crate::tasks::commands::{self, MAX_CONTENT};
use crate::tasks::types::{TaskPriority, TaskStatus};
use crate::time::now_millis;
use crate::validate;

/// How long a dispatch holds its task while the runtime is asked (its instance may die).
const RESERVATION_MS: i64 = 5 * 60 * 1000;
/// Most of the task's description that goes into the message (the runtime takes 10,000).
const MAX_BRIEF_DESCRIPTION: usize = 8_000;
/// Messages of the transcript searched for the final reply.
const REPLY_SEARCH: usize = 20;

/// Sends task `id` to agent `agent_id`, or (none given) to a new agent labelled `label` (the
/// task's title by default); returns the task, now IN_PROGRESS.
pub async fn dispatch(
    work: &Work,
    actor: &Actor,
    id: &str,
    agent_id: Option<&str>,
    label: Option<&str>,
) -> AppResult<task::Model> {
    let agent = agent_id.map(|a| agents::known_agent(&work.hub, a)).transpose()?;
    if let Some(label) = label {
        if agent.is_some() {
            return Err(AppError::invalid("label", "names a new agent: give agentId or label, not both"));
        }
        if label.trim().is_empty() {
            return Err(AppError::invalid("label", "must not be empty"));
        }
        validate::max_len("label", label, validate::MAX_NAME)?;
    }
    let holder = runs::dispatch_holder();
    let task = {
        let (id, holder, busy) = (id.to_owned(), holder.clone(), agent.as_ref().map(|a| a.id.clone()));
        work.writer.run(move |uow| Box::pin(async move { reserve(uow, &id, &holder, busy.as_deref()).await })).await?
    };
    let message = brief(&task);
    let started = match &agent {
        Some(agent) => agents::start_send(&work.hub, actor, &agent.id, &message).await,
        None => agents::start_spawn(&work.hub, actor, label.unwrap_or(&task.title), &message).await,
    };
    let started = match started {
        Ok(started) => started,
        Err(err) => {
            let (actor, id, reason) = (actor.clone(), id.to_owned(), err.public_message());
            let agent_id = agent.map(|a| a.id);
            let logged = work
                .writer
                .run(move |uow| {
                    Box::pin(async move { send_failed(uow, &actor, &id, &holder, agent_id, &reason).await })
                })
                .await;
            if let Err(log_err) = logged {
                tracing::error!(task = %task.id, error = %log_err, "could not record a failed dispatch");
            }
            return Err(err);
        }
    };
    let base = agent.map(|a| a.usage).unwrap_or_default();
    let recorded = {
        let (actor, id, agent_id, run_id) =
            (actor.clone(), id.to_owned(), started.agent.id.clone(), started.run_id.clone());
        work.writer
            .run(move |uow| Box::pin(async move { record(uow, &actor, &id, &agent_id, &run_id, base).await }))
            .await
    };
    // The agent has the task either way: follow its run so the agent's status shows.
    started.follow(&work.hub, &work.bus);
    if let Err(err) = &recorded {
        tracing::error!(task = %id, run = %started.run_id, error = %err, "a dispatched run could not be recorded");
    }
    recorded
}

/// Takes task `id` for this dispatch (`holder`), after checking it may be dispatched (to
/// `agent`, when it goes to an existing one).
async fn reserve(uow: &mut UnitOfWork, id: &str, holder: &str, agent: Option<&str>) -> AppResult<task::Model> {
    let row = commands::get_existing(uow.txn(), "id", id).await?;
    if let Some(agent) = agent
        && let Some(busy) = runs::running_on_agent(uow.txn(), agent).await?
    {
        // A second message would cut into that run, and the two runs' usage could not be told apart.
        return Err(AppError::invalid("agentId", format!("agent {agent} is working on task {} already", busy.task_id)));
    }
    if row.status == TaskStatus::Done.as_str() {
        return Err(AppError::invalid("id", format!("task {id} is DONE: move it back before dispatching it")));
    }
    if let Some(run) = runs::running_of(uow.txn(), id).await? {
        return Err(AppError::invalid("id", format!("task {id} is already running (on {})", run.agent_id)));
    }
    if let Some(holder) = &row.claim_holder {
        return Err(AppError::invalid(
            "id",
            match (&row.claimed_by, runs::is_dispatch_holder(Some(holder))) {
                (_, true) | (None, _) => format!("task {id} is being dispatched already"),
                (Some(by), false) => format!("task {id} is claimed by {by}"),
            },
        ));
    }
    let taken = task::Entity::update_many()
        .col_expr(task::Column::ClaimHolder, Expr::value(holder))
        .col_expr(task::Column::LeaseExpiresAt, Expr::value(now_millis() + RESERVATION_MS))
        .filter(task::Column::Id.eq(id))
        .filter(task::Column::ClaimHolder.is_null())
        .exec(uow.txn())
        .await?;
    if taken.rows_affected != 1 {
        return Err(AppError::invalid("id", format!("task {id} is being dispatched or claimed")));
    }
    Ok(row)
}

/// The message an agent gets: the task, its id, and how its answer comes back.
pub fn brief(task: &task::Model) -> String {
    let priority = TaskPriority::from_rank(task.priority).map_or("MEDIUM", TaskPriority::as_str);
    let mut message =
        format!("You have a task from Mission Control.\n\nTask {}: {}\nPriority: {priority}\n", task.id, task.title);
    if let Some(description) = task.description.as_deref().filter(|d| !d.trim().is_empty()) {
        let cut: String = description.chars().take(MAX_BRIEF_DESCRIPTION).collect();
        message.push('\n');
        message.push_str(&cut);
        if cut.len() < description.len() {
            message.push_str(" [...]");
        }
        message.push('\n');
    }
    message.push_str(
        "\nWork on it now. When you are done, reply with a short report of what you did: your final \
         reply is posted on the task as your report. If you cannot finish, say why in your final reply.",
    );
    message
}

/// The runtime refused the message: the task is as it was, and its activity says why.
async fn send_failed(
    uow: &mut UnitOfWork,
    actor: &Actor,
    id: &str,
    holder: &str,
    agent_id: Option<String>,
    reason: &str,
) -> AppResult<()> {
    runs::clear_reservation(uow.txn(), id, holder).await?;
    let meta = serde_json::json!({ "agentId": agent_id, "error": reason });
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Task, &actor.name, "dispatch_failed").target("task", id).metadata(meta),
    );
    Ok(())
}

/// The runtime accepted run `run_id` of agent `agent_id`: records it and moves the task on.
async fn record(
    uow: &mut UnitOfWork,
    actor: &Actor,
    id: &str,
    agent_id: &str,
    run_id: &str,
    base: Usage,
) -> AppResult<task::Model> {
    let before = commands::get_existing(uow.txn(), "id", id).await?;
    runs::start_dispatch(uow.txn(), id, agent_id, run_id, base, actor).await?;
    task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(TaskStatus::InProgress.as_str()))
        .col_expr(task::Column::AssignedAgent, Expr::value(agent_id))
        .col_expr(task::Column::ClaimHolder, Expr::value(Option::<String>::None))
        .col_expr(task::Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
        .col_expr(task::Column::UpdatedAt, Expr::value(Ord::max(now_millis(), before.updated_at + 1)))
        .filter(task::Column::Id.eq(id))
        .exec(uow.txn())
        .await?;
    let row = commands::get_existing(uow.txn(), "id", id).await?;
    let meta = serde_json::json!({ "title": row.title, "agentId": agent_id, "runId": run_id, "from": before.status, "to": row.status });
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Task, &actor.name, "dispatched").target("task", id).metadata(meta),
    );
    let change = Change::new("task.dispatch")
        .target("task", id)
        .before(serde_json::json!({ "status": before.status, "assignedAgent": before.assigned_agent }))
        .after(serde_json::json!({ "status": row.status, "assignedAgent": agent_id, "runId": run_id }));
    audit::record(uow, actor, change);
    commands::publish_updated(uow, row.clone());
    Ok(row)
}

/// Records the end of run `run_id` of agent `session_key`, when it was a dispatched task's.
pub async fn run_ended(work: &Work, session_key: &str, run_id: &str, end: RunEnd) -> AppResult<()> {
    let Some(run) = runs::running_dispatch(work.writer.db(), run_id).await? else {
        return Ok(()); // not a dispatched run, or ended already
    };
    let agent: Option<AgentInfo> = work.hub.get(session_key);
    let usage = agent.map(|a| a.usage).unwrap_or_default();
    let (status, result) = match end {
        RunEnd::Done => (AgentState::Done, final_reply(work, session_key, run.started_at).await),
        RunEnd::Failed(why) | RunEnd::Lost(why) => (AgentState::Failed, Some(why)),
        RunEnd::Killed => (AgentState::Killed, None),
    };
    let outcome = RunResult {
        status,
        tokens: (usage.tokens - run.base_tokens).max(0),
        cost: (usage.cost - run.base_cost).max(0.0),
        result,
    };
    let done_status = work.done_status;
    work.writer.run(move |uow| Box::pin(async move { end_run(uow, &run, &outcome, done_status).await })).await
}

/// The agent's last reply of this run (none when it wrote none, or it cannot be read).
async fn final_reply(work: &Work, session_key: &str, started_at: i64) -> Option<String> {
    let transcript = match work.hub.runtime().transcript(session_key, REPLY_SEARCH).await {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(agent = %session_key, error = %err, "cannot read the final reply of a dispatched run");
            return None;
        }
    };
    // A clock a little off between the gateway and this server must not hide the reply.
    let since = chrono::DateTime::from_timestamp_millis(started_at - 5_000);
    transcript
        .into_iter()
        .rev()
        .take_while(|entry| entry.timestamp.is_none_or(|t| since.is_none_or(|s| t >= s)))
        .find(|entry| entry.role == "assistant" && !entry.text.trim().is_empty())
        .map(|entry| entry.text)
}

/// What the receipt comment says: the reply (or why there is none), then the run's figures.
fn receipt(run: &task_run::Model, outcome: &RunResult) -> String {
    let seconds = (now_millis() - run.started_at).max(0) / 1000;
    let figures = format!(
        "Run {} in {}: {} tokens, ${:.4}.",
        outcome.status.as_str(),
        humantime::format_duration(std::time::Duration::from_secs(seconds as u64)),
        outcome.tokens,
        outcome.cost
    );
    let body = match (outcome.status, &outcome.result) {
        (AgentState::Done, Some(reply)) => reply.clone(),
        (AgentState::Done, None) => "The agent finished without a reply.".to_owned(),
        (AgentState::Killed, _) => "The agent was killed before it finished.".to_owned(),
        (_, Some(why)) => format!("The run failed: {why}"),
        (_, None) => "The run failed.".to_owned(),
    };
    let room = MAX_CONTENT.saturating_sub(figures.chars().count() + 8);
    let mut body: String = body.chars().take(room).collect();
    body.push_str("\n\n---\n");
    body.push_str(&figures);
    body
}

async fn end_run(uow: &mut UnitOfWork, run: &task_run::Model, outcome: &RunResult, done: TaskStatus) -> AppResult<()> {
    if !runs::end_dispatch_run(uow.txn(), run, outcome).await? {
        return Ok(());
    }
    let Some(before) = task::Entity::find_by_id(run.task_id.as_str()).one(uow.txn()).await? else {
        return Ok(()); // the task was deleted while its agent worked
    };
    let to = if outcome.status == AgentState::Done { done } else { TaskStatus::Blocked };
    // A task someone moved on by hand while the agent worked keeps where they put it.
    if before.status == TaskStatus::InProgress.as_str() {
        task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(to.as_str()))
            .col_expr(task::Column::UpdatedAt, Expr::value(Ord::max(now_millis(), before.updated_at + 1)))
            .filter(task::Column::Id.eq(before.id.as_str()))
            .exec(uow.txn())
            .await?;
    }
    let agent = Actor { name: run.agent_id.clone(), kind: ActorKind::System, client: None };
    commands::comment_in(uow, &agent, &run.task_id, &run.agent_id, &receipt(run, outcome)).await?;
    let row = commands::get_existing(uow.txn(), "id", &run.task_id).await?;
    let action = match outcome.status {
        AgentState::Done => "run_finished",
        AgentState::Killed => "run_killed",
        _ => "run_failed",
    };
    let meta = serde_json::json!({
        "runId": run.run_id,
        "agentId": run.agent_id,
        "status": outcome.status,
        "tokens": outcome.tokens,
        "cost": outcome.cost,
        "durationSeconds": (now_millis() - run.started_at).max(0) / 1000,
        "from": before.status,
        "to": row.status,
    });
    log_activity(uow, NewActivity::new(ActivityKind::Task, &agent.name, action).target("task", &row.id).metadata(meta));
    let change = Change::new("task.run_end")
        .target("task", &row.id)
        .before(serde_json::json!({ "status": before.status }))
        .after(serde_json::json!({
            "status": row.status,
            "runStatus": outcome.status,
            "tokens": outcome.tokens,
            "cost": outcome.cost,
        }));
    audit::record(uow, &agent, change);
    commands::publish_updated(uow, row);
    Ok(())
}
