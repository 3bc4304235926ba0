//! Work between the board and the agents: tasks pushed to agents of the runtime
//! ([`dispatch`]), tasks pulled by any principal with a lease ([`claims`]), and the runs that
//! record both with what they cost ([`runs`]).
//!
//! The same functions serve GraphQL ([`resolvers`]) and the MCP tools at `/mcp`, so both follow
//! the same rules and leave the same activity and audit entries.

pub mod claims;
pub mod dispatch;
pub mod resolvers;
pub mod runs;

use std::sync::Arc;
use std::time::Duration;

use crate::agents::{AgentHub, RunEnd, RunObserver};
use crate::db::Writer;
use crate::events::EventBus;
use crate::tasks::types::TaskStatus;
use crate::time::now_millis;

/// How often lapsed leases are returned and unfollowed dispatched runs are picked up again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What dispatch and claims work with: the writer, the agents, the bus, and the settings.
pub struct Work {
    pub writer: Writer,
    pub hub: Arc<AgentHub>,
    pub bus: EventBus,
    /// Where a dispatched task goes when its run is DONE: REVIEW (default) or DONE.
    pub done_status: TaskStatus,
}

impl Work {
    /// The work of `hub`'s agents, told of their ended runs from now on.
    pub fn start(writer: Writer, hub: Arc<AgentHub>, bus: EventBus, done_status: TaskStatus) -> Arc<Work> {
        let work = Arc::new(Work { writer, hub: Arc::clone(&hub), bus, done_status });
        let observer: Arc<dyn RunObserver> = Arc::clone(&work) as Arc<dyn RunObserver>;
        hub.set_run_observer(&observer);
        work
    }

    /// One sweep: lapsed leases return to TODO; the runtime's leader follows again every
    /// dispatched run still open (after a restart, or when it just became the leader).
    pub async fn sweep_once(&self) {
        if let Err(err) = claims::lapse_expired(&self.writer, now_millis()).await {
            tracing::warn!(error = %err, "could not return lapsed claims");
        }
        if !self.hub.is_leader() {
            return;
        }
        match runs::running_dispatches(self.writer.db()).await {
            Ok(open) => {
                for run in open {
                    if let Some(run_id) = run.run_id {
                        crate::agents::service::follow_run(Arc::clone(&self.hub), run.agent_id, run_id);
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not read the open dispatched runs"),
        }
    }

    /// Sweeps every [`SWEEP_EVERY`] until `shutdown` fires.
    pub async fn run_until_stopped(self: Arc<Self>, mut shutdown: crate::shutdown::Signal) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.sweep_once().await,
                _ = shutdown.wait() => break,
            }
        }
    }
}

#[async_trait::async_trait]
impl RunObserver for Work {
    async fn run_ended(&self, session_key: &str, run_id: &str, end: RunEnd) {
        if let Err(err) = dispatch::run_ended(self, session_key, run_id, end).await {
            tracing::error!(run = %run_id, error = %err, "could not record the end of a dispatched run");
        }
    }
}
