//! The `simulated` runtime: agents that live in this process, for demos and tests.
//!
//! A spawned agent runs for a few steps; each step appends an assistant message with token and
//! cost usage; then it finishes (DONE) or fails (FAILED). With a seed the whole course is
//! deterministic. Steps run on tokio time, so tests can pause and advance the clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, watch};

use super::runtime::*;

/// Knobs of the simulation.
#[derive(Debug, Clone)]
pub struct SimulatedConfig {
    /// Seed for a deterministic course; `None` for a random one.
    pub seed: Option<u64>,
    /// Time between steps of a run.
    pub step: Duration,
    /// Chance (0..=1) that a run fails at its end.
    pub failure_rate: f64,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig { seed: None, step: Duration::from_secs(2), failure_rate: 0.2 }
    }
}

struct Session {
    info: AgentInfo,
    transcript: Vec<TranscriptEntry>,
    /// The current run and its outcome channel (`None` while running).
    run: Option<(String, watch::Sender<Option<RunOutcome>>)>,
    /// Bumped on every new run or kill, so a superseded run's task stops.
    generation: u64,
}

struct Inner {
    sessions: HashMap<String, Session>,
    rng: StdRng,
}

/// An in-process agent runtime.
#[derive(Clone)]
pub struct SimulatedRuntime {
    inner: Arc<Mutex<Inner>>,
    config: SimulatedConfig,
    changed: Arc<Notify>,
}

const MODEL: &str = "simulated/sim-1";

impl SimulatedRuntime {
    /// A runtime with no agents yet.
    pub fn new(config: SimulatedConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        SimulatedRuntime {
            inner: Arc::new(Mutex::new(Inner { sessions: HashMap::new(), rng })),
            config,
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, RuntimeError> {
        self.inner.lock().map_err(|_| RuntimeError::Failed("simulated runtime state is poisoned".into()))
    }

    /// Starts a run on `key`: marks it RUNNING and schedules its steps.
    fn start_run(&self, key: &str, inner: &mut Inner) -> RunHandle {
        let run_id = uuid::Uuid::new_v4().to_string();
        let steps = inner.rng.random_range(2..=4u32);
        let fails = inner.rng.random_bool(self.config.failure_rate.clamp(0.0, 1.0));
        let usage: Vec<(i64, f64)> = (0..steps)
            .map(|_| {
                let tokens = inner.rng.random_range(200..2000i64);
                (tokens, tokens as f64 * 0.000_003)
            })
            .collect();
        let (tx, _) = watch::channel(None);
        let Some(session) = inner.sessions.get_mut(key) else {
            return RunHandle { run_id };
        };
        session.generation += 1;
        session.info.status = AgentState::Running;
        session.info.updated_at = Some(Utc::now());
        session.run = Some((run_id.clone(), tx));
        let generation = session.generation;

        let this = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            for (i, (tokens, cost)) in usage.iter().enumerate() {
                tokio::time::sleep(this.config.step).await;
                let Ok(mut inner) = this.inner.lock() else { return };
                let Some(session) = inner.sessions.get_mut(&key) else { return };
                if session.generation != generation {
                    return;
                }
                session.transcript.push(TranscriptEntry {
                    role: "assistant".into(),
                    text: format!("Step {} of {}: working on it.", i + 1, usage.len()),
                    timestamp: Some(Utc::now()),
                    model: Some(MODEL.into()),
                    tokens: Some(*tokens),
                    cost: Some(*cost),
                });
                session.info.usage.tokens += tokens;
                session.info.usage.cost += cost;
                session.info.output_tokens = Some(session.info.output_tokens.unwrap_or(0) + tokens);
                session.info.updated_at = Some(Utc::now());
                drop(inner);
                this.changed.notify_one();
            }
            let Ok(mut inner) = this.inner.lock() else { return };
            let Some(session) = inner.sessions.get_mut(&key) else { return };
            if session.generation != generation {
                return;
            }
            let outcome = if fails { RunOutcome::Error("simulated failure".into()) } else { RunOutcome::Ok };
            session.info.status = if fails { AgentState::Failed } else { AgentState::Done };
            if let Some((_, tx)) = &session.run {
                tx.send_replace(Some(outcome));
            }
            drop(inner);
            this.changed.notify_one();
        });
        RunHandle { run_id }
    }
}

fn user_entry(text: &str) -> TranscriptEntry {
    TranscriptEntry {
        role: "user".into(),
        text: text.to_owned(),
        timestamp: Some(Utc::now()),
        model: None,
        tokens: None,
        cost: None,
    }
}

#[async_trait]
impl AgentRuntime for SimulatedRuntime {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError> {
        let inner = self.lock()?;
        let mut agents: Vec<AgentInfo> = inner.sessions.values().map(|s| s.info.clone()).collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    async fn spawn(&self, req: SpawnRequest) -> Result<RunHandle, RuntimeError> {
        let mut inner = self.lock()?;
        if inner.sessions.contains_key(&req.session_key) {
            return Err(RuntimeError::Failed(format!("session {} already exists", req.session_key)));
        }
        let info = AgentInfo {
            id: req.session_key.clone(),
            label: Some(req.label.clone()),
            status: AgentState::Running,
            model: Some(MODEL.into()),
            session_id: Some(uuid::Uuid::new_v4().to_string()),
            updated_at: Some(Utc::now()),
            input_tokens: Some(0),
            output_tokens: Some(0),
            usage: Usage::default(),
            runtime_status: None,
        };
        inner.sessions.insert(
            req.session_key.clone(),
            Session { info, transcript: vec![user_entry(&req.task)], run: None, generation: 0 },
        );
        let handle = self.start_run(&req.session_key, &mut inner);
        drop(inner);
        self.changed.notify_one();
        Ok(handle)
    }

    async fn send(&self, key: &str, message: &str) -> Result<RunHandle, RuntimeError> {
        let mut inner = self.lock()?;
        let session = inner.sessions.get_mut(key).ok_or_else(|| RuntimeError::UnknownAgent(key.into()))?;
        session.transcript.push(user_entry(message));
        let handle = self.start_run(key, &mut inner);
        drop(inner);
        self.changed.notify_one();
        Ok(handle)
    }

    async fn kill(&self, key: &str) -> Result<(), RuntimeError> {
        let mut inner = self.lock()?;
        let session = inner.sessions.get_mut(key).ok_or_else(|| RuntimeError::UnknownAgent(key.into()))?;
        session.generation += 1;
        session.info.status = AgentState::Killed;
        session.info.updated_at = Some(Utc::now());
        if let Some((_, tx)) = &session.run {
            tx.send_replace(Some(RunOutcome::Error("killed".into())));
        }
        drop(inner);
        self.changed.notify_one();
        Ok(())
    }

    async fn transcript(&self, key: &str, limit: usize) -> Result<Vec<TranscriptEntry>, RuntimeError> {
        let inner = self.lock()?;
        let session = inner.sessions.get(key).ok_or_else(|| RuntimeError::UnknownAgent(key.into()))?;
        let skip = session.transcript.len().saturating_sub(limit);
        Ok(session.transcript[skip..].to_vec())
    }

    async fn wait(&self, run_id: &str, timeout_ms: u64) -> Result<RunOutcome, RuntimeError> {
        let mut rx = {
            let inner = self.lock()?;
            inner
                .sessions
                .values()
                .find_map(|s| s.run.as_ref().filter(|(id, _)| id == run_id).map(|(_, tx)| tx.subscribe()))
                .ok_or_else(|| RuntimeError::Failed(format!("unknown run {run_id}")))?
        };
        let outcome = tokio::time::timeout(Duration::from_millis(timeout_ms), rx.wait_for(Option::is_some)).await;
        match outcome {
            Ok(Ok(value)) => Ok(value.clone().unwrap_or(RunOutcome::Timeout)),
            Ok(Err(_)) => Err(RuntimeError::Failed(format!("run {run_id} was superseded"))),
            Err(_) => Ok(RunOutcome::Timeout),
        }
    }

    fn change_notifier(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn course(seed: u64) -> Vec<(String, AgentState, i64)> {
        let runtime = SimulatedRuntime::new(SimulatedConfig {
            seed: Some(seed),
            step: Duration::from_secs(1),
            failure_rate: 0.5,
        });
        for i in 0..4 {
            let req = SpawnRequest {
                session_key: format!("agent:main:subagent:{i}"),
                label: format!("a{i}"),
                task: "t".into(),
            };
            let run = runtime.spawn(req).await.unwrap();
            let outcome = runtime.wait(&run.run_id, 60_000).await.unwrap();
            assert_ne!(outcome, RunOutcome::Timeout);
        }
        runtime.list().await.unwrap().into_iter().map(|a| (a.id, a.status, a.usage.tokens)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_seed_gives_the_same_course() {
        let first = course(42).await;
        assert_eq!(first, course(42).await);
        assert!(
            first
                .iter()
                .all(|(_, status, tokens)| matches!(status, AgentState::Done | AgentState::Failed) && *tokens > 0)
        );
        assert_ne!(first, course(7).await, "another seed, another course");
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_agent_stays_killed_and_its_run_ends() {
        let runtime =
            SimulatedRuntime::new(SimulatedConfig { seed: Some(1), step: Duration::from_secs(1), failure_rate: 0.0 });
        let run =
            runtime.spawn(SpawnRequest { session_key: "k".into(), label: "l".into(), task: "t".into() }).await.unwrap();
        runtime.kill("k").await.unwrap();
        assert_eq!(runtime.wait(&run.run_id, 1_000).await.unwrap(), RunOutcome::Error("killed".into()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(runtime.list().await.unwrap()[0].status, AgentState::Killed);
        assert_eq!(runtime.kill("nope").await, Err(RuntimeError::UnknownAgent("nope".into())));
    }
}
