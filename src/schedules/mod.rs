//! Schedules: agents spawned and tasks created on a cron, in a time zone, each scheduled time
//! exactly once across a fleet (see [`service`] for the claim that makes it so).

pub mod plan;
pub mod resolvers;
pub mod service;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

pub use service::Scheduler;

/// How often due schedules are looked for (schedules fire at most once a second).
pub const TICK: Duration = Duration::from_millis(200);

impl Scheduler {
    /// Runs due schedules every [`TICK`] until `shutdown` fires. Every instance ticks; the
    /// claim lets one of them run each time.
    pub async fn run_until_stopped(self: Arc<Self>, mut shutdown: crate::shutdown::Signal) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(err) = self.run_due(crate::time::now_millis()).await {
                        tracing::warn!(error = %err, "could not run due schedules");
                    }
                }
                _ = shutdown.wait() => break,
            }
        }
    }
}
