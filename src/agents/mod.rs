//! Agents: the runtime abstraction, its implementations, and the hub that polls it.
//!
//! The [`AgentHub`] owns the last good snapshot of every agent. A poller calls
//! [`AgentHub::poll_once`] on an interval (and when the runtime signals a change); it publishes
//! an `agentStatus` event only when something changed.
//!
//! In a fleet (Redis configured) only the instance holding the leader lease polls and follows
//! runs; the others take their snapshots from the bus.

pub mod approvals;
pub mod gateway;
pub mod instrumented;
pub mod loaders;
pub mod none;
pub mod resolvers;
pub mod runtime;
pub mod service;
pub mod simulated;
pub mod types;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::db::Writer;
use crate::events::{AgentsChange, Event, EventBus};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use runtime::{AgentInfo, AgentRuntime, AgentState};

/// Consecutive failed polls after which agents are shown as UNKNOWN.
const UNKNOWN_AFTER_FAILURES: u32 = 3;
/// How often the leader lease is taken or renewed (the lease lives 10 s: a dead leader is
/// replaced within 11 s, one that shuts down and releases it within 1 s).
const LEASE_RENEW: Duration = Duration::from_secs(1);

/// Who polls the runtime.
pub enum Leadership {
    /// This instance alone (no Redis).
    Always,
    /// Whoever holds the Redis lease.
    Lease(Box<crate::redis_bus::LeaderLock>),
}

/// How a followed run ended, as the hub tells a [`RunObserver`].
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The run finished.
    Done,
    /// The run failed; why, in the runtime's words.
    Failed(String),
    /// The run was aborted (a kill).
    Killed,
    /// The run could not be followed to its end (the runtime kept failing to answer).
    Lost(String),
}

/// Told when a run this instance follows ends, after the poll that shows its outcome.
///
/// Domains above the agents (dispatch) learn of ended runs through this, so the agents domain
/// does not need to know them.
#[async_trait::async_trait]
pub trait RunObserver: Send + Sync {
    async fn run_ended(&self, session_key: &str, run_id: &str, end: RunEnd);
}

/// Bookkeeping of the poller, behind one lock so two polls never overlap.
#[derive(Default)]
struct PollState {
    failures: u32,
}

/// The agent runtime plus the last good snapshot of its agents.
pub struct AgentHub {
    runtime: Arc<dyn AgentRuntime>,
    snapshot: RwLock<Arc<Vec<AgentInfo>>>,
    /// Agents this server spawned that the runtime does not list yet.
    pending: RwLock<HashMap<String, AgentInfo>>,
    poll: Mutex<PollState>,
    bus: EventBus,
    writer: Writer,
    /// Bumped by every snapshot replaced.
    version: std::sync::atomic::AtomicU64,
    leadership: Leadership,
    leader: std::sync::atomic::AtomicBool,
    approvals: approvals::Approvals,
    /// Runs being followed now (a run is followed once, however many ask).
    following: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Held weakly: the observer (dispatch) holds the hub, and a cycle would keep both, with
    /// the writer and its database pool, alive after the server stops.
    observer: std::sync::OnceLock<std::sync::Weak<dyn RunObserver>>,
    /// Unix seconds of the last good read of the runtime (0: none yet).
    last_success: std::sync::atomic::AtomicI64,
}

impl AgentHub {
    /// A hub over `runtime`, publishing to `bus`, logging activities to `db`.
    pub fn new(runtime: Arc<dyn AgentRuntime>, bus: EventBus, writer: Writer) -> Self {
        AgentHub {
            runtime,
            snapshot: RwLock::new(Arc::new(Vec::new())),
            pending: RwLock::new(HashMap::new()),
            poll: Mutex::new(PollState::default()),
            bus,
            writer,
            version: Default::default(),
            leadership: Leadership::Always,
            leader: std::sync::atomic::AtomicBool::new(true),
            approvals: approvals::Approvals::default(),
            following: Default::default(),
            observer: std::sync::OnceLock::new(),
            last_success: Default::default(),
        }
    }

    /// Sets who is told when followed runs end (once; later calls are ignored).
    pub fn set_run_observer(&self, observer: &Arc<dyn RunObserver>) {
        let _ = self.observer.set(Arc::downgrade(observer));
    }

    /// Marks `run_id` followed; false when it already was.
    fn start_following(&self, run_id: &str) -> bool {
        self.following.lock().map(|mut f| f.insert(run_id.to_owned())).unwrap_or(false)
    }

    /// The run has ended (or been given up on): tells the observer.
    async fn run_ended(&self, session_key: &str, run_id: &str, end: RunEnd) {
        if let Some(observer) = self.observer.get().and_then(std::sync::Weak::upgrade) {
            observer.run_ended(session_key, run_id, end).await;
        }
        // Only now: a run asked to be followed while its end is being recorded stays single.
        if let Ok(mut following) = self.following.lock() {
            following.remove(run_id);
        }
    }

    /// The exec approvals seen, kept up to date from the bus.
    pub fn approvals(&self) -> &approvals::Approvals {
        &self.approvals
    }

    /// Publishes what the runtime pushed (the leader only: it alone follows the gateway's
    /// events, and the bus carries them to every instance).
    fn on_runtime_event(&self, event: runtime::RuntimeEvent) {
        if !self.is_leader() {
            return;
        }
        match event {
            runtime::RuntimeEvent::Output(item) => self.bus.publish(Event::AgentOutput(Arc::new(item))),
            runtime::RuntimeEvent::Approval(approval) => {
                self.record_approval(&approval);
            }
        }
    }

    /// Merges `approval` into what is known and publishes the result to every instance.
    pub fn record_approval(&self, approval: &runtime::Approval) -> runtime::Approval {
        let merged = self.approvals.apply(approval);
        self.bus.publish(Event::Approval(Arc::new(merged.clone())));
        merged
    }

    /// Relays what the runtime pushes until it stops pushing or the server stops.
    async fn relay(
        self: Arc<Self>,
        mut pushed: tokio::sync::broadcast::Receiver<runtime::RuntimeEvent>,
        mut shutdown: crate::shutdown::Signal,
    ) {
        loop {
            tokio::select! {
                item = pushed.recv() => match item {
                    Ok(event) => self.on_runtime_event(event),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "fell behind the runtime's events; some were not relayed");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Marks approvals past their deadline EXPIRED; the leader publishes them.
    fn expire_approvals(&self) {
        for approval in self.approvals.expire(chrono::Utc::now()) {
            if self.is_leader() {
                self.bus.publish(Event::Approval(Arc::new(approval)));
            }
        }
    }

    /// Polls only while holding `leadership` (the lease is first tried by the poller loop).
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leader.store(matches!(leadership, Leadership::Always), std::sync::atomic::Ordering::SeqCst);
        self.leadership = leadership;
        self
    }

    /// Whether this instance polls the runtime and follows runs.
    pub fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes a snapshot published by the leader (followers only: the leader is the source).
    fn apply_remote(&self, agents: &Arc<Vec<AgentInfo>>) {
        if self.is_leader() {
            return;
        }
        if let Ok(mut snapshot) = self.snapshot.write() {
            *snapshot = Arc::clone(agents);
        }
        self.version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves whenever the snapshot is replaced (cached reads that show agents key on it).
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Unix seconds of the last good read of the runtime, if there was one.
    pub fn last_poll_success(&self) -> Option<i64> {
        Some(self.last_success.load(std::sync::atomic::Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The writer agent actions are logged through.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The runtime in use.
    pub fn runtime(&self) -> &Arc<dyn AgentRuntime> {
        &self.runtime
    }

    /// The current snapshot: every agent, sorted by id.
    pub fn snapshot(&self) -> Arc<Vec<AgentInfo>> {
        self.snapshot.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// One agent of the current snapshot.
    pub fn get(&self, id: &str) -> Option<AgentInfo> {
        self.snapshot().iter().find(|a| a.id == id).cloned()
    }

    /// Records an agent this server just spawned, so it shows before the runtime lists it.
    pub fn add_pending(&self, agent: AgentInfo) {
        if let Ok(mut pending) = self.pending.write() {
            pending.insert(agent.id.clone(), agent);
        }
        let current = self.snapshot();
        let merged = self.merge_pending(current.as_ref().clone());
        let changed = diff(&current, &merged);
        self.install(merged, changed);
    }

    fn merge_pending(&self, mut agents: Vec<AgentInfo>) -> Vec<AgentInfo> {
        if let Ok(mut pending) = self.pending.write() {
            pending.retain(|id, _| !agents.iter().any(|a| &a.id == id));
            agents.extend(pending.values().cloned());
        }
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents
    }

    fn install(&self, agents: Vec<AgentInfo>, changed: Vec<String>) {
        let agents = Arc::new(agents);
        if let Ok(mut snapshot) = self.snapshot.write() {
            *snapshot = Arc::clone(&agents);
        }
        self.version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if !changed.is_empty() {
            self.bus.publish(Event::Agents(Arc::new(AgentsChange { agents, changed })));
        }
    }

    /// Reads the runtime once; publishes and logs what changed. Returns the changed ids.
    ///
    /// A failed read keeps the last good snapshot, logs once, and after
    /// [`UNKNOWN_AFTER_FAILURES`] failures in a row marks every agent UNKNOWN.
    pub async fn poll_once(&self) -> Vec<String> {
        if !self.is_leader() {
            return Vec::new();
        }
        let mut state = self.poll.lock().await;
        let previous = self.snapshot();
        let next = match self.runtime.list().await {
            Ok(agents) => {
                self.last_success.store(chrono::Utc::now().timestamp(), std::sync::atomic::Ordering::Relaxed);
                if state.failures > 0 {
                    tracing::info!(runtime = self.runtime.name(), "agent runtime readable again");
                }
                state.failures = 0;
                self.merge_pending(agents)
            }
            Err(err) => {
                state.failures += 1;
                if state.failures == 1 {
                    tracing::warn!(runtime = self.runtime.name(), error = %err, "cannot read agent runtime; keeping last snapshot");
                }
                if state.failures < UNKNOWN_AFTER_FAILURES {
                    return Vec::new();
                }
                previous.iter().cloned().map(|a| AgentInfo { status: AgentState::Unknown, ..a }).collect()
            }
        };
        let changed = diff(&previous, &next);
        if changed.is_empty() {
            return changed;
        }
        self.log_transitions(&previous, &next).await;
        self.install(next, changed.clone());
        changed
    }

    /// Logs an activity for every agent that finished or failed since the last snapshot.
    async fn log_transitions(&self, previous: &[AgentInfo], next: &[AgentInfo]) {
        let ended: Vec<(&AgentInfo, &str)> = next
            .iter()
            .filter_map(|agent| {
                let before = previous.iter().find(|p| p.id == agent.id).map(|p| p.status);
                let action = match agent.status {
                    AgentState::Done => "finished",
                    AgentState::Failed => "failed",
                    _ => return None,
                };
                (before.is_some() && before != Some(agent.status)).then_some((agent, action))
            })
            .collect();
        if ended.is_empty() {
            return;
        }
        let activities: Vec<NewActivity> = ended
            .into_iter()
            .map(|(agent, action)| {
                NewActivity::new(ActivityKind::Agent, "system", action)
                    .target("agent", &agent.id)
                    .metadata(serde_json::json!({ "label": agent.label }))
            })
            .collect();
        let result = self
            .writer
            .run(move |uow| {
                Box::pin(async move {
                    for activity in activities {
                        log_activity(uow, activity);
                    }
                    Ok(())
                })
            })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "could not log agent transitions");
        }
    }

    /// Polls every `interval` (and whenever the runtime signals a change) until `shutdown`
    /// fires; keeps the leader lease, and follows the leader's snapshots while not holding it.
    pub async fn run_until_stopped(self: Arc<Self>, interval: Duration, shutdown: crate::shutdown::Signal) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lease = tokio::time::interval(LEASE_RENEW);
        lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let notify = self.runtime.change_notifier();
        let mut events = self.bus.subscribe();
        if let Some(pushed) = self.runtime.events() {
            // In a task of its own, so a slow poll never holds up what the gateway pushes.
            tokio::spawn(Arc::clone(&self).relay(pushed, shutdown.clone()));
        }
        let mut shutdown = shutdown;
        loop {
            let next_expiry = self.approvals.next_expiry();
            tokio::select! {
                _ = ticker.tick() => {}
                _ = async {
                    match next_expiry {
                        Some(at) => tokio::time::sleep((at - chrono::Utc::now()).to_std().unwrap_or_default()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.expire_approvals();
                    continue;
                }
                _ = async { match &notify { Some(n) => n.notified().await, None => std::future::pending().await } } => {}
                _ = lease.tick(), if matches!(self.leadership, Leadership::Lease(_)) => {
                    let became_leader = self.renew_lease().await;
                    if self.is_leader() {
                        // Keeps followers (and instances that start later) on the leader's view.
                        self.bus.publish(Event::AgentsSnapshot(self.snapshot()));
                    }
                    if !became_leader {
                        continue;
                    }
                }
                event = events.recv() => {
                    match event {
                        Ok(Event::Agents(change)) => self.apply_remote(&change.agents),
                        Ok(Event::AgentsSnapshot(agents)) => self.apply_remote(&agents),
                        Ok(Event::Approval(approval)) => {
                            self.approvals.apply(&approval);
                        }
                        Ok(Event::AgentAction(action)) if self.is_leader() => {
                            Arc::clone(&self).adopt(&action).await;
                        }
                        _ => {}
                    }
                    continue;
                }
                _ = shutdown.wait() => break,
            }
            // A read of a runtime that does not answer must not hold up a shutdown (nor the
            // lease release after it): cancelled, it changes nothing.
            tokio::select! {
                _ = self.poll_once() => {}
                _ = shutdown.wait() => break,
            }
        }
        if let Leadership::Lease(lock) = &self.leadership
            && self.is_leader()
        {
            lock.release().await;
        }
    }

    /// Takes over the follow-up of an action another instance performed.
    async fn adopt(self: Arc<Self>, action: &crate::events::AgentAction) {
        match action {
            crate::events::AgentAction::RunStarted { session_key, run_id } => {
                self.runtime.adopt_run(session_key, run_id);
                service::follow_run(Arc::clone(&self), session_key.clone(), run_id.clone());
            }
            crate::events::AgentAction::Killed { session_key } => self.runtime.adopt_kill(session_key),
        }
        self.poll_once().await;
    }

    /// Takes or renews the lease; true when this instance just became the leader.
    async fn renew_lease(&self) -> bool {
        let Leadership::Lease(lock) = &self.leadership else { return false };
        let held = lock.try_hold().await;
        let was = self.leader.swap(held, std::sync::atomic::Ordering::SeqCst);
        match (was, held) {
            (false, true) => {
                tracing::info!("this instance now polls the agent runtime (leader)");
                true
            }
            (true, false) => {
                tracing::warn!("lost the agent-poller lease; another instance polls now");
                false
            }
            _ => false,
        }
    }
}

/// Ids whose entry differs between two snapshots (added, removed or changed).
fn diff(before: &[AgentInfo], after: &[AgentInfo]) -> Vec<String> {
    let mut changed: Vec<String> =
        after.iter().filter(|a| before.iter().find(|b| b.id == a.id) != Some(*a)).map(|a| a.id.clone()).collect();
    changed.extend(before.iter().filter(|b| !after.iter().any(|a| a.id == b.id)).map(|b| b.id.clone()));
    changed.sort();
    changed
}

pub mod demo;

impl crate::feed::LiveAgents for AgentHub {
    fn totals(&self) -> crate::feed::LiveAgentTotals {
        let agents = self.snapshot();
        crate::feed::LiveAgentTotals {
            active: agents.iter().filter(|a| a.status == runtime::AgentState::Running).count() as i64,
            tokens: agents.iter().fold(0i64, |sum, a| sum.saturating_add(a.usage.tokens)),
            cost: agents.iter().map(|a| a.usage.cost).sum(),
        }
    }
}

/// Which agent runtime drives `agents`, `spawnAgent` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// The gateway when one is configured or its state folder exists, else `none`.
    Auto,
    /// The OpenClaw gateway (2026.9, protocol 4) or a Clawdbot one (2026.1, protocol 3).
    Openclaw,
    /// The same runtime under the product's old name.
    Clawdbot,
    /// An in-process simulation, for demos and tests.
    Simulated,
    /// No runtime: agent actions answer `AGENT_RUNTIME_ERROR`.
    None,
}

/// What the runtime is chosen from: the kind asked for, and where the gateway is.
#[derive(Debug, Clone)]
pub struct RuntimeChoice {
    pub kind: RuntimeKind,
    pub hints: gateway::discovery::Hints,
    /// `--openclaw-bin`, then `--clawdbot-bin`, when given.
    pub openclaw_bin: Option<std::path::PathBuf>,
    pub clawdbot_bin: Option<std::path::PathBuf>,
    pub call_timeout: std::time::Duration,
}

/// The runtime `choice` asks for; an error says what to set.
///
/// `auto` is the gateway runtime when any gateway setting is given or the state folder
/// exists. The gateway runtime connects to the gateway's WebSocket and reads the state
/// folder's store; it uses the CLI only while the WebSocket cannot be had.
pub fn choose_runtime(choice: RuntimeChoice) -> Result<Arc<dyn AgentRuntime>, String> {
    let state_dir = gateway::discovery::state_dir(&choice.hints);
    let kind = match choice.kind {
        RuntimeKind::Auto if choice.hints.any_given() || state_dir.as_ref().is_some_and(|d| d.is_dir()) => {
            RuntimeKind::Openclaw
        }
        RuntimeKind::Auto => RuntimeKind::None,
        other => other,
    };
    Ok(match kind {
        RuntimeKind::Simulated => Arc::new(simulated::SimulatedRuntime::new(simulated::SimulatedConfig::default())),
        RuntimeKind::Openclaw | RuntimeKind::Clawdbot => {
            let found = gateway::discovery::find(&choice.hints)?;
            tracing::info!(
                state_dir = %found.state_dir.display(),
                config = ?found.config_file,
                url = %found.url,
                token = found.token_source,
                "gateway runtime"
            );
            let old_store = found.state_dir.join("agents/main/sessions/sessions.json").is_file();
            let mut settings = gateway::GatewayConfig::new(found.state_dir);
            settings.bin = choice
                .openclaw_bin
                .or(choice.clawdbot_bin)
                .unwrap_or_else(|| std::path::PathBuf::from(if old_store { "clawdbot" } else { "openclaw" }));
            settings.gateway_token = found.token;
            settings.call_timeout = choice.call_timeout;
            settings.gateway_url = Some(found.url);
            settings.name = if kind == RuntimeKind::Clawdbot { "clawdbot" } else { "openclaw" };
            Arc::new(gateway::GatewayRuntime::new(settings).with_file_watch().connect())
        }
        RuntimeKind::None | RuntimeKind::Auto => Arc::new(none::NoRuntime),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::sync::Notify;

    use super::runtime::*;
    use super::*;

    /// A runtime that counts list calls and can signal a change. With `status` it lists one
    /// agent `a` in that state; its waits always time out (a runtime that forgot its runs).
    struct Counting {
        lists: AtomicUsize,
        changed: Arc<Notify>,
        status: Option<AgentState>,
    }

    #[async_trait]
    impl AgentRuntime for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            Ok(self.status.map(|status| agent("a", status)).into_iter().collect())
        }
        async fn spawn(&self, _: SpawnRequest) -> Result<RunHandle, RuntimeError> {
            Err(RuntimeError::Failed("unused".into()))
        }
        async fn send(&self, _: &str, _: &str) -> Result<RunHandle, RuntimeError> {
            Err(RuntimeError::Failed("unused".into()))
        }
        async fn kill(&self, _: &str) -> Result<(), RuntimeError> {
            Err(RuntimeError::Failed("unused".into()))
        }
        async fn transcript(&self, _: &str, _: usize) -> Result<Vec<TranscriptEntry>, RuntimeError> {
            Ok(Vec::new())
        }
        async fn wait(&self, _: &str, _: u64) -> Result<RunOutcome, RuntimeError> {
            Ok(RunOutcome::Timeout)
        }
        fn change_notifier(&self) -> Option<Arc<Notify>> {
            Some(Arc::clone(&self.changed))
        }
    }

    /// Lets spawned tasks run until `lists` reaches `n`, or 100 ms of (paused) time pass.
    async fn settle(runtime: &Counting, n: usize) -> usize {
        for _ in 0..100 {
            if runtime.lists.load(Ordering::SeqCst) >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        runtime.lists.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn the_poller_runs_on_its_interval_and_when_the_runtime_signals() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let runtime = Arc::new(Counting { lists: AtomicUsize::new(0), changed: Arc::new(Notify::new()), status: None });
        let hub = Arc::new(AgentHub::new(runtime.clone(), EventBus::default(), Writer::start(db, EventBus::default())));
        tokio::time::pause();
        let (trigger, signal) = crate::shutdown::channel();
        let poller = tokio::spawn(Arc::clone(&hub).run_until_stopped(Duration::from_secs(5), signal));

        assert_eq!(settle(&runtime, 1).await, 1, "a first poll at once");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(settle(&runtime, 2).await, 1, "nothing before the interval");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(settle(&runtime, 2).await, 2, "a poll every 5 s");
        runtime.changed.notify_one();
        assert_eq!(settle(&runtime, 3).await, 3, "a change signal polls at once");

        trigger.fire();
        poller.await.unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(settle(&runtime, 4).await, 3, "no polls after shutdown");
    }

    struct Ends(tokio::sync::mpsc::UnboundedSender<RunEnd>);

    #[async_trait]
    impl RunObserver for Ends {
        async fn run_ended(&self, _: &str, _: &str, end: RunEnd) {
            let _ = self.0.send(end);
        }
    }

    #[tokio::test]
    async fn a_run_the_runtime_forgot_ends_as_its_agent_did() {
        for (status, expected) in [
            (AgentState::Done, RunEnd::Done),
            (AgentState::Killed, RunEnd::Killed),
            (AgentState::Failed, RunEnd::Failed("the agent's session failed".into())),
        ] {
            let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
            // A restarted gateway: every wait times out, while its list says how the session ended.
            let runtime = Arc::new(Counting {
                lists: AtomicUsize::new(0),
                changed: Arc::new(Notify::new()),
                status: Some(status),
            });
            let hub = Arc::new(AgentHub::new(runtime, EventBus::default(), Writer::start(db, EventBus::default())));
            let (tx, mut ends) = tokio::sync::mpsc::unbounded_channel();
            let observer: Arc<dyn RunObserver> = Arc::new(Ends(tx));
            hub.set_run_observer(&observer);
            hub.poll_once().await;
            service::follow_run(Arc::clone(&hub), "a".into(), "run-1".into());
            service::follow_run(Arc::clone(&hub), "a".into(), "run-1".into());
            assert_eq!(ends.recv().await, Some(expected));
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(ends.try_recv().is_err(), "a run is followed once, however many ask");
        }
    }

    fn agent(id: &str, status: AgentState) -> AgentInfo {
        AgentInfo {
            id: id.into(),
            label: None,
            status,
            model: None,
            session_id: None,
            updated_at: None,
            input_tokens: None,
            output_tokens: None,
            usage: Usage::default(),
            runtime_status: None,
        }
    }

    #[test]
    fn diff_reports_added_removed_and_changed_ids() {
        let before = vec![agent("a", AgentState::Idle), agent("b", AgentState::Running), agent("c", AgentState::Idle)];
        let after = vec![agent("a", AgentState::Idle), agent("b", AgentState::Done), agent("d", AgentState::Running)];
        assert_eq!(diff(&before, &after), ["b", "c", "d"]);
        assert!(diff(&after, &after).is_empty());
    }
}
