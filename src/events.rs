//! The event bus: what is published (task changes, activities, agent snapshots) and the
//! broadcast channel behind it. It lives in the schema data, never in a global.
//!
//! Mutations never publish directly: they queue events on their
//! [`UnitOfWork`](crate::db::UnitOfWork), which publishes after commit.
//!
//! Subscribers always read a local broadcast channel. How a published event reaches it is an
//! [`EventTransport`]: straight into the channel (one instance), or through Redis pub/sub so
//! that every instance of a fleet delivers it (see [`crate::redis_bus`]). Nothing else in the
//! code knows which is in use.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::entity::{activity, notification, task};
use crate::snapshot::{AgentInfo, AgentOutputItem, Approval};

/// Kinds of task change, mirrored by the GraphQL `TaskEventKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize)]
pub enum TaskEventKind {
    Created,
    Updated,
    Deleted,
}

/// A committed change to a task.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskChange {
    pub kind: TaskEventKind,
    pub task_id: String,
    /// The task after the change; `None` for a deletion.
    pub task: Option<task::Model>,
}

/// A new agent snapshot and the ids that changed since the previous one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentsChange {
    pub agents: Arc<Vec<AgentInfo>>,
    pub changed: Vec<String>,
}

/// Everything that flows to subscribers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Event {
    Task(Arc<TaskChange>),
    Activity(Arc<activity::Model>),
    Agents(Arc<AgentsChange>),
    /// The leader's full snapshot, sent now and then so that other instances (a follower that
    /// just started, one that missed a change) hold the same view. Not a change: the
    /// `agentStatus` subscription does not forward it.
    AgentsSnapshot(Arc<Vec<AgentInfo>>),
    /// An agent action taken on an instance that does not poll: the leader takes over its
    /// follow-up. Not forwarded to any subscription.
    AgentAction(Arc<AgentAction>),
    /// Something an agent wrote, as the gateway pushed it (`agentOutput`).
    AgentOutput(Arc<AgentOutputItem>),
    /// An exec approval's latest state (`approvals`).
    Approval(Arc<Approval>),
    /// An alert rule fired (`notification`).
    Notification(Arc<notification::Model>),
    /// Local only: the bus may have missed events (it was cut off from the other instances);
    /// subscribers catch up from the database.
    #[serde(skip)]
    Resync,
}

/// What a follower did to an agent, for the leader to follow up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum AgentAction {
    /// A run was started (spawn or message).
    RunStarted { session_key: String, run_id: String },
    /// The session's runs were aborted.
    Killed { session_key: String },
}

/// How published events reach the local channel of every instance.
pub trait EventTransport: Send + Sync + 'static {
    /// Sends a committed event on its way. Never blocks and never fails: a transport that
    /// cannot reach the other instances delivers locally and says so in the log.
    fn publish(&self, event: Event);
    /// `in-process` or `redis`, for `/health`.
    fn name(&self) -> &'static str;
    /// Whether the transport currently reaches the other instances.
    fn healthy(&self) -> bool {
        true
    }
}

/// The single-instance transport: straight into the local channel.
struct InProcess(broadcast::Sender<Event>);

impl EventTransport for InProcess {
    fn publish(&self, event: Event) {
        // No subscriber is a normal state.
        let _ = self.0.send(event);
    }
    fn name(&self) -> &'static str {
        "in-process"
    }
}

/// Default number of events a slow subscriber may fall behind before it lags.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What the bus counts: events published here, and events subscribers missed.
#[derive(Clone, Default)]
pub struct BusCounters {
    pub published: prometheus_client::metrics::counter::Counter,
    pub lagged: prometheus_client::metrics::counter::Counter,
}

/// The event bus: a local broadcast channel of [`Event`]s and the transport that feeds it.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    transport: Arc<dyn EventTransport>,
    counters: BusCounters,
}

/// A subscriber's end of the bus: a broadcast receiver that counts what it misses.
pub struct BusReceiver {
    rx: broadcast::Receiver<Event>,
    lagged: prometheus_client::metrics::counter::Counter,
}

impl BusReceiver {
    /// The next event; `Lagged(n)` when this subscriber fell `n` events behind (counted).
    pub async fn recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        let next = self.rx.recv().await;
        if let Err(broadcast::error::RecvError::Lagged(n)) = &next {
            self.lagged.inc_by(*n);
        }
        next
    }

    /// The next event if one is waiting (lag counted as by [`BusReceiver::recv`]).
    pub fn try_recv(&mut self) -> Result<Event, broadcast::error::TryRecvError> {
        let next = self.rx.try_recv();
        if let Err(broadcast::error::TryRecvError::Lagged(n)) = &next {
            self.lagged.inc_by(*n);
        }
        next
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("transport", &self.transport.name()).finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl EventBus {
    /// An in-process bus whose subscribers may fall `capacity` events behind before they lag.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus { transport: Arc::new(InProcess(tx.clone())), tx, counters: BusCounters::default() }
    }

    /// A bus fed by `transport`, which delivers into `tx` (from [`EventBus::channel`]).
    pub fn with_transport(tx: broadcast::Sender<Event>, transport: Arc<dyn EventTransport>) -> Self {
        EventBus { tx, transport, counters: BusCounters::default() }
    }

    /// A local channel for [`EventBus::with_transport`].
    pub fn channel(capacity: usize) -> broadcast::Sender<Event> {
        broadcast::channel(capacity.max(1)).0
    }

    /// The same bus, counting into `counters` (the metrics' own handles).
    pub fn counted_by(mut self, counters: BusCounters) -> Self {
        self.counters = counters;
        self
    }

    /// Publishes a committed event to every subscriber (of every instance).
    pub fn publish(&self, event: Event) {
        self.counters.published.inc();
        self.transport.publish(event);
    }

    /// The transport's name (`in-process`, `redis`).
    pub fn transport_name(&self) -> &'static str {
        self.transport.name()
    }

    /// Whether the transport reaches the other instances.
    pub fn healthy(&self) -> bool {
        self.transport.healthy()
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> BusReceiver {
        BusReceiver { rx: self.tx.subscribe(), lagged: self.counters.lagged.clone() }
    }
}
