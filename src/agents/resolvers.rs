//! GraphQL resolvers of agents.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, ResultExt, Subscription};
use futures_util::Stream;

use super::AgentHub;
use super::runtime::Decision;
use super::service;
use super::types::{
    Agent, AgentMetric, AgentOutput, AgentStatusEvent, ExecApproval, RecordMetricsInput, SpawnAgentInput,
};
use crate::auth::{viewer, writer};
use crate::events::{AgentsChange, Event, EventBus};
use crate::snapshot::ApprovalState;

/// Agent queries.
#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// Every agent the runtime knows.
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Agent>> {
        viewer(ctx).extend()?;
        let hub = ctx.data::<Arc<AgentHub>>()?;
        Ok(hub.snapshot().iter().cloned().map(Agent).collect())
    }

    /// One agent, or null when unknown.
    async fn agent(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Agent>> {
        viewer(ctx).extend()?;
        let hub = ctx.data::<Arc<AgentHub>>()?;
        Ok(hub.get(&id).map(Agent))
    }

    /// Exec approvals the gateway asked for, newest first.
    async fn approvals(
        &self,
        ctx: &Context<'_>,
        status: Option<ApprovalState>,
    ) -> async_graphql::Result<Vec<ExecApproval>> {
        viewer(ctx).extend()?;
        let hub = ctx.data::<Arc<AgentHub>>()?;
        Ok(hub.approvals().list(status).into_iter().map(ExecApproval).collect())
    }
}

/// Agent mutations.
#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
    /// Starts an agent with `task` as its first message; returns it at once (RUNNING).
    async fn spawn_agent(&self, ctx: &Context<'_>, input: SpawnAgentInput) -> async_graphql::Result<Agent> {
        let who = writer(ctx).extend()?;
        let (hub, bus) = (ctx.data::<Arc<AgentHub>>()?, ctx.data::<EventBus>()?);
        let agent = service::spawn(hub, bus, &who.actor(), &input.label, &input.task).await.extend()?;
        Ok(Agent(agent))
    }

    async fn kill_agent(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Agent> {
        let who = writer(ctx).extend()?;
        let (hub, bus) = (ctx.data::<Arc<AgentHub>>()?, ctx.data::<EventBus>()?);
        Ok(Agent(service::kill(hub, bus, &who.actor(), &id).await.extend()?))
    }

    async fn send_agent_message(&self, ctx: &Context<'_>, id: ID, message: String) -> async_graphql::Result<bool> {
        let who = writer(ctx).extend()?;
        let (hub, bus) = (ctx.data::<Arc<AgentHub>>()?, ctx.data::<EventBus>()?);
        service::send(hub, bus, &who.actor(), &id, &message).await.extend()?;
        Ok(true)
    }

    /// Passes a decision on an exec approval to the gateway. Deciding one that is no longer
    /// pending is `BAD_USER_INPUT`; an unknown id is `NOT_FOUND`.
    async fn resolve_approval(
        &self,
        ctx: &Context<'_>,
        id: ID,
        decision: Decision,
    ) -> async_graphql::Result<ExecApproval> {
        let who = writer(ctx).extend()?;
        let hub = ctx.data::<Arc<AgentHub>>()?;
        let approval = service::resolve_approval(hub, &who.actor(), &id, decision).await.extend()?;
        Ok(ExecApproval(approval))
    }

    async fn record_agent_metrics(
        &self,
        ctx: &Context<'_>,
        agent_id: ID,
        input: RecordMetricsInput,
    ) -> async_graphql::Result<AgentMetric> {
        let who = writer(ctx).extend()?;
        let row = service::record_metrics(
            ctx.data::<crate::db::Writer>()?,
            &who.actor(),
            &agent_id,
            input.session_id,
            input.tokens,
            input.cost,
            input.runtime_seconds,
            input.tasks_completed,
        )
        .await
        .extend()?;
        Ok(AgentMetric(row))
    }
}

/// Agent subscriptions.
#[derive(Default)]
pub struct AgentSubscription;

#[Subscription]
impl AgentSubscription {
    /// The current snapshot at once (every id counts as changed), then one event per change.
    async fn agent_status(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = AgentStatusEvent> + use<>> {
        viewer(ctx).extend()?;
        let hub = Arc::clone(ctx.data::<Arc<AgentHub>>()?);
        let mut rx = ctx.data::<EventBus>()?.subscribe();
        let snapshot = hub.snapshot();
        let first = AgentsChange { changed: snapshot.iter().map(|a| a.id.clone()).collect(), agents: snapshot };
        Ok(async_stream::stream! {
            yield AgentStatusEvent(Arc::new(first));
            loop {
                match rx.recv().await {
                    Ok(Event::Agents(change)) => yield AgentStatusEvent(change),
                    Ok(
                        Event::Task(_)
                        | Event::Activity(_)
                        | Event::AgentsSnapshot(_)
                        | Event::AgentAction(_)
                        | Event::AgentOutput(_)
                        | Event::Approval(_)
                        | Event::Notification(_),
                    ) => {}
                    Ok(Event::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // A full snapshot heals whatever was missed.
                        tracing::warn!("agentStatus subscriber may have missed events; sending a full snapshot");
                        let agents = hub.snapshot();
                        let changed = agents.iter().map(|a| a.id.clone()).collect();
                        yield AgentStatusEvent(Arc::new(AgentsChange { agents, changed }));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    /// What agent `id` writes while it writes it: text deltas, tool calls, run phases, then the
    /// final reply. An agent that is not running keeps the stream open for its next run.
    async fn agent_output(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = AgentOutput> + use<>> {
        viewer(ctx).extend()?;
        let mut rx = ctx.data::<EventBus>()?.subscribe();
        let id = id.to_string();
        Ok(async_stream::stream! {
            loop {
                match rx.recv().await {
                    Ok(Event::AgentOutput(item)) if item.agent_id == id => yield AgentOutput(item),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "agentOutput subscriber fell behind; some output was skipped");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    /// Each new exec approval, and each one resolved or expired. A subscriber that fell
    /// behind is ended with `SUBSCRIPTION_LAGGED` (refetch `approvals`, then subscribe again):
    /// an approval request skipped silently would wait unseen until it expires.
    async fn approvals(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ExecApproval>> + use<>> {
        viewer(ctx).extend()?;
        let bus = ctx.data::<EventBus>()?;
        Ok(crate::subscriptions::broadcast_stream(bus.subscribe(), "approvals", |event| match event {
            Event::Approval(approval) => Some(ExecApproval(approval.as_ref().clone())),
            _ => None,
        }))
    }
}
