//! Tests of the whole runtime: the fixture store, and actions through `fake-clawdbot`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::test_support::{FakeCall, TempDir, assert_usage, copy_tree, fake_cli, fixture, read_fake_log};
use super::*;

/// `updatedAt` of `agent:main:subagent:mock-1`, the newest session in the fixture store.
const MOCK1_UPDATED_MS: i64 = 1_795_469_472_135;
const MOCK1: &str = "agent:main:subagent:mock-1";
const MOCK1_TRANSCRIPT: &str = "agents/main/sessions/3207e4b5-9db2-4f0f-aa04-c966250a1400.jsonl";

fn ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// A clock tests can move.
#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn new(at: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(at)))
    }
    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A runtime on a copy of the fixture store, calling the fake CLI, with its own log file.
struct Harness {
    tmp: TempDir,
    clock: TestClock,
    runtime: GatewayRuntime,
}

impl Harness {
    fn new(env: &[(&str, &str)]) -> Self {
        Self::with(env, |_| {})
    }

    fn with(env: &[(&str, &str)], edit: impl FnOnce(&mut GatewayConfig)) -> Self {
        let tmp = TempDir::new();
        let state = tmp.path().join("state");
        copy_tree(&fixture("clawdbot/store"), &state);
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let log = tmp.path().join("calls.log");
        let mut config = GatewayConfig::new(&state);
        config.bin = fake_cli();
        config.call_timeout = Duration::from_secs(10);
        edit(&mut config);
        let clock = TestClock::new(ms(MOCK1_UPDATED_MS));
        let c = clock.clone();
        let mut all_env = vec![("FAKE_CLAWDBOT_LOG", log.to_str().unwrap())];
        all_env.extend_from_slice(env);
        let runtime = GatewayRuntime::new(config).with_clock(move || c.now()).with_child_env(&work, &all_env);
        Harness { tmp, clock, runtime }
    }

    fn calls(&self) -> Vec<FakeCall> {
        read_fake_log(&self.tmp.path().join("calls.log"))
    }

    fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    async fn status_of(&self, key: &str) -> AgentState {
        let agents = self.runtime.list().await.unwrap();
        agents.into_iter().find(|a| a.id == key).unwrap().status
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn spawn_req(key: &str) -> SpawnRequest {
    SpawnRequest { session_key: key.to_string(), label: "haiku-writer".to_string(), task: "Write a haiku".to_string() }
}

#[tokio::test]
async fn fixture_store_lists_expected_agents() {
    let mut config = GatewayConfig::new(fixture("clawdbot/store"));
    config.bin = PathBuf::from("/nonexistent/clawdbot"); // list never runs the CLI
    let runtime = GatewayRuntime::new(config);
    // 30 s after mock-1's last update: mock-2 (updated 34.7 s before mock-1) is 64.7 s old.
    let now = ms(MOCK1_UPDATED_MS + 30_000);
    let agents = runtime.list_at(now).await.unwrap();
    assert_eq!(agents.len(), 6);
    let get = |id: &str| agents.iter().find(|a| a.id == id).unwrap().clone();

    let mock1 = get(MOCK1);
    assert_eq!(mock1.label.as_deref(), Some("haiku-writer"));
    assert_eq!(mock1.model.as_deref(), Some("mock-1"));
    assert_eq!(mock1.session_id.as_deref(), Some("3207e4b5-9db2-4f0f-aa04-c966250a1400"));
    assert_eq!(mock1.updated_at, Some(ms(MOCK1_UPDATED_MS)));
    assert_eq!((mock1.input_tokens, mock1.output_tokens), (Some(1234), Some(56)));
    assert_eq!(mock1.status, AgentState::Running);
    // Five assistant replies of 1290 tokens and $0.004542 each.
    assert_usage(mock1.usage, 6450, 0.02271);

    let mock2 = get("agent:main:subagent:mock-2");
    assert_eq!(mock2.label.as_deref(), Some("final-demo"));
    assert_eq!(mock2.status, AgentState::Idle);
    assert_usage(mock2.usage, 1290, 0.004542);

    let research = get("agent:main:subagent:9f0c2d7e-0000-4000-8000-000000000001");
    assert_eq!(research.label.as_deref(), Some("research-bot"));
    assert_eq!(research.status, AgentState::Failed); // abortedLastRun
    assert_eq!((research.input_tokens, research.output_tokens), (Some(500), Some(120)));
    assert_eq!(research.model, None);
    assert_eq!(research.usage, Usage::default()); // no transcript file

    let main = get("agent:main:main");
    assert_eq!((main.label.clone(), main.model.clone()), (None, None));
    assert_eq!(main.status, AgentState::Idle);
    assert_eq!(main.usage, Usage::default());
    assert_eq!(get("agent:main:subagent:test-1").status, AgentState::Idle);
    assert_eq!(get("agent:main:subagent:test-3").label, None);
}

#[tokio::test]
async fn list_errors_on_a_corrupt_store_and_recovers() {
    let h = Harness::new(&[]);
    assert_eq!(h.runtime.list().await.unwrap().len(), 6);
    let store = h.tmp.path().join("state/agents/main/sessions/sessions.json");
    let good = std::fs::read_to_string(&store).unwrap();
    std::fs::write(&store, &good[..100]).unwrap();
    match h.runtime.list().await {
        Err(RuntimeError::Failed(msg)) => assert!(msg.contains("sessions.json"), "{msg}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    std::fs::write(&store, &good).unwrap();
    assert_eq!(h.runtime.list().await.unwrap().len(), 6);

    let empty = GatewayRuntime::new(GatewayConfig::new(h.tmp.path().join("missing")));
    assert_eq!(empty.list().await.unwrap(), vec![]);
    assert!(h.calls().is_empty());
}

#[tokio::test]
async fn list_reads_transcript_growth_incrementally() {
    let h = Harness::new(&[]);
    let usage_of = |agents: Vec<AgentInfo>| agents.into_iter().find(|a| a.id == MOCK1).unwrap().usage;
    assert_usage(usage_of(h.runtime.list().await.unwrap()), 6450, 0.02271);
    let line = r#"{"type":"message","message":{"role":"assistant","usage":{"totalTokens":700,"cost":{"total":0.5}}}}"#;
    let path = h.tmp.path().join("state").join(MOCK1_TRANSCRIPT);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(&path, &text).unwrap();
    assert_usage(usage_of(h.runtime.list().await.unwrap()), 7150, 0.52271);
}

#[tokio::test]
async fn statuses_follow_runs_waits_and_kills() {
    let h = Harness::new(&[("FAKE_CLAWDBOT_RUN_ID", "run-a")]);
    // A day later, so recency plays no part.
    h.clock.set(ms(MOCK1_UPDATED_MS) + TimeDelta::days(1));
    assert_eq!(h.status_of(MOCK1).await, AgentState::Idle);

    let handle = h.runtime.spawn(spawn_req(MOCK1)).await.unwrap();
    assert_eq!(handle.run_id, "run-a");
    assert_eq!(h.status_of(MOCK1).await, AgentState::Running);
    assert_eq!(h.runtime.wait("run-a", 5_000).await.unwrap(), RunOutcome::Ok);
    assert_eq!(h.status_of(MOCK1).await, AgentState::Done);

    h.runtime.send(MOCK1, "again").await.unwrap();
    assert_eq!(h.status_of(MOCK1).await, AgentState::Running);
    h.runtime.kill(MOCK1).await.unwrap();
    assert_eq!(h.status_of(MOCK1).await, AgentState::Killed);
    // Waiting on the aborted run does not undo the kill.
    h.runtime.wait("run-a", 5_000).await.unwrap();
    assert_eq!(h.status_of(MOCK1).await, AgentState::Killed);

    // A run that fails.
    let failing = Harness::new(&[("FAKE_CLAWDBOT_WAIT", "error")]);
    failing.clock.set(ms(MOCK1_UPDATED_MS) + TimeDelta::days(1));
    let run = failing.runtime.send(MOCK1, "hi").await.unwrap();
    assert_eq!(
        failing.runtime.wait(&run.run_id, 5_000).await.unwrap(),
        RunOutcome::Error("No API key found for provider \"anthropic\"".into())
    );
    assert_eq!(failing.status_of(MOCK1).await, AgentState::Failed);

    // A wait that times out leaves the run in flight.
    let slow = Harness::new(&[("FAKE_CLAWDBOT_WAIT", "timeout")]);
    slow.clock.set(ms(MOCK1_UPDATED_MS) + TimeDelta::days(1));
    let run = slow.runtime.spawn(spawn_req(MOCK1)).await.unwrap();
    assert_eq!(slow.runtime.wait(&run.run_id, 10).await.unwrap(), RunOutcome::Timeout);
    assert_eq!(slow.status_of(MOCK1).await, AgentState::Running);
}

#[tokio::test]
async fn actions_build_exact_argv() {
    let h = Harness::with(&[], |c| c.gateway_token = Some("tok-123".into()));
    h.runtime.spawn(spawn_req(MOCK1)).await.unwrap();
    h.runtime.send(MOCK1, "second message").await.unwrap();
    h.runtime.kill(MOCK1).await.unwrap();
    h.runtime.wait("fake-run-1", 120_000).await.unwrap();
    let calls = h.calls();
    assert_eq!(calls.len(), 4);
    for call in &calls {
        assert_eq!(call.token.as_deref(), Some("tok-123"));
        assert!(call.args.iter().all(|a| !a.contains("tok-123")), "{:?}", call.args);
    }

    let spawn = &calls[0];
    assert_eq!(spawn.args.len(), 6);
    assert_eq!(&spawn.args[..4], args(&["gateway", "call", "agent", "--params"]));
    assert_eq!(spawn.args[5], "--json");
    let p = spawn.params();
    assert_eq!(p.as_object().unwrap().len(), 5);
    assert_eq!(p["message"], "Write a haiku");
    assert_eq!(p["sessionKey"], MOCK1);
    assert_eq!(p["label"], "haiku-writer");
    assert_eq!(p["deliver"], false);
    let idem = p["idempotencyKey"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(idem).is_ok(), "{idem}");

    let send = &calls[1];
    assert_eq!(&send.args[..3], args(&["gateway", "call", "chat.send"]));
    assert_eq!(send.args.len(), 6);
    let p = send.params();
    assert_eq!(p.as_object().unwrap().len(), 3);
    assert_eq!((p["sessionKey"].as_str(), p["message"].as_str()), (Some(MOCK1), Some("second message")));
    assert_ne!(p["idempotencyKey"].as_str(), Some(idem), "a fresh key per call");

    let kill = &calls[2];
    let expected = format!(r#"{{"sessionKey":"{MOCK1}"}}"#);
    assert_eq!(kill.args, args(&["gateway", "call", "chat.abort", "--params", &expected, "--json"]));

    // The CLI's own --timeout (default 10 s) must not cut the wait short.
    let wait = &calls[3];
    assert_eq!(
        wait.args,
        args(&[
            "gateway",
            "call",
            "agent.wait",
            "--params",
            r#"{"runId":"fake-run-1","timeoutMs":120000}"#,
            "--timeout",
            "130000",
            "--json",
        ])
    );
}

#[tokio::test]
async fn transcript_reads_the_file_or_falls_back_to_history() {
    let h = Harness::new(&[]);
    let entries = h.runtime.transcript(MOCK1, 2).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].text, "no gw");
    assert_eq!(entries[1].tokens, Some(1290));
    assert!(h.calls().is_empty(), "read from disk, no CLI");

    // agent:main:main's transcript file does not exist: ask the gateway.
    let entries = h.runtime.transcript("agent:main:main", 5000).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].text, "Write a haiku");
    assert_eq!(entries[1].cost, Some(0.004542));
    let calls = h.calls();
    assert_eq!(calls[0].args[..4], args(&["gateway", "call", "chat.history", "--params"]));
    assert_eq!(calls[0].args[5], "--json");
    assert_eq!(calls[0].params(), serde_json::json!({ "sessionKey": "agent:main:main", "limit": 1000 }));
    let entries = h.runtime.transcript("agent:other:unknown", 1).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].role, "assistant");
    assert!(h.runtime.transcript(MOCK1, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn hostile_text_stays_one_literal_argument() {
    let h = Harness::new(&[]);
    let nasty = "\"; rm -rf / #\n$(touch pwned) `touch pwned` 'x' \\ && touch pwned";
    let req = SpawnRequest {
        session_key: "agent:main:subagent:x".into(),
        label: format!("--label {nasty}"),
        task: format!("-- {nasty}"),
    };
    h.runtime.spawn(req).await.unwrap();
    h.runtime.send("agent:main:subagent:x", &format!("--json {nasty}")).await.unwrap();
    let calls = h.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.args.len(), 6, "{:?}", call.args);
        assert!(call.args[4].starts_with('{'), "never a leading --");
    }
    assert_eq!(calls[0].params()["label"], format!("--label {nasty}"));
    assert_eq!(calls[0].params()["message"], format!("-- {nasty}"));
    assert_eq!(calls[1].params()["message"], format!("--json {nasty}"));
    assert!(!h.work().join("pwned").exists());
    assert!(!Path::new("pwned").exists());
    assert!(std::fs::read_dir(h.work()).unwrap().next().is_none(), "work dir stays empty");
}

async fn expect_failure(h: &Harness) -> String {
    match h.runtime.kill(MOCK1).await {
        Err(RuntimeError::Failed(msg)) => msg,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn failures_are_reported_quickly() {
    let start = Instant::now();
    let h = Harness::with(&[], |c| c.bin = PathBuf::from("/nonexistent/clawdbot"));
    let msg = expect_failure(&h).await;
    assert!(
        msg.starts_with("cannot run clawdbot binary '/nonexistent/clawdbot': ")
            && msg.ends_with("; set --clawdbot-bin or CLAWDBOT_BIN"),
        "{msg}"
    );

    let h = Harness::new(&[("FAKE_CLAWDBOT_MODE", "fail")]);
    assert_eq!(expect_failure(&h).await, "Gateway call failed: Error: fake gateway failure");
    // A failed spawn tracks nothing.
    assert!(h.runtime.spawn(spawn_req(MOCK1)).await.is_err());
    h.clock.set(ms(MOCK1_UPDATED_MS) + TimeDelta::days(1));
    assert_eq!(h.status_of(MOCK1).await, AgentState::Idle);

    let h = Harness::new(&[("FAKE_CLAWDBOT_MODE", "garbage")]);
    let msg = expect_failure(&h).await;
    assert!(msg.starts_with("clawdbot chat.abort returned unexpected output: Usage:"), "{msg}");
    let msg = match h.runtime.spawn(spawn_req(MOCK1)).await {
        Err(RuntimeError::Failed(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(msg.starts_with("clawdbot agent returned unexpected output"), "{msg}");

    let h = Harness::new(&[("FAKE_CLAWDBOT_MODE", "error-reply")]);
    assert_eq!(expect_failure(&h).await, "unknown session");
    assert_eq!(h.runtime.send(MOCK1, "x").await, Err(RuntimeError::Failed("unknown session".into())));
    assert_eq!(h.runtime.wait("r", 10).await, Err(RuntimeError::Failed("unknown session".into())));
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_hanging_cli_is_killed_at_the_deadline() {
    let h = Harness::with(&[("FAKE_CLAWDBOT_MODE", "hang")], |c| {
        c.call_timeout = Duration::from_secs(1);
    });
    let start = Instant::now();
    assert_eq!(expect_failure(&h).await, "clawdbot chat.abort timed out after 1s");
    // agent.wait gets its wait time on top of the call timeout.
    assert_eq!(
        h.runtime.wait("r", 500).await,
        Err(RuntimeError::Failed("clawdbot agent.wait timed out after 1.5s".into()))
    );
    assert!(start.elapsed() < Duration::from_secs(6), "{:?}", start.elapsed());
    assert_eq!(h.calls().len(), 2);
}

#[test]
fn config_defaults_and_redacted_debug() {
    let mut c = GatewayConfig::new("/state");
    assert_eq!(c.bin, PathBuf::from("clawdbot"));
    assert_eq!(c.call_timeout, Duration::from_secs(30));
    assert_eq!(c.running_window, Duration::from_secs(60));
    c.gateway_token = Some("very-secret".into());
    let shown = format!("{c:?}");
    assert!(!shown.contains("very-secret") && shown.contains("<redacted>"), "{shown}");
    assert_eq!(GatewayRuntime::new(c).name(), "clawdbot");
}
