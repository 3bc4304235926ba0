//! A cloneable shutdown signal: a `watch` channel that flips to true once. The server, the
//! agent poller and the Redis tasks all stop on it. And [`Tasks`]: what shutdown waits for
//! (open WebSockets closing with `1001`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Waits for shutdown.
#[derive(Clone)]
pub struct Signal(watch::Receiver<bool>);

/// Triggers shutdown.
pub struct Trigger(watch::Sender<bool>);

/// A connected trigger and signal.
pub fn channel() -> (Trigger, Signal) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Signal(rx))
}

impl Trigger {
    /// Tells every signal holder to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Signal {
    /// Resolves once shutdown was triggered (or the trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// Tasks that shutdown lets finish: each holds a [`Running`] while it runs.
#[derive(Clone)]
pub struct Tasks(Arc<watch::Sender<()>>);

/// Held by a running task of [`Tasks`].
pub struct Running(#[allow(dead_code)] watch::Receiver<()>);

impl Default for Tasks {
    fn default() -> Self {
        Tasks(Arc::new(watch::Sender::new(())))
    }
}

impl Tasks {
    /// Counts a task as running until the returned value is dropped.
    pub fn enter(&self) -> Running {
        Running(self.0.subscribe())
    }

    /// How many are running.
    pub fn running(&self) -> usize {
        self.0.receiver_count()
    }

    /// Waits until none runs, or `limit` passed; returns whether none runs.
    pub async fn drained(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.0.closed()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_every_running_task() {
        let tasks = Tasks::default();
        assert!(tasks.drained(Duration::from_millis(1)).await, "nothing runs");
        let running = tasks.enter();
        assert_eq!(tasks.running(), 1);
        assert!(!tasks.drained(Duration::from_millis(20)).await);
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(running);
        });
        assert!(tasks.drained(Duration::from_secs(5)).await);
        later.await.unwrap();
    }
}
