//! Agents through the API: the Clawdbot adapter on the real fixture store with a fake CLI,
//! the simulated runtime's full cycle, the `none` runtime, and recorded metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mission_control::agents::gateway::{GatewayConfig, GatewayRuntime};
use mission_control::agents::simulated::{SimulatedConfig, SimulatedRuntime};
use mission_control::config::RuntimeKind;
use serde_json::{Value, json};

use crate::helpers::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A temp copy of the fixture state folder, and a wrapper CLI that logs to `log`.
pub struct ClawdbotHome {
    pub dir: PathBuf,
    log: PathBuf,
    pub bin: PathBuf,
}

impl ClawdbotHome {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mc-clawdbot-{}", uuid::Uuid::new_v4()));
        let sessions = dir.join("agents/main/sessions");
        std::fs::create_dir_all(&sessions).unwrap();
        for entry in std::fs::read_dir(format!("{FIXTURES}/clawdbot/store/agents/main/sessions")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), sessions.join(entry.file_name())).unwrap();
        }
        let log = dir.join("calls.log");
        let bin = dir.join("clawdbot");
        std::fs::write(
            &bin,
            format!(
                "#!/usr/bin/env bash\nFAKE_CLAWDBOT_LOG='{}' exec '{FIXTURES}/fake-clawdbot' \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        make_executable(&bin);
        ClawdbotHome { dir, log, bin }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("agents/main/sessions/sessions.json")
    }

    /// Replaces the store atomically, as Clawdbot does.
    pub fn write_store(&self, value: &Value) {
        let tmp = self.dir.join("sessions.json.tmp");
        std::fs::write(&tmp, value.to_string()).unwrap();
        std::fs::rename(tmp, self.store()).unwrap();
    }

    /// Every logged call's argument vector.
    fn calls(&self) -> Vec<(Vec<String>, Option<String>)> {
        let raw = std::fs::read(&self.log).unwrap_or_default();
        let mut fields = raw.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
        let mut calls = Vec::new();
        while let Some(count) = fields.next() {
            let Ok(n) = count.parse::<usize>() else { break };
            let args: Vec<String> = fields.by_ref().take(n).collect();
            let has_token = fields.next().as_deref() == Some("1");
            let token = fields.next().filter(|_| has_token);
            calls.push((args, token));
        }
        calls
    }
}

impl Drop for ClawdbotHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The Clawdbot runtime over `home`, as the server builds it (with file watching).
async fn clawdbot_app(home: &ClawdbotHome) -> TestApp {
    let (dir, bin) = (home.dir.clone(), home.bin.clone());
    spawn_app_with(
        move |c| {
            c.agent_runtime = RuntimeKind::Clawdbot;
            c.clawdbot_state_dir = Some(dir);
            c.clawdbot_bin = Some(bin);
            // No gateway listens there: every action takes the CLI fallback.
            c.gateway_url = Some(format!("ws://127.0.0.1:{}", crate::helpers::free_port()));
            c.clawdbot_gateway_token = Some("gw-secret-token".into());
            c.agent_poll_interval = Duration::from_secs(3600);
        },
        None,
    )
    .await
}

/// The same without file watching, for tests that drive `poll_once()` themselves.
async fn clawdbot_app_unwatched(home: &ClawdbotHome) -> TestApp {
    let mut settings = GatewayConfig::new(home.dir.clone());
    settings.bin = home.bin.clone();
    settings.gateway_token = Some("gw-secret-token".into());
    let runtime = GatewayRuntime::new(settings);
    spawn_app_with(|c| c.agent_poll_interval = Duration::from_secs(3600), Some(Arc::new(runtime))).await
}

const AGENT_FIELDS: &str =
    "id label status model sessionId inputTokens outputTokens metrics { tokens cost runtimeSeconds tasksCompleted }";

#[tokio::test]
async fn the_fixture_store_lists_agents_with_real_tokens_and_cost() {
    let home = ClawdbotHome::new();
    let app = clawdbot_app(&home).await;
    let data = app.ok(&format!("{{ agents {{ {AGENT_FIELDS} }} }}"), json!({})).await;
    let agents = data["agents"].as_array().unwrap();
    let ids: Vec<&str> = agents.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "agent:main:main",
            "agent:main:subagent:9f0c2d7e-0000-4000-8000-000000000001",
            "agent:main:subagent:mock-1",
            "agent:main:subagent:mock-2",
            "agent:main:subagent:test-1",
            "agent:main:subagent:test-3",
        ]
    );
    let mock1 = &agents[2];
    assert_eq!(mock1["label"], "haiku-writer");
    assert_eq!(mock1["model"], "mock-1");
    assert_eq!(mock1["inputTokens"], 1234);
    assert_eq!(mock1["outputTokens"], 56);
    assert_eq!(mock1["metrics"]["tokens"], 6450, "summed from the transcript");
    assert!((mock1["metrics"]["cost"].as_f64().unwrap() - 0.02271).abs() < 1e-9);
    assert_eq!(agents[1]["status"], "FAILED", "abortedLastRun");
    assert_eq!(mock1["status"], "IDLE", "updated hours ago");

    let transcript = app
        .ok(
            "query($id: ID!) { agent(id: $id) { transcript(limit: 4) { role text tokens cost model } } }",
            json!({ "id": "agent:main:subagent:mock-1" }),
        )
        .await;
    let messages = transcript["agent"]["transcript"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert!(messages.iter().any(|m| m["role"] == "assistant" && m["tokens"] == 1290));
    assert!(messages.iter().all(|m| !m["text"].as_str().unwrap().contains("[message_id:")));
    assert_eq!(app.ok("{ agent(id: \"agent:nope\") { id } }", json!({})).await["agent"], Value::Null);
}

#[tokio::test]
async fn spawn_send_kill_build_literal_argument_vectors() {
    let home = ClawdbotHome::new();
    let app = clawdbot_app(&home).await;
    let hostile = "\"; rm -rf / # $(touch pwned) `touch pwned2`\n--help";
    let data = app
        .ok(
            "mutation($i: SpawnAgentInput!) { spawnAgent(input: $i) { id label status } }",
            json!({ "i": { "label": hostile, "task": "-- write a haiku" } }),
        )
        .await;
    let agent = &data["spawnAgent"];
    let id = agent["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("agent:main:subagent:"), "{id}");
    assert!(uuid::Uuid::parse_str(id.trim_start_matches("agent:main:subagent:")).is_ok());
    assert_eq!(agent["status"], "RUNNING");
    assert_eq!(agent["label"], hostile);

    let calls = home.calls();
    let (args, token) =
        calls.iter().find(|(a, _)| a.get(2).map(String::as_str) == Some("agent")).expect("an agent call");
    assert_eq!(&args[..3], ["gateway", "call", "agent"]);
    assert_eq!(args[3], "--params");
    let params: Value = serde_json::from_str(&args[4]).unwrap();
    assert_eq!(params["label"], hostile, "one literal argument");
    assert_eq!(params["message"], "-- write a haiku");
    assert_eq!(params["sessionKey"], id.as_str());
    assert_eq!(params["deliver"], false);
    assert_eq!(token.as_deref(), Some("gw-secret-token"), "token in the environment");
    for (args, _) in &calls {
        assert!(args.iter().all(|a| !a.contains("gw-secret-token")), "token never in argv");
    }
    assert!(!Path::new("pwned").exists() && !home.dir.join("pwned").exists());

    let sent = app
        .ok("mutation { sendAgentMessage(id: \"agent:main:subagent:mock-1\", message: \"$(reboot)\") }", json!({}))
        .await;
    assert_eq!(sent["sendAgentMessage"], true);
    let calls = home.calls();
    let (args, _) = calls.iter().find(|(a, _)| a.get(2).map(String::as_str) == Some("chat.send")).expect("chat.send");
    let params: Value = serde_json::from_str(&args[4]).unwrap();
    assert_eq!(params["message"], "$(reboot)");
    assert_eq!(params["sessionKey"], "agent:main:subagent:mock-1");

    let killed = app.ok("mutation { killAgent(id: \"agent:main:subagent:mock-2\") { id status } }", json!({})).await;
    assert_eq!(killed["killAgent"]["status"], "KILLED");
    let calls = home.calls();
    let (args, _) = calls.iter().find(|(a, _)| a.get(2).map(String::as_str) == Some("chat.abort")).expect("chat.abort");
    assert_eq!(serde_json::from_str::<Value>(&args[4]).unwrap(), json!({ "sessionKey": "agent:main:subagent:mock-2" }));

    let feed = app.ok("{ feed(filter: {type: AGENT}) { edges { node { action targetId } } } }", json!({})).await;
    let actions = node_strings(&feed["feed"], "action");
    for expected in ["spawned", "messaged", "killed"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} in {actions:?}");
    }
}

#[tokio::test]
async fn a_failing_or_missing_cli_is_an_agent_runtime_error() {
    let home = ClawdbotHome::new();
    std::fs::write(&home.bin, "#!/usr/bin/env bash\necho 'gateway not running' >&2\nexit 3\n").unwrap();
    make_executable(&home.bin);
    let app = clawdbot_app(&home).await;
    let body = app.graphql("mutation { spawnAgent(input: {label: \"x\", task: \"y\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&body), "AGENT_RUNTIME_ERROR");
    // The CLI's stderr stays in the server log; the client gets a stable message and a reference.
    let message = error_message(&body);
    assert!(!message.contains("gateway not running"), "{body}");
    assert!(message.starts_with("the agent runtime failed (reference "), "{body}");

    std::fs::remove_file(&home.bin).unwrap();
    let body = app.graphql("mutation { killAgent(id: \"agent:main:subagent:mock-1\") { id } }", json!({})).await;
    assert_eq!(error_code(&body), "AGENT_RUNTIME_ERROR");
    let feed = app.ok("{ feed { totalCount } }", json!({})).await;
    assert_eq!(feed["feed"]["totalCount"], 0, "a failed action logs nothing");
}

#[tokio::test]
async fn store_changes_reach_agent_status_subscribers_and_corruption_keeps_the_snapshot() {
    let home = ClawdbotHome::new();
    let app = clawdbot_app_unwatched(&home).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("s", "subscription { agentStatus { agents { id status } changed } }", json!({})).await;
    let first = ws.next_data("s").await;
    assert_eq!(first["agentStatus"]["agents"].as_array().unwrap().len(), 6);

    assert!(app.hub.poll_once().await.is_empty(), "nothing changed, nothing published");

    let mut store: Value = serde_json::from_str(&std::fs::read_to_string(home.store()).unwrap()).unwrap();
    store["agent:main:subagent:new-one"] = json!({ "sessionId": "new-session", "updatedAt": chrono::Utc::now().timestamp_millis(), "label": "fresh", "someFutureField": [1, 2] });
    home.write_store(&store);
    assert_eq!(app.hub.poll_once().await, ["agent:main:subagent:new-one"]);
    let event = ws.next_data("s").await;
    assert_eq!(event["agentStatus"]["changed"], json!(["agent:main:subagent:new-one"]));
    let fresh = event["agentStatus"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "agent:main:subagent:new-one")
        .cloned()
        .unwrap();
    assert_eq!(fresh["status"], "RUNNING", "updated within the last minute");

    // A half-written store keeps the last good snapshot, silently for the subscriber.
    std::fs::write(home.store(), "{\"agent:main:main\": {\"sessionId\": ").unwrap();
    assert!(app.hub.poll_once().await.is_empty());
    assert_eq!(app.ok("{ agents { id } }", json!({})).await["agents"].as_array().unwrap().len(), 7);
    assert!(matches!(ws.next_within(Duration::from_millis(200)).await, Err(WsEnd::Timeout)));
    // Repeated failures mark every agent UNKNOWN...
    app.hub.poll_once().await;
    let changed = app.hub.poll_once().await;
    assert_eq!(changed.len(), 7);
    let data = app.ok("{ agents { status } }", json!({})).await;
    assert!(data["agents"].as_array().unwrap().iter().all(|a| a["status"] == "UNKNOWN"));
    // ...and a good store recovers by itself.
    home.write_store(&store);
    app.hub.poll_once().await;
    let data = app.ok("{ agents { id status } }", json!({})).await;
    assert!(data["agents"].as_array().unwrap().iter().all(|a| a["status"] != "UNKNOWN"));
}

async fn simulated_app(failure_rate: f64) -> TestApp {
    let runtime =
        SimulatedRuntime::new(SimulatedConfig { seed: Some(7), step: Duration::from_millis(50), failure_rate });
    spawn_app_with(|c| c.agent_poll_interval = Duration::from_secs(3600), Some(Arc::new(runtime))).await
}

#[tokio::test]
async fn simulated_agent_runs_to_done_visible_through_the_subscription() {
    let app = simulated_app(0.0).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("s", "subscription { agentStatus { agents { id status } changed } }", json!({})).await;
    assert_eq!(ws.next_data("s").await["agentStatus"]["agents"], json!([]));

    let data = app
        .ok("mutation { spawnAgent(input: {label: \"sim\", task: \"count to three\"}) { id status label } }", json!({}))
        .await;
    let id = data["spawnAgent"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["spawnAgent"]["status"], "RUNNING");

    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("DONE") {
        let event = ws.next_data("s").await;
        if let Some(agent) = event["agentStatus"]["agents"].as_array().unwrap().iter().find(|a| a["id"] == id.as_str())
        {
            statuses.push(agent["status"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(statuses.first().map(String::as_str), Some("RUNNING"));

    let agent = app
        .ok(
            "query($id: ID!) { agent(id: $id) { status metrics { tokens cost } transcript { role text tokens } } }",
            json!({ "id": id }),
        )
        .await;
    let transcript = agent["agent"]["transcript"].as_array().unwrap();
    assert_eq!(transcript[0], json!({ "role": "user", "text": "count to three", "tokens": null }));
    let summed: i64 = transcript.iter().filter_map(|m| m["tokens"].as_i64()).sum();
    assert!(summed > 0);
    assert_eq!(agent["agent"]["metrics"]["tokens"], summed, "metrics include transcript usage");
    let feed = app.ok("{ feed(filter: {type: AGENT}) { edges { node { action actor } } } }", json!({})).await;
    assert_eq!(node_strings(&feed["feed"], "action"), ["finished", "spawned"]);
}

#[tokio::test]
async fn simulated_agents_fail_and_can_be_killed() {
    let app = simulated_app(1.0).await;
    let id = app.ok("mutation { spawnAgent(input: {label: \"doomed\", task: \"t\"}) { id } }", json!({})).await["spawnAgent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut status = String::new();
    for _ in 0..100 {
        status = app.ok("query($id: ID!) { agent(id: $id) { status } }", json!({ "id": id })).await["agent"]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "FAILED");

    let other = app.ok("mutation { spawnAgent(input: {label: \"victim\", task: \"t\"}) { id } }", json!({})).await["spawnAgent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let killed = app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": other })).await;
    assert_eq!(killed["killAgent"]["status"], "KILLED");
    let body = app.graphql("mutation { sendAgentMessage(id: \"agent:unknown\", message: \"hi\") }", json!({})).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app.graphql("mutation { spawnAgent(input: {label: \"\", task: \"t\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn without_a_runtime_agent_actions_explain_how_to_configure_one() {
    let app = spawn_app().await;
    assert_eq!(app.ok("{ agents { id } }", json!({})).await["agents"], json!([]));
    let body = app.graphql("mutation { spawnAgent(input: {label: \"x\", task: \"y\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&body), "AGENT_RUNTIME_ERROR");
    assert!(error_message(&body).contains("--agent-runtime"));
}

#[tokio::test]
async fn recorded_metrics_sum_page_and_link_tasks() {
    let home = ClawdbotHome::new();
    let app = clawdbot_app(&home).await;
    let agent = "agent:main:subagent:mock-2";
    for i in 1..=5 {
        app.ok(
            "mutation($a: ID!, $i: RecordMetricsInput!) { recordAgentMetrics(agentId: $a, input: $i) { id agentId tokens } }",
            json!({ "a": agent, "i": { "tokens": i * 100, "cost": 0.5, "runtimeSeconds": 10, "tasksCompleted": 1, "sessionId": "s" } }),
        )
        .await;
    }
    let body =
        app.graphql("mutation { recordAgentMetrics(agentId: \"a\", input: {tokens: -1}) { id } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let task = app.create_task(json!({ "title": "for mock-2", "assignedAgent": agent })).await;

    let q = "query($id: ID!, $a: String) { agent(id: $id) { metrics { tokens cost runtimeSeconds tasksCompleted } tasks { id } metricsHistory(first: 3, after: $a) { totalCount edges { node { tokens } } pageInfo { hasNextPage endCursor } } } }";
    let data = app.ok(q, json!({ "id": agent })).await;
    let a = &data["agent"];
    assert_eq!(a["metrics"]["tokens"], 1500 + 1290, "recorded plus transcript");
    assert!((a["metrics"]["cost"].as_f64().unwrap() - (2.5 + 0.004542)).abs() < 1e-9);
    assert_eq!(a["metrics"]["runtimeSeconds"], 50);
    assert_eq!(a["metrics"]["tasksCompleted"], 5);
    assert_eq!(a["tasks"], json!([{ "id": task }]));
    assert_eq!(a["metricsHistory"]["totalCount"], 5);
    let page1: Vec<i64> = a["metricsHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["tokens"].as_i64().unwrap())
        .collect();
    assert_eq!(page1, [500, 400, 300]);
    let data = app.ok(q, json!({ "id": agent, "a": a["metricsHistory"]["pageInfo"]["endCursor"] })).await;
    let page2: Vec<i64> = data["agent"]["metricsHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["tokens"].as_i64().unwrap())
        .collect();
    assert_eq!(page2, [200, 100]);
    assert_eq!(data["agent"]["metricsHistory"]["pageInfo"]["hasNextPage"], false);

    let linked = app.ok("query($id: ID!) { task(id: $id) { agent { id label } } }", json!({ "id": task })).await;
    assert_eq!(linked["task"]["agent"], json!({ "id": agent, "label": "final-demo" }));
}

#[tokio::test]
async fn a_store_change_wakes_the_poller_through_the_file_watch() {
    let home = ClawdbotHome::new();
    let app = clawdbot_app(&home).await; // polls only hourly: the watch must do it
    let mut ws = app.ws_ready().await;
    ws.subscribe("s", "subscription { agentStatus { agents { id status } changed } }", json!({})).await;
    assert_eq!(ws.next_data("s").await["agentStatus"]["agents"].as_array().unwrap().len(), 6);
    let mut store: Value = serde_json::from_str(&std::fs::read_to_string(home.store()).unwrap()).unwrap();
    store["agent:main:subagent:watched"] =
        json!({ "sessionId": "w", "updatedAt": chrono::Utc::now().timestamp_millis() });
    home.write_store(&store);
    let event = ws.next_data("s").await;
    assert_eq!(event["agentStatus"]["changed"], json!(["agent:main:subagent:watched"]));
}

#[tokio::test]
async fn demo_mode_starts_with_agents_and_tasks() {
    let app = spawn_app_with(|c| c.demo = true, None).await;
    let data = app
        .ok(
            "{ agents { id label status } tasks { totalCount edges { node { assignedAgent agent { label } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["agents"].as_array().unwrap().len(), 3);
    assert_eq!(data["tasks"]["totalCount"], 3);
    for edge in data["tasks"]["edges"].as_array().unwrap() {
        assert!(edge["node"]["agent"]["label"].is_string(), "every sample task is linked to a live agent: {edge}");
    }
    // The demo keeps moving: a nudge messages an agent and logs it.
    mission_control::agents::demo::nudge_once(&app.hub, &app.bus(), 1).await.unwrap();
    let feed = app
        .ok("{ feed(filter: {type: AGENT, actor: \"system\"}, first: 5) { edges { node { action } } } }", json!({}))
        .await;
    assert!(node_strings(&feed["feed"], "action").contains(&"messaged".to_owned()), "{feed}");
}

#[tokio::test]
async fn usage_over_time_adds_up_to_the_agents_metrics_by_agent_model_and_overall() {
    let home = ClawdbotHome::new();
    // One more session, active now, whose transcript began in January.
    let mut store: Value = serde_json::from_str(&std::fs::read_to_string(home.store()).unwrap()).unwrap();
    store["agent:main:subagent:old-timer"] = json!({
        "sessionId": "11111111-2222-3333-4444-555555555555",
        "updatedAt": chrono::Utc::now().timestamp_millis(),
        "model": "claude-opus-4-5",
    });
    home.write_store(&store);
    let app = clawdbot_app(&home).await;
    let record = "mutation { recordAgentMetrics(agentId: \"agent:main:subagent:mock-1\", input: {tokens: 100, cost: 0.5}) { id } }";
    app.ok(record, json!({})).await;
    let agents = app.ok("{ agents { id model inputTokens metrics { tokens cost } } }", json!({})).await;
    let agents = agents["agents"].as_array().unwrap().clone();
    let expected_tokens: i64 = agents.iter().map(|a| a["metrics"]["tokens"].as_i64().unwrap()).sum();
    let expected_cost: f64 = agents.iter().map(|a| a["metrics"]["cost"].as_f64().unwrap()).sum();
    assert!(expected_tokens > 6450, "the fixtures spend: {expected_tokens}");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let query = "query($g: UsageGroup, $to: DateTime!) { usage(from: \"2025-01-01T00:00:00Z\", to: $to, bucket: DAY, groupBy: $g) { bucketStart key inputTokens outputTokens tokens cost } }";
    let usage = |group: &'static str| {
        let to = tomorrow.clone();
        let app = &app;
        async move { app.ok(query, json!({ "g": group, "to": to })).await["usage"].clone() }
    };
    let total = |points: &Value| -> (i64, f64) {
        let points = points.as_array().unwrap();
        (
            points.iter().map(|p| p["tokens"].as_i64().unwrap()).sum(),
            points.iter().map(|p| p["cost"].as_f64().unwrap()).sum(),
        )
    };
    // The leader samples the transcripts as it first sees them.
    let overall = eventually("the samples", || usage("NONE"), |u| total(u).0 == expected_tokens).await;
    assert!((total(&overall).1 - expected_cost).abs() < 1e-9, "{overall}");
    assert!(overall.as_array().unwrap().iter().all(|p| p["key"].is_null()));
    // Spend from before the server watched is dated by each message's own time: the old-timer's
    // transcript has a message of January, though the session was active today.
    let january =
        overall.as_array().unwrap().iter().find(|p| p["bucketStart"].as_str().unwrap().starts_with("2026-01-25"));
    assert!(january.is_some_and(|p| p["tokens"].as_i64().unwrap() >= 13), "{overall}");

    let by_agent = usage("AGENT").await;
    for agent in &agents {
        let id = agent["id"].as_str().unwrap();
        let mine: Vec<&Value> = by_agent.as_array().unwrap().iter().filter(|p| p["key"] == id).collect();
        let tokens: i64 = mine.iter().map(|p| p["tokens"].as_i64().unwrap()).sum();
        let cost: f64 = mine.iter().map(|p| p["cost"].as_f64().unwrap()).sum();
        assert_eq!(tokens, agent["metrics"]["tokens"].as_i64().unwrap(), "{id}: {by_agent}");
        assert!((cost - agent["metrics"]["cost"].as_f64().unwrap()).abs() < 1e-9, "{id}");
        if let Some(input) = agent["inputTokens"].as_i64() {
            assert_eq!(mine.iter().map(|p| p["inputTokens"].as_i64().unwrap()).sum::<i64>(), input, "{id}");
        }
    }
    let by_model = usage("MODEL").await;
    assert_eq!(total(&by_model).0, expected_tokens);
    let mock1: i64 = by_model
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["key"] == "mock-1")
        .map(|p| p["tokens"].as_i64().unwrap())
        .sum();
    assert!(mock1 >= 6450 + 100, "mock-1's transcript and its recorded metrics: {by_model}");

    // Reading the store again samples nothing twice.
    app.hub.poll_once().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(&usage("NONE").await).0, expected_tokens);

    let bad = [
        ("{ usage(from: \"2026-02-01T00:00:00Z\", to: \"2026-01-01T00:00:00Z\", bucket: DAY) { tokens } }", "to:"),
        ("{ usage(from: \"2024-01-01T00:00:00Z\", to: \"2026-01-01T00:00:00Z\", bucket: HOUR) { tokens } }", "to:"),
    ];
    for (q, field) in bad {
        let body = app.graphql(q, json!({})).await;
        assert_eq!(crate::helpers::error_code(&body), "BAD_USER_INPUT", "{body}");
        assert!(crate::helpers::error_message(&body).starts_with(field), "{body}");
    }
}
