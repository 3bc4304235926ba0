//! A runtime wrapper that counts and times every call for `/metrics`
//! (`mc_agent_runtime_calls_total{method, outcome}` and its latency histogram).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::runtime::*;
use crate::metrics::Metrics;

/// `inner`, with each call counted in `metrics`.
pub struct Instrumented {
    inner: Arc<dyn AgentRuntime>,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn AgentRuntime>, metrics: Arc<Metrics>) -> Self {
        Instrumented { inner, metrics }
    }

    fn count<T>(&self, method: &str, started: Instant, result: Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        self.metrics.count_runtime_call(method, result.is_ok(), started.elapsed());
        result
    }
}

#[async_trait]
impl AgentRuntime for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError> {
        let started = Instant::now();
        self.count("list", started, self.inner.list().await)
    }
    async fn spawn(&self, req: SpawnRequest) -> Result<RunHandle, RuntimeError> {
        let started = Instant::now();
        self.count("spawn", started, self.inner.spawn(req).await)
    }
    async fn send(&self, session_key: &str, message: &str) -> Result<RunHandle, RuntimeError> {
        let started = Instant::now();
        self.count("send", started, self.inner.send(session_key, message).await)
    }
    async fn kill(&self, session_key: &str) -> Result<(), RuntimeError> {
        let started = Instant::now();
        self.count("kill", started, self.inner.kill(session_key).await)
    }
    async fn transcript(&self, session_key: &str, limit: usize) -> Result<Vec<TranscriptEntry>, RuntimeError> {
        let started = Instant::now();
        self.count("transcript", started, self.inner.transcript(session_key, limit).await)
    }
    async fn wait(&self, run_id: &str, timeout_ms: u64) -> Result<RunOutcome, RuntimeError> {
        let started = Instant::now();
        self.count("wait", started, self.inner.wait(run_id, timeout_ms).await)
    }
    fn abandon_run(&self, run_id: &str) {
        self.inner.abandon_run(run_id)
    }
    fn adopt_run(&self, session_key: &str, run_id: &str) {
        self.inner.adopt_run(session_key, run_id)
    }
    fn adopt_kill(&self, session_key: &str) {
        self.inner.adopt_kill(session_key)
    }
    fn change_notifier(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.change_notifier()
    }
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<RuntimeEvent>> {
        self.inner.events()
    }
    async fn resolve_approval(&self, id: &str, decision: Decision) -> Result<(), RuntimeError> {
        let started = Instant::now();
        self.count("resolve_approval", started, self.inner.resolve_approval(id, decision).await)
    }
    fn gateway_status(&self) -> Option<serde_json::Value> {
        self.inner.gateway_status()
    }
}
