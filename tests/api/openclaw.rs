//! Agents on the gateway, end to end: the server against the fake gateway
//! (`fake_gateway.rs`) speaking protocol 4 (OpenClaw) or 3 (Clawdbot) over one WebSocket,
//! with OpenClaw's real SQLite store (a copy of the fixture) written by the fake as the real
//! gateway writes it. The CLI is pointed at a binary that does not exist, so any action that
//! took the CLI instead of the WebSocket would fail.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::join_all;
use mission_control::config::RuntimeKind;
use serde_json::{Value, json};

use crate::fake_gateway::{FIXTURES, FakeGateway, Options, REPLY, REPLY_COST, REPLY_TOKENS, session_id_of};
use crate::helpers::{TestApp, VIEWER_PASSWORD, error_code, error_message, eventually, node_strings, spawn_app_with};

/// A fixture session of the OpenClaw store (three runs, the last killed).
pub const CAPTURE: &str = "agent:main:subagent:capture-1796152060105";
const CAPTURE_SESSION: &str = "fc1c2aa7-5cd5-478c-97e9-b091598fb6ec";

/// A state folder holding a writable copy of a fixture store; removed on drop.
pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn openclaw() -> Self {
        let dir = std::env::temp_dir().join(format!("mc-openclaw-{}", uuid::Uuid::new_v4()));
        let agent = dir.join("agents/main/agent");
        std::fs::create_dir_all(&agent).unwrap();
        let store = agent.join("openclaw-agent.sqlite");
        std::fs::copy(format!("{FIXTURES}/openclaw/store/agents/main/agent/openclaw-agent.sqlite"), &store).unwrap();
        make_writable(&store);
        StateDir(dir)
    }

    fn clawdbot() -> Self {
        let dir = std::env::temp_dir().join(format!("mc-clawdbot-ws-{}", uuid::Uuid::new_v4()));
        let sessions = dir.join("agents/main/sessions");
        std::fs::create_dir_all(&sessions).unwrap();
        for entry in std::fs::read_dir(format!("{FIXTURES}/clawdbot/store/agents/main/sessions")).unwrap() {
            let entry = entry.unwrap();
            let to = sessions.join(entry.file_name());
            std::fs::copy(entry.path(), &to).unwrap();
            make_writable(&to);
        }
        StateDir(dir)
    }

    pub fn store(&self) -> PathBuf {
        self.0.join("agents/main/agent/openclaw-agent.sqlite")
    }
}

fn make_writable(path: &std::path::Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server on `state`, told only where the gateway is (as a user whose OpenClaw works
/// would start it, plus a CLI that does not exist).
async fn gateway_app(
    fake: &FakeGateway,
    state: &StateDir,
    token: &str,
    tweak: impl FnOnce(&mut mission_control::config::Config),
) -> TestApp {
    let (dir, url, token) = (state.0.clone(), fake.url(), token.to_owned());
    spawn_app_with(
        move |c| {
            c.agent_runtime = RuntimeKind::Auto;
            c.openclaw_state_dir = Some(dir);
            c.gateway_url = Some(url);
            c.gateway_token = Some(token);
            c.openclaw_bin = Some("/nonexistent/openclaw".into());
            c.agent_poll_interval = Duration::from_secs(3600);
            tweak(c);
        },
        None,
    )
    .await
}

async fn health(app: &TestApp) -> Value {
    app.client.get(format!("{}/health", app.address)).send().await.unwrap().json().await.unwrap()
}

async fn connected(app: &TestApp) -> Value {
    eventually("the gateway connection", || health(app), |h| h["agentGateway"]["connected"] == true).await
}

async fn agent(app: &TestApp, id: &str) -> Value {
    let q = "query($id: ID!) { agent(id: $id) { id status runtimeStatus model metrics { tokens cost } } }";
    app.ok(q, json!({ "id": id })).await["agent"].clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn spawn_message_and_kill_go_over_one_websocket_with_status_and_cost_from_the_store() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    let health = connected(&app).await;
    assert_eq!(health["agentRuntime"], "openclaw", "auto found the gateway by itself");
    let gateway = &health["agentGateway"];
    assert_eq!(gateway["transport"], "websocket");
    assert_eq!(gateway["protocol"], 4);
    assert_eq!(gateway["gatewayVersion"], "2026.9.6");
    assert_eq!(gateway["store"], "sqlite");
    assert_eq!(gateway["error"], Value::Null);

    // The handshake offers both protocols and asks for approvals.
    let connect = &fake.connects()[0];
    assert_eq!((connect["minProtocol"].as_u64(), connect["maxProtocol"].as_u64()), (Some(3), Some(4)));
    assert_eq!(connect["client"]["id"], "gateway-client");
    assert_eq!(connect["client"]["mode"], "backend");
    assert_eq!(connect["auth"]["token"], "gw-token");
    assert_eq!(connect["caps"], json!(["exec-approvals"]));

    // The fixture's sessions, with OpenClaw's own status and the transcripts' cost.
    let fixture = agent(&app, CAPTURE).await;
    assert_eq!((fixture["status"].as_str(), fixture["runtimeStatus"].as_str()), (Some("KILLED"), Some("killed")));
    assert_eq!(fixture["model"], "mock-1");
    assert!(close(fixture["metrics"]["cost"].as_f64().unwrap(), 2.0 * REPLY_COST), "{fixture}");
    assert_eq!(fixture["metrics"]["tokens"], 2 * REPLY_TOKENS);

    let spawned = app
        .ok("mutation { spawnAgent(input: {label: \"haiku\", task: \"Write a haiku\"}) { id status } }", json!({}))
        .await["spawnAgent"]
        .clone();
    assert_eq!(spawned["status"], "RUNNING");
    let id = spawned["id"].as_str().unwrap().to_owned();
    let done = eventually("the run to end", || agent(&app, &id), |a| a["status"] == "DONE").await;
    assert_eq!(done["runtimeStatus"], "done");
    assert!(close(done["metrics"]["cost"].as_f64().unwrap(), REPLY_COST), "{done}");

    app.ok("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"SLOW please\") }", json!({ "id": id })).await;
    assert_eq!(agent(&app, &id).await["status"], "RUNNING");
    let killed = app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": id })).await;
    assert_eq!(killed["killAgent"]["status"], "KILLED");
    let after = eventually("the store to say killed", || agent(&app, &id), |a| a["runtimeStatus"] == "killed").await;
    assert_eq!(after["status"], "KILLED", "OpenClaw's killed is KILLED, not FAILED");

    let methods: Vec<String> = fake.requests().into_iter().map(|(m, _)| m).collect();
    for method in ["agent", "chat.send", "chat.abort", "agent.wait"] {
        assert!(methods.iter().any(|m| m == method), "{method} went over the socket: {methods:?}");
    }
    assert_eq!(fake.connects().len(), 1, "one connection for everything");
}

#[tokio::test]
async fn without_a_store_on_this_machine_the_gateway_lists_sessions_and_their_cost() {
    let state = StateDir(std::env::temp_dir().join(format!("mc-remote-{}", uuid::Uuid::new_v4())));
    let fake = FakeGateway::start(Options::openclaw(None)).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    let spawned = app.ok("mutation { spawnAgent(input: {label: \"far\", task: \"t\"}) { id } }", json!({})).await;
    let id = spawned["spawnAgent"]["id"].as_str().unwrap().to_owned();
    let done =
        eventually("the run to end", || agent(&app, &id), |a| a["status"] == "DONE" && a["runtimeStatus"] == "done")
            .await;
    assert!(close(done["metrics"]["cost"].as_f64().unwrap(), REPLY_COST), "{done}");
    assert_eq!(health(&app).await["agentGateway"]["store"], "gateway");
    let histories = || fake.requests().iter().filter(|(m, _)| m == "chat.history").count();
    let before = histories();
    app.hub.poll_once().await;
    app.hub.poll_once().await;
    assert_eq!(histories(), before, "a session's history is read again only when it changed");
}

#[tokio::test]
async fn agent_output_streams_phases_deltas_and_the_final_reply() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    let mut ws = app.ws_ready().await;
    let q = "subscription($id: ID!) { agentOutput(id: $id) { agentId runId kind text at } }";
    ws.subscribe("out", q, json!({ "id": CAPTURE })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.ok("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"Another one\") }", json!({ "id": CAPTURE }))
        .await;

    let mut items = Vec::new();
    loop {
        let item = ws.next_data("out").await["agentOutput"].clone();
        let last = item["kind"] == "FINAL";
        items.push(item);
        if last {
            break;
        }
    }
    let of = |kind: &str| -> Vec<String> {
        items.iter().filter(|i| i["kind"] == kind).map(|i| i["text"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(of("STATUS"), ["preparing_workspace", "preparing_context", "started"]);
    assert_eq!(of("TEXT").concat(), REPLY, "joining the deltas gives the reply");
    assert!(of("TEXT").len() > 1, "deltas, not the whole text each time");
    assert_eq!(of("FINAL"), [REPLY]);
    let run = items[0]["runId"].clone();
    assert!(items.iter().all(|i| i["agentId"] == CAPTURE && i["runId"] == run), "{items:?}");
}

#[tokio::test]
async fn approvals_are_listed_decided_recorded_and_expire() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("a", "subscription { approvals { id status command decision decidedBy } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (id, answer) = fake.request_approval("rm -rf ./build", CAPTURE, 10_000);
    let asked = ws.next_data("a").await["approvals"].clone();
    assert_eq!((asked["id"].as_str(), asked["status"].as_str()), (Some(id.as_str()), Some("PENDING")));
    assert_eq!(asked["command"], "rm -rf ./build");
    let q = "query($s: ApprovalStatus) { approvals(status: $s) { id command cwd agentId sessionKey status createdAt expiresAt } }";
    let listed = app.ok(q, json!({ "s": "PENDING" })).await["approvals"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["cwd"], "/home/operator/project");
    assert_eq!((listed[0]["agentId"].as_str(), listed[0]["sessionKey"].as_str()), (Some(CAPTURE), Some(CAPTURE)));

    let resolve = "mutation($id: ID!, $d: ApprovalDecision!) { resolveApproval(id: $id, decision: $d) { id status decision decidedBy } }";
    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let (_, refused) = app.graphql_as(Some(&viewer), resolve, json!({ "id": id, "d": "DENY" })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "a viewer does not decide");

    let decided = app.ok(resolve, json!({ "id": id, "d": "ALLOW_ONCE" })).await["resolveApproval"].clone();
    assert_eq!((decided["status"].as_str(), decided["decision"].as_str()), (Some("ALLOWED"), Some("ALLOW_ONCE")));
    assert_eq!(decided["decidedBy"], "admin");
    assert_eq!(answer.await.unwrap(), Some("allow-once".to_owned()), "the asking agent got the decision");
    loop {
        let update = ws.next_data("a").await["approvals"].clone();
        if update["status"] == "ALLOWED" && update["decidedBy"] == "admin" {
            break;
        }
    }
    let again = app.graphql(resolve, json!({ "id": id, "d": "DENY" })).await;
    assert_eq!(error_code(&again), "BAD_USER_INPUT", "{again}");
    assert!(error_message(&again).contains("already ALLOWED"), "{again}");
    let unknown = app.graphql(resolve, json!({ "id": "no-such-approval", "d": "DENY" })).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    let feed = app.ok("{ feed(filter: {type: AGENT}) { edges { node { action actor targetId } } } }", json!({})).await;
    assert_eq!(node_strings(&feed["feed"], "action"), ["approval_allowed"]);
    assert_eq!(node_strings(&feed["feed"], "actor"), ["admin"]);
    let audited =
        "{ auditLog(filter: {action: \"approval.resolve\"}) { edges { node { actor targetId before after } } } }";
    let entry = app.ok(audited, json!({})).await["auditLog"]["edges"][0]["node"].clone();
    assert_eq!((entry["actor"].as_str(), entry["targetId"].as_str()), (Some("admin"), Some(id.as_str())));
    assert_eq!(entry["before"], json!({ "status": "PENDING" }));
    assert_eq!(
        (entry["after"]["status"].as_str(), entry["after"]["decision"].as_str()),
        (Some("ALLOWED"), Some("allow-once"))
    );

    // Unanswered, it expires at its deadline, for the gateway and here.
    let (late, answer) = fake.request_approval("make deploy", CAPTURE, 300);
    assert_eq!(answer.await.unwrap(), None);
    eventually(
        "the approval to expire",
        || async { app.ok(q, json!({ "s": "EXPIRED" })).await },
        |v| v["approvals"].as_array().is_some_and(|a| a.iter().any(|x| x["id"] == late.as_str())),
    )
    .await;
    let expired = app.graphql(resolve, json!({ "id": late, "d": "ALLOW_ONCE" })).await;
    assert_eq!(error_code(&expired), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_clawdbot_gateway_on_protocol_3_with_its_json_store_works_the_same() {
    let state = StateDir::clawdbot();
    let mut options = Options::openclaw(None);
    options.protocol = 3;
    let fake = FakeGateway::start(options).await;
    let app = gateway_app(&fake, &state, "gw-token", |c| c.agent_runtime = RuntimeKind::Clawdbot).await;
    let health = connected(&app).await;
    assert_eq!(health["agentRuntime"], "clawdbot");
    assert_eq!(
        (health["agentGateway"]["protocol"].as_u64(), health["agentGateway"]["store"].as_str()),
        (Some(3), Some("json"))
    );
    let key = "agent:main:subagent:mock-1";
    assert_eq!(agent(&app, key).await["runtimeStatus"], Value::Null, "Clawdbot's store has no status");
    app.ok("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"hi\") }", json!({ "id": key })).await;
    eventually("the run to end", || agent(&app, key), |a| a["status"] == "DONE").await;
    let killed = app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": key })).await;
    assert_eq!(killed["killAgent"]["status"], "KILLED");
}

#[tokio::test]
async fn a_wrong_token_or_protocol_is_reported_once_without_a_busy_loop() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(None)).await;
    let app = gateway_app(&fake, &state, "not-the-token", |_| {}).await;
    let refused = eventually("the refusal", || health(&app), |h| !h["agentGateway"]["error"].is_null()).await;
    let gateway = &refused["agentGateway"];
    assert_eq!((gateway["connected"].as_bool(), gateway["transport"].as_str()), (Some(false), Some("cli")));
    assert!(gateway["error"].as_str().unwrap().contains("token"), "{gateway}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.connects().len(), 1, "a refused token is not retried in a loop");
    // The agents are still listed from the store, and an action says what failed.
    assert_eq!(agent(&app, CAPTURE).await["status"], "KILLED");
    let sent = app
        .graphql(
            "mutation { sendAgentMessage(id: \"agent:main:subagent:capture-1796152060105\", message: \"x\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&sent), "AGENT_RUNTIME_ERROR");

    let mut options = Options::openclaw(None);
    options.protocol = 5;
    let newer = FakeGateway::start(options).await;
    let app = gateway_app(&newer, &state, "gw-token", |_| {}).await;
    let refused = eventually("the refusal", || health(&app), |h| !h["agentGateway"]["error"].is_null()).await;
    let error = refused["agentGateway"]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("protocol 5") && error.contains("3-4"), "{error}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(newer.connects().len(), 1);
}

#[tokio::test]
async fn a_gateway_restart_fails_pending_calls_as_retryable_and_reconnects() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    fake.silence("chat.send");
    let send =
        app.graphql("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"lost\") }", json!({ "id": CAPTURE }));
    let restart = async {
        while !fake.requests().iter().any(|(m, _)| m == "chat.send") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fake.restart();
    };
    let (body, ()) = tokio::join!(send, restart);
    assert_eq!(error_code(&body), "AGENT_RUNTIME_ERROR", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryable"], true, "{body}");
    eventually("a new connection", || async { json!(fake.connects().len()) }, |n| n == 2).await;
    connected(&app).await;
    let killed = app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": CAPTURE })).await;
    assert_eq!(killed["killAgent"]["status"], "KILLED");
}

#[tokio::test]
async fn a_request_that_never_answers_times_out_and_the_connection_stays() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |c| c.agent_call_timeout = Duration::from_millis(300)).await;
    connected(&app).await;
    fake.silence("chat.abort");
    let body = app.graphql("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": CAPTURE })).await;
    assert_eq!(error_code(&body), "AGENT_RUNTIME_ERROR", "{body}");
    app.ok("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"still here\") }", json!({ "id": CAPTURE })).await;
    assert_eq!(fake.connects().len(), 1);
}

#[tokio::test]
async fn a_silent_gateway_is_replaced_after_two_tick_intervals() {
    let state = StateDir::openclaw();
    let mut options = Options::openclaw(None);
    options.tick_ms = 100;
    let fake = FakeGateway::start(options).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    fake.mute(true);
    eventually("a reconnect", || async { json!(fake.connects().len()) }, |n| n.as_u64() >= Some(2)).await;
    fake.mute(false);
    connected(&app).await;
}

#[tokio::test]
async fn a_seq_gap_rereads_the_store() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    let cost = |a: &Value| a["metrics"]["cost"].as_f64().unwrap();
    // The re-read every new connection asks for is done before the test starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.hub.poll_once().await;
    // A row the gateway wrote while its event was lost: the session's updatedAt did not move,
    // so an incremental read does not look for it.
    fake.append_silently(CAPTURE_SESSION, 100, 1.0).await;
    fake.push("health", json!({}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(close(cost(&agent(&app, CAPTURE).await), 2.0 * REPLY_COST));
    fake.skip_seq(3);
    fake.push("health", json!({}));
    eventually("the re-read", || agent(&app, CAPTURE), |a| close(cost(a), 2.0 * REPLY_COST + 1.0)).await;
    assert_ne!(session_id_of(CAPTURE), CAPTURE_SESSION, "the fixture's own session, not one the fake made");
}

/// 20,000 events pushed at once while mutations run: every mutation is answered, output keeps
/// reaching subscribers, and the connection is not lost. (Buffers are bounded: a subscriber
/// that cannot keep up skips output, with a warning, rather than growing without limit.)
#[tokio::test]
async fn a_flood_of_events_leaves_mutations_answered_and_the_connection_up() {
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    let flooded = "agent:main:subagent:chatty";
    let mut ws = app.ws_ready().await;
    ws.subscribe("f", "subscription($id: ID!) { agentOutput(id: $id) { text } }", json!({ "id": flooded })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..20_000 {
        fake.push(
            "agent",
            json!({"runId": "r", "sessionKey": flooded, "stream": "assistant", "data": {"delta": n.to_string()}}),
        );
    }
    let creates = join_all((0..10).map(|n| app.create_task(json!({ "title": format!("during the flood {n}") }))));
    let sent = app.ok("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"hi\") }", json!({ "id": CAPTURE }));
    let (ids, sent) = tokio::join!(creates, sent);
    assert_eq!(ids.len(), 10);
    assert_eq!(sent["sendAgentMessage"], true);
    let first = ws.next_data("f").await;
    assert!(first["agentOutput"]["text"].is_string(), "{first}");
    assert_eq!(connected(&app).await["agentGateway"]["connected"], true);
    assert_eq!(fake.connects().len(), 1, "the flood did not cost the connection");
}

#[tokio::test]
async fn a_task_dispatched_through_the_gateway_comes_back_with_the_reply_and_its_cost() {
    use crate::fake_gateway::MODEL_ERROR;
    use crate::work::ended;
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let app = gateway_app(&fake, &state, "gw-token", |_| {}).await;
    connected(&app).await;
    let dispatch = "mutation($id: ID!, $agent: ID) { dispatchTask(id: $id, agentId: $agent) { status assignedAgent } }";

    let id = app.create_task(json!({ "title": "Write a haiku about lobsters" })).await;
    let sent = app.ok(dispatch, json!({ "id": id })).await["dispatchTask"].clone();
    assert_eq!(sent["status"], "IN_PROGRESS");
    let agent = sent["assignedAgent"].as_str().unwrap().to_owned();
    let done = ended(&app, &id).await;
    assert_eq!(done["status"], "REVIEW", "{done}");
    let run = &done["runs"][0];
    assert_eq!(run["status"], "DONE");
    assert_eq!(run["result"], REPLY, "the final reply, from the store");
    assert_eq!(run["tokens"], REPLY_TOKENS);
    assert!(close(run["cost"].as_f64().unwrap(), REPLY_COST), "{run}");
    assert!(close(done["cost"].as_f64().unwrap(), REPLY_COST));
    let receipt = done["comments"][0].clone();
    assert_eq!(receipt["author"], agent.as_str());
    assert!(receipt["content"].as_str().unwrap().starts_with(REPLY), "{receipt}");
    let (method, params) = fake.requests().into_iter().find(|(m, _)| m == "agent").unwrap();
    assert_eq!(method, "agent");
    assert!(params["message"].as_str().unwrap().contains(&id), "the message names the task: {params}");

    // The same agent again, on a task its model fails: BLOCKED, with the gateway's reason.
    let failing = app.create_task(json!({ "title": "FAIL on purpose" })).await;
    app.ok(dispatch, json!({ "id": failing, "agent": agent })).await;
    let blocked = ended(&app, &failing).await;
    assert_eq!((blocked["status"].as_str(), blocked["runs"][0]["status"].as_str()), (Some("BLOCKED"), Some("FAILED")));
    assert_eq!(blocked["runs"][0]["result"], MODEL_ERROR);
    assert_eq!(blocked["runs"][0]["tokens"], 0, "no reply: nothing used in this run");

    // A run that never ends by itself, killed: BLOCKED, KILLED.
    let slow = app.create_task(json!({ "title": "SLOW and steady" })).await;
    app.ok(dispatch, json!({ "id": slow, "agent": agent })).await;
    app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": agent })).await;
    let killed = ended(&app, &slow).await;
    assert_eq!((killed["status"].as_str(), killed["runs"][0]["status"].as_str()), (Some("BLOCKED"), Some("KILLED")));
}
