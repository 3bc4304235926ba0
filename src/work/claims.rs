//! Pull: a principal claims the next TODO task, keeps it with heartbeats, and completes or
//! releases it. A lease that is not renewed lapses and the task returns to TODO.
//!
//! A claim is one conditional update (`... WHERE status = 'TODO' AND claim_holder IS NULL`),
//! never a read-then-write: two claimers, or two instances of a fleet, cannot both win it.
//! On PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`, so concurrent claimers
//! pass over each other's rows instead of queueing behind them.

use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::runs::{self, holder_of};
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::{UnitOfWork, Writer};
use crate::entity::task;
use crate::error::{AppError, AppResult};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::snapshot::AgentState;
use crate::tasks::commands::{self, MAX_CONTENT};
use crate::tasks::queries;
use crate::tasks::types::{TaskFilter, TaskStatus};
use crate::time::now_millis;

/// Lease when `claimTask` names none: 15 minutes.
pub const DEFAULT_LEASE_SECONDS: i32 = 15 * 60;
/// Shortest and longest lease a claim may ask for.
pub const LEASE_RANGE: std::ops::RangeInclusive<i32> = 30..=86_400;
/// Tasks read per attempt; a claimer that loses all of them (others won) reads again.
const CANDIDATES: u64 = 8;
const ATTEMPTS: usize = 4;
/// Lapsed claims returned to TODO per sweep.
const SWEEP_BATCH: u64 = 200;

/// The lease `seconds` asks for, or the default.
pub fn lease_of(seconds: Option<i32>) -> AppResult<i32> {
    match seconds {
        None => Ok(DEFAULT_LEASE_SECONDS),
        Some(s) if LEASE_RANGE.contains(&s) => Ok(s),
        Some(_) => Err(AppError::invalid(
            "leaseSeconds",
            format!("must be between {} and {} seconds", LEASE_RANGE.start(), LEASE_RANGE.end()),
        )),
    }
}

/// Claims the next TODO task `filter` matches (highest priority, then oldest) for `actor`;
/// `None` when there is none.
pub async fn claim(
    writer: &Writer,
    actor: &Actor,
    filter: TaskFilter,
    lease_seconds: Option<i32>,
) -> AppResult<Option<task::Model>> {
    let lease = lease_of(lease_seconds)?;
    // The filter is checked here, before the change is queued.
    queries::filtered(&filter, writer.db().get_database_backend())?;
    let actor = actor.clone();
    writer.run(move |uow| Box::pin(async move { claim_next(uow, &actor, &filter, lease).await })).await
}

async fn claim_next(
    uow: &mut UnitOfWork,
    actor: &Actor,
    filter: &TaskFilter,
    lease: i32,
) -> AppResult<Option<task::Model>> {
    let backend = uow.txn().get_database_backend();
    let holder = holder_of(actor);
    for _ in 0..ATTEMPTS {
        let candidates = queries::filtered(filter, backend)?
            .filter(task::Column::Status.eq(TaskStatus::Todo.as_str()))
            .filter(task::Column::ClaimHolder.is_null())
            .order_by_desc(task::Column::Priority)
            .order_by_asc(task::Column::CreatedAt)
            .order_by_asc(task::Column::Id)
            .limit(CANDIDATES)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(uow.txn())
            .await?;
        if candidates.is_empty() {
            return Ok(None);
        }
        for candidate in candidates {
            let now = now_millis();
            let taken = task::Entity::update_many()
                .col_expr(task::Column::Status, Expr::value(TaskStatus::InProgress.as_str()))
                .col_expr(task::Column::ClaimedBy, Expr::value(actor.name.clone()))
                .col_expr(task::Column::ClaimHolder, Expr::value(holder.clone()))
                .col_expr(task::Column::LeaseSeconds, Expr::value(lease))
                .col_expr(task::Column::LeaseExpiresAt, Expr::value(now + i64::from(lease) * 1000))
                .col_expr(task::Column::UpdatedAt, Expr::value(Ord::max(now, candidate.updated_at + 1)))
                .filter(task::Column::Id.eq(candidate.id.as_str()))
                .filter(task::Column::Status.eq(TaskStatus::Todo.as_str()))
                .filter(task::Column::ClaimHolder.is_null())
                .exec(uow.txn())
                .await?;
            if taken.rows_affected != 1 {
                continue; // another claimer won this one
            }
            let row = commands::get_existing(uow.txn(), "id", &candidate.id).await?;
            runs::start_claim(uow.txn(), &row.id, actor).await?;
            log_activity(
                uow,
                NewActivity::new(ActivityKind::Task, &actor.name, "claimed").target("task", &row.id).metadata(
                    serde_json::json!({ "title": row.title, "leaseSeconds": lease, "from": candidate.status }),
                ),
            );
            let change = Change::new("task.claim")
                .target("task", &row.id)
                .before(serde_json::json!({ "status": candidate.status }))
                .after(serde_json::json!({ "status": row.status, "claimedBy": actor.name, "leaseSeconds": lease }));
            audit::record(uow, actor, change);
            commands::publish_updated(uow, row.clone());
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Task `id` as held by `actor`: `FORBIDDEN` unless its claim is `actor`'s and still live.
async fn held_by(db: &impl ConnectionTrait, actor: &Actor, id: &str) -> AppResult<task::Model> {
    let row = commands::get_existing(db, "id", id).await?;
    let mine = row.claim_holder.as_deref() == Some(holder_of(actor).as_str());
    if !mine {
        return Err(AppError::Forbidden(match &row.claimed_by {
            Some(other) => format!("task {id} is claimed by {other}, not by you"),
            None => format!("task {id} is not claimed: claim it first"),
        }));
    }
    if row.lease_expires_at.is_some_and(|at| at <= now_millis()) {
        return Err(AppError::Forbidden(format!("your lease on task {id} lapsed: claim it again")));
    }
    Ok(row)
}

/// Renews `actor`'s lease on task `id` by the length it was claimed with.
pub async fn heartbeat(writer: &Writer, actor: &Actor, id: &str) -> AppResult<task::Model> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let row = held_by(uow.txn(), &actor, &id).await?;
                let lease = i64::from(row.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS));
                task::Entity::update_many()
                    .col_expr(task::Column::LeaseExpiresAt, Expr::value(now_millis() + lease * 1000))
                    .filter(task::Column::Id.eq(id.as_str()))
                    .exec(uow.txn())
                    .await?;
                let row = commands::get_existing(uow.txn(), "id", &id).await?;
                // A heartbeat a minute per task would drown the feed: it is an event, not an activity.
                commands::publish_updated(uow, row.clone());
                Ok(row)
            })
        })
        .await
}

/// Ends `actor`'s claim on task `id` with `status`, posting `result` (when given) as the
/// caller's comment.
pub async fn complete(
    writer: &Writer,
    actor: &Actor,
    id: &str,
    status: TaskStatus,
    result: Option<String>,
) -> AppResult<task::Model> {
    let result = result.filter(|r| !r.trim().is_empty());
    if let Some(r) = &result {
        crate::validate::max_len("result", r, MAX_CONTENT)?;
    }
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let before = held_by(uow.txn(), &actor, &id).await?;
                let run_status = if status == TaskStatus::Blocked { AgentState::Failed } else { AgentState::Done };
                end_claim(uow, &before, status, run_status, result.clone()).await?;
                if let Some(content) = &result {
                    commands::comment_in(uow, &actor, &id, &actor.name, content).await?;
                }
                let row = commands::get_existing(uow.txn(), "id", &id).await?;
                let meta = serde_json::json!({ "title": row.title, "from": before.status, "to": row.status });
                log_activity(
                    uow,
                    NewActivity::new(ActivityKind::Task, &actor.name, "completed").target("task", &id).metadata(meta),
                );
                let change = Change::new("task.complete")
                    .target("task", &id)
                    .before(serde_json::json!({ "status": before.status, "claimedBy": before.claimed_by }))
                    .after(serde_json::json!({ "status": row.status, "result": result }));
                audit::record(uow, &actor, change);
                commands::publish_updated(uow, row.clone());
                Ok(row)
            })
        })
        .await
}

/// Gives `actor`'s claim on task `id` up: the task returns to TODO for the next claimer.
pub async fn release(writer: &Writer, actor: &Actor, id: &str) -> AppResult<task::Model> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let before = held_by(uow.txn(), &actor, &id).await?;
                let why = format!("released by {}", actor.name);
                end_claim(uow, &before, TaskStatus::Todo, AgentState::Killed, Some(why)).await?;
                let row = commands::get_existing(uow.txn(), "id", &id).await?;
                let meta = serde_json::json!({ "title": row.title, "from": before.status, "to": row.status });
                log_activity(
                    uow,
                    NewActivity::new(ActivityKind::Task, &actor.name, "released").target("task", &id).metadata(meta),
                );
                let change = Change::new("task.release")
                    .target("task", &id)
                    .before(serde_json::json!({ "status": before.status, "claimedBy": before.claimed_by }))
                    .after(serde_json::json!({ "status": row.status }));
                audit::record(uow, &actor, change);
                commands::publish_updated(uow, row.clone());
                Ok(row)
            })
        })
        .await
}

/// Clears the claim of `row` (only if it is still the one read), sets `status` and ends the
/// claim's run with `run_status`.
async fn end_claim(
    uow: &mut UnitOfWork,
    row: &task::Model,
    status: TaskStatus,
    run_status: AgentState,
    result: Option<String>,
) -> AppResult<bool> {
    let now = now_millis();
    let cleared = task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(status.as_str()))
        .col_expr(task::Column::ClaimedBy, Expr::value(Option::<String>::None))
        .col_expr(task::Column::ClaimHolder, Expr::value(Option::<String>::None))
        .col_expr(task::Column::LeaseSeconds, Expr::value(Option::<i32>::None))
        .col_expr(task::Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
        .col_expr(task::Column::UpdatedAt, Expr::value(Ord::max(now, row.updated_at + 1)))
        .filter(task::Column::Id.eq(row.id.as_str()))
        .filter(task::Column::ClaimHolder.eq(row.claim_holder.clone()))
        .filter(match row.lease_expires_at {
            Some(at) => task::Column::LeaseExpiresAt.eq(at),
            None => task::Column::LeaseExpiresAt.is_null(),
        })
        .exec(uow.txn())
        .await?;
    if cleared.rows_affected != 1 {
        return Ok(false);
    }
    runs::end_claim_run(uow.txn(), &row.id, run_status, result).await?;
    Ok(true)
}

/// Returns every claim whose lease ended before `now` to TODO (a task a claimer had moved on
/// keeps its status), each with an activity row. Returns how many lapsed.
///
/// Every instance sweeps; the conditional update lets exactly one of them lapse each claim.
pub async fn lapse_expired(writer: &Writer, now: i64) -> AppResult<usize> {
    writer
        .run(move |uow| {
            Box::pin(async move {
                let expired = task::Entity::find()
                    .filter(task::Column::ClaimHolder.is_not_null())
                    .filter(task::Column::LeaseExpiresAt.lte(now))
                    .order_by_asc(task::Column::Id)
                    .limit(SWEEP_BATCH)
                    .all(uow.txn())
                    .await?;
                let mut lapsed = 0;
                for row in expired {
                    if runs::is_dispatch_holder(row.claim_holder.as_deref()) {
                        // A dispatch whose instance died while sending: the task is as it was.
                        runs::clear_reservation(uow.txn(), &row.id, row.claim_holder.as_deref().unwrap_or_default())
                            .await?;
                        continue;
                    }
                    let status = match TaskStatus::parse(&row.status) {
                        Some(TaskStatus::InProgress) | None => TaskStatus::Todo,
                        Some(other) => other,
                    };
                    let why = "the lease lapsed".to_owned();
                    if !end_claim(uow, &row, status, AgentState::Failed, Some(why)).await? {
                        continue;
                    }
                    lapsed += 1;
                    let updated = commands::get_existing(uow.txn(), "id", &row.id).await?;
                    let meta = serde_json::json!({ "title": row.title, "claimedBy": row.claimed_by, "from": row.status, "to": updated.status });
                    log_activity(
                        uow,
                        NewActivity::new(ActivityKind::Task, "system", "lease_lapsed").target("task", &row.id).metadata(meta),
                    );
                    let change = Change::new("task.lease_lapse")
                        .target("task", &row.id)
                        .before(serde_json::json!({ "status": row.status, "claimedBy": row.claimed_by }))
                        .after(serde_json::json!({ "status": updated.status }));
                    audit::record(uow, &Actor::system(), change);
                    commands::publish_updated(uow, updated);
                }
                Ok(lapsed)
            })
        })
        .await
}
