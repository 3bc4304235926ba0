//! Helpers shared by subscription resolvers.

use futures_util::Stream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::events::Event;

/// Turns a bus receiver into a stream of the items `pick` keeps.
///
/// A receiver that lags skips ahead and says so in the log; the subscription goes on.
/// (The `activity` subscription does better: it catches up from the database.)
pub fn broadcast_stream<T, F>(mut rx: Receiver<Event>, name: &'static str, pick: F) -> impl Stream<Item = T>
where
    F: Fn(Event) -> Option<T> + Send + 'static,
    T: Send + 'static,
{
    async_stream::stream! {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if let Some(item) = pick(event) {
                        yield item;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(subscription = name, skipped, "subscriber lagged; skipped events");
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
}
