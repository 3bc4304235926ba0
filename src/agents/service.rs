//! Agent actions (spawn, message, kill, record metrics) with their activity rows.
//!
//! A runtime action cannot be rolled back, so its activity is logged right after the runtime
//! accepted it; a runtime failure logs nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::AgentHub;
use super::runtime::{AgentInfo, AgentState, Approval, Decision, RunOutcome, SpawnRequest, Usage};
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::{UnitOfWork, Writer};
use crate::entity::{agent_metric, task};
use crate::error::{AppError, AppResult};
use crate::events::{AgentAction, Event, EventBus};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::snapshot::ApprovalState;
use crate::time::now_millis;
use crate::validate;

/// Longest spawn task or message.
const MAX_MESSAGE: usize = 10_000;
/// How long one `wait` call on a run blocks before it is repeated.
const WAIT_SLICE_MS: u64 = 30_000;
/// Failed `wait` calls in a row before a run is given up on (about six minutes of retries).
const WAIT_RETRIES: u32 = 8;
/// Largest token count, runtime or task count one metrics sample may carry.
const MAX_METRIC: i64 = 1_000_000_000_000;

/// Sums of the recorded metrics of one agent.
#[derive(Debug, Clone, Default, FromQueryResult)]
pub struct RecordedTotals {
    pub tokens: i64,
    pub cost: f64,
    pub runtime_seconds: i64,
    pub tasks_completed: i64,
}

/// Sums of recorded metrics for each of `agent_ids`, in one query. Agents with nothing
/// recorded have no entry (their totals are zero).
pub async fn recorded_totals_of(
    db: &impl ConnectionTrait,
    agent_ids: &[String],
) -> AppResult<HashMap<String, RecordedTotals>> {
    #[derive(FromQueryResult)]
    struct Row {
        agent_id: String,
        tokens: Option<i64>,
        cost: Option<f64>,
        runtime_seconds: Option<i64>,
        tasks_completed: Option<i64>,
    }
    let bigint = |c: agent_metric::Column| Expr::col(c).sum().cast_as(Alias::new("BIGINT"));
    let rows = agent_metric::Entity::find()
        .filter(agent_metric::Column::AgentId.is_in(agent_ids.iter().map(String::as_str)))
        .select_only()
        .column(agent_metric::Column::AgentId)
        .column_as(bigint(agent_metric::Column::Tokens), "tokens")
        .column_as(Expr::col(agent_metric::Column::Cost).sum(), "cost")
        .column_as(bigint(agent_metric::Column::RuntimeSeconds), "runtime_seconds")
        .column_as(bigint(agent_metric::Column::TasksCompleted), "tasks_completed")
        .group_by(agent_metric::Column::AgentId)
        .into_model::<Row>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let totals = RecordedTotals {
                tokens: r.tokens.unwrap_or(0),
                cost: r.cost.unwrap_or(0.0),
                runtime_seconds: r.runtime_seconds.unwrap_or(0),
                tasks_completed: r.tasks_completed.unwrap_or(0),
            };
            (r.agent_id, totals)
        })
        .collect())
}

/// A page of recorded metrics, newest first, older than `before_id`; with the total count.
pub async fn metrics_page(
    db: &impl ConnectionTrait,
    agent_id: &str,
    first: u64,
    before_id: Option<i64>,
) -> AppResult<(Vec<agent_metric::Model>, bool, i64)> {
    let base = agent_metric::Entity::find().filter(agent_metric::Column::AgentId.eq(agent_id));
    let total = base.clone().count(db).await? as i64;
    let mut select = base;
    if let Some(id) = before_id {
        select = select.filter(agent_metric::Column::Id.lt(id));
    }
    let mut rows = select.order_by_desc(agent_metric::Column::Id).limit(first + 1).all(db).await?;
    let has_next = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((rows, has_next, total))
}

/// Tasks assigned to `agent_id`, newest first.
pub async fn assigned_tasks(db: &impl ConnectionTrait, agent_id: &str) -> AppResult<Vec<task::Model>> {
    Ok(task::Entity::find()
        .filter(task::Column::AssignedAgent.eq(agent_id))
        .order_by_desc(task::Column::CreatedAt)
        .limit(500)
        .all(db)
        .await?)
}

fn validate_text(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.trim().is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    validate::max_len(field, value, max)
}

/// The agent `id` of the current snapshot, or `NOT_FOUND`.
pub fn known_agent(hub: &AgentHub, id: &str) -> AppResult<AgentInfo> {
    validate::max_len("id", id, validate::MAX_NAME)?;
    hub.get(id).ok_or_else(|| AppError::NotFound(format!("unknown agent {id}")))
}

/// Logs `actor`'s action on an agent: its activity and its audit entry, in one transaction.
async fn log(writer: &Writer, actor: &Actor, activity: NewActivity, change: Change) -> AppResult<()> {
    let actor = actor.clone();
    writer
        .run(move |uow| {
            Box::pin(async move {
                log_activity(uow, activity);
                audit::record(uow, &actor, change);
                Ok(())
            })
        })
        .await
}

/// A run the runtime accepted, not yet followed: [`Started::follow`] follows it to its end.
///
/// Dispatch records its run before following it, so the run's end always finds the record.
#[must_use = "a started run is followed only once `follow` is called"]
pub struct Started {
    pub agent: AgentInfo,
    pub run_id: String,
}

impl Started {
    /// Follows the run here when this instance polls the runtime, or hands it to the one that
    /// does (so runs started through any instance reach DONE/FAILED).
    pub fn follow(&self, hub: &Arc<AgentHub>, bus: &EventBus) {
        let session_key = self.agent.id.clone();
        follow_up(hub, bus, AgentAction::RunStarted { session_key, run_id: self.run_id.clone() });
    }
}

/// Spawns `agent:main:subagent:<uuid>` with `task` as its first message; follows its run.
pub async fn spawn(
    hub: &Arc<AgentHub>,
    bus: &EventBus,
    actor: &Actor,
    label: &str,
    task: &str,
) -> AppResult<AgentInfo> {
    let started = start_spawn(hub, actor, label, task).await?;
    started.follow(hub, bus);
    Ok(started.agent)
}

/// Fails as `spawnAgent` would on `label` and `task`, before anything is asked of the runtime.
pub fn check_spawn(label: &str, task: &str) -> AppResult<()> {
    validate_text("label", label, validate::MAX_NAME)?;
    validate_text("task", task, MAX_MESSAGE)
}

/// Spawns an agent as [`spawn`] does, leaving its run to be followed by the caller.
pub async fn start_spawn(hub: &Arc<AgentHub>, actor: &Actor, label: &str, task: &str) -> AppResult<Started> {
    check_spawn(label, task)?;
    let key = format!("agent:main:subagent:{}", uuid::Uuid::new_v4());
    let run = hub
        .runtime()
        .spawn(SpawnRequest { session_key: key.clone(), label: label.to_owned(), task: task.to_owned() })
        .await?;
    let agent = AgentInfo {
        id: key.clone(),
        label: Some(label.to_owned()),
        status: AgentState::Running,
        model: None,
        session_id: None,
        updated_at: Some(chrono::Utc::now()),
        input_tokens: None,
        output_tokens: None,
        usage: Usage::default(),
        runtime_status: None,
    };
    hub.add_pending(agent.clone());
    let activity = NewActivity::new(ActivityKind::Agent, &actor.name, "spawned")
        .target("agent", &key)
        .metadata(serde_json::json!({ "label": label, "runId": run.run_id }));
    let after = serde_json::json!({ "label": label, "task": task, "runId": run.run_id });
    log(hub.writer(), actor, activity, Change::new("agent.spawn").target("agent", &key).after(after)).await?;
    Ok(Started { agent: hub.get(&key).unwrap_or(agent), run_id: run.run_id })
}

/// Follows up an action here when this instance polls the runtime, or hands it to the one
/// that does (so runs started through any instance reach DONE/FAILED, and kills show).
fn follow_up(hub: &Arc<AgentHub>, bus: &EventBus, action: AgentAction) {
    if !hub.is_leader() {
        bus.publish(Event::AgentAction(Arc::new(action)));
        return;
    }
    if let AgentAction::RunStarted { session_key, run_id } = action {
        follow_run(Arc::clone(hub), session_key, run_id);
    }
}

/// Follows a run to its end in the background, polls so the outcome shows at once, then
/// tells the hub's run observer how it ended. A run already followed is not followed twice.
///
/// Only the leader follows runs; in a fleet the others see the outcome through its snapshots.
pub fn follow_run(hub: Arc<AgentHub>, session_key: String, run_id: String) {
    if !hub.is_leader() || !hub.start_following(&run_id) {
        return;
    }
    tokio::spawn(async move {
        let mut failures = 0u32;
        // `None`: the run could not be followed to its end.
        let outcome = loop {
            match hub.runtime().wait(&run_id, WAIT_SLICE_MS).await {
                Ok(RunOutcome::Timeout) => {
                    // A whole slice without an answer: a runtime that no longer knows the run
                    // (a gateway restarted since) waits forever, so the agent's own state decides.
                    match hub.get(&session_key).map(|a| a.status) {
                        Some(AgentState::Done) => break Some(RunOutcome::Ok),
                        Some(AgentState::Failed) => break Some(RunOutcome::Error("the agent's session failed".into())),
                        Some(AgentState::Killed) => break Some(RunOutcome::Error("killed".into())),
                        _ => continue,
                    }
                }
                Ok(outcome) => {
                    tracing::info!(run = %run_id, ?outcome, "agent run ended");
                    break Some(outcome);
                }
                Err(err) if failures < WAIT_RETRIES => {
                    failures += 1;
                    tracing::warn!(run = %run_id, error = %err, attempt = failures, "cannot follow agent run; retrying");
                    // Back off so a broken gateway is not hammered: 10 s, 20 s, 40 s, then every 60 s.
                    let pause = Duration::from_secs(Ord::min(5u64 << Ord::min(failures, 4), 60));
                    tokio::time::sleep(pause).await;
                }
                Err(err) => {
                    tracing::error!(run = %run_id, error = %err, "giving up on following agent run");
                    hub.runtime().abandon_run(&run_id);
                    break None;
                }
            }
        };
        hub.poll_once().await;
        let killed = hub.get(&session_key).is_some_and(|a| a.status == AgentState::Killed);
        // OpenClaw answers a wait on an aborted run with `aborted`, the simulation with `killed`.
        let end = match outcome {
            Some(RunOutcome::Ok) => super::RunEnd::Done,
            Some(RunOutcome::Error(why)) if killed || why == "aborted" || why == "killed" => super::RunEnd::Killed,
            Some(RunOutcome::Error(why)) => super::RunEnd::Failed(why),
            Some(RunOutcome::Timeout) | None => {
                super::RunEnd::Lost("the agent runtime stopped answering about this run".into())
            }
        };
        hub.run_ended(&session_key, &run_id, end).await;
    });
}

/// Sends `message` to agent `id`.
pub async fn send(hub: &Arc<AgentHub>, bus: &EventBus, actor: &Actor, id: &str, message: &str) -> AppResult<()> {
    let started = start_send(hub, actor, id, message).await?;
    started.follow(hub, bus);
    hub.poll_once().await;
    Ok(())
}

/// Sends a message as [`send`] does, leaving its run to be followed by the caller.
pub async fn start_send(hub: &Arc<AgentHub>, actor: &Actor, id: &str, message: &str) -> AppResult<Started> {
    validate_text("message", message, MAX_MESSAGE)?;
    let agent = known_agent(hub, id)?;
    let run = hub.runtime().send(id, message).await?;
    let activity = NewActivity::new(ActivityKind::Agent, &actor.name, "messaged")
        .target("agent", id)
        .metadata(serde_json::json!({ "runId": run.run_id, "length": message.chars().count() }));
    let after = serde_json::json!({ "message": message, "runId": run.run_id });
    log(hub.writer(), actor, activity, Change::new("agent.message").target("agent", id).after(after)).await?;
    Ok(Started { agent, run_id: run.run_id })
}

/// Kills agent `id`; returns it as it stands after the kill.
pub async fn kill(hub: &Arc<AgentHub>, bus: &EventBus, actor: &Actor, id: &str) -> AppResult<AgentInfo> {
    let before = known_agent(hub, id)?;
    hub.runtime().kill(id).await?;
    let activity = NewActivity::new(ActivityKind::Agent, &actor.name, "killed").target("agent", id);
    let change = Change::new("agent.kill")
        .target("agent", id)
        .before(serde_json::json!({ "status": before.status }))
        .after(serde_json::json!({ "status": AgentState::Killed }));
    log(hub.writer(), actor, activity, change).await?;
    follow_up(hub, bus, AgentAction::Killed { session_key: id.to_owned() });
    hub.poll_once().await;
    Ok(hub.get(id).unwrap_or(AgentInfo { status: AgentState::Killed, ..before }))
}

/// Records a metrics sample for agent `agent_id` (which need not be known to the runtime).
#[allow(clippy::too_many_arguments)]
pub async fn record_metrics(
    writer: &Writer,
    actor: &Actor,
    agent_id: &str,
    session_id: Option<String>,
    tokens: Option<i64>,
    cost: Option<f64>,
    runtime_seconds: Option<i64>,
    tasks_completed: Option<i64>,
) -> AppResult<agent_metric::Model> {
    if agent_id.trim().is_empty() {
        return Err(AppError::invalid("agentId", "must not be empty"));
    }
    validate::max_len("agentId", agent_id, validate::MAX_NAME)?;
    if let Some(s) = &session_id {
        validate::max_len("sessionId", s, validate::MAX_NAME)?;
    }
    let non_negative = |field: &str, v: Option<i64>| match v {
        Some(n) if !(0..=MAX_METRIC).contains(&n) => {
            Err(AppError::invalid(field, format!("must be between 0 and {MAX_METRIC}")))
        }
        v => Ok(v.unwrap_or(0)),
    };
    let tokens = non_negative("tokens", tokens)?;
    let runtime_seconds = non_negative("runtimeSeconds", runtime_seconds)?;
    let tasks_completed = non_negative("tasksCompleted", tasks_completed)?;
    let cost = match cost {
        Some(c) if !c.is_finite() || !(0.0..=MAX_METRIC as f64).contains(&c) => {
            return Err(AppError::invalid("cost", format!("must be a number between 0 and {MAX_METRIC}")));
        }
        c => c.unwrap_or(0.0),
    };
    let (actor, agent_id) = (actor.clone(), agent_id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                insert_metrics(uow, &actor, &agent_id, session_id, tokens, cost, runtime_seconds, tasks_completed).await
            })
        })
        .await
}

#[allow(clippy::too_many_arguments)]
async fn insert_metrics(
    uow: &mut UnitOfWork,
    actor: &Actor,
    agent_id: &str,
    session_id: Option<String>,
    tokens: i64,
    cost: f64,
    runtime_seconds: i64,
    tasks_completed: i64,
) -> AppResult<agent_metric::Model> {
    let row = agent_metric::ActiveModel {
        agent_id: Set(agent_id.to_owned()),
        session_id: Set(session_id),
        tokens: Set(tokens),
        cost: Set(cost),
        runtime_seconds: Set(runtime_seconds),
        tasks_completed: Set(tasks_completed),
        timestamp: Set(now_millis()),
        ..Default::default()
    }
    .insert(uow.txn())
    .await?;
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Agent, &actor.name, "metrics_recorded")
            .target("agent", agent_id)
            .metadata(serde_json::json!({ "tokens": tokens, "cost": cost })),
    );
    let after = serde_json::json!({
        "sessionId": row.session_id,
        "tokens": tokens,
        "cost": cost,
        "runtimeSeconds": runtime_seconds,
        "tasksCompleted": tasks_completed,
    });
    audit::record(uow, actor, Change::new("metrics.record").target("agent", agent_id).after(after));
    Ok(row)
}

/// Passes `actor`'s decision on approval `id` to the gateway; records who decided in the feed.
pub async fn resolve_approval(hub: &Arc<AgentHub>, actor: &Actor, id: &str, decision: Decision) -> AppResult<Approval> {
    validate::max_len("id", id, validate::MAX_NAME)?;
    let known = hub.approvals().get(id).ok_or_else(|| AppError::NotFound(format!("unknown approval {id}")))?;
    if known.status != ApprovalState::Pending {
        // The GraphQL name of the state (its serde name is the same word).
        let now =
            serde_json::to_value(known.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        return Err(AppError::invalid("id", format!("approval {id} is already {now}: it cannot be decided again")));
    }
    hub.runtime().resolve_approval(id, decision).await?;
    let decided =
        Approval { status: decision.state(), decision: Some(decision), decided_by: Some(actor.name.clone()), ..known };
    let merged = hub.record_approval(&decided);
    let action = if decision == Decision::Deny { "approval_denied" } else { "approval_allowed" };
    let mut activity = NewActivity::new(ActivityKind::Agent, &actor.name, action).metadata(serde_json::json!({
        "approvalId": id,
        "command": merged.command,
        "decision": decision.wire(),
    }));
    activity = match &merged.agent_id {
        Some(agent) => activity.target("agent", agent),
        None => activity.target("approval", id),
    };
    let change = Change::new("approval.resolve")
        .target("approval", id)
        .before(serde_json::json!({ "status": known.status }))
        .after(serde_json::json!({ "status": merged.status, "decision": decision.wire(), "command": merged.command }));
    log(hub.writer(), actor, activity, change).await?;
    Ok(merged)
}
