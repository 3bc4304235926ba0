//! The gateway runtime: watches and steers the sessions of an OpenClaw gateway (the product
//! called Clawdbot until 2026.1), whichever of the two it finds.
//!
//! - **Actions** go over one WebSocket to the gateway (`client.rs`): `agent` (spawn),
//!   `chat.send`, `chat.abort` (kill), `agent.wait`, `chat.history`, `exec.approval.resolve`,
//!   each answered in milliseconds. Only while that connection cannot be had does an action
//!   run the CLI instead (`<bin> gateway call <method> --params <json> --json`, `cli.rs`), a
//!   Node process of seconds and hundreds of megabytes.
//! - **Status** comes from what the gateway pushes on the same connection (`live.rs`): run
//!   lifecycles as they happen, then the store's own `status` where it has one (OpenClaw), else
//!   what is derived from the store's timestamps (Clawdbot, `status.rs`).
//! - **Listing, history and cost** read the session store directly, read-only: OpenClaw's
//!   SQLite database (`sqlite_store.rs`) or Clawdbot's `sessions.json` and `.jsonl`
//!   transcripts (`store.rs`, `usage.rs`), whichever the state folder holds, incrementally.
//! - **Finding it all** (`discovery.rs`): the state folder, config, token and address under
//!   either product's names.

mod cli;
pub mod client;
pub mod discovery;
mod live;
mod remote_store;
mod sqlite_store;
mod status;
mod store;
mod transcript;
mod usage;
mod watch;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use super::runtime::{
    AgentInfo, AgentRuntime, AgentState, RunHandle, RunOutcome, RuntimeError, RuntimeEvent, SpawnRequest,
    TranscriptEntry, Usage,
};
use crate::snapshot::Decision;
use cli::{Cli, error_text, reply_error, tail};
use client::{ClientSettings, GatewayClient, GatewayEvent};
use live::Lifecycle;
use sqlite_store::SqliteStores;
use status::Tracker;
use store::ListedSession;
use usage::UsageCache;

/// Most `chat.history` CLI fallbacks running at once: each is a ~290 MB Node process, and any
/// reader can ask for transcripts of many agents in one query.
const HISTORY_CALLS_AT_ONCE: usize = 2;

/// `chat.history` returns at most this many messages.
const HISTORY_MAX: usize = 1000;
/// Budget given to `agent.wait` beyond the wait itself (the CLI's own `--timeout` defaults
/// to 10 s and would otherwise cut any longer wait short).
const WAIT_MARGIN_MS: u64 = 10_000;
/// Run statuses that mean the gateway accepted a run.
const ACCEPTED: [&str; 4] = ["accepted", "started", "ok", "in_flight"];
/// Runtime events a slow consumer may fall behind.
const EVENT_BUFFER: usize = 4096;

/// How to reach the gateway.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The state folder (see `discovery.rs` for how it is found).
    pub state_dir: PathBuf,
    /// The CLI, for the fallback; a bare name is looked up on `PATH`.
    pub bin: PathBuf,
    /// Gateway token: sent in `connect`, and given to the CLI in its environment only.
    /// `None` leaves the CLI to its inherited environment and config.
    pub gateway_token: Option<String>,
    /// Deadline of one call (`agent.wait` gets its wait time on top).
    pub call_timeout: Duration,
    /// A session whose store entry changed this recently counts as running (Clawdbot's
    /// store records no status).
    pub running_window: Duration,
    /// The gateway's WebSocket, `ws://host:port`; `None` runs every action through the CLI.
    pub gateway_url: Option<String>,
    /// The name shown as `agentRuntime` in `/health` (`openclaw` or `clawdbot`).
    pub name: &'static str,
}

impl GatewayConfig {
    /// Defaults with the given state folder, CLI only.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        GatewayConfig {
            state_dir: state_dir.into(),
            bin: PathBuf::from("clawdbot"),
            gateway_token: None,
            call_timeout: Duration::from_secs(30),
            running_window: Duration::from_secs(60),
            gateway_url: None,
            name: "clawdbot",
        }
    }
}

// Hand-written so the token never reaches a log line.
impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("state_dir", &self.state_dir)
            .field("bin", &self.bin)
            .field("gateway_token", &self.gateway_token.as_ref().map(|_| "<redacted>"))
            .field("call_timeout", &self.call_timeout)
            .field("running_window", &self.running_window)
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

/// The source of "now" for status derivation.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Which store the state folder holds, and whether it could be read, for `/health`.
#[derive(Debug, Clone, Default)]
struct StoreHealth {
    kind: Option<&'static str>,
    error: Option<String>,
}

/// The store's status word as a state: OpenClaw's `killed` is KILLED, `timeout` is FAILED.
fn stored_state(word: &str) -> Option<AgentState> {
    Some(match word {
        "running" => AgentState::Running,
        "done" => AgentState::Done,
        "failed" | "timeout" => AgentState::Failed,
        "killed" => AgentState::Killed,
        _ => return None,
    })
}

/// [`AgentRuntime`] backed by a local OpenClaw (or Clawdbot) gateway.
pub struct GatewayRuntime {
    config: GatewayConfig,
    cli: Cli,
    clock: Clock,
    /// Runs in flight, outcomes and kills; locked briefly, never across an await.
    tracker: Arc<Mutex<Tracker>>,
    /// Clawdbot transcripts' usage; shared with the blocking scan task.
    usage: Arc<Mutex<UsageCache>>,
    /// OpenClaw's SQLite stores, opened once.
    sqlite: tokio::sync::Mutex<SqliteStores>,
    /// What their next scan must read, set by the event pump without waiting for a scan.
    marks: Arc<Mutex<sqlite_store::Marks>>,
    /// The gateway's own list, when no store is on this machine.
    remote: tokio::sync::Mutex<remote_store::RemoteStore>,
    /// Whether the list came from the gateway: then, while it is unreachable, there is no list
    /// (rather than an empty one).
    remote_used: std::sync::atomic::AtomicBool,
    store_health: Arc<Mutex<StoreHealth>>,
    /// Pinged when agents changed (store files, pushed lifecycle events).
    changed: Arc<Notify>,
    /// Whether anything pings `changed` (a file watch or the gateway connection).
    notifies: bool,
    _watcher: Option<watch::StoreWatcher>,
    /// Bounds concurrent `chat.history` CLI processes.
    history_slots: tokio::sync::Semaphore,
    /// The WebSocket, when configured.
    client: Option<GatewayClient>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl GatewayRuntime {
    /// A runtime for `config`, using the wall clock. Call [`GatewayRuntime::connect`] to use
    /// the WebSocket and [`GatewayRuntime::with_file_watch`] to wake on store changes.
    pub fn new(config: GatewayConfig) -> Self {
        let cli = Cli {
            bin: config.bin.clone(),
            gateway_token: config.gateway_token.clone(),
            state_dir: config.state_dir.clone(),
            extra_env: Vec::new(),
            current_dir: None,
        };
        let sqlite = SqliteStores::default();
        let marks = sqlite.marks();
        GatewayRuntime {
            config,
            cli,
            marks,
            clock: Arc::new(Utc::now),
            tracker: Arc::new(Mutex::new(Tracker::default())),
            usage: Arc::new(Mutex::new(UsageCache::default())),
            sqlite: tokio::sync::Mutex::new(sqlite),
            remote: tokio::sync::Mutex::new(remote_store::RemoteStore::default()),
            remote_used: std::sync::atomic::AtomicBool::new(false),
            store_health: Arc::new(Mutex::new(StoreHealth::default())),
            changed: Arc::new(Notify::new()),
            notifies: false,
            _watcher: None,
            history_slots: tokio::sync::Semaphore::new(HISTORY_CALLS_AT_ONCE),
            client: None,
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    /// Also watches the state folder, so the poller wakes as soon as the store or a transcript
    /// changes. Without it (or where watching fails) the poll interval alone applies.
    pub fn with_file_watch(mut self) -> Self {
        self._watcher = watch::StoreWatcher::start(&self.config.state_dir, Arc::clone(&self.changed));
        self.notifies |= self._watcher.is_some();
        self
    }

    /// Connects to `config.gateway_url` (in the background, reconnecting for as long as the
    /// runtime lives) and follows what the gateway pushes. Needs a tokio runtime.
    pub fn connect(mut self) -> Self {
        let Some(url) = self.config.gateway_url.clone() else { return self };
        let mut settings = ClientSettings::new(url, self.config.gateway_token.clone());
        settings.request_timeout = self.config.call_timeout;
        let client = GatewayClient::start(settings);
        let pump = Pump {
            tracker: Arc::clone(&self.tracker),
            marks: Arc::clone(&self.marks),
            changed: Arc::clone(&self.changed),
            events: self.events.clone(),
            clock: Arc::clone(&self.clock),
        };
        tokio::spawn(pump.run(client.subscribe()));
        self.client = Some(client);
        self.notifies = true;
        self
    }

    /// Replaces the clock used for "now" (status recency, when kills and outcomes happened),
    /// so tests need not depend on wall time.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Reads whichever stores the state folder holds; without any, the gateway's own list.
    async fn scan(&self) -> Result<Vec<ListedSession>, RuntimeError> {
        let state_dir = self.config.state_dir.clone();
        let cache = Arc::clone(&self.usage);
        let json = tokio::task::spawn_blocking(move || scan_json(&state_dir, &cache))
            .await
            .map_err(|e| RuntimeError::Failed(format!("session scan failed: {e}")))?;
        let sqlite = self.sqlite.lock().await.scan(&self.config.state_dir).await.transpose();
        let Some(sqlite) = sqlite else {
            if json.as_ref().is_ok_and(Vec::is_empty) {
                if let Some(client) = self.socket() {
                    self.remote_used.store(true, std::sync::atomic::Ordering::Relaxed);
                    return self.scan_remote(client).await;
                }
                if self.remote_used.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(RuntimeError::Unavailable(
                        "no session store is on this machine and the gateway cannot be reached".into(),
                    ));
                }
            }
            return self.settle(json, Ok(Vec::new()));
        };
        self.settle(json, sqlite)
    }

    /// Records which local store was read and whether it could be; joins their sessions.
    fn settle(
        &self,
        json: Result<Vec<ListedSession>, String>,
        sqlite: Result<Vec<ListedSession>, String>,
    ) -> Result<Vec<ListedSession>, RuntimeError> {
        let holds = |read: &Result<Vec<ListedSession>, String>| read.as_ref().map_or(true, |s| !s.is_empty());
        let kind = if holds(&sqlite) {
            Some("sqlite")
        } else if holds(&json) {
            Some("json")
        } else {
            None
        };
        let error = json.as_ref().err().or(sqlite.as_ref().err()).cloned();
        {
            let mut health = lock(&self.store_health);
            if error.is_some() && health.error != error {
                tracing::warn!(error = error.as_deref().unwrap_or_default(), "cannot read the gateway's session store");
            }
            *health = StoreHealth { kind: kind.or(health.kind), error: error.clone() };
        }
        if let Some(error) = error {
            return Err(RuntimeError::Failed(error));
        }
        let mut sessions = json.unwrap_or_default();
        sessions.extend(sqlite.unwrap_or_default());
        Ok(sessions)
    }

    /// The gateway's own list: no store of it is on this machine.
    async fn scan_remote(&self, client: &GatewayClient) -> Result<Vec<ListedSession>, RuntimeError> {
        let listed = self.remote.lock().await.scan(client, self.config.call_timeout).await;
        let mut health = lock(&self.store_health);
        health.kind = Some("gateway");
        health.error = listed.as_ref().err().map(ToString::to_string);
        drop(health);
        listed
    }

    /// [`AgentRuntime::list`] with statuses derived as of `now`.
    pub async fn list_at(&self, now: DateTime<Utc>) -> Result<Vec<AgentInfo>, RuntimeError> {
        let scanned = self.scan().await?;
        let mut tracker = lock(&self.tracker);
        let listed: HashSet<&str> = scanned.iter().map(|s| s.key.as_str()).collect();
        tracker.retain_sessions(&listed);
        let window = self.config.running_window;
        Ok(scanned
            .iter()
            .map(|s| AgentInfo {
                id: s.key.clone(),
                label: s.entry.label.clone(),
                status: tracker.status_with(&s.key, &s.entry, now, window, s.status.as_deref().and_then(stored_state)),
                model: s.entry.model.clone(),
                session_id: s.entry.session_id.clone(),
                updated_at: s.entry.updated_at(),
                input_tokens: s.entry.input_tokens,
                output_tokens: s.entry.output_tokens,
                usage: s.usage,
                runtime_status: s.status.clone(),
            })
            .collect())
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The connection to use for a call, if it is up.
    fn socket(&self) -> Option<&GatewayClient> {
        self.client.as_ref().filter(|c| c.is_connected())
    }

    /// Runs a gateway call whose reply must not carry an error: over the WebSocket when it is
    /// up, else through the CLI. A call the WebSocket lost mid-way is not repeated through the
    /// CLI (it may have been carried out): it fails as retryable.
    async fn call(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, RuntimeError> {
        if let Some(client) = self.socket() {
            return client.request(method, params, Some(timeout)).await;
        }
        let reply = self.cli.call(method, &params, &[], timeout).await?;
        match reply_error(method, &reply) {
            Some(e) => Err(RuntimeError::Failed(e)),
            None => Ok(reply),
        }
    }

    /// Starts a run (`agent` or `chat.send`) and tracks it as in flight for `session_key`.
    async fn start_run(&self, method: &str, params: Value, session_key: &str) -> Result<RunHandle, RuntimeError> {
        let reply = self.call(method, params, self.config.call_timeout).await?;
        let run_id = reply.get("runId").and_then(Value::as_str).filter(|r| !r.is_empty());
        let status = reply.get("status").and_then(Value::as_str);
        let (Some(run_id), true) = (run_id, status.is_none_or(|s| ACCEPTED.contains(&s))) else {
            return Err(RuntimeError::Failed(format!(
                "gateway {method}: run not accepted: {}",
                tail(&reply.to_string(), 500)
            )));
        };
        lock(&self.tracker).run_started(session_key, run_id);
        Ok(RunHandle { run_id: run_id.to_string() })
    }

    /// For tests: run the CLI in `dir` with extra environment variables.
    #[cfg(test)]
    fn with_child_env(mut self, dir: &Path, env: &[(&str, &str)]) -> Self {
        self.cli.current_dir = Some(dir.to_path_buf());
        self.cli.extra_env = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }
}

/// Follows what the gateway pushes: lifecycles into the tracker, output and approvals out.
struct Pump {
    tracker: Arc<Mutex<Tracker>>,
    marks: Arc<Mutex<sqlite_store::Marks>>,
    changed: Arc<Notify>,
    events: broadcast::Sender<RuntimeEvent>,
    clock: Clock,
}

impl Pump {
    async fn run(self, mut rx: broadcast::Receiver<GatewayEvent>) {
        loop {
            match rx.recv().await {
                Ok(GatewayEvent::Event { name, payload }) => self.on_event(&name, &payload),
                Ok(GatewayEvent::Connected | GatewayEvent::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Events may have been missed; what they said is in the store: runs known
                    // only from events are forgotten, and every transcript is read again once.
                    lock(&self.tracker).forget_learned();
                    lock(&self.marks).reread_all();
                    self.changed.notify_one();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn on_event(&self, name: &str, payload: &Value) {
        let now = (self.clock)();
        let meaning = live::meaning(name, payload, now);
        if let Some(lifecycle) = meaning.lifecycle {
            let ended_session = {
                let mut tracker = lock(&self.tracker);
                match lifecycle {
                    Lifecycle::Started { session_key, run_id } => {
                        tracker.run_seen(&session_key, &run_id);
                        None
                    }
                    Lifecycle::Ended { run_id, session_id, .. } => {
                        tracker.run_finished(&run_id, true, now);
                        session_id
                    }
                    Lifecycle::Failed { run_id, session_id, .. } => {
                        tracker.run_finished(&run_id, false, now);
                        session_id
                    }
                    Lifecycle::Killed { session_key, session_id } => {
                        tracker.killed(&session_key, now);
                        session_id
                    }
                }
            };
            // The run's cost is in its transcript now: read it for that session only.
            if let Some(id) = ended_session {
                lock(&self.marks).mark_dirty(&id);
            }
            self.changed.notify_one();
        }
        if let Some(output) = meaning.output {
            let _ = self.events.send(RuntimeEvent::Output(output));
        }
        if let Some(approval) = meaning.approval {
            let _ = self.events.send(RuntimeEvent::Approval(approval));
        }
    }
}

/// Reads Clawdbot's stores and brings each session's transcript usage up to date.
fn scan_json(state_dir: &Path, cache: &Mutex<UsageCache>) -> Result<Vec<ListedSession>, String> {
    let sessions = store::load_sessions(state_dir)?;
    let mut cache = lock(cache);
    let mut seen = HashSet::new();
    let scanned = sessions
        .into_iter()
        .map(|s| {
            let usage = s.transcript_path().and_then(|path| {
                let usage = cache.usage(&path);
                seen.insert(path);
                usage
            });
            ListedSession { key: s.key, entry: s.entry, usage: usage.unwrap_or_default(), status: None }
        })
        .collect();
    cache.retain(&seen);
    Ok(scanned)
}

/// The session's transcript read from a Clawdbot store on disk, or `None` when it cannot be
/// found there (no store entry, no session id, no file yet).
fn local_transcript(state_dir: &Path, key: &str, limit: usize) -> Option<Vec<TranscriptEntry>> {
    let sessions = store::load_sessions(state_dir).ok()?;
    let path = sessions.into_iter().find(|s| s.key == key)?.transcript_path()?;
    match transcript::read_transcript(&path, limit) {
        Ok(entries) => Some(entries),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot read transcript; asking the gateway");
            }
            None
        }
    }
}

/// Locks a mutex; the data stays usable if a holder panicked (every update is a single step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[async_trait]
impl AgentRuntime for GatewayRuntime {
    fn name(&self) -> &'static str {
        self.config.name
    }

    fn change_notifier(&self) -> Option<Arc<Notify>> {
        self.notifies.then(|| Arc::clone(&self.changed))
    }

    fn events(&self) -> Option<broadcast::Receiver<RuntimeEvent>> {
        self.client.as_ref().map(|_| self.events.subscribe())
    }

    fn gateway_status(&self) -> Option<Value> {
        let link = self.client.as_ref().map(GatewayClient::status).unwrap_or_default();
        let store = lock(&self.store_health).clone();
        Some(json!({
            "transport": if link.connected { "websocket" } else { "cli" },
            "protocol": link.protocol,
            "connected": link.connected,
            "gatewayVersion": link.gateway_version,
            "store": store.kind,
            "error": link.error.or(store.error),
            "url": self.config.gateway_url,
        }))
    }

    fn abandon_run(&self, run_id: &str) {
        lock(&self.tracker).run_abandoned(run_id);
    }

    fn adopt_run(&self, session_key: &str, run_id: &str) {
        lock(&self.tracker).run_started(session_key, run_id);
    }

    fn adopt_kill(&self, session_key: &str) {
        lock(&self.tracker).killed(session_key, self.now());
    }

    async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError> {
        self.list_at(self.now()).await
    }

    async fn spawn(&self, req: SpawnRequest) -> Result<RunHandle, RuntimeError> {
        let params = json!({
            "message": req.task,
            "sessionKey": req.session_key,
            "label": req.label,
            "idempotencyKey": idempotency_key(),
            "deliver": false,
        });
        self.start_run("agent", params, &req.session_key).await
    }

    async fn send(&self, session_key: &str, message: &str) -> Result<RunHandle, RuntimeError> {
        let params = json!({
            "sessionKey": session_key,
            "message": message,
            "idempotencyKey": idempotency_key(),
        });
        self.start_run("chat.send", params, session_key).await
    }

    async fn kill(&self, session_key: &str) -> Result<(), RuntimeError> {
        let params = json!({ "sessionKey": session_key });
        let reply = self.call("chat.abort", params, self.config.call_timeout).await?;
        if reply.get("ok") != Some(&Value::Bool(true)) {
            return Err(RuntimeError::Failed(format!(
                "gateway chat.abort: unexpected reply: {}",
                tail(&reply.to_string(), 500)
            )));
        }
        // Also when nothing was running (`aborted: false`): the session was asked to stop.
        lock(&self.tracker).killed(session_key, self.now());
        Ok(())
    }

    async fn transcript(&self, session_key: &str, limit: usize) -> Result<Vec<TranscriptEntry>, RuntimeError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let state_dir = self.config.state_dir.clone();
        let key = session_key.to_string();
        let local = tokio::task::spawn_blocking(move || local_transcript(&state_dir, &key, limit)).await.ok().flatten();
        if let Some(entries) = local {
            return Ok(entries);
        }
        match self.sqlite.lock().await.transcript(&self.config.state_dir, session_key, limit).await {
            Ok(Some(entries)) => return Ok(entries),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the transcript from the store; asking the gateway"),
        }
        let params = json!({ "sessionKey": session_key, "limit": limit.min(HISTORY_MAX) });
        let _slot = match self.socket() {
            Some(_) => None,
            None => Some(
                self.history_slots
                    .acquire()
                    .await
                    .map_err(|_| RuntimeError::Failed("the transcript fallback is shutting down".into()))?,
            ),
        };
        let reply = self.call("chat.history", params, self.config.call_timeout).await?;
        transcript::parse_history(&reply, limit).map_err(RuntimeError::Failed)
    }

    async fn wait(&self, run_id: &str, timeout_ms: u64) -> Result<RunOutcome, RuntimeError> {
        let params = json!({ "runId": run_id, "timeoutMs": timeout_ms });
        let limit = Duration::from_millis(timeout_ms).saturating_add(self.config.call_timeout);
        // The reply's `status` says how the run ended (an `error` status is an answer here).
        let reply = match self.socket() {
            Some(client) => client.request("agent.wait", params, Some(limit)).await?,
            None => {
                // The CLI's own `--timeout` defaults to 10 s and would cut a longer wait short.
                let budget = timeout_ms.saturating_add(WAIT_MARGIN_MS);
                let extra = ["--timeout".to_string(), budget.to_string()];
                self.cli.call("agent.wait", &params, &extra, limit).await?
            }
        };
        let outcome = match reply.get("status").and_then(Value::as_str) {
            Some("ok") => RunOutcome::Ok,
            Some("error") => RunOutcome::Error(
                reply.get("error").filter(|e| !e.is_null()).map_or_else(|| "run failed".to_string(), error_text),
            ),
            Some("timeout") => return Ok(RunOutcome::Timeout),
            _ => {
                return Err(RuntimeError::Failed(reply_error("agent.wait", &reply).unwrap_or_else(|| {
                    format!("gateway agent.wait: unexpected reply: {}", tail(&reply.to_string(), 500))
                })));
            }
        };
        let now = self.now();
        let mut tracker = lock(&self.tracker);
        match &outcome {
            // OpenClaw answers a wait on an aborted run with `error: "aborted"`: a kill.
            RunOutcome::Error(e) if e == "aborted" => tracker.run_abandoned(run_id),
            outcome => tracker.run_finished(run_id, *outcome == RunOutcome::Ok, now),
        }
        Ok(outcome)
    }

    async fn resolve_approval(&self, id: &str, decision: Decision) -> Result<(), RuntimeError> {
        let params = json!({ "id": id, "decision": decision.wire() });
        self.call("exec.approval.resolve", params, self.config.call_timeout).await.map(|_| ())
    }
}
