//! A cloneable shutdown signal: a `watch` channel that flips to true once. The server, the
//! agent poller and the Redis tasks all stop on it.

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
