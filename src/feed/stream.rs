//! The `activity` subscription stream: replay from the database, then live, gap-free.
//!
//! The bus receiver is created *before* the starting point is read, so nothing committed in
//! between is lost; ids already delivered are skipped, so nothing is delivered twice. Activity
//! ids follow commit order (see [`UnitOfWork`](crate::db::UnitOfWork)), so any gap in the
//! live ids (an event published late, a lagging receiver, a bus that was cut off) is closed by
//! reading everything after the last delivered id from the database.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use futures_util::{Stream, StreamExt};
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::RecvError;

use super::service::{self, ActivityKind};
use super::types::Activity;
use crate::entity::activity;
use crate::error::AppResult;
use crate::events::Event;

/// Rows fetched per replay query.
const REPLAY_BATCH: u64 = 500;

/// Every row after `last`, oldest first, read a batch at a time as the consumer takes them.
fn rows_after(db: DatabaseConnection, last: i64) -> impl Stream<Item = AppResult<activity::Model>> {
    async_stream::stream! {
        let mut cursor = last;
        loop {
            let batch = match service::after(&db, cursor, None, REPLAY_BATCH).await {
                Ok(batch) => batch,
                Err(err) => { yield Err(err); return; }
            };
            let done = (batch.len() as u64) < REPLAY_BATCH;
            for row in batch {
                cursor = row.id;
                yield Ok(row);
            }
            if done { return; }
        }
    }
}

/// The error that ends a subscription whose missed events cannot be read back.
fn gap_error(err: &crate::error::AppError, last: i64) -> async_graphql::Error {
    tracing::error!(error = %err, last, "cannot catch up an activity subscriber");
    async_graphql::Error::new(format!("missed activities could not be read back; resubscribe with after: \"{last}\""))
        .extend_with(|_, e| e.set("code", crate::error::ErrorCode::SubscriptionGap.as_str()))
}

/// The stream behind the `activity` subscription.
pub fn activity_stream(
    db: DatabaseConnection,
    mut rx: crate::events::BusReceiver,
    after: Option<i64>,
    kind: Option<ActivityKind>,
) -> impl Stream<Item = async_graphql::Result<Activity>> {
    let wanted = move |row: &activity::Model| kind.is_none_or(|k| k.as_str() == row.kind);
    async_stream::stream! {
        let mut last = match after {
            Some(id) => id,
            None => match service::latest_id(&db).await {
                Ok(id) => id,
                Err(err) => { yield Err(err.extend()); return; }
            },
        };
        // With `after`, start by replaying everything committed since.
        let mut catch_up = after.is_some();
        loop {
            if catch_up {
                catch_up = false;
                let rows = rows_after(db.clone(), last);
                futures_util::pin_mut!(rows);
                while let Some(row) = rows.next().await {
                    match row {
                        Ok(row) => {
                            last = row.id;
                            if wanted(&row) { yield Ok(Activity(Arc::new(row))); }
                        }
                        Err(err) => { yield Err(gap_error(&err, last)); return; }
                    }
                }
            }
            match rx.recv().await {
                Ok(Event::Activity(live)) if live.id <= last => {}
                Ok(Event::Activity(live)) if live.id == last + 1 => {
                    last = live.id;
                    if wanted(&live) { yield Ok(Activity(live)); }
                }
                // A gap: ids between belong to commits published later (or rolled back).
                Ok(Event::Activity(_)) => catch_up = true,
                Ok(
                    Event::Task(_)
                    | Event::Agents(_)
                    | Event::AgentsSnapshot(_)
                    | Event::AgentAction(_)
                    | Event::AgentOutput(_)
                    | Event::Approval(_)
                    | Event::Notification(_),
                ) => {}
                Ok(Event::Resync) | Err(RecvError::Lagged(_)) => {
                    tracing::warn!("activity subscriber may have missed events; catching up from the database");
                    catch_up = true;
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::db::UnitOfWork;
    use crate::events::EventBus;
    use crate::feed::service::{NewActivity, log_activity};

    async fn log(db: &DatabaseConnection, bus: &EventBus, kind: ActivityKind, n: usize) {
        for i in 0..n {
            let mut uow = UnitOfWork::begin(db).await.unwrap();
            log_activity(&mut uow, NewActivity::new(kind, "tester", &format!("act{i}")));
            uow.commit(bus).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_caught_up_from_the_database_in_order() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        // Room for two events: the subscriber below falls far behind.
        let bus = EventBus::new(2);
        let stream = activity_stream(db.clone(), bus.subscribe(), None, None);
        tokio::pin!(stream);
        // The stream records where it starts on its first poll; nothing is there yet.
        let first = tokio::time::timeout(std::time::Duration::from_millis(50), stream.next()).await;
        assert!(first.is_err(), "no activity yet");
        log(&db, &bus, ActivityKind::Task, 25).await;
        let mut ids = Vec::new();
        while ids.len() < 25 {
            let item = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await.unwrap().unwrap();
            ids.push(item.unwrap().0.id);
        }
        assert_eq!(ids, (1..=25).collect::<Vec<i64>>(), "every activity once, in order, despite the lag");
    }

    #[tokio::test]
    async fn replay_after_a_cursor_then_live_filtered_by_type() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let bus = EventBus::default();
        log(&db, &bus, ActivityKind::Task, 3).await;
        log(&db, &bus, ActivityKind::Comment, 2).await;
        let stream = activity_stream(db.clone(), bus.subscribe(), Some(2), Some(ActivityKind::Comment));
        tokio::pin!(stream);
        log(&db, &bus, ActivityKind::Comment, 1).await;
        let mut ids = Vec::new();
        while ids.len() < 3 {
            ids.push(stream.next().await.unwrap().unwrap().0.id);
        }
        assert_eq!(ids, [4, 5, 6], "comments after id 2: replayed 4 and 5, then live 6");
    }
}
