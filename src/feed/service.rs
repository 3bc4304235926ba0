//! Activity logging, listing, stats and replay.

use std::sync::Arc;

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, Set,
};

use crate::db::UnitOfWork;
use crate::entity::stored_enum;
use crate::entity::{activity, agent_metric, task, task_run};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::pagination;
use crate::time::now_millis;

/// What an activity is about; the GraphQL `ActivityType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(name = "ActivityType")]
pub enum ActivityKind {
    Task,
    Agent,
    Comment,
    System,
}
stored_enum!(ActivityKind { Task => "TASK", Agent => "AGENT", Comment => "COMMENT", System => "SYSTEM" });

/// An activity about to be logged.
#[derive(Debug, Clone)]
pub struct NewActivity {
    kind: ActivityKind,
    actor: String,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    metadata: Option<serde_json::Value>,
}

impl NewActivity {
    /// `actor` did `action`, an activity of `kind`.
    pub fn new(kind: ActivityKind, actor: &str, action: &str) -> Self {
        NewActivity {
            kind,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target_type: None,
            target_id: None,
            metadata: None,
        }
    }
    /// What it was done to.
    pub fn target(mut self, target_type: &str, target_id: &str) -> Self {
        self.target_type = Some(target_type.to_owned());
        self.target_id = Some(target_id.to_owned());
        self
    }
    /// Details.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// Inserts the activity row in the unit's transaction and queues its event for after commit.
pub async fn log_activity(uow: &mut UnitOfWork, new: NewActivity) -> AppResult<activity::Model> {
    uow.serialize_activity_ids().await?;
    let row = activity::ActiveModel {
        kind: Set(new.kind.as_str().to_owned()),
        actor: Set(new.actor),
        action: Set(new.action),
        target_type: Set(new.target_type),
        target_id: Set(new.target_id),
        metadata: Set(new.metadata.map(|m| m.to_string())),
        timestamp: Set(now_millis()),
        ..Default::default()
    }
    .insert(uow.txn())
    .await?;
    uow.publish_after_commit(Event::Activity(Arc::new(row.clone())));
    Ok(row)
}

/// Filters of `feed`.
#[derive(Debug, Clone, Default, async_graphql::InputObject)]
pub struct FeedFilter {
    #[graphql(name = "type")]
    pub kind: Option<ActivityKind>,
    pub actor: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The filtered selection of activities.
pub fn filtered(filter: &FeedFilter) -> AppResult<Select<activity::Entity>> {
    let mut select = activity::Entity::find();
    if let Some(kind) = filter.kind {
        select = select.filter(activity::Column::Kind.eq(kind.as_str()));
    }
    let select = pagination::equal_to(select, "filter.actor", filter.actor.as_ref(), activity::Column::Actor)?;
    let select =
        pagination::equal_to(select, "filter.targetId", filter.target_id.as_ref(), activity::Column::TargetId)?;
    pagination::since(select, "filter.since", filter.since, activity::Column::Timestamp)
}

/// One page of the feed, newest first, strictly older than `before_id`.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &FeedFilter,
    first: u64,
    before_id: Option<i64>,
) -> AppResult<(Vec<activity::Model>, bool)> {
    pagination::newest_first(db, filtered(filter)?, activity::Column::Id, first, before_id).await
}

/// Number of activities matching `filter`.
pub async fn count(db: &impl ConnectionTrait, filter: &FeedFilter) -> AppResult<u64> {
    Ok(filtered(filter)?.count(db).await?)
}

/// Activities with id greater than `after_id`, oldest first, at most `limit` (for replay).
pub async fn after(
    db: &impl ConnectionTrait,
    after_id: i64,
    upto_id: Option<i64>,
    limit: u64,
) -> AppResult<Vec<activity::Model>> {
    let mut select = activity::Entity::find().filter(activity::Column::Id.gt(after_id));
    if let Some(upto) = upto_id {
        select = select.filter(activity::Column::Id.lte(upto));
    }
    Ok(select.order_by_asc(activity::Column::Id).limit(limit).all(db).await?)
}

/// The id of the newest activity, or 0.
pub async fn latest_id(db: &impl ConnectionTrait) -> AppResult<i64> {
    Ok(activity::Entity::find().order_by_desc(activity::Column::Id).one(db).await?.map(|a| a.id).unwrap_or(0))
}

/// A key and how many rows have it.
#[derive(Debug, Clone, FromQueryResult, async_graphql::SimpleObject)]
pub struct CountByKey {
    pub key: String,
    pub count: i64,
}

async fn group_count<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    column: impl ColumnTrait,
    limit: Option<u64>,
) -> AppResult<Vec<CountByKey>> {
    let count = Expr::col(sea_orm::sea_query::Asterisk).count();
    let mut query = select
        .select_only()
        .column_as(column, "key")
        .column_as(count.clone(), "count")
        .group_by(column)
        .order_by_desc(count)
        .order_by_asc(Expr::col(Alias::new("key")));
    if let Some(n) = limit {
        query = query.limit(n);
    }
    Ok(query.into_model::<CountByKey>().all(db).await?)
}

/// Totals behind `feedStats`, except the agent figures (which come from the agent hub).
#[derive(Debug, Clone)]
pub struct StoredStats {
    pub total_activities: i64,
    pub recent_24h: i64,
    pub by_type: Vec<CountByKey>,
    pub by_actor: Vec<CountByKey>,
    pub tasks_by_status: Vec<CountByKey>,
    pub recorded_tokens: i64,
    pub recorded_cost: f64,
    /// Task runs (dispatches and claims), and the tokens and dollars they used.
    pub task_runs: i64,
    pub task_tokens: i64,
    pub task_cost: f64,
}

#[derive(Debug, FromQueryResult)]
struct MetricTotals {
    tokens: Option<i64>,
    cost: Option<f64>,
}

/// Counts for `feedStats`.
pub async fn stats(db: &impl ConnectionTrait) -> AppResult<StoredStats> {
    let total_activities = activity::Entity::find().count(db).await? as i64;
    let day_ago = now_millis() - 24 * 3600 * 1000;
    let recent_24h = activity::Entity::find().filter(activity::Column::Timestamp.gte(day_ago)).count(db).await? as i64;
    let by_type = group_count(db, activity::Entity::find(), activity::Column::Kind, None).await?;
    let by_actor = group_count(db, activity::Entity::find(), activity::Column::Actor, Some(10)).await?;
    let tasks_by_status = group_count(db, task::Entity::find(), task::Column::Status, None).await?;
    let totals = agent_metric::Entity::find()
        .select_only()
        .column_as(Expr::col(agent_metric::Column::Tokens).sum().cast_as(Alias::new("BIGINT")), "tokens")
        .column_as(Expr::col(agent_metric::Column::Cost).sum(), "cost")
        .into_model::<MetricTotals>()
        .one(db)
        .await?
        .ok_or_else(|| AppError::Internal("metric totals returned no row".into()))?;
    #[derive(Debug, FromQueryResult)]
    struct RunTotals {
        runs: i64,
        tokens: Option<i64>,
        cost: Option<f64>,
    }
    let runs = task_run::Entity::find()
        .select_only()
        .column_as(Expr::col(sea_orm::sea_query::Asterisk).count(), "runs")
        .column_as(Expr::col(task_run::Column::Tokens).sum().cast_as(Alias::new("BIGINT")), "tokens")
        .column_as(Expr::col(task_run::Column::Cost).sum(), "cost")
        .into_model::<RunTotals>()
        .one(db)
        .await?
        .ok_or_else(|| AppError::Internal("run totals returned no row".into()))?;
    Ok(StoredStats {
        task_runs: runs.runs,
        task_tokens: runs.tokens.unwrap_or(0),
        task_cost: runs.cost.unwrap_or(0.0),
        total_activities,
        recent_24h,
        by_type,
        by_actor,
        tasks_by_status,
        recorded_tokens: totals.tokens.unwrap_or(0),
        recorded_cost: totals.cost.unwrap_or(0.0),
    })
}
