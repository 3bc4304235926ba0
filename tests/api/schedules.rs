//! Schedules through the API: cron times run once each, disabling stops them, manual runs,
//! failed spawns, a dispatched task, downtime, and the bad inputs.

use std::sync::Arc;
use std::time::Duration;

use mission_control::agents::simulated::{SimulatedConfig, SimulatedRuntime};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::work::operator_key;

const CREATE: &str = "mutation($i: ScheduleInput!) { createSchedule(input: $i) { id name cron timezone action enabled nextRunAt lastRunAt } }";
const UPDATE: &str =
    "mutation($id: ID!, $i: ScheduleInput!) { updateSchedule(id: $id, input: $i) { id enabled nextRunAt } }";
const RUNS: &str = "query($id: ID!) { schedule(id: $id) { lastRunAt nextRunAt runs(first: 100) { id status scheduledFor startedAt agentId taskId error manual } } }";
const RUN_NOW: &str =
    "mutation($id: ID!) { runScheduleNow(id: $id) { status agentId taskId error manual scheduledFor } }";

async fn runs(app: &TestApp, id: &str) -> Vec<Value> {
    app.ok(RUNS, json!({ "id": id })).await["schedule"]["runs"].as_array().unwrap().clone()
}

/// How many tasks are titled `title`.
async fn tasks_titled(app: &TestApp, title: &str) -> usize {
    let q = "query($s: String) { tasks(filter: {search: $s}, first: 100) { edges { node { title } } } }";
    let data = app.ok(q, json!({ "s": title })).await;
    data["tasks"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["title"] == title).count()
}

fn every_second_task(title: &str) -> Value {
    json!({ "name": title, "cron": "* * * * * *", "action": "CREATE_TASK", "task": { "title": title, "tags": ["scheduled"] } })
}

#[tokio::test]
async fn an_every_second_schedule_makes_one_task_per_tick_until_disabled() {
    let app = spawn_app().await;
    let created = app.ok(CREATE, json!({ "i": every_second_task("tick") })).await["createSchedule"].clone();
    assert_eq!((created["timezone"].as_str(), created["enabled"].as_bool()), (Some("UTC"), Some(true)));
    let id = created["id"].as_str().unwrap().to_owned();
    let next = chrono::DateTime::parse_from_rfc3339(created["nextRunAt"].as_str().unwrap()).unwrap();
    assert_eq!(next.timestamp_subsec_millis(), 0, "a whole second");

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let done = runs(&app, &id).await;
    assert!((2..=5).contains(&done.len()), "about one run a second: {done:?}");
    let mut times: Vec<i64> = done
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["scheduledFor"].as_str().unwrap()).unwrap().timestamp())
        .collect();
    times.reverse();
    assert!(times.windows(2).all(|w| w[1] == w[0] + 1), "each second once, none twice or skipped: {times:?}");
    assert!(done.iter().all(|r| r["status"] == "OK" && r["taskId"].is_string() && r["manual"] == false), "{done:?}");
    let mut off = every_second_task("tick");
    off["enabled"] = json!(false);
    let disabled = app.ok(UPDATE, json!({ "id": id, "i": off })).await;
    assert_eq!(disabled["updateSchedule"]["enabled"], false);
    let before = runs(&app, &id).await.len();
    assert_eq!(tasks_titled(&app, "tick").await, before, "one task per run");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(runs(&app, &id).await.len(), before, "a disabled schedule does not run");

    let manual = app.ok(RUN_NOW, json!({ "id": id })).await["runScheduleNow"].clone();
    assert_eq!((manual["status"].as_str(), manual["manual"].as_bool()), (Some("OK"), Some(true)), "{manual}");
    assert_eq!(tasks_titled(&app, "tick").await, before + 1, "runScheduleNow works while disabled");
    let schedule = app.ok(RUNS, json!({ "id": id })).await["schedule"].clone();
    assert_eq!(schedule["nextRunAt"], Value::Null, "disabled: no next run");

    let q = "query($f: FeedFilter) { feed(filter: $f, first: 100) { edges { node { action actor metadata } } } }";
    let feed = app.ok(q, json!({ "f": { "targetId": id } })).await;
    let ran: Vec<&Value> = feed["feed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["action"] == "schedule_ran")
        .collect();
    assert_eq!(ran.len(), before + 1);
    assert!(ran.iter().all(|n| n["actor"] == "system" && n["metadata"]["schedule"] == "tick"), "{ran:?}");
}

#[tokio::test]
async fn after_downtime_the_missed_time_runs_once_and_the_next_is_after_now() {
    let app = spawn_app().await;
    let input = json!({ "name": "new year", "cron": "0 0 1 1 *", "timezone": "Europe/Berlin", "action": "CREATE_TASK", "task": { "title": "happy new year" } });
    let created = app.ok(CREATE, json!({ "i": input })).await["createSchedule"].clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["nextRunAt"], "2026-12-31T23:00:00+00:00", "midnight in Berlin, in UTC");

    // The server was down from before New Year until June 2028: two new years missed.
    let june_2028 = chrono::DateTime::parse_from_rfc3339("2028-06-01T00:00:00Z").unwrap().timestamp_millis();
    assert_eq!(app.scheduler.run_due(june_2028).await.unwrap(), 1, "the missed time runs once");
    assert_eq!(app.scheduler.run_due(june_2028).await.unwrap(), 0, "not once per missed tick");
    let schedule = app.ok(RUNS, json!({ "id": id })).await["schedule"].clone();
    assert_eq!(schedule["runs"].as_array().unwrap().len(), 1);
    assert_eq!(schedule["runs"][0]["scheduledFor"], "2026-12-31T23:00:00+00:00");
    assert_eq!(schedule["lastRunAt"], "2026-12-31T23:00:00+00:00");
    assert_eq!(schedule["nextRunAt"], "2028-12-31T23:00:00+00:00", "the first after now");
    assert_eq!(tasks_titled(&app, "happy new year").await, 1);
}

#[tokio::test]
async fn a_schedule_whose_spawn_fails_records_the_runtimes_short_message() {
    let app = spawn_app().await; // the `none` runtime
    let input = json!({ "name": "triage", "cron": "0 9 * * 1-5", "timezone": "America/New_York", "action": "SPAWN_AGENT", "agent": { "label": "triage", "task": "Triage the inbox" } });
    let id = app.ok(CREATE, json!({ "i": input })).await["createSchedule"]["id"].as_str().unwrap().to_owned();
    let run = app.ok(RUN_NOW, json!({ "id": id })).await["runScheduleNow"].clone();
    assert_eq!(run["status"], "FAILED");
    let error = run["error"].as_str().unwrap();
    let direct = app.graphql("mutation { spawnAgent(input: {label: \"x\", task: \"y\"}) { id } }", json!({})).await;
    assert_eq!(error, error_message(&direct), "the same short message spawnAgent gives");
    assert_eq!(run["agentId"], Value::Null);
}

#[tokio::test]
async fn a_schedule_spawns_agents_or_dispatches_the_tasks_it_creates() {
    let runtime =
        SimulatedRuntime::new(SimulatedConfig { seed: Some(5), step: Duration::from_millis(20), failure_rate: 0.0 });
    let app = spawn_app_with(|c| c.agent_poll_interval = Duration::from_secs(3600), Some(Arc::new(runtime))).await;
    let spawn = json!({ "name": "nightly", "cron": "0 3 * * *", "action": "SPAWN_AGENT", "agent": { "label": "deps", "task": "Check the dependencies" } });
    let id = app.ok(CREATE, json!({ "i": spawn })).await["createSchedule"]["id"].as_str().unwrap().to_owned();
    let run = app.ok(RUN_NOW, json!({ "id": id })).await["runScheduleNow"].clone();
    assert_eq!(run["status"], "OK", "{run}");
    let agent = run["agentId"].as_str().unwrap();
    let seen = app.ok("query($id: ID!) { agent(id: $id) { label } }", json!({ "id": agent })).await;
    assert_eq!(seen["agent"]["label"], "deps");

    let dispatching = json!({ "name": "report", "cron": "0 17 * * 5", "action": "CREATE_TASK", "dispatch": true, "task": { "title": "Weekly report" } });
    let id = app.ok(CREATE, json!({ "i": dispatching })).await["createSchedule"]["id"].as_str().unwrap().to_owned();
    let run = app.ok(RUN_NOW, json!({ "id": id })).await["runScheduleNow"].clone();
    assert_eq!(run["status"], "OK", "{run}");
    let task = crate::work::task(&app, run["taskId"].as_str().unwrap()).await;
    assert_eq!(task["assignedAgent"], run["agentId"], "the new task went to a new agent: {task}");
    assert_eq!(task["runs"][0]["kind"], "DISPATCH");
}

#[tokio::test]
async fn bad_schedules_are_refused_with_what_is_wrong() {
    let app = spawn_app().await;
    let base = every_second_task("x");
    let with = |changes: Value| {
        let mut input = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            input[k] = v.clone();
        }
        input
    };
    for (changes, field) in [
        (json!({ "cron": "* * *" }), "cron"),
        (json!({ "cron": "61 * * * *" }), "cron"),
        (json!({ "cron": "0 0 31 2 *" }), "cron"),
        (json!({ "timezone": "Mars/Olympus" }), "timezone"),
        (json!({ "name": " " }), "name"),
        (json!({ "action": "SPAWN_AGENT" }), "agent"),
        (json!({ "action": "SPAWN_AGENT", "agent": { "label": "", "task": "t" } }), "agent.label"),
        (json!({ "task": Value::Null }), "task"),
        (json!({ "task": { "title": "" } }), "task.title"),
        (json!({ "task": { "title": "t", "tags": [" "] } }), "task.tags"),
    ] {
        let body = app.graphql(CREATE, json!({ "i": with(changes.clone()) })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{changes}: {body}");
        assert!(error_message(&body).starts_with(field), "{changes}: {}", error_message(&body));
    }
    let key = operator_key(&app, "not-an-admin").await;
    let (_, body) = app.graphql_as(Some(&key), CREATE, json!({ "i": base })).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let (_, body) = app.graphql_as(Some(&key), "{ schedules { id } }", json!({})).await;
    assert_eq!(body["data"]["schedules"], json!([]), "everyone reads");
    let body = app.graphql(RUN_NOW, json!({ "id": uuid::Uuid::new_v4().to_string() })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}

#[tokio::test]
async fn at_most_five_hundred_schedules() {
    let app = spawn_app().await;
    let input = json!({ "name": "n", "cron": "0 0 1 1 *", "action": "CREATE_TASK", "task": { "title": "t" }, "enabled": false });
    let calls = (0..500).map(|_| app.graphql(CREATE, json!({ "i": input })));
    for body in futures_util::future::join_all(calls).await {
        assert!(body.get("errors").is_none(), "{body}");
    }
    let body = app.graphql(CREATE, json!({ "i": input })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(error_message(&body).contains("at most 500"), "{body}");
}
