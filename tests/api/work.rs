//! The board driving the agents: dispatch to agents of the runtime (the simulation here; the
//! gateway in `openclaw.rs`), claims with leases, and what each task cost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use mission_control::agents::simulated::{SimulatedConfig, SimulatedRuntime};
use serde_json::{Value, json};

use crate::helpers::*;

pub const TASK: &str = "query($id: ID!) { task(id: $id) { id status assignedAgent claimedBy leaseExpiresAt tokens cost \
    runs { id taskId agentId kind runId status startedBy startedAt endedAt tokens cost result } \
    comments { author content } } }";
const DISPATCH: &str = "mutation($id: ID!, $agent: ID, $label: String) { dispatchTask(id: $id, agentId: $agent, label: $label) { id status assignedAgent runs { status } } }";
const CLAIM: &str = "mutation($f: TaskFilter, $lease: Int) { claimTask(filter: $f, leaseSeconds: $lease) { id title status claimedBy leaseExpiresAt } }";
const HEARTBEAT: &str = "mutation($id: ID!) { heartbeatTask(id: $id) { id leaseExpiresAt claimedBy } }";
const COMPLETE: &str = "mutation($id: ID!, $s: TaskStatus!, $r: String) { completeTask(id: $id, status: $s, result: $r) { id status claimedBy leaseExpiresAt } }";
const RELEASE: &str = "mutation($id: ID!) { releaseTask(id: $id) { id status claimedBy } }";

/// The server on the simulation: runs of a few `step`s that fail at `failure_rate`.
async fn simulated(
    step: Duration,
    failure_rate: f64,
    tweak: impl FnOnce(&mut mission_control::config::Config),
) -> TestApp {
    let runtime = SimulatedRuntime::new(SimulatedConfig { seed: Some(11), step, failure_rate });
    spawn_app_with(
        |c| {
            c.agent_poll_interval = Duration::from_secs(3600);
            tweak(c);
        },
        Some(Arc::new(runtime)),
    )
    .await
}

pub async fn task(app: &TestApp, id: &str) -> Value {
    app.ok(TASK, json!({ "id": id })).await["task"].clone()
}

/// An OPERATOR API key named `name`.
pub async fn operator_key(app: &TestApp, name: &str) -> String {
    let q = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }";
    let data = app.ok(q, json!({ "i": { "name": name, "role": "OPERATOR" } })).await;
    data["createApiKey"]["key"].as_str().unwrap().to_owned()
}

/// The feed's actions on task `id`, oldest first.
async fn actions_on(app: &TestApp, id: &str) -> Vec<String> {
    let q = "query($f: FeedFilter) { feed(filter: $f, first: 100) { edges { node { action } } } }";
    let data = app.ok(q, json!({ "f": { "targetId": id } })).await;
    let mut actions: Vec<String> = data["feed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    actions
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Task `id` once its first run ended and moved it on. (The task and its runs are two reads:
/// one query may see the run ended before the task moved.)
pub async fn ended(app: &TestApp, id: &str) -> Value {
    let moved = |t: &Value| t["runs"][0]["status"] != "RUNNING" && t["status"] != "IN_PROGRESS";
    eventually("the run to end", || task(app, id), moved).await
}

#[tokio::test]
async fn a_dispatched_task_runs_and_comes_back_for_review_with_a_receipt() {
    let app = simulated(Duration::from_millis(30), 0.0, |_| {}).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("feed", "subscription { activity { action targetId actor } }", json!({})).await;
    let id = app
        .create_task(json!({ "title": "Write the release notes", "description": "For 2.1", "priority": "HIGH" }))
        .await;

    let data = app.ok(DISPATCH, json!({ "id": id })).await["dispatchTask"].clone();
    assert_eq!(data["status"], "IN_PROGRESS");
    assert_eq!(data["runs"], json!([{ "status": "RUNNING" }]));
    let agent = data["assignedAgent"].as_str().unwrap().to_owned();
    assert!(agent.starts_with("agent:main:subagent:"), "a new agent: {agent}");
    let label = app.ok("query($id: ID!) { agent(id: $id) { label } }", json!({ "id": agent })).await;
    assert_eq!(label["agent"]["label"], "Write the release notes", "labelled after the task");

    let done = ended(&app, &id).await;
    assert_eq!(done["status"], "REVIEW", "{done}");
    let run = &done["runs"][0];
    assert_eq!((run["status"].as_str(), run["kind"].as_str()), (Some("DONE"), Some("DISPATCH")));
    assert_eq!(run["agentId"], agent.as_str());
    assert_eq!(run["startedBy"], "admin");
    assert!(run["endedAt"].is_string() && run["runId"].is_string(), "{run}");

    // The run's cost is the agent's (a new agent: all of it), and the task's is the run's.
    let q = "query($id: ID!) { agent(id: $id) { status metrics { tokens cost } transcript(limit: 50) { role text } } }";
    let seen = app.ok(q, json!({ "id": agent })).await["agent"].clone();
    assert_eq!(seen["status"], "DONE");
    let tokens = seen["metrics"]["tokens"].as_i64().unwrap();
    assert!(tokens > 0);
    assert_eq!(run["tokens"].as_i64(), Some(tokens));
    assert!(close(run["cost"].as_f64().unwrap(), seen["metrics"]["cost"].as_f64().unwrap()), "{run} {seen}");
    assert_eq!(done["tokens"], run["tokens"]);
    assert_eq!(done["cost"], run["cost"]);

    // The receipt: the agent's final reply, by the agent, with tokens, cost and duration.
    let reply = seen["transcript"].as_array().unwrap().iter().rev().find(|m| m["role"] == "assistant").unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let comment = done["comments"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(comment["author"], agent.as_str());
    let content = comment["content"].as_str().unwrap();
    assert!(content.starts_with(&reply), "{content}");
    assert!(content.contains(&format!("{tokens} tokens")) && content.contains("Run DONE in"), "{content}");
    assert_eq!(run["result"], reply.as_str());

    // The agent got the task: its title, description and id.
    let task_message = seen["transcript"][0]["text"].as_str().unwrap();
    assert!(task_message.contains("Write the release notes") && task_message.contains("For 2.1"), "{task_message}");
    assert!(task_message.contains(&id), "{task_message}");

    let actions = actions_on(&app, &id).await;
    assert_eq!(actions, ["created", "dispatched", "commented", "run_finished"], "{actions:?}");
    // ...live, in the order the feed has them.
    let mut live = Vec::new();
    while live.last().map(String::as_str) != Some("run_finished") {
        let event = ws.next_data("feed").await;
        if event["activity"]["targetId"] == id.as_str() {
            live.push(event["activity"]["action"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(live, actions, "the feed's rows arrive live");

    let stats = app.ok("{ feedStats { taskRuns taskTokens taskCost } }", json!({})).await["feedStats"].clone();
    assert_eq!(stats["taskRuns"], 1);
    assert_eq!(stats["taskTokens"], tokens);
}

#[tokio::test]
async fn a_second_dispatch_to_the_same_agent_costs_only_what_that_run_used() {
    let app = simulated(Duration::from_millis(20), 0.0, |c| {
        c.dispatch_done_status = mission_control::config::DispatchDone::Done
    })
    .await;
    let first = app.create_task(json!({ "title": "first" })).await;
    let agent = app.ok(DISPATCH, json!({ "id": first, "label": "worker" })).await["dispatchTask"]["assignedAgent"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_done = ended(&app, &first).await;
    assert_eq!(first_done["status"], "DONE", "--dispatch-done-status done");

    let second = app.create_task(json!({ "title": "second" })).await;
    let data = app.ok(DISPATCH, json!({ "id": second, "agent": agent })).await;
    assert_eq!(data["dispatchTask"]["assignedAgent"], agent.as_str());
    let second_done = ended(&app, &second).await;
    assert_eq!(second_done["status"], "DONE");

    let q = "query($id: ID!) { agent(id: $id) { metrics { tokens } } }";
    let total = app.ok(q, json!({ "id": agent })).await["agent"]["metrics"]["tokens"].as_i64().unwrap();
    let (a, b) = (first_done["tokens"].as_i64().unwrap(), second_done["tokens"].as_i64().unwrap());
    assert!(a > 0 && b > 0, "{a} {b}");
    assert_eq!(a + b, total, "each run counts its own tokens, not the agent's whole history");
}

#[tokio::test]
async fn a_failed_run_blocks_the_task_and_says_why() {
    let app = simulated(Duration::from_millis(20), 1.0, |_| {}).await;
    let id = app.create_task(json!({ "title": "doomed" })).await;
    app.ok(DISPATCH, json!({ "id": id })).await;
    let done = ended(&app, &id).await;
    assert_eq!(done["status"], "BLOCKED");
    assert_eq!(done["runs"][0]["status"], "FAILED");
    let comment = done["comments"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_owned();
    assert!(comment.starts_with("The run failed: "), "{comment}");
    assert!(actions_on(&app, &id).await.contains(&"run_failed".to_owned()));
}

#[tokio::test]
async fn killing_the_agent_blocks_its_task() {
    let app = simulated(Duration::from_secs(30), 0.0, |_| {}).await;
    let id = app.create_task(json!({ "title": "long job" })).await;
    let agent =
        app.ok(DISPATCH, json!({ "id": id })).await["dispatchTask"]["assignedAgent"].as_str().unwrap().to_owned();
    app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": agent })).await;
    let done = ended(&app, &id).await;
    assert_eq!((done["status"].as_str(), done["runs"][0]["status"].as_str()), (Some("BLOCKED"), Some("KILLED")));
    let comment = done["comments"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_owned();
    assert!(comment.contains("killed"), "{comment}");
}

#[tokio::test]
async fn a_dispatch_that_cannot_go_is_refused_and_leaves_the_task_as_it_was() {
    let app = simulated(Duration::from_secs(30), 0.0, |_| {}).await;
    let id = app.create_task(json!({ "title": "t" })).await;
    let refused = |vars: Value| {
        let app = &app;
        async move {
            let body = app.graphql(DISPATCH, vars).await;
            (error_code(&body), error_message(&body))
        }
    };
    let (code, message) = refused(json!({ "id": id, "agent": "agent:main:nobody" })).await;
    assert_eq!(code, "NOT_FOUND", "{message}");
    let (code, _) = refused(json!({ "id": uuid::Uuid::new_v4().to_string() })).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = refused(json!({ "id": "not-a-uuid" })).await;
    assert_eq!(code, "BAD_USER_INPUT");

    let done = app.create_task(json!({ "title": "finished", "status": "DONE" })).await;
    let (code, message) = refused(json!({ "id": done })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("DONE"), "{message}");

    app.ok(DISPATCH, json!({ "id": id })).await;
    let (code, message) = refused(json!({ "id": id })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("already running"), "{message}");
    let agent = task(&app, &id).await["assignedAgent"].as_str().unwrap().to_owned();
    let other = app.create_task(json!({ "title": "other" })).await;
    let (code, message) = refused(json!({ "id": other, "agent": agent })).await;
    assert_eq!(code, "BAD_USER_INPUT", "the agent is busy with the first task");
    assert!(message.contains(&id), "{message}");
    let (code, _) = refused(json!({ "id": other, "agent": agent, "label": "x" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a label names a new agent");

    // A viewer may not dispatch.
    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let (_, body) = app.graphql_as(Some(&viewer), DISPATCH, json!({ "id": other })).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(task(&app, &other).await["runs"], json!([]));
}

#[tokio::test]
async fn a_send_the_runtime_refuses_leaves_the_task_claimable_with_the_error_in_its_activity() {
    let app = spawn_app().await; // the `none` runtime refuses every action
    let id = app.create_task(json!({ "title": "nowhere to go" })).await;
    let body = app.graphql(DISPATCH, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "AGENT_RUNTIME_ERROR", "{body}");
    let after = task(&app, &id).await;
    assert_eq!((after["status"].as_str(), after["assignedAgent"].as_str()), (Some("TODO"), None));
    assert_eq!(after["runs"], json!([]));
    assert_eq!(after["claimedBy"], Value::Null);
    assert_eq!(actions_on(&app, &id).await, ["created", "dispatch_failed"]);
    let claimed = app.ok(CLAIM, json!({})).await;
    assert_eq!(claimed["claimTask"]["id"], id.as_str(), "the reservation was let go");
}

#[tokio::test]
async fn twenty_claimers_on_five_tasks_each_task_goes_to_exactly_one() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_task(json!({ "title": format!("job {i}") })).await);
    }
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(operator_key(&app, &format!("worker-{i}")).await);
    }
    let claims = join_all(keys.iter().map(|key| app.graphql_as(Some(key), CLAIM, json!({})))).await;
    let mut won: Vec<(String, String)> = Vec::new();
    for (status, body) in &claims {
        assert_eq!(*status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        let claimed = &body["data"]["claimTask"];
        if !claimed.is_null() {
            won.push((claimed["id"].as_str().unwrap().to_owned(), claimed["claimedBy"].as_str().unwrap().to_owned()));
        }
    }
    let mut tasks: Vec<&String> = won.iter().map(|(t, _)| t).collect();
    tasks.sort();
    tasks.dedup();
    assert_eq!((won.len(), tasks.len()), (5, 5), "five winners, five different tasks: {won:?}");
    for (id, by) in &won {
        let seen = task(&app, id).await;
        assert_eq!(seen["claimedBy"], by.as_str());
        assert_eq!(seen["status"], "IN_PROGRESS");
        assert_eq!(seen["runs"].as_array().unwrap().len(), 1, "one claim recorded: {seen}");
    }
    assert_eq!(app.ok(CLAIM, json!({})).await["claimTask"], Value::Null, "nothing is left");
}

#[tokio::test]
async fn a_claim_takes_the_most_urgent_oldest_task_and_only_its_holder_may_keep_or_end_it() {
    let app = spawn_app().await;
    let low = app.create_task(json!({ "title": "low", "priority": "LOW" })).await;
    let urgent_old = app.create_task(json!({ "title": "urgent old", "priority": "URGENT", "tags": ["ops"] })).await;
    let urgent_new = app.create_task(json!({ "title": "urgent new", "priority": "URGENT" })).await;
    let worker = operator_key(&app, "worker").await;
    let other = operator_key(&app, "other").await;

    for lease in [29, 86_401, -1] {
        let (_, body) = app.graphql_as(Some(&worker), CLAIM, json!({ "lease": lease })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "lease {lease}: {body}");
    }
    let (_, body) = app.graphql_as(Some(&worker), CLAIM, json!({ "f": { "priority": ["LOW"] }, "lease": 60 })).await;
    assert_eq!(body["data"]["claimTask"]["id"], low.as_str(), "the filter narrows the claim");
    let (_, body) = app.graphql_as(Some(&worker), CLAIM, json!({ "lease": 60 })).await;
    let claimed = body["data"]["claimTask"].clone();
    assert_eq!(claimed["id"], urgent_old.as_str(), "most urgent, then oldest: {body}");
    assert_eq!(claimed["claimedBy"], "worker");
    let first_lease = claimed["leaseExpiresAt"].as_str().unwrap().to_owned();
    let lease_at = chrono::DateTime::parse_from_rfc3339(&first_lease).unwrap();
    let ahead = lease_at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    assert!((50_000..=61_000).contains(&ahead), "a 60 s lease: {ahead} ms ahead");

    // Only the holder may heartbeat, complete or release.
    for (query, vars) in [
        (HEARTBEAT, json!({ "id": urgent_old })),
        (COMPLETE, json!({ "id": urgent_old, "s": "DONE" })),
        (RELEASE, json!({ "id": urgent_old })),
        (HEARTBEAT, json!({ "id": urgent_new })),
    ] {
        let (_, body) = app.graphql_as(Some(&other), query, vars).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, body) = app.graphql_as(Some(&worker), HEARTBEAT, json!({ "id": urgent_old })).await;
    let renewed = body["data"]["heartbeatTask"]["leaseExpiresAt"].as_str().unwrap().to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&renewed).unwrap() > lease_at, "{first_lease} -> {renewed}");

    let (_, body) = app
        .graphql_as(Some(&worker), COMPLETE, json!({ "id": urgent_old, "s": "DONE", "r": "Rotated the keys." }))
        .await;
    let completed = &body["data"]["completeTask"];
    assert_eq!(completed["status"], "DONE", "{body}");
    assert_eq!((completed["claimedBy"].clone(), completed["leaseExpiresAt"].clone()), (Value::Null, Value::Null));
    let seen = task(&app, &urgent_old).await;
    assert_eq!(seen["comments"], json!([{ "author": "worker", "content": "Rotated the keys." }]));
    let run = &seen["runs"][0];
    assert_eq!((run["kind"].as_str(), run["status"].as_str()), (Some("CLAIM"), Some("DONE")));
    assert_eq!((run["agentId"].as_str(), run["result"].as_str()), (Some("worker"), Some("Rotated the keys.")));
    let (_, body) = app.graphql_as(Some(&worker), HEARTBEAT, json!({ "id": urgent_old })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "a completed task is held by no one");

    // Released work goes back to the queue.
    let (_, body) = app.graphql_as(Some(&worker), RELEASE, json!({ "id": low })).await;
    assert_eq!(body["data"]["releaseTask"]["status"], "TODO", "{body}");
    let (_, body) = app.graphql_as(Some(&other), CLAIM, json!({})).await;
    assert_eq!(body["data"]["claimTask"]["id"], urgent_new.as_str());
    let (_, body) = app.graphql_as(Some(&other), CLAIM, json!({})).await;
    assert_eq!(body["data"]["claimTask"]["id"], low.as_str(), "the released task is claimable again");
    let runs = task(&app, &low).await["runs"].clone();
    assert_eq!(
        runs.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["KILLED", "RUNNING"]
    );
    assert_eq!(
        actions_on(&app, &low).await,
        ["created", "claimed", "released", "claimed"],
        "claims are in the feed (heartbeats are not)"
    );
}

#[tokio::test]
async fn a_lease_that_is_not_renewed_lapses_and_the_task_returns_to_todo() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "abandoned" })).await;
    let worker = operator_key(&app, "flaky").await;
    let (_, body) = app.graphql_as(Some(&worker), CLAIM, json!({ "lease": 30 })).await;
    assert_eq!(body["data"]["claimTask"]["id"], id.as_str());

    // The sweep as it runs 29 s and 31 s later (the clock is the sweep's argument).
    let writer = &app.writer;
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(mission_control::work::claims::lapse_expired(writer, now + 29_000).await.unwrap(), 0);
    assert_eq!(task(&app, &id).await["claimedBy"], "flaky", "not yet");
    assert_eq!(mission_control::work::claims::lapse_expired(writer, now + 31_000).await.unwrap(), 1);
    assert_eq!(mission_control::work::claims::lapse_expired(writer, now + 32_000).await.unwrap(), 0, "once");

    let seen = task(&app, &id).await;
    assert_eq!((seen["status"].as_str(), seen["claimedBy"].as_str()), (Some("TODO"), None));
    assert_eq!(seen["runs"][0]["status"], "FAILED");
    assert_eq!(seen["runs"][0]["result"], "the lease lapsed");
    assert_eq!(actions_on(&app, &id).await, ["created", "claimed", "lease_lapsed"]);
    let (_, body) = app.graphql_as(Some(&worker), HEARTBEAT, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "the lapsed holder holds nothing");
    let claimed = app.ok(CLAIM, json!({})).await;
    assert_eq!(claimed["claimTask"]["id"], id.as_str(), "claimable again");
}
