//! Several server processes sharing PostgreSQL and Redis: events cross instances exactly once,
//! the agent poller fails over, and a Redis outage loses nothing for a client that resumes.
//!
//! Needs `TEST_DATABASE_URL` (PostgreSQL) and `TEST_REDIS_URL`; the outage test also needs
//! `redis-server` on the PATH (it runs a private one). Without them the tests say so and pass.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::agents::ClawdbotHome;
use crate::helpers::*;

const ACTIVITY: &str = "subscription($a: String) { activity(after: $a) { id cursor } }";

/// The shared services, or why the test cannot run here.
fn services() -> Option<String> {
    let pg = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_default();
    if !pg.starts_with("postgres") || redis.is_empty() {
        eprintln!("skipped: set TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL to run the multi-instance tests");
        return None;
    }
    Some(redis)
}

/// Two instances on one fresh database and one Redis key prefix.
struct Fleet {
    a: Instance,
    b: Instance,
    token: String,
    client: reqwest::Client,
    workdir: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

async fn fleet(redis_url: &str, extra: &[(&str, String)]) -> Fleet {
    let workdir = std::env::temp_dir().join(format!("mc-fleet-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut env = vec![
        ("DATABASE_URL", fresh_database_url().await),
        ("REDIS_URL", redis_url.to_owned()),
        ("MC_REDIS_PREFIX", format!("mc-test-{}", uuid::Uuid::new_v4().simple())),
        ("MC_AGENT_RUNTIME", "none".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let a = start(&env, &workdir).await;
    let b = start(&env, &workdir).await;
    let client = reqwest::Client::new();
    let token = login_at(&client, &a.url(), PASSWORD).await;
    Fleet { a, b, token, client, workdir }
}

impl Fleet {
    async fn graphql(&self, on: &Instance, query: &str, variables: Value) -> Value {
        let (_, body) = post_graphql(&self.client, &on.url(), Some(&self.token), query, variables).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    async fn create_task(&self, on: &Instance, title: &str) -> String {
        let data = self
            .graphql(on, "mutation($t: String!) { createTask(input: {title: $t}) { id } }", json!({ "t": title }))
            .await;
        data["createTask"]["id"].as_str().unwrap().to_owned()
    }

    /// Every activity id, oldest first.
    async fn activity_ids(&self) -> Vec<String> {
        feed_ids_oldest_first(&self.client, &self.a.url(), &self.token).await
    }

    async fn health(&self, on: &Instance) -> Option<Value> {
        self.client.get(format!("{}/health", on.url())).send().await.ok()?.json().await.ok()
    }
}

/// Two instances on the Clawdbot runtime over `home` (fake CLI), polling every second.
async fn clawdbot_fleet(redis: &str, home: &ClawdbotHome) -> Fleet {
    let extra = [
        ("MC_AGENT_RUNTIME", "clawdbot".to_owned()),
        ("CLAWDBOT_STATE_DIR", home.dir.display().to_string()),
        ("CLAWDBOT_BIN", home.bin.display().to_string()),
        ("MC_AGENT_POLL_INTERVAL", "1s".to_owned()),
        // No gateway listens there: actions take the CLI fallback.
        ("OPENCLAW_GATEWAY_URL", format!("ws://127.0.0.1:{}", free_port())),
    ];
    fleet(redis, &extra).await
}

/// Waits (up to 15 s) until exactly one instance holds the poller lease; true when it is `a`.
async fn leader_is_a(fleet: &Fleet) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = fleet.health(&fleet.a).await.unwrap()["agentPollerLeader"] == true;
        let b = fleet.health(&fleet.b).await.unwrap()["agentPollerLeader"] == true;
        assert!(!(a && b), "never two leaders");
        if a || b {
            return a;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the instance at `url` holds the poller lease, failing once `limit` has passed
/// since `since`.
async fn takes_over(client: &reqwest::Client, url: &str, since: Instant, limit: Duration) {
    loop {
        let health: Value = client.get(format!("{url}/health")).send().await.unwrap().json().await.unwrap();
        if health["agentPollerLeader"] == true {
            return;
        }
        assert!(since.elapsed() < limit, "no takeover within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `n` activity events from `ws`; returns (id, cursor) pairs.
async fn read_activities(ws: &mut WsClient, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let data = ws.next_data("a").await;
        out.push((
            data["activity"]["id"].as_str().unwrap().to_owned(),
            data["activity"]["cursor"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

fn ids(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(id, _)| id.clone()).collect()
}

#[tokio::test]
async fn a_mutation_on_one_instance_reaches_a_subscriber_on_the_other_exactly_once() {
    let Some(redis) = services() else { return };
    let fleet = fleet(&redis, &[]).await;
    let mut ws = ws_ready_on(fleet.b.port, &fleet.token).await;
    ws.subscribe("t", "subscription { taskUpdated { kind taskId } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = fleet.create_task(&fleet.a, "cross-instance").await;
    let event = ws.next_data("t").await;
    assert_eq!(event["taskUpdated"], json!({ "kind": "CREATED", "taskId": id }));
    assert!(matches!(ws.next_within(Duration::from_millis(500)).await, Err(WsEnd::Timeout)), "delivered once");
    let health = fleet.health(&fleet.b).await.unwrap();
    assert_eq!(health["eventBus"], "redis");
}

#[tokio::test]
async fn a_thousand_mutations_over_both_instances_reach_subscribers_on_both_exactly_once() {
    let Some(redis) = services() else { return };
    let fleet = fleet(&redis, &[]).await;
    let mut on_a = ws_ready_on(fleet.a.port, &fleet.token).await;
    let mut on_b = ws_ready_on(fleet.b.port, &fleet.token).await;
    on_a.subscribe("a", ACTIVITY, json!({})).await;
    on_b.subscribe("a", ACTIVITY, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Four writers, each alternating between the instances.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = fleet.client.clone();
            let token = fleet.token.clone();
            let urls = [fleet.a.url(), fleet.b.url()];
            tokio::spawn(async move {
                for i in 0..250 {
                    let q = json!({ "query": "mutation($t: String!) { createTask(input: {title: $t}) { id } }", "variables": { "t": format!("w{w}-{i}") } });
                    let r = client.post(format!("{}/graphql", urls[i % 2])).bearer_auth(&token).json(&q).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let expected = fleet.activity_ids().await;
    assert_eq!(expected.len(), 1000);
    for ws in [&mut on_a, &mut on_b] {
        let got = ids(&read_activities(ws, 1000).await);
        assert_eq!(got, expected, "every activity exactly once, in commit order");
        assert!(matches!(ws.next_within(Duration::from_millis(500)).await, Err(WsEnd::Timeout)), "no duplicates");
    }
}

#[tokio::test]
async fn killing_the_leader_hands_agent_polling_to_the_other_within_15s() {
    let Some(redis) = services() else { return };
    let home = ClawdbotHome::new();
    let mut fleet = clawdbot_fleet(&redis, &home).await;
    let leaders = if leader_is_a(&fleet).await { (true, false) } else { (false, true) };
    // The follower serves the leader's view: it has the agents without ever polling.
    let follower = if leaders.0 { &fleet.b } else { &fleet.a };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let agents = fleet.graphql(follower, "{ agents { id } }", json!({})).await;
        if agents["agents"].as_array().map(Vec::len) == Some(6) {
            break;
        }
        assert!(Instant::now() < deadline, "the follower never got the leader's snapshot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (leader, survivor) = if leaders.0 { (&mut fleet.a, &fleet.b) } else { (&mut fleet.b, &fleet.a) };
    leader.child.kill().await.unwrap();
    let killed_at = Instant::now();
    let survivor_port = survivor.port;
    takes_over(&fleet.client, &survivor.url(), killed_at, Duration::from_secs(15)).await;
    let mut ws = ws_ready_on(survivor_port, &fleet.token).await;
    ws.subscribe("s", "subscription { agentStatus { changed agents { id } } }", json!({})).await;
    assert_eq!(ws.next_data("s").await["agentStatus"]["agents"].as_array().unwrap().len(), 6);
    let mut store: Value = serde_json::from_str(&std::fs::read_to_string(home.store()).unwrap()).unwrap();
    store["agent:main:subagent:after-failover"] =
        json!({ "sessionId": "f", "updatedAt": chrono::Utc::now().timestamp_millis() });
    home.write_store(&store);
    let event = ws.next_data("s").await;
    assert_eq!(event["agentStatus"]["changed"], json!(["agent:main:subagent:after-failover"]), "the new leader polls");
}

#[tokio::test]
async fn a_leader_stopped_by_a_signal_hands_over_its_lease_within_two_seconds() {
    let Some(redis) = services() else { return };
    let mut fleet = fleet(&redis, &[]).await;
    let a_leads = leader_is_a(&fleet).await;
    let (leader, survivor) = if a_leads { (&mut fleet.a, &fleet.b) } else { (&mut fleet.b, &fleet.a) };
    let pid = leader.child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    let signalled = Instant::now();
    takes_over(&fleet.client, &survivor.url(), signalled, Duration::from_millis(2500)).await;
    let leader = if a_leads { &mut fleet.a } else { &mut fleet.b };
    let status = tokio::time::timeout(Duration::from_secs(10), leader.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A private `redis-server` on `port`.
async fn private_redis(port: u16) -> Option<Child> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(child);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn stopping_redis_mid_run_loses_no_activity_for_a_client_that_resumes() {
    if services().is_none() {
        return;
    }
    let port = free_port();
    let Some(mut redis) = private_redis(port).await else {
        eprintln!("skipped: no redis-server on the PATH for a private Redis");
        return;
    };
    let fleet = fleet(&format!("redis://127.0.0.1:{port}"), &[]).await;
    let mut ws = ws_ready_on(fleet.b.port, &fleet.token).await;
    ws.subscribe("a", ACTIVITY, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..10 {
        fleet.create_task(&fleet.a, &format!("before {i}")).await;
    }
    let mut received = read_activities(&mut ws, 10).await;

    redis.kill().await.unwrap();
    let _ = redis.wait().await;
    // HTTP keeps working on both instances while Redis is gone.
    for i in 0..10 {
        fleet.create_task(&fleet.a, &format!("outage a{i}")).await;
        fleet.create_task(&fleet.b, &format!("outage b{i}")).await;
    }
    // Whatever arrived live (B's own events, delivered locally) counts; then the client drops.
    while let Ok(message) = ws.next_within(Duration::from_millis(300)).await {
        let data = &message["payload"]["data"]["activity"];
        received.push((data["id"].as_str().unwrap().to_owned(), data["cursor"].as_str().unwrap().to_owned()));
    }
    ws.close().await;

    let _redis = private_redis(port).await.expect("restart redis");
    let last = received.last().unwrap().1.clone();
    let mut ws = ws_ready_on(fleet.b.port, &fleet.token).await;
    ws.subscribe("a", ACTIVITY, json!({ "a": last })).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // the bus reconnects (backoff ≤ 5 s)
    for i in 0..10 {
        fleet.create_task(&fleet.a, &format!("after {i}")).await;
    }
    let expected = fleet.activity_ids().await;
    assert_eq!(expected.len(), 40);
    let missing = expected.len() - received.len();
    received.extend(read_activities(&mut ws, missing).await);
    assert_eq!(ids(&received), expected, "every activity exactly once, in order");
    assert!(matches!(ws.next_within(Duration::from_millis(500)).await, Err(WsEnd::Timeout)));
}

#[tokio::test]
async fn a_run_started_through_a_follower_is_followed_up_by_the_leader() {
    let Some(redis) = services() else { return };
    let home = ClawdbotHome::new();
    let fleet = clawdbot_fleet(&redis, &home).await;
    let follower = if leader_is_a(&fleet).await { &fleet.b } else { &fleet.a };
    let spawned = fleet
        .graphql(follower, "mutation { spawnAgent(input: {label: \"via follower\", task: \"t\"}) { id } }", json!({}))
        .await;
    let id = spawned["spawnAgent"]["id"].as_str().unwrap().to_owned();
    // The gateway records the session, as the real one does.
    let mut store: Value = serde_json::from_str(&std::fs::read_to_string(home.store()).unwrap()).unwrap();
    store[&id] = json!({ "sessionId": "via-follower", "label": "via follower", "updatedAt": chrono::Utc::now().timestamp_millis() });
    home.write_store(&store);
    // Only the leader's agent.wait can tell DONE; recency alone would say RUNNING for a minute.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let data = fleet.graphql(follower, "query($id: ID!) { agent(id: $id) { status } }", json!({ "id": id })).await;
        if data["agent"]["status"] == "DONE" {
            break;
        }
        assert!(Instant::now() < deadline, "the run was never followed up: {data}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two instances on one OpenClaw gateway: the leader relays what the gateway pushes through
/// Redis, so an approval requested on the gateway is listed on both, can be decided on the
/// follower (over the follower's own connection), and output reaches a follower's subscriber.
#[tokio::test]
async fn approvals_and_output_reach_every_instance_of_a_fleet() {
    use crate::fake_gateway::{FakeGateway, Options, REPLY};
    use crate::openclaw::{CAPTURE, StateDir};
    let Some(redis) = services() else { return };
    let state = StateDir::openclaw();
    let fake = FakeGateway::start(Options::openclaw(Some(state.store()))).await;
    let extra = [
        ("MC_AGENT_RUNTIME", "openclaw".to_owned()),
        ("OPENCLAW_STATE_DIR", state.0.display().to_string()),
        ("OPENCLAW_GATEWAY_URL", fake.url()),
        ("OPENCLAW_GATEWAY_TOKEN", "gw-token".to_owned()),
        ("OPENCLAW_BIN", "/nonexistent/openclaw".to_owned()),
    ];
    let fleet = fleet(&redis, &extra).await;
    let follower = if leader_is_a(&fleet).await { &fleet.b } else { &fleet.a };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.connects().len() < 2 || fleet.health(follower).await.unwrap()["agentGateway"]["connected"] != true {
        assert!(
            Instant::now() < deadline,
            "both instances connect to the gateway: {} connects, {:?}",
            fake.connects().len(),
            fleet.health(follower).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut ws = ws_ready_on(follower.port, &fleet.token).await;
    ws.subscribe("o", "subscription($id: ID!) { agentOutput(id: $id) { kind text } }", json!({ "id": CAPTURE })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, answer) = fake.request_approval("rm -rf ./build", CAPTURE, 30_000);
    let listed = "{ approvals(status: PENDING) { id } }";
    for instance in [&fleet.a, &fleet.b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while fleet.graphql(instance, listed, json!({})).await["approvals"].as_array().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the approval reaches every instance");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let resolve = "mutation($id: ID!) { resolveApproval(id: $id, decision: DENY) { status decidedBy } }";
    let decided = fleet.graphql(follower, resolve, json!({ "id": id })).await;
    assert_eq!(decided["resolveApproval"], json!({ "status": "DENIED", "decidedBy": "admin" }));
    assert_eq!(answer.await.unwrap(), Some("deny".to_owned()));
    let leader = if std::ptr::eq(follower, &fleet.a) { &fleet.b } else { &fleet.a };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = fleet.graphql(leader, "{ approvals { id status decidedBy } }", json!({})).await;
        if all["approvals"][0] == json!({ "id": id, "status": "DENIED", "decidedBy": "admin" }) {
            break;
        }
        assert!(Instant::now() < deadline, "the decision reaches the leader: {all}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The follower knows agents from the leader's snapshots (sent every few seconds).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet.graphql(follower, "query($id: ID!) { agent(id: $id) { id } }", json!({ "id": CAPTURE })).await["agent"]
        .is_null()
    {
        assert!(Instant::now() < deadline, "the follower learns the leader's agents");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet
        .graphql(
            follower,
            "mutation($id: ID!) { sendAgentMessage(id: $id, message: \"hi\") }",
            json!({ "id": CAPTURE }),
        )
        .await;
    let mut text = String::new();
    loop {
        let item = ws.next_data("o").await["agentOutput"].clone();
        match item["kind"].as_str() {
            Some("TEXT") => text.push_str(item["text"].as_str().unwrap()),
            Some("FINAL") => break,
            _ => {}
        }
    }
    assert_eq!(text, REPLY, "each delta once, relayed by the leader alone");
}

/// Logging out on one instance refuses the token on the other too (within its 2 s refresh).
#[tokio::test]
async fn logout_on_one_instance_refuses_the_token_on_the_other() {
    let Some(redis) = services() else { return };
    let fleet = fleet(&redis, &[]).await;
    let token = login_at(&fleet.client, &fleet.a.url(), PASSWORD).await;
    let me = |on: &Instance| {
        let (client, url, token) = (fleet.client.clone(), on.url(), token.clone());
        async move { post_graphql(&client, &url, Some(&token), "{ me { name } }", json!({})).await.0 }
    };
    assert_eq!(me(&fleet.b).await, 200);
    let out = fleet.client.post(format!("{}/api/auth/logout", fleet.a.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(me(&fleet.a).await, 401);
    let deadline = Instant::now() + Duration::from_secs(5);
    while me(&fleet.b).await != 401 {
        assert!(Instant::now() < deadline, "the other instance still takes the token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An API key made on one instance works on the other within its refresh, and revoking it
/// there cuts the socket it holds on the first.
#[tokio::test]
async fn an_api_key_works_across_the_fleet_and_its_revocation_reaches_every_socket() {
    let Some(redis) = services() else { return };
    let fleet = fleet(&redis, &[]).await;
    let admin = login_at(&fleet.client, &fleet.a.url(), PASSWORD).await;
    let create = "mutation { createApiKey(input: {name: \"fleet-bot\", role: OPERATOR}) { key apiKey { id } } }";
    let (_, made) = post_graphql(&fleet.client, &fleet.a.url(), Some(&admin), create, json!({})).await;
    let key = made["data"]["createApiKey"]["key"].as_str().unwrap().to_owned();
    let id = made["data"]["createApiKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while post_graphql(&fleet.client, &fleet.b.url(), Some(&key), "{ me { name } }", json!({})).await.0 != 200 {
        assert!(Instant::now() < deadline, "the other instance does not know the key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut socket = ws_ready_on(fleet.b.port, &key).await;
    socket.subscribe("s", "subscription { taskUpdated { kind } }", json!({})).await;
    let revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { id } }";
    let (_, revoked) = post_graphql(&fleet.client, &fleet.a.url(), Some(&admin), revoke, json!({ "id": id })).await;
    assert!(revoked.get("errors").is_none(), "{revoked}");
    assert_eq!(socket.closed_with().await, Some(4401), "the socket on the other instance is cut");
    let (status, _) = post_graphql(&fleet.client, &fleet.b.url(), Some(&key), "{ me { name } }", json!({})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn claims_from_two_instances_at_once_never_give_a_task_twice() {
    let Some(redis) = services() else { return };
    let fleet = fleet(&redis, &[]).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(fleet.create_task(if i % 2 == 0 { &fleet.a } else { &fleet.b }, &format!("job {i}")).await);
    }
    let claim = "mutation { claimTask(leaseSeconds: 60) { id } }";
    let calls = (0..40).map(|i| {
        let on = if i % 2 == 0 { &fleet.a } else { &fleet.b };
        fleet.graphql(on, claim, json!({}))
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut won: Vec<String> =
        answers.iter().filter_map(|a| a["claimTask"]["id"].as_str().map(str::to_owned)).collect();
    won.sort();
    let claimed = won.len();
    won.dedup();
    assert_eq!((claimed, won.len()), (10, 10), "every task claimed once, none twice: {answers:?}");
    ids.sort();
    assert_eq!(won, ids);
}

#[tokio::test]
async fn a_task_dispatched_through_a_follower_is_moved_on_by_the_leader_when_its_run_ends() {
    let Some(redis) = services() else { return };
    let home = ClawdbotHome::new();
    let fleet = clawdbot_fleet(&redis, &home).await;
    let follower = if leader_is_a(&fleet).await { &fleet.b } else { &fleet.a };
    let id = fleet.create_task(follower, "via the follower").await;
    let sent = fleet
        .graphql(follower, "mutation($id: ID!) { dispatchTask(id: $id) { status assignedAgent } }", json!({ "id": id }))
        .await;
    assert_eq!(sent["dispatchTask"]["status"], "IN_PROGRESS");
    let agent = sent["dispatchTask"]["assignedAgent"].as_str().unwrap().to_owned();
    let mut store: Value = serde_json::from_str(&std::fs::read_to_string(home.store()).unwrap()).unwrap();
    store[&agent] = json!({ "sessionId": "dispatched", "label": "via the follower", "updatedAt": chrono::Utc::now().timestamp_millis() });
    home.write_store(&store);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let q = "query($id: ID!) { task(id: $id) { status runs { status } comments { author } } }";
        let data = fleet.graphql(follower, q, json!({ "id": id })).await;
        if data["task"]["status"] == "REVIEW" {
            assert_eq!(data["task"]["runs"], json!([{ "status": "DONE" }]));
            assert_eq!(data["task"]["comments"], json!([{ "author": agent }]), "one receipt, from one instance");
            break;
        }
        assert!(Instant::now() < deadline, "the dispatched run was never followed up: {data}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_schedule_runs_each_second_exactly_once_on_a_fleet_even_when_an_instance_dies() {
    let Some(redis) = services() else { return };
    let mut fleet = fleet(&redis, &[]).await;
    let create = "mutation($i: ScheduleInput!) { createSchedule(input: $i) { id } }";
    let input = json!({ "name": "fleet tick", "cron": "* * * * * *", "action": "CREATE_TASK", "task": { "title": "fleet tick" } });
    let id = fleet.graphql(&fleet.a, create, json!({ "i": input })).await["createSchedule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    fleet.a.child.kill().await.unwrap(); // mid-run, as likely as not: one runs every second
    tokio::time::sleep(Duration::from_millis(5_000)).await;

    let q = "query($id: ID!) { schedule(id: $id) { runs(first: 100) { scheduledFor status taskId } } }";
    let data = fleet.graphql(&fleet.b, q, json!({ "id": id })).await;
    let runs = data["schedule"]["runs"].as_array().unwrap();
    let mut seconds: Vec<i64> = runs
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["scheduledFor"].as_str().unwrap()).unwrap().timestamp())
        .collect();
    seconds.sort();
    assert!(seconds.len() >= 8, "about ten ticks: {seconds:?}");
    assert!(seconds.windows(2).all(|w| w[1] == w[0] + 1), "every second exactly once, the kill included: {seconds:?}");
    let tasks = fleet
        .graphql(&fleet.b, "{ tasks(filter: {search: \"fleet tick\"}, first: 100) { totalCount } }", json!({}))
        .await;
    assert_eq!(tasks["tasks"]["totalCount"].as_u64(), Some(runs.len() as u64), "one task per run");
}
