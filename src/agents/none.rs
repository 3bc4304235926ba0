//! The `none` runtime: no agents, and every action explains how to configure a runtime.

use async_trait::async_trait;

use super::runtime::*;

const HOW: &str = "no agent runtime is configured: start with --agent-runtime clawdbot (and --clawdbot-state-dir) or --agent-runtime simulated";

/// A runtime that has no agents.
pub struct NoRuntime;

#[async_trait]
impl AgentRuntime for NoRuntime {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn spawn(&self, _req: SpawnRequest) -> Result<RunHandle, RuntimeError> {
        Err(RuntimeError::NotConfigured(HOW.into()))
    }
    async fn send(&self, _key: &str, _message: &str) -> Result<RunHandle, RuntimeError> {
        Err(RuntimeError::NotConfigured(HOW.into()))
    }
    async fn kill(&self, _key: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotConfigured(HOW.into()))
    }
    async fn transcript(&self, _key: &str, _limit: usize) -> Result<Vec<TranscriptEntry>, RuntimeError> {
        Err(RuntimeError::NotConfigured(HOW.into()))
    }
    async fn wait(&self, _run_id: &str, _timeout_ms: u64) -> Result<RunOutcome, RuntimeError> {
        Err(RuntimeError::NotConfigured(HOW.into()))
    }
}
