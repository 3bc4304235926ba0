//! The Clawdbot runtime: watches and steers sessions of a local Clawdbot gateway.
//!
//! Clawdbot has no `sessions spawn|kill|send|transcript` commands (its `sessions` command
//! is a lister that ignores extra words and exits 0), so this adapter uses what exists
//! (see `tests/fixtures/clawdbot/README.md`):
//!
//! - **Listing** reads `<state>/agents/*/sessions/sessions.json` directly: no process, a few
//!   milliseconds, safe to run every poll. Token use and dollar cost come from the session
//!   transcripts (`<sessionId>.jsonl`), read incrementally (`usage.rs`). The store records no
//!   status; it is derived (`status.rs`).
//! - **Actions** run `clawdbot gateway call <method> --params <json> --json` (`cli.rs`):
//!   `agent` (spawn), `chat.send`, `chat.abort` (kill), `chat.history` (transcript fallback)
//!   and `agent.wait`. Each call is a fresh Node process taking seconds, so none is on the
//!   polling path.

mod cli;
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

use super::runtime::{
    AgentInfo, AgentRuntime, AgentState, RunHandle, RunOutcome, RuntimeError, SpawnRequest, TranscriptEntry, Usage,
};
use cli::{Cli, error_text, reply_error, tail};
use status::Tracker;
use store::StoredSession;
use usage::UsageCache;

/// Most `chat.history` fallbacks running at once: each is a ~290 MB Node process, and any
/// reader can ask for transcripts of many agents in one query.
const HISTORY_CALLS_AT_ONCE: usize = 2;

/// `chat.history` returns at most this many messages.
const HISTORY_MAX: usize = 1000;
/// Budget given to `gateway call agent.wait` beyond the wait itself: the CLI's own `--timeout`
/// defaults to 10 s and would otherwise cut any longer wait short.
const WAIT_CLI_MARGIN_MS: u64 = 10_000;
/// Run statuses that mean the gateway accepted a run.
const ACCEPTED: [&str; 4] = ["accepted", "started", "ok", "in_flight"];

/// How to reach Clawdbot.
#[derive(Clone)]
pub struct ClawdbotConfig {
    /// Clawdbot's state folder: `$CLAWDBOT_STATE_DIR`, else `~/.clawdbot`.
    pub state_dir: PathBuf,
    /// The `clawdbot` binary; a bare name is looked up on `PATH`.
    pub bin: PathBuf,
    /// Gateway token, given to the CLI as `CLAWDBOT_GATEWAY_TOKEN` in its environment only.
    /// `None` leaves the CLI to its inherited environment and config.
    pub gateway_token: Option<String>,
    /// Deadline of one CLI call (`agent.wait` gets its wait time on top).
    pub call_timeout: Duration,
    /// A session whose store entry changed this recently counts as running.
    pub running_window: Duration,
}

impl ClawdbotConfig {
    /// Defaults with the given state folder.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ClawdbotConfig {
            state_dir: state_dir.into(),
            bin: PathBuf::from("clawdbot"),
            gateway_token: None,
            call_timeout: Duration::from_secs(30),
            running_window: Duration::from_secs(60),
        }
    }

    /// Where Clawdbot keeps its state by default: `$CLAWDBOT_STATE_DIR`, else
    /// `$HOME/.clawdbot` (relative `.clawdbot` without a home).
    fn default_state_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("CLAWDBOT_STATE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => Path::new(&home).join(".clawdbot"),
            None => PathBuf::from(".clawdbot"),
        }
    }
}

impl Default for ClawdbotConfig {
    fn default() -> Self {
        ClawdbotConfig::new(ClawdbotConfig::default_state_dir())
    }
}

// Hand-written so the token never reaches a log line.
impl std::fmt::Debug for ClawdbotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClawdbotConfig")
            .field("state_dir", &self.state_dir)
            .field("bin", &self.bin)
            .field("gateway_token", &self.gateway_token.as_ref().map(|_| "<redacted>"))
            .field("call_timeout", &self.call_timeout)
            .field("running_window", &self.running_window)
            .finish()
    }
}

/// The source of "now" for status derivation.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// [`AgentRuntime`] backed by a local Clawdbot installation.
pub struct ClawdbotRuntime {
    config: ClawdbotConfig,
    cli: Cli,
    clock: Clock,
    /// Runs in flight, outcomes and kills; locked briefly, never across an await.
    tracker: Mutex<Tracker>,
    /// Shared with the blocking scan task.
    usage: Arc<Mutex<UsageCache>>,
    /// Wakes the poller on store and transcript changes (absent: polling only).
    watcher: Option<watch::StoreWatcher>,
    /// Bounds concurrent `chat.history` processes.
    history_slots: tokio::sync::Semaphore,
}

impl ClawdbotRuntime {
    /// A runtime for `config`, using the wall clock.
    pub fn new(config: ClawdbotConfig) -> Self {
        let cli = Cli {
            bin: config.bin.clone(),
            gateway_token: config.gateway_token.clone(),
            state_dir: config.state_dir.clone(),
            extra_env: Vec::new(),
            current_dir: None,
        };
        ClawdbotRuntime {
            config,
            cli,
            clock: Arc::new(Utc::now),
            tracker: Mutex::new(Tracker::default()),
            usage: Arc::new(Mutex::new(UsageCache::default())),
            watcher: None,
            history_slots: tokio::sync::Semaphore::new(HISTORY_CALLS_AT_ONCE),
        }
    }

    /// Also watches the state folder, so the poller wakes as soon as the store or a transcript
    /// changes. Without it (or where watching fails) the poll interval alone applies.
    pub fn with_file_watch(mut self) -> Self {
        self.watcher = watch::StoreWatcher::start(&self.config.state_dir);
        self
    }

    /// Replaces the clock used for "now" (status recency, when kills and outcomes happened),
    /// so tests need not depend on wall time.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &ClawdbotConfig {
        &self.config
    }

    /// [`AgentRuntime::list`] with statuses derived as of `now`.
    pub async fn list_at(&self, now: DateTime<Utc>) -> Result<Vec<AgentInfo>, RuntimeError> {
        let state_dir = self.config.state_dir.clone();
        let cache = Arc::clone(&self.usage);
        let scanned = tokio::task::spawn_blocking(move || scan(&state_dir, &cache))
            .await
            .map_err(|e| RuntimeError::Failed(format!("clawdbot session scan failed: {e}")))?
            .map_err(RuntimeError::Failed)?;

        let mut tracker = lock(&self.tracker);
        let listed: HashSet<&str> = scanned.iter().map(|(s, _)| s.key.as_str()).collect();
        tracker.retain_sessions(&listed);
        let window = self.config.running_window;
        Ok(scanned
            .iter()
            .map(|(s, usage)| AgentInfo {
                id: s.key.clone(),
                label: s.entry.label.clone(),
                status: tracker.status(&s.key, &s.entry, now, window),
                model: s.entry.model.clone(),
                session_id: s.entry.session_id.clone(),
                updated_at: s.entry.updated_at(),
                input_tokens: s.entry.input_tokens,
                output_tokens: s.entry.output_tokens,
                usage: *usage,
            })
            .collect())
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Runs a gateway call whose reply must not carry an error.
    async fn call_checked(&self, method: &str, params: &Value) -> Result<Value, RuntimeError> {
        let reply = self.cli.call(method, params, &[], self.config.call_timeout).await?;
        match reply_error(method, &reply) {
            Some(e) => Err(RuntimeError::Failed(e)),
            None => Ok(reply),
        }
    }

    /// Starts a run (`agent` or `chat.send`) and tracks it as in flight for `session_key`.
    async fn start_run(&self, method: &str, params: &Value, session_key: &str) -> Result<RunHandle, RuntimeError> {
        let reply = self.call_checked(method, params).await?;
        let run_id = reply.get("runId").and_then(Value::as_str).filter(|r| !r.is_empty());
        let status = reply.get("status").and_then(Value::as_str);
        let (Some(run_id), true) = (run_id, status.is_none_or(|s| ACCEPTED.contains(&s))) else {
            return Err(RuntimeError::Failed(format!(
                "clawdbot {method}: run not accepted: {}",
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

/// Reads the stores and brings each session's transcript usage up to date.
fn scan(state_dir: &Path, cache: &Mutex<UsageCache>) -> Result<Vec<(StoredSession, Usage)>, String> {
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
            (s, usage.unwrap_or_default())
        })
        .collect();
    cache.retain(&seen);
    Ok(scanned)
}

/// The session's transcript read from disk, or `None` when it cannot be found there (no
/// store entry, no session id, no file yet).
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
impl AgentRuntime for ClawdbotRuntime {
    fn name(&self) -> &'static str {
        "clawdbot"
    }

    fn change_notifier(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.watcher.as_ref().map(watch::StoreWatcher::notifier)
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
        self.start_run("agent", &params, &req.session_key).await
    }

    async fn send(&self, session_key: &str, message: &str) -> Result<RunHandle, RuntimeError> {
        let params = json!({
            "sessionKey": session_key,
            "message": message,
            "idempotencyKey": idempotency_key(),
        });
        self.start_run("chat.send", &params, session_key).await
    }

    async fn kill(&self, session_key: &str) -> Result<(), RuntimeError> {
        let params = json!({ "sessionKey": session_key });
        let reply = self.call_checked("chat.abort", &params).await?;
        if reply.get("ok") != Some(&Value::Bool(true)) {
            return Err(RuntimeError::Failed(format!(
                "clawdbot chat.abort: unexpected reply: {}",
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
        let params = json!({ "sessionKey": session_key, "limit": limit.min(HISTORY_MAX) });
        let _slot = self
            .history_slots
            .acquire()
            .await
            .map_err(|_| RuntimeError::Failed("the transcript fallback is shutting down".into()))?;
        let reply = self.call_checked("chat.history", &params).await?;
        transcript::parse_history(&reply, limit).map_err(RuntimeError::Failed)
    }

    async fn wait(&self, run_id: &str, timeout_ms: u64) -> Result<RunOutcome, RuntimeError> {
        let params = json!({ "runId": run_id, "timeoutMs": timeout_ms });
        let cli_budget = timeout_ms.saturating_add(WAIT_CLI_MARGIN_MS);
        let extra = ["--timeout".to_string(), cli_budget.to_string()];
        let limit = Duration::from_millis(timeout_ms).saturating_add(self.config.call_timeout);
        let reply = self.cli.call("agent.wait", &params, &extra, limit).await?;
        let outcome = match reply.get("status").and_then(Value::as_str) {
            Some("ok") => RunOutcome::Ok,
            Some("error") => RunOutcome::Error(
                reply.get("error").filter(|e| !e.is_null()).map_or_else(|| "run failed".to_string(), error_text),
            ),
            Some("timeout") => return Ok(RunOutcome::Timeout),
            _ => {
                return Err(RuntimeError::Failed(reply_error("agent.wait", &reply).unwrap_or_else(|| {
                    format!("clawdbot agent.wait: unexpected reply: {}", tail(&reply.to_string(), 500))
                })));
            }
        };
        let ok = outcome == RunOutcome::Ok;
        lock(&self.tracker).run_finished(run_id, ok, self.now());
        Ok(outcome)
    }
}
