//! The `activity` subscription stream: replay from the database, then live, gap-free.
//!
//! The bus receiver is created *before* the replay query, so nothing committed in between is
//! lost; ids already delivered are skipped, so nothing is delivered twice. A gap in the live
//! ids (an event seen out of order, or a lagging receiver) is filled from the database.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::service::{self, ActivityKind};
use super::types::Activity;
use crate::entity::activity;
use crate::error::AppResult;
use crate::events::Event;

/// Rows fetched per replay query.
const REPLAY_BATCH: u64 = 500;

/// Rows after `last` (and up to `upto`), oldest first, all of them.
async fn fetch_all(db: &DatabaseConnection, last: i64, upto: Option<i64>) -> AppResult<Vec<activity::Model>> {
    let mut out = Vec::new();
    let mut cursor = last;
    loop {
        let batch = service::after(db, cursor, upto, REPLAY_BATCH).await?;
        let done = (batch.len() as u64) < REPLAY_BATCH;
        if let Some(row) = batch.last() {
            cursor = row.id;
        }
        out.extend(batch);
        if done {
            return Ok(out);
        }
    }
}

/// The stream behind the `activity` subscription.
pub fn activity_stream(
    db: DatabaseConnection,
    mut rx: Receiver<Event>,
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
        // Replay (or nothing, without `after`): everything committed after `last`.
        if after.is_some() {
            match fetch_all(&db, last, None).await {
                Ok(rows) => for row in rows {
                    last = row.id;
                    if wanted(&row) { yield Ok(Activity(Arc::new(row))); }
                },
                Err(err) => { yield Err(err.extend()); return; }
            }
        }
        loop {
            let live = match rx.recv().await {
                Ok(Event::Activity(row)) => row,
                Ok(Event::Task(_) | Event::Agents(_)) => continue,
                Ok(Event::Resync) | Err(RecvError::Lagged(_)) => {
                    tracing::warn!("activity subscriber may have missed events; catching up from the database");
                    match fetch_all(&db, last, None).await {
                        Ok(rows) => for row in rows {
                            last = row.id;
                            if wanted(&row) { yield Ok(Activity(Arc::new(row))); }
                        },
                        Err(err) => {
                            yield Err(crate::error::AppError::Internal(format!("cannot catch up a lagging subscriber: {err}")).extend());
                            return;
                        }
                    }
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            if live.id <= last {
                continue;
            }
            if live.id > last + 1 {
                // Ids between may belong to transactions that committed but were published
                // later, or to rolled-back ones (which leave no row). Fill from the database.
                match fetch_all(&db, last, Some(live.id - 1)).await {
                    Ok(rows) => for row in rows {
                        if wanted(&row) { yield Ok(Activity(Arc::new(row))); }
                    },
                    Err(err) => { yield Err(err.extend()); return; }
                }
            }
            last = live.id;
            if wanted(&live) {
                yield Ok(Activity(live));
            }
        }
    }
}
