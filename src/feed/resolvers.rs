//! GraphQL resolvers of the feed.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, ResultExt, Subscription};
use futures_util::Stream;
use sea_orm::DatabaseConnection;

use super::LiveAgents;
use super::service::{self, ActivityKind, FeedFilter};
use super::stream::activity_stream;
use super::types::{Activity, CURSOR_TAG, FeedStats};
use crate::auth::viewer;
use crate::events::EventBus;
use crate::pagination;

/// `totalCount` of the feed, counted only when asked for.
pub struct FeedCount {
    filter: FeedFilter,
}

#[Object]
impl FeedCount {
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(service::count(db, &self.filter).await.extend()? as i64)
    }
}

/// Feed queries.
#[derive(Default)]
pub struct FeedQuery;

#[Object]
impl FeedQuery {
    /// The activity feed, newest first.
    #[graphql(complexity = "crate::pagination::cost(first, child_complexity)")]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        filter: Option<FeedFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Activity, FeedCount>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        let first = pagination::page_size(first).extend()?;
        let before = after.as_deref().map(|c| pagination::decode_seq(c, CURSOR_TAG)).transpose().extend()?;
        let filter = filter.unwrap_or_default();
        let (rows, has_next) = service::list(db, &filter, first, before).await.extend()?;
        let mut connection = Connection::with_additional_fields(after.is_some(), has_next, FeedCount { filter });
        connection.edges.extend(
            rows.into_iter().map(|row| Edge::new(pagination::seq_cursor(CURSOR_TAG, row.id), Activity(Arc::new(row)))),
        );
        Ok(connection)
    }

    /// Totals of the feed, the board and the agents.
    async fn feed_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<FeedStats> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        // The live agent figures are handed in by the wiring, not reached for.
        let live = ctx.data_opt::<Arc<dyn LiveAgents>>().map(|l| l.totals()).unwrap_or_default();
        let stored = service::stats(db).await.extend()?;
        Ok(FeedStats {
            total_activities: stored.total_activities,
            recent_24h: stored.recent_24h,
            by_type: stored.by_type,
            by_actor: stored.by_actor,
            tasks_by_status: stored.tasks_by_status,
            active_agents: live.active,
            total_tokens: stored.recorded_tokens.saturating_add(live.tokens),
            total_cost: stored.recorded_cost + live.cost,
            task_runs: stored.task_runs,
            task_tokens: stored.task_tokens,
            task_cost: stored.task_cost,
        })
    }
}

/// Feed subscriptions.
#[derive(Default)]
pub struct FeedSubscription;

#[Subscription]
impl FeedSubscription {
    /// Every activity as it is committed, optionally of one type.
    ///
    /// With `after` (an activity's `cursor` or `id`), first replays every activity committed
    /// after it, then continues live, with no gap and no duplicate at the seam.
    async fn activity(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] kind: Option<ActivityKind>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Activity>> + use<>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?.clone();
        let bus = ctx.data::<EventBus>()?;
        let after = match after.as_deref() {
            None => None,
            Some(raw) => Some(match raw.parse::<i64>() {
                Ok(id) if id >= 0 => id,
                _ => pagination::decode_seq(raw, CURSOR_TAG).extend()?,
            }),
        };
        let rx = bus.subscribe();
        Ok(activity_stream(db, rx, after, kind))
    }
}
