//! The event bus: what is published (task changes, activities, agent snapshots) and the
//! broadcast channel behind it. It lives in the schema data, never in a global.
//!
//! Mutations never publish directly: they queue events on their
//! [`UnitOfWork`](crate::db::UnitOfWork), which publishes after commit.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::agents::runtime::AgentInfo;
use crate::entity::{activity, task};

/// Kinds of task change, mirrored by the GraphQL `TaskEventKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum TaskEventKind {
    Created,
    Updated,
    Deleted,
}

/// A committed change to a task.
#[derive(Debug, Clone)]
pub struct TaskChange {
    pub kind: TaskEventKind,
    pub task_id: String,
    /// The task after the change; `None` for a deletion.
    pub task: Option<task::Model>,
}

/// A new agent snapshot and the ids that changed since the previous one.
#[derive(Debug, Clone)]
pub struct AgentsChange {
    pub agents: Arc<Vec<AgentInfo>>,
    pub changed: Vec<String>,
}

/// Everything that flows to subscribers.
#[derive(Debug, Clone)]
pub enum Event {
    Task(Arc<TaskChange>),
    Activity(Arc<activity::Model>),
    Agents(Arc<AgentsChange>),
}

/// Default number of events a slow subscriber may fall behind before it lags.
pub const DEFAULT_CAPACITY: usize = 1024;

/// A broadcast channel of [`Event`]s.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl EventBus {
    /// A bus whose subscribers may fall `capacity` events behind before they lag.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus { tx }
    }

    /// Sends to every current subscriber. Having none is normal.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
