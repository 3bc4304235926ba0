//! GraphQL resolvers of dispatch and claims: parse, check the role, call the service, map.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, ResultExt};

use super::{Work, claims, dispatch};
use crate::auth::writer;
use crate::tasks::types::{Task, TaskFilter, TaskStatus};

/// Mutations that move work between the board and the agents.
#[derive(Default)]
pub struct WorkMutation;

#[Object]
impl WorkMutation {
    /// Sends the task to agent `agentId`, or (none given) to a new agent labelled `label` (the
    /// task's title by default). The task moves to IN_PROGRESS and records a run.
    async fn dispatch_task(
        &self,
        ctx: &Context<'_>,
        id: ID,
        agent_id: Option<ID>,
        label: Option<String>,
    ) -> async_graphql::Result<Task> {
        let who = writer(ctx).extend()?;
        let work = ctx.data::<Arc<Work>>()?;
        let row = dispatch::dispatch(work, &who.actor(), &id, agent_id.as_ref().map(|a| a.as_str()), label.as_deref())
            .await
            .extend()?;
        Ok(Task(row))
    }

    /// Claims the next TODO task `filter` matches (highest priority, then oldest) for
    /// `leaseSeconds` (30..86400, default 900); null when none is left.
    async fn claim_task(
        &self,
        ctx: &Context<'_>,
        filter: Option<TaskFilter>,
        lease_seconds: Option<i32>,
    ) -> async_graphql::Result<Option<Task>> {
        let who = writer(ctx).extend()?;
        let work = ctx.data::<Arc<Work>>()?;
        let row =
            claims::claim(&work.writer, &who.actor(), filter.unwrap_or_default(), lease_seconds).await.extend()?;
        Ok(row.map(Task))
    }

    /// Renews the caller's lease on the task by the length it was claimed with.
    async fn heartbeat_task(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Task> {
        let who = writer(ctx).extend()?;
        let work = ctx.data::<Arc<Work>>()?;
        Ok(Task(claims::heartbeat(&work.writer, &who.actor(), &id).await.extend()?))
    }

    /// Ends the caller's claim with `status`; `result`, when given, is posted as the caller's comment.
    async fn complete_task(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: TaskStatus,
        result: Option<String>,
    ) -> async_graphql::Result<Task> {
        let who = writer(ctx).extend()?;
        let work = ctx.data::<Arc<Work>>()?;
        Ok(Task(claims::complete(&work.writer, &who.actor(), &id, status, result).await.extend()?))
    }

    /// Gives the caller's claim up: the task returns to TODO.
    async fn release_task(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Task> {
        let who = writer(ctx).extend()?;
        let work = ctx.data::<Arc<Work>>()?;
        Ok(Task(claims::release(&work.writer, &who.actor(), &id).await.extend()?))
    }
}
