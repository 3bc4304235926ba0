//! The agent runtime abstraction: what Mission Control needs from whatever runs agents.
//!
//! Three implementations exist (chosen by `--agent-runtime`): `openclaw` / `clawdbot` (the
//! real gateway, `gateway/`), `simulated` (in-process, for demos and tests) and `none`. Everything above this
//! trait (the poller, resolvers, subscriptions) is runtime-agnostic.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::snapshot::{AgentInfo, AgentOutputItem, AgentState, Approval, Decision, Usage};

/// What a runtime pushes as it happens (only runtimes with a live connection push anything).
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// Something an agent wrote (a delta, a tool call, a phase, the final reply).
    Output(AgentOutputItem),
    /// An exec approval was requested, or it was resolved or expired.
    Approval(Approval),
}

/// One conversation message of a transcript.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TranscriptEntry {
    pub role: String,
    pub text: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub model: Option<String>,
    pub tokens: Option<i64>,
    pub cost: Option<f64>,
}

/// What a spawn request carries.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// Session key chosen by the caller: `agent:main:subagent:<uuid>`.
    pub session_key: String,
    pub label: String,
    pub task: String,
}

/// How a run ended, as reported by the runtime (e.g. `agent.wait`).
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Ok,
    Error(String),
    /// Still running when the wait timed out; wait again.
    Timeout,
}

/// A run the runtime accepted (spawn or message).
#[derive(Debug, Clone, PartialEq)]
pub struct RunHandle {
    pub run_id: String,
}

/// Errors of a runtime call, shown to clients as `AGENT_RUNTIME_ERROR` with this message.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuntimeError {
    /// No runtime is configured; the message says how to configure one.
    #[error("{0}")]
    NotConfigured(String),
    /// The runtime (CLI, gateway) failed; the message is its own.
    #[error("{0}")]
    Failed(String),
    /// The runtime cannot be reached now (the gateway connection is down); retrying may work.
    /// The message is this server's own words.
    #[error("{0}")]
    Unavailable(String),
    /// The session does not exist.
    #[error("unknown agent {0}")]
    UnknownAgent(String),
}

/// What Mission Control needs from an agent runtime.
#[async_trait]
pub trait AgentRuntime: Send + Sync + 'static {
    /// Short name for logs and `/health` (`clawdbot`, `simulated`, `none`).
    fn name(&self) -> &'static str;
    /// Every session the runtime knows, with derived status. Must be cheap: it runs every poll.
    async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError>;
    /// Start a new session with `task` as its first message.
    async fn spawn(&self, req: SpawnRequest) -> Result<RunHandle, RuntimeError>;
    /// Send a message to a session.
    async fn send(&self, session_key: &str, message: &str) -> Result<RunHandle, RuntimeError>;
    /// Abort a session's runs.
    async fn kill(&self, session_key: &str) -> Result<(), RuntimeError>;
    /// The last `limit` conversation messages of a session, oldest first.
    async fn transcript(&self, session_key: &str, limit: usize) -> Result<Vec<TranscriptEntry>, RuntimeError>;
    /// Wait up to `timeout_ms` for a run to finish.
    async fn wait(&self, run_id: &str, timeout_ms: u64) -> Result<RunOutcome, RuntimeError>;
    /// Stops tracking a run nobody can follow any more (default: nothing is tracked).
    fn abandon_run(&self, _run_id: &str) {}
    /// Tracks a run another instance started, as if this one had (default: nothing is tracked).
    fn adopt_run(&self, _session_key: &str, _run_id: &str) {}
    /// Records a kill another instance performed (default: nothing is tracked).
    fn adopt_kill(&self, _session_key: &str) {}
    /// A notifier the runtime pings when its agents changed, so the poller need not wait for
    /// its next tick. `None` (the default) when the runtime cannot tell.
    fn change_notifier(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// What the runtime pushes from now on; `None` (the default) when it pushes nothing.
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<RuntimeEvent>> {
        None
    }
    /// Passes a human's decision on approval `id` to the runtime.
    async fn resolve_approval(&self, _id: &str, _decision: Decision) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotConfigured("approvals need the OpenClaw gateway: set --agent-runtime openclaw".into()))
    }
    /// How the gateway is reached, for `/health` (`agentGateway`); `None` without a gateway.
    fn gateway_status(&self) -> Option<serde_json::Value> {
        None
    }
}

impl From<RuntimeError> for crate::error::AppError {
    /// The runtime's own words (a CLI's stderr, a gateway's message) go to the log under a
    /// reference; the client gets a short, stable message that names the reference.
    fn from(err: RuntimeError) -> Self {
        use crate::error::AppError;
        match err {
            RuntimeError::UnknownAgent(id) => AppError::NotFound(format!("unknown agent {id}")),
            RuntimeError::NotConfigured(how) => AppError::AgentRuntime(how),
            RuntimeError::Unavailable(why) => AppError::AgentUnavailable(why),
            RuntimeError::Failed(detail) => {
                let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
                tracing::warn!(reference = %reference, detail = %detail, "agent runtime call failed");
                AppError::AgentRuntime(format!(
                    "the agent runtime failed (reference {reference}; details in the server log)"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeError;
    use crate::error::AppError;

    #[test]
    fn a_runtime_failure_reaches_clients_as_a_reference_not_its_output() {
        let err = AppError::from(RuntimeError::Failed("stderr: token=abc gateway not running".into()));
        let message = err.public_message();
        assert!(!message.contains("gateway") && !message.contains("token"), "{message}");
        let reference = message.split("reference ").nth(1).and_then(|r| r.split(';').next()).unwrap();
        assert_eq!(reference.len(), 12);
        let other = AppError::from(RuntimeError::Failed("again".into())).public_message();
        assert_ne!(message, other, "each failure has its own reference");
        // How to configure a runtime is not runtime output: it is shown as it is.
        let hint = AppError::from(RuntimeError::NotConfigured("set --agent-runtime".into())).public_message();
        assert_eq!(hint, "set --agent-runtime");
    }
}
