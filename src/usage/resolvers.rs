//! `usage`: tokens and cost over time, for charts (everyone reads).

use std::sync::Arc;

use async_graphql::{Context, Object, ResultExt};
use chrono::{DateTime, Utc};

use super::{UsageBucket, UsageGroup, UsagePoint};
use crate::agents::AgentHub;
use crate::auth::viewer;
use crate::db::Writer;

/// Usage queries.
#[derive(Default)]
pub struct UsageQuery;

#[Object]
impl UsageQuery {
    /// Input, output and all tokens and cost in `[from, to)`, per hour or day, overall (no
    /// `groupBy`), per agent or per model. Buckets without usage are left out.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: UsageBucket,
        group_by: Option<UsageGroup>,
    ) -> async_graphql::Result<Vec<UsagePoint>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<Writer>()?.db();
        let hub = ctx.data_opt::<Arc<AgentHub>>();
        let model_of = |id: &str| hub.and_then(|h| h.get(id)).and_then(|a| a.model);
        super::query(db, from, to, bucket, group_by.unwrap_or_default(), model_of).await.extend()
    }
}
