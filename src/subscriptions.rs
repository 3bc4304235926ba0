//! Helpers shared by subscription resolvers.

use async_graphql::ErrorExtensions;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::events::Event;

/// The error that ends a subscription which missed events it cannot replay.
fn missed_events(name: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "{name} missed events (the subscriber fell behind, or the event bus was cut off); refetch and subscribe again"
    ))
    .extend_with(|_, e| e.set("code", crate::error::ErrorCode::SubscriptionLagged.as_str()))
}

/// Turns a bus receiver into a stream of the items `pick` keeps.
///
/// These events cannot be replayed, so a receiver that lags (or a bus that was cut off) ends
/// the subscription with a `SUBSCRIPTION_LAGGED` error rather than skipping silently.
/// (The `activity` subscription does better: it catches up from the database.)
pub fn broadcast_stream<T, F>(
    mut rx: crate::events::BusReceiver,
    name: &'static str,
    pick: F,
) -> impl Stream<Item = async_graphql::Result<T>>
where
    F: Fn(Event) -> Option<T> + Send + 'static,
    T: Send + 'static,
{
    async_stream::stream! {
        loop {
            match rx.recv().await {
                Ok(Event::Resync) | Err(RecvError::Lagged(_)) => {
                    tracing::warn!(subscription = name, "subscriber missed events; ending it with an error");
                    yield Err(missed_events(name));
                    break;
                }
                Ok(event) => {
                    if let Some(item) = pick(event) {
                        yield Ok(item);
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::StreamExt;

    use super::*;
    use crate::events::{EventBus, TaskChange, TaskEventKind};

    fn change(i: usize) -> Event {
        Event::Task(Arc::new(TaskChange { kind: TaskEventKind::Deleted, task_id: i.to_string(), task: None }))
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_and_ended_not_skipped_silently() {
        let bus = EventBus::new(2);
        let stream = broadcast_stream(bus.subscribe(), "taskUpdated", |e| match e {
            Event::Task(c) => Some(c.task_id.clone()),
            _ => None,
        });
        futures_util::pin_mut!(stream);
        for i in 0..5 {
            bus.publish(change(i));
        }
        let err = stream.next().await.unwrap().unwrap_err();
        assert!(err.message.contains("missed events"), "{}", err.message);
        let code = err.extensions.as_ref().and_then(|e| e.get("code")).cloned();
        assert_eq!(code, Some(async_graphql::Value::from("SUBSCRIPTION_LAGGED")));
        assert!(stream.next().await.is_none(), "the subscription ends");
    }

    #[tokio::test]
    async fn events_in_step_are_delivered_in_order() {
        let bus = EventBus::new(16);
        let stream = broadcast_stream(bus.subscribe(), "taskUpdated", |e| match e {
            Event::Task(c) => Some(c.task_id.clone()),
            _ => None,
        });
        futures_util::pin_mut!(stream);
        for i in 0..3 {
            bus.publish(change(i));
        }
        for i in 0..3 {
            assert_eq!(stream.next().await.unwrap().unwrap(), i.to_string());
        }
    }
}
