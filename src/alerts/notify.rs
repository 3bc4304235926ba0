//! Notifications: firing one (once per rule and occurrence), listing them, marking them read.

use std::sync::Arc;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use super::rules::AlertKind;
use crate::db::{UnitOfWork, Writer};
use crate::entity::{alert_rule, notification};
use crate::error::AppResult;
use crate::events::Event;
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::pagination;
use crate::time::now_millis;

/// What fired, before it is stored.
#[derive(Debug, Clone)]
pub struct Firing {
    pub occurrence: String,
    pub title: String,
    pub body: String,
    pub target_type: &'static str,
    pub target_id: String,
}

/// Fires `rule` for `firing` in `uow`, unless this occurrence fired already: stores the
/// notification, logs its activity, marks the rule fired, and queues the `notification`
/// event (whose `alert.fired` webhooks the outbox queues before commit). Returns whether it
/// fired.
pub async fn fire(uow: &mut UnitOfWork, rule: &alert_rule::Model, firing: Firing) -> AppResult<bool> {
    let Some(kind) = AlertKind::parse(&rule.kind) else { return Ok(false) };
    let now = now_millis();
    let row = notification::ActiveModel {
        rule_id: Set(Some(rule.id.clone())),
        occurrence: Set(firing.occurrence.clone()),
        kind: Set(rule.kind.clone()),
        severity: Set(kind.severity().as_str().to_owned()),
        title: Set(firing.title),
        body: Set(firing.body),
        target_type: Set(Some(firing.target_type.to_owned())),
        target_id: Set(Some(firing.target_id)),
        created_at: Set(now),
        read_at: Set(None),
        ..Default::default()
    };
    // Another instance, or an earlier pass, may have fired this occurrence: then nothing.
    let inserted = notification::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([notification::Column::RuleId, notification::Column::Occurrence])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(uow.txn())
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let stored = notification::Entity::find()
        .filter(notification::Column::RuleId.eq(&rule.id))
        .filter(notification::Column::Occurrence.eq(&firing.occurrence))
        .one(uow.txn())
        .await?
        .ok_or_else(|| crate::error::AppError::Internal("a fired notification vanished".into()))?;
    alert_rule::Entity::update_many()
        .col_expr(alert_rule::Column::LastFiredAt, Expr::value(now))
        .filter(alert_rule::Column::Id.eq(&rule.id))
        .exec(uow.txn())
        .await?;
    let meta = serde_json::json!({
        "rule": rule.name,
        "kind": stored.kind,
        "severity": stored.severity,
        "title": stored.title,
        "targetType": stored.target_type,
        "targetId": stored.target_id,
    });
    let activity = NewActivity::new(ActivityKind::System, "system", "alert_fired")
        .target("notification", &stored.id.to_string())
        .metadata(meta);
    log_activity(uow, activity);
    uow.publish_after_commit(Event::Notification(Arc::new(stored)));
    Ok(true)
}

/// Whether `rule` fired for `occurrence` already.
pub async fn fired(db: &impl ConnectionTrait, rule_id: &str, occurrence: &str) -> AppResult<bool> {
    let found = notification::Entity::find()
        .filter(notification::Column::RuleId.eq(rule_id))
        .filter(notification::Column::Occurrence.eq(occurrence))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// One page of notifications, newest first, strictly older than `before_id`.
pub async fn list(
    db: &impl ConnectionTrait,
    unread_only: bool,
    first: u64,
    before_id: Option<i64>,
) -> AppResult<(Vec<notification::Model>, bool)> {
    pagination::newest_first(db, chosen(unread_only), notification::Column::Id, first, before_id).await
}

/// How many notifications there are (only the unread ones when `unread_only`).
pub async fn count(db: &impl ConnectionTrait, unread_only: bool) -> AppResult<u64> {
    Ok(chosen(unread_only).count(db).await?)
}

/// Every notification, or the unread ones.
fn chosen(unread_only: bool) -> sea_orm::Select<notification::Entity> {
    let every = notification::Entity::find();
    if unread_only { every.filter(notification::Column::ReadAt.is_null()) } else { every }
}

/// Marks `ids` (all when none are given) read; returns how many were unread.
pub async fn mark_read(writer: &Writer, ids: Option<Vec<i64>>) -> AppResult<u64> {
    writer
        .run(move |uow| {
            Box::pin(async move {
                let mut update = notification::Entity::update_many()
                    .col_expr(notification::Column::ReadAt, Expr::value(now_millis()))
                    .filter(notification::Column::ReadAt.is_null());
                if let Some(ids) = ids {
                    update = update.filter(notification::Column::Id.is_in(ids));
                }
                Ok(update.exec(uow.txn()).await?.rows_affected)
            })
        })
        .await
}
