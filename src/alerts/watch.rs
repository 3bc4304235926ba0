//! What the agent poller finds, turned into samples, notifications and deliveries by the
//! leader: status changes (`agent.status_changed`, AGENT_FAILED, AGENT_KILLED), transcript
//! spend (usage samples and budgets), and tasks that fell overdue as time passed.
//!
//! Every instance keeps its view of the agents up to date, so that a new leader knows what
//! changed; only the leader writes. Everything it writes is keyed by its occurrence (the
//! agent, the state, the time the runtime gives for it), so a leader change never repeats one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::notify::{self, Firing};
use super::rules::AlertKind;
use super::webhooks::{self, Outgoing};
use super::{Active, Alerts, budget, outbox};
use crate::agents::AgentHub;
use crate::agents::runtime::TranscriptEntry;
use crate::db::{UnitOfWork, Writer};
use crate::entity::{notification, task, usage_total};
use crate::error::AppResult;
use crate::events::{Event, EventBus};
use crate::snapshot::{AgentInfo, AgentState, Usage};
use crate::time::now_millis;

/// How often tasks are looked at for a passed due date.
pub const OVERDUE_EVERY: Duration = Duration::from_secs(5);
/// A failure first seen by a new leader still counts when it is this recent.
const RECENT: Duration = Duration::from_secs(300);
/// Most transcript messages read to date an agent's past spend.
const HISTORY_LIMIT: usize = 10_000;
/// Most overdue tasks handled per pass.
const OVERDUE_BATCH: u64 = 200;

/// An agent whose state changed.
#[derive(Debug, Clone)]
struct Transition {
    agent: AgentInfo,
    from: Option<AgentState>,
}

/// The leader's eyes on the agents (see the module docs).
pub struct Watcher {
    pub writer: Writer,
    pub hub: Arc<AgentHub>,
    pub alerts: Arc<Alerts>,
    pub bus: EventBus,
}

/// What an instance last saw of each agent.
#[derive(Debug, Default)]
pub struct Seen {
    states: HashMap<String, AgentState>,
    usage: HashMap<String, (Usage, Option<i64>, Option<i64>)>,
}

fn changed_at(agent: &AgentInfo) -> i64 {
    agent.updated_at.map(|t| t.timestamp_millis()).unwrap_or(0)
}

impl Watcher {
    /// Watches until `shutdown`.
    pub async fn run_until_stopped(self, mut shutdown: crate::shutdown::Signal) {
        let mut events = self.bus.subscribe();
        let mut seen = Seen::default();
        let first = self.hub.snapshot();
        let ids: Vec<String> = first.iter().map(|a| a.id.clone()).collect();
        self.observe(&first, &ids, &mut seen).await;
        let mut overdue = tokio::time::interval(OVERDUE_EVERY);
        overdue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(Event::Agents(change)) => self.observe(&change.agents, &change.changed, &mut seen).await,
                    Ok(Event::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let agents = self.hub.snapshot();
                        let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
                        self.observe(&agents, &ids, &mut seen).await;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = overdue.tick() => {
                    if self.hub.is_leader() && let Err(e) = self.sweep_overdue(now_millis()).await {
                        tracing::warn!(error = %e, "cannot look for overdue tasks");
                    }
                }
                _ = shutdown.wait() => break,
            }
        }
    }

    /// Takes in the agents `changed` in `agents`; as the leader, writes what they cause.
    pub async fn observe(&self, agents: &[AgentInfo], changed: &[String], seen: &mut Seen) {
        let now = chrono::Utc::now();
        let mut transitions = Vec::new();
        let mut spent = Vec::new();
        for agent in agents.iter().filter(|a| changed.contains(&a.id)) {
            let from = seen.states.insert(agent.id.clone(), agent.status);
            let recent = agent.updated_at.is_some_and(|t| (now - t).to_std().is_ok_and(|age| age < RECENT));
            let first_failure =
                from.is_none() && recent && matches!(agent.status, AgentState::Failed | AgentState::Killed);
            if from.is_some_and(|f| f != agent.status) || first_failure {
                transitions.push(Transition { agent: agent.clone(), from });
            }
            let totals = (agent.usage, agent.input_tokens, agent.output_tokens);
            let spends = agent.usage.tokens > 0 || agent.usage.cost > 0.0 || agent.input_tokens.unwrap_or(0) > 0;
            if seen.usage.insert(agent.id.clone(), totals) != Some(totals) && spends {
                spent.push(agent.clone());
            }
        }
        if !self.hub.is_leader() || (transitions.is_empty() && spent.is_empty()) {
            return;
        }
        let histories = self.first_histories(&spent).await;
        let undo: Vec<(String, Option<AgentState>)> =
            transitions.iter().map(|t| (t.agent.id.clone(), t.from)).collect();
        let alerts = Arc::clone(&self.alerts);
        let models = budget::ModelAgents::of(Some(&self.hub));
        let written = self
            .writer
            .run(move |uow| {
                Box::pin(async move {
                    let active = alerts.active();
                    for transition in &transitions {
                        status_changed(uow, &active, transition).await?;
                    }
                    let mut grew = false;
                    for agent in &spent {
                        let history = histories.get(&agent.id).map(Vec::as_slice);
                        grew |= crate::usage::record_growth(uow, agent, history).await?;
                    }
                    if grew {
                        budget::check(uow, &active, None, &models, chrono::Utc::now()).await?;
                    }
                    Ok(())
                })
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record what the agents did; it is retried at their next change");
            // Forget them, so that their next snapshot is taken in again (a transition too).
            for id in changed {
                seen.usage.remove(id);
            }
            for (id, from) in undo {
                match from {
                    Some(state) => seen.states.insert(id, state),
                    None => seen.states.remove(&id),
                };
            }
        }
    }

    /// The transcripts of those of `agents` never sampled before, so that their past spend is
    /// dated message by message (read here, outside the writer's transaction).
    async fn first_histories(&self, agents: &[AgentInfo]) -> HashMap<String, Vec<TranscriptEntry>> {
        let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
        let known: Vec<String> = match usage_total::Entity::find()
            .select_only()
            .column(usage_total::Column::AgentId)
            .filter(usage_total::Column::AgentId.is_in(ids))
            .into_tuple()
            .all(self.writer.db())
            .await
        {
            Ok(known) => known,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read sampled totals");
                return HashMap::new();
            }
        };
        let mut histories = HashMap::new();
        for agent in agents.iter().filter(|a| !known.contains(&a.id)) {
            match self.hub.runtime().transcript(&agent.id, HISTORY_LIMIT).await {
                Ok(entries) => {
                    histories.insert(agent.id.clone(), entries);
                }
                Err(e) => tracing::debug!(agent = %agent.id, error = %e, "no transcript to date past spend by"),
            }
        }
        histories
    }

    /// Fires TASK_OVERDUE rules for tasks whose due date passed before `now`: for each rule,
    /// the overdue tasks it has not fired for yet (so a pass never stalls on ones it did),
    /// oldest due first, [`OVERDUE_BATCH`] at a time.
    pub async fn sweep_overdue(&self, now: i64) -> AppResult<()> {
        let rules: Vec<_> = self.alerts.active().rules(AlertKind::TaskOverdue).cloned().collect();
        for rule in rules {
            self.writer
                .run(move |uow| {
                    Box::pin(async move {
                        // The occurrence key `overdue_for` writes, spelled in SQL.
                        let occurrence = Expr::cust("'task:' || \"tasks\".\"id\" || ':due:' || \"tasks\".\"due_date\"");
                        let fired = Query::select()
                            .expr(Expr::val(1))
                            .from(notification::Entity)
                            .and_where(
                                Expr::col((notification::Entity, notification::Column::RuleId)).eq(rule.id.clone()),
                            )
                            .and_where(
                                Expr::col((notification::Entity, notification::Column::Occurrence)).eq(occurrence),
                            )
                            .to_owned();
                        let not_fired = Expr::exists(fired).not();
                        let mut due = task::Entity::find()
                            .filter(task::Column::DueDate.lt(now))
                            .filter(task::Column::Status.ne("DONE"))
                            .filter(not_fired);
                        if let Some(agent) = &rule.agent_id {
                            due = due.filter(task::Column::AssignedAgent.eq(agent));
                        }
                        let due = due.order_by_asc(task::Column::DueDate).limit(OVERDUE_BATCH).all(uow.txn()).await?;
                        for row in &due {
                            outbox::overdue_for(uow, &rule, row, now).await?;
                        }
                        Ok(())
                    })
                })
                .await?;
        }
        Ok(())
    }
}

/// Queues `agent.status_changed` and fires the agent rules of `transition`.
async fn status_changed(uow: &mut UnitOfWork, active: &Active, transition: &Transition) -> AppResult<()> {
    let agent = &transition.agent;
    let at = changed_at(agent);
    let data = serde_json::json!({
        "id": agent.id,
        "label": agent.label,
        "status": agent.status.as_str(),
        "previousStatus": transition.from.map(AgentState::as_str),
        "runtimeStatus": agent.runtime_status,
        "model": agent.model,
        "tokens": agent.usage.tokens,
        "cost": agent.usage.cost,
        "updatedAt": agent.updated_at,
    });
    // One occurrence: the agent, its state, and when the runtime says it got there.
    let occurrence = format!("agent:{}:{}:{at}", agent.id, agent.status.as_str());
    let outgoing = Outgoing { event: "agent.status_changed", data, dedupe_key: Some(occurrence.clone()) };
    webhooks::enqueue(uow, &active.webhooks, &outgoing).await?;
    let kind = match agent.status {
        AgentState::Failed => AlertKind::AgentFailed,
        AgentState::Killed => AlertKind::AgentKilled,
        _ => return Ok(()),
    };
    let name = agent.label.clone().unwrap_or_else(|| agent.id.clone());
    for rule in active.rules(kind) {
        if rule.agent_id.as_deref().is_some_and(|a| a != agent.id)
            || rule.model.as_ref().is_some_and(|m| agent.model.as_ref() != Some(m))
        {
            continue;
        }
        let word = if kind == AlertKind::AgentFailed { "failed" } else { "was killed" };
        let firing = Firing {
            occurrence: occurrence.clone(),
            title: format!("Agent {name} {word}"),
            body: format!(
                "Agent {name} ({}{}) is {}{}; it spent {} tokens, ${:.4}.",
                agent.id,
                agent.model.as_deref().map(|m| format!(", {m}")).unwrap_or_default(),
                agent.status.as_str(),
                agent.runtime_status.as_deref().map(|s| format!(" (runtime: {s})")).unwrap_or_default(),
                agent.usage.tokens,
                agent.usage.cost,
            ),
            target_type: "agent",
            target_id: agent.id.clone(),
        };
        notify::fire(uow, rule, firing).await?;
    }
    Ok(())
}
