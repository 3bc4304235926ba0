//! GraphQL resolvers of schedules: everyone reads; ADMIN creates, changes, deletes and runs.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, ResultExt};

use super::service::{self, ScheduleSpec, Scheduler};
use super::types::{Schedule, ScheduleInput, ScheduleRun};
use crate::auth::{Role, viewer};
use crate::db::Writer;

/// Schedule queries.
#[derive(Default)]
pub struct ScheduleQuery;

#[Object]
impl ScheduleQuery {
    /// Every schedule, oldest first.
    async fn schedules(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Schedule>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<Writer>()?.db();
        Ok(service::list(db).await.extend()?.into_iter().map(Schedule).collect())
    }

    /// One schedule, or null.
    async fn schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Schedule>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<Writer>()?.db();
        Ok(service::get(db, &id).await.extend()?.map(Schedule))
    }
}

/// Schedule mutations (ADMIN).
#[derive(Default)]
pub struct ScheduleMutation;

#[Object]
impl ScheduleMutation {
    async fn create_schedule(&self, ctx: &Context<'_>, input: ScheduleInput) -> async_graphql::Result<Schedule> {
        let who = viewer(ctx).extend()?;
        who.require(Role::Admin).extend()?;
        let spec = ScheduleSpec::try_from(input).extend()?;
        Ok(Schedule(service::create(ctx.data::<Writer>()?, &who.actor(), spec).await.extend()?))
    }

    /// Replaces the schedule; its next run is reckoned afresh from now.
    async fn update_schedule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ScheduleInput,
    ) -> async_graphql::Result<Schedule> {
        let who = viewer(ctx).extend()?;
        who.require(Role::Admin).extend()?;
        let spec = ScheduleSpec::try_from(input).extend()?;
        Ok(Schedule(service::update(ctx.data::<Writer>()?, &who.actor(), &id, spec).await.extend()?))
    }

    async fn delete_schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let who = viewer(ctx).extend()?;
        who.require(Role::Admin).extend()?;
        service::delete(ctx.data::<Writer>()?, &who.actor(), &id).await.extend()?;
        Ok(id)
    }

    /// Runs the schedule's action now (even while it is disabled); its cron times are unchanged.
    async fn run_schedule_now(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ScheduleRun> {
        let who = viewer(ctx).extend()?;
        who.require(Role::Admin).extend()?;
        let scheduler = ctx.data::<Arc<Scheduler>>()?;
        Ok(scheduler.run_now(&who.actor(), &id).await.extend()?.into())
    }
}
