//! Activity logging, listing, stats and replay.

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

use crate::db::UnitOfWork;
use crate::entity::stored_enum;
use crate::entity::{activity, agent_metric, task, task_run};
use crate::error::{AppError, AppResult};
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

/// Logs the activity in the unit's transaction (its row is inserted with the other rows of the
/// batch, just before the commit) and queues its event for after commit.
pub fn log_activity(uow: &mut UnitOfWork, new: NewActivity) {
    uow.insert_activity_at_commit(activity::Model {
        // Given when the row is inserted.
        id: 0,
        kind: new.kind.as_str().to_owned(),
        actor: new.actor,
        action: new.action,
        target_type: new.target_type,
        target_id: new.target_id,
        metadata: new.metadata.map(|m| m.to_string()),
        timestamp: now_millis(),
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Writer;
    use crate::entity::audit_entry;
    use crate::events::{Event, EventBus};
    use futures_util::future::BoxFuture;

    /// A change logging `n` activities and an audit entry, all inserted at commit; refused
    /// after when `refuse`.
    fn logging(
        name: String,
        n: usize,
        refuse: bool,
    ) -> impl for<'a> FnOnce(&'a mut UnitOfWork) -> BoxFuture<'a, AppResult<()>> + Send + 'static {
        move |uow| {
            Box::pin(async move {
                for i in 0..n {
                    let activity = NewActivity::new(ActivityKind::System, "t", &format!("{name}.{i}"));
                    log_activity(uow, activity);
                }
                crate::audit::record(uow, &crate::auth::Actor::system(), crate::audit::Change::new("test.log"));
                if refuse { Err(AppError::invalid("x", "refused")) } else { Ok(()) }
            })
        }
    }

    /// [`logging`], in a savepoint of its own, or in the shared transaction when `checked`.
    async fn log(writer: &Writer, name: String, n: usize, refuse: bool, checked: bool) -> AppResult<()> {
        if checked {
            writer.run_checked(logging(name, n, refuse)).await
        } else {
            writer.run(logging(name, n, refuse)).await
        }
    }

    #[tokio::test]
    async fn rows_inserted_at_commit_carry_their_ids_in_commit_order_and_leave_with_a_refused_change() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let bus = EventBus::default();
        let mut events = bus.subscribe();
        let writer = Writer::start(db.clone(), bus);
        let changes = (0..40).map(|i| log(&writer, format!("c{i}"), 1 + i % 3, i % 7 == 3, i % 2 == 0));
        let answers = futures_util::future::join_all(changes).await;
        let refused: Vec<usize> = (0..40).filter(|i| i % 7 == 3).collect();
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.is_err(), refused.contains(&i), "change {i}: {answer:?}");
        }
        assert!(writer.transactions() < 40, "the changes were batched");

        let mut published = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Activity(row) = event {
                published.push((*row).clone());
            }
        }
        let stored = activity::Entity::find().all(&db).await.unwrap();
        assert_eq!(published, stored, "every event carries its stored row, id included, in id order");
        let expected: usize = (0..40).filter(|i| !refused.contains(i)).map(|i| 1 + i % 3).sum();
        assert_eq!(stored.len(), expected);
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
        // Each change's activities are together and in the order it logged them.
        for row in &stored {
            let (change, i) = row.action.split_once('.').unwrap();
            let index: usize = change[1..].parse().unwrap();
            assert!(!refused.contains(&index), "{} of a refused change is stored", row.action);
            if i != "0" {
                let before = stored.iter().position(|r| r.id == row.id).unwrap() - 1;
                assert_eq!(stored[before].action, format!("{change}.{}", i.parse::<usize>().unwrap() - 1));
            }
        }
        let audits = audit_entry::Entity::find().count(&db).await.unwrap();
        assert_eq!(audits as usize, 40 - refused.len(), "one audit entry per acknowledged change");
    }
}
