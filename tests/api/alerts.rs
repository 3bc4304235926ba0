//! Alert rules, notifications and webhooks, with a real receiver: an axum server on 127.0.0.1
//! inside the test (private addresses are allowed for it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use mission_control::agents::simulated::{SimulatedConfig, SimulatedRuntime};
use mission_control::config::Config;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

const CREATE_WEBHOOK: &str =
    "mutation($i: WebhookInput!) { createWebhook(input: $i) { secret webhook { id url events enabled } } }";
const DELIVERIES: &str = "{ webhooks { id enabled disabledReason deliveries(first: 50) { id event status attempts responseStatus lastError deliveredAt } } }";
const CREATE_RULE: &str = "mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id name kind thresholdUsd window enabled lastFiredAt } }";
const NOTIFICATIONS: &str = "query($u: Boolean, $f: Int, $a: String) { notifications(unreadOnly: $u, first: $f, after: $a) { edges { cursor node { id kind severity title body ruleId targetType targetId readAt } } pageInfo { hasNextPage endCursor } } }";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver answering with the statuses of its script, then 200.
#[derive(Clone)]
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Receiver {
        Self::start_on(free_port(), script).await
    }

    async fn start_on(port: u16, script: &[u16]) -> Receiver {
        let receiver =
            Receiver { port, got: Arc::default(), script: Arc::new(Mutex::new(script.iter().copied().collect())) };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                state.got.lock().unwrap().push(Received { headers, body });
                let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The requests for `event`.
    fn of(&self, event: &str) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.header("x-mc-event") == event).collect()
    }

    /// Waits until `n` requests for `event` arrived.
    async fn wait_for(&self, event: &str, n: usize) -> Vec<Received> {
        for _ in 0..500 {
            let got = self.of(event);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} {event} deliveries expected; got {:?}", self.got());
    }
}

/// Private receivers allowed; retries quick.
fn alerting(config: &mut Config) {
    config.webhook_allow_private = true;
    config.webhook_retry_first = Duration::from_millis(100);
}

async fn app() -> TestApp {
    spawn_app_with(alerting, None).await
}

async fn webhook(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let data = app.ok(CREATE_WEBHOOK, json!({ "i": { "url": url, "events": events } })).await;
    let created = &data["createWebhook"];
    (created["webhook"]["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
}

async fn deliveries(app: &TestApp) -> Value {
    app.ok(DELIVERIES, json!({})).await["webhooks"][0].clone()
}

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

async fn notifications(app: &TestApp) -> Vec<Value> {
    let data = app.ok(NOTIFICATIONS, json!({ "f": 100 })).await;
    data["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

#[tokio::test]
async fn deliveries_are_signed_with_the_secret_and_carry_the_contract_headers() {
    let app = app().await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = webhook(&app, &receiver.url(), &["task.created", "comment.created"]).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = app.create_task(json!({ "title": "Ship it", "priority": "HIGH" })).await;
    app.ok(
        "mutation($t: ID!) { addComment(taskId: $t, author: \"ann\", content: \"on it\") { id } }",
        json!({ "t": id }),
    )
    .await;

    let created = receiver.wait_for("task.created", 1).await.remove(0);
    let body = created.json();
    assert_eq!(body["event"], "task.created");
    assert_eq!(body["data"]["id"], id.as_str());
    assert_eq!(body["data"]["title"], "Ship it");
    assert_eq!(body["data"]["priority"], "HIGH");
    assert_eq!(created.header("x-mc-delivery"), body["id"].as_str().unwrap(), "the envelope id is the delivery id");
    let timestamp = created.header("x-mc-timestamp");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    let expected = format!("sha256={}", hmac_hex(&secret, &format!("{timestamp}.{}", created.body)));
    assert_eq!(created.header("x-mc-signature"), expected, "HMAC-SHA256 of <timestamp>.<raw body>");
    assert_eq!(created.header("content-type"), "application/json");

    let comment = receiver.wait_for("comment.created", 1).await.remove(0).json();
    assert_eq!(comment["data"]["taskId"], id.as_str());
    assert_eq!(comment["data"]["content"], "on it");
    // Not subscribed: task.updated (the comment moved the task's updatedAt) is not sent.
    assert!(receiver.of("task.updated").is_empty());

    let hook = eventually(
        "both delivered",
        || deliveries(&app),
        |w| w["deliveries"].as_array().unwrap().iter().filter(|d| d["status"] == "DELIVERED").count() == 2,
    )
    .await;
    for delivery in hook["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["responseStatus"], 200);
        assert!(delivery["deliveredAt"].is_string());
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_one_delivery_after_three_attempts_with_one_id() {
    let app = app().await;
    let receiver = Receiver::start(&[500, 500]).await;
    webhook(&app, &receiver.url(), &["*"]).await;
    app.create_task(json!({ "title": "retry me" })).await;
    let hook = eventually("delivered", || deliveries(&app), |w| w["deliveries"][0]["status"] == "DELIVERED").await;
    let delivery = &hook["deliveries"][0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["responseStatus"], 200);
    let got = receiver.of("task.created");
    assert_eq!(got.len(), 3, "two failures and a success");
    assert!(
        got.iter().all(|r| r.header("x-mc-delivery") == delivery["id"].as_str().unwrap()),
        "one id on every attempt"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.of("task.created").len(), 3, "nothing after it was delivered");
}

#[tokio::test]
async fn a_delivery_is_failed_after_its_last_attempt() {
    let app = spawn_app_with(
        |c| {
            alerting(c);
            c.webhook_attempts = 2;
        },
        None,
    )
    .await;
    let receiver = Receiver::start(&[503, 503, 503]).await;
    webhook(&app, &receiver.url(), &["task.created"]).await;
    app.create_task(json!({ "title": "doomed" })).await;
    let hook = eventually("failed", || deliveries(&app), |w| w["deliveries"][0]["status"] == "FAILED").await;
    assert_eq!(hook["deliveries"][0]["attempts"], 2);
    assert_eq!(hook["deliveries"][0]["responseStatus"], 503);
    assert!(hook["deliveries"][0]["lastError"].as_str().unwrap().contains("503"), "{hook}");
    assert!(hook["enabled"] == true, "a failing receiver is not disabled");
}

#[tokio::test]
async fn a_receiver_answering_410_gone_disables_its_webhook() {
    let app = app().await;
    let receiver = Receiver::start(&[410]).await;
    webhook(&app, &receiver.url(), &["task.created"]).await;
    app.create_task(json!({ "title": "first" })).await;
    let hook = eventually("disabled", || deliveries(&app), |w| w["enabled"] == false).await;
    assert_eq!(hook["deliveries"][0]["status"], "FAILED");
    assert_eq!(hook["deliveries"][0]["responseStatus"], 410);
    assert!(hook["disabledReason"].as_str().unwrap().contains("410"));
    app.create_task(json!({ "title": "second" })).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.of("task.created").len(), 1, "nothing more is sent");
    assert_eq!(deliveries(&app).await["deliveries"].as_array().unwrap().len(), 1, "nothing more is queued");
}

#[tokio::test]
async fn a_receiver_down_while_the_server_restarts_still_gets_the_event() {
    let url = fresh_database_url().await;
    let port = free_port();
    let first = spawn_app_on(&url, false, alerting, None).await;
    webhook(&first, &format!("http://127.0.0.1:{port}/hook"), &["task.created"]).await;
    let id = first.create_task(json!({ "title": "while down" })).await;
    let pending = eventually("a failed attempt", || deliveries(&first), |w| w["deliveries"][0]["attempts"] == 1).await;
    assert_eq!(pending["deliveries"][0]["status"], "PENDING", "{pending}");
    let delivery = pending["deliveries"][0]["id"].as_str().unwrap().to_owned();
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let receiver = Receiver::start_on(port, &[]).await;
    let second = spawn_app_on(&url, true, alerting, None).await;
    let got = receiver.wait_for("task.created", 1).await;
    assert_eq!(got[0].json()["data"]["id"], id.as_str());
    assert_eq!(got[0].header("x-mc-delivery"), delivery, "the delivery queued before the restart");
    eventually("delivered", || deliveries(&second), |w| w["deliveries"][0]["status"] == "DELIVERED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 1);
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_each_event_once() {
    let url = fresh_database_url().await;
    let a = spawn_app_on(&url, false, alerting, None).await;
    let b = spawn_app_on(&url, true, alerting, None).await;
    let receiver = Receiver::start(&[]).await;
    webhook(&a, &receiver.url(), &["task.created"]).await;
    // B hears of the new webhook when it next re-reads them.
    tokio::time::sleep(mission_control::alerts::REFRESH + Duration::from_millis(500)).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let on = if i % 2 == 0 { &a } else { &b };
        ids.push(on.create_task(json!({ "title": format!("t{i}") })).await);
    }
    let got = receiver.wait_for("task.created", 20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_ids: Vec<String> =
        receiver.got().iter().map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got.len(), 20);
    assert_eq!(got_ids.len(), 20, "no duplicate: {got_ids:?}");
    for id in &ids {
        assert_eq!(got_ids.iter().filter(|g| *g == id).count(), 1, "{id} once");
    }
}

#[tokio::test]
async fn bad_webhooks_and_rules_are_refused_naming_the_field() {
    let app = spawn_app_with(
        |c| {
            c.max_webhooks = 1;
            c.max_alert_rules = 1;
        },
        None,
    )
    .await;
    let cases = [
        (json!({ "url": "https://93.184.216.34/x", "events": ["task.exploded"] }), "events"),
        (json!({ "url": "https://93.184.216.34/x", "events": [] }), "events"),
        (json!({ "url": "ftp://93.184.216.34/x", "events": ["*"] }), "url"),
        (json!({ "url": format!("https://93.184.216.34/{}", "a".repeat(2048)), "events": ["*"] }), "url"),
        (json!({ "url": "http://127.0.0.1:9/hook", "events": ["*"] }), "url"),
        (json!({ "url": "http://10.0.0.8/hook", "events": ["*"] }), "url"),
        (json!({ "url": "http://169.254.169.254/latest", "events": ["*"] }), "url"),
        (json!({ "url": "http://localhost:9/hook", "events": ["*"] }), "url"),
    ];
    for (input, field) in cases {
        let body = app.graphql(CREATE_WEBHOOK, json!({ "i": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert!(error_message(&body).starts_with(&format!("{field}:")), "{input}: {body}");
    }
    assert!(
        app.ok("{ webhooks { id } }", json!({})).await["webhooks"].as_array().unwrap().is_empty(),
        "nothing stored"
    );

    let rules = [
        (json!({ "name": "b", "kind": "COST_BUDGET", "window": "DAY" }), "thresholdUsd"),
        (json!({ "name": "b", "kind": "COST_BUDGET", "thresholdUsd": -1, "window": "DAY" }), "thresholdUsd"),
        (json!({ "name": "b", "kind": "COST_BUDGET", "thresholdUsd": 5 }), "window"),
        (json!({ "name": "f", "kind": "AGENT_FAILED", "thresholdUsd": 5 }), "thresholdUsd"),
        (json!({ "name": "", "kind": "AGENT_FAILED" }), "name"),
    ];
    for (input, field) in rules {
        let body = app.graphql(CREATE_RULE, json!({ "i": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert!(error_message(&body).starts_with(&format!("{field}:")), "{input}: {body}");
    }
    let body = app.graphql(CREATE_RULE, json!({ "i": { "name": "x", "kind": "NOT_A_KIND" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    // The limits.
    app.ok(CREATE_RULE, json!({ "i": { "name": "one", "kind": "AGENT_FAILED" } })).await;
    let body = app.graphql(CREATE_RULE, json!({ "i": { "name": "two", "kind": "AGENT_KILLED" } })).await;
    assert!(error_message(&body).contains("at most 1 alert rules"), "{body}");
    let public = json!({ "url": "http://93.184.216.34/hook", "events": ["*"] });
    app.ok(CREATE_WEBHOOK, json!({ "i": public })).await;
    let body = app.graphql(CREATE_WEBHOOK, json!({ "i": public })).await;
    assert!(error_message(&body).contains("at most 1 webhooks"), "{body}");
    let body = app.graphql("mutation { markNotificationsRead(ids: [\"nope\"]) }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn a_budget_fires_once_per_window_when_recorded_spend_reaches_it() {
    let app = app().await;
    let receiver = Receiver::start(&[]).await;
    webhook(&app, &receiver.url(), &["alert.fired"]).await;
    let rule = app
        .ok(
            CREATE_RULE,
            json!({ "i": { "name": "daily", "kind": "COST_BUDGET", "thresholdUsd": 1.0, "window": "DAY" } }),
        )
        .await["createAlertRule"]
        .clone();
    assert!(rule["lastFiredAt"].is_null());
    let mut ws = app.ws_ready().await;
    ws.subscribe("n", "subscription { notification { id kind severity title ruleId } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let record =
        "mutation($c: Float!) { recordAgentMetrics(agentId: \"agent-1\", input: { tokens: 100, cost: $c }) { id } }";
    app.ok(record, json!({ "c": 0.6 })).await;
    assert!(notifications(&app).await.is_empty(), "under the budget");
    app.ok(record, json!({ "c": 0.5 })).await;
    let fired = notifications(&app).await;
    assert_eq!(fired.len(), 1, "fired with the change that crossed the threshold: {fired:?}");
    assert_eq!(fired[0]["kind"], "COST_BUDGET");
    assert_eq!(fired[0]["severity"], "WARNING");
    assert_eq!(fired[0]["ruleId"], rule["id"]);
    assert!(fired[0]["title"].as_str().unwrap().contains("daily"), "{}", fired[0]);
    let live = ws.next_json().await.expect("the notification, live");
    assert_eq!(live["payload"]["data"]["notification"]["id"], fired[0]["id"]);

    app.ok(record, json!({ "c": 2.0 })).await;
    app.ok(record, json!({ "c": 2.0 })).await;
    let alerts = receiver.wait_for("alert.fired", 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(notifications(&app).await.len(), 1, "more spend in the window fires nothing more");
    assert_eq!(receiver.of("alert.fired").len(), 1, "one alert.fired webhook");
    assert_eq!(alerts[0].json()["data"]["id"], fired[0]["id"]);
    let rules = app.ok("{ alertRules { lastFiredAt } }", json!({})).await;
    assert!(rules["alertRules"][0]["lastFiredAt"].is_string());
    // The feed tells of it too.
    let feed = app.ok("{ feed(first: 5) { edges { node { action } } } }", json!({})).await;
    assert!(feed.to_string().contains("alert_fired"), "{feed}");
}

#[tokio::test]
async fn task_rules_fire_on_assignment_and_when_overdue_once_each() {
    let app = app().await;
    app.ok(CREATE_RULE, json!({ "i": { "name": "to bob", "kind": "TASK_ASSIGNED", "agentId": "bob" } })).await;
    app.ok(CREATE_RULE, json!({ "i": { "name": "late", "kind": "TASK_OVERDUE" } })).await;
    let id = app.create_task(json!({ "title": "for bob", "assignedAgent": "bob" })).await;
    app.create_task(json!({ "title": "for ann", "assignedAgent": "ann" })).await;
    let update = "mutation($id: ID!, $i: UpdateTaskInput!) { updateTask(id: $id, input: $i) { id } }";
    app.ok(update, json!({ "id": id, "i": { "title": "for bob, renamed" } })).await;
    let fired = notifications(&app).await;
    assert_eq!(fired.len(), 1, "only bob's rule, once: {fired:?}");
    assert_eq!((fired[0]["kind"].as_str(), fired[0]["targetId"].as_str()), (Some("TASK_ASSIGNED"), Some(id.as_str())));
    assert_eq!(fired[0]["severity"], "INFO");

    let other = app.create_task(json!({ "title": "moved to bob" })).await;
    app.ok(update, json!({ "id": other, "i": { "assignedAgent": "bob" } })).await;
    assert_eq!(notifications(&app).await.len(), 2, "an assignment by update counts");

    let late = app.create_task(json!({ "title": "was due", "dueDate": "2026-01-01T00:00:00Z" })).await;
    app.ok(update, json!({ "id": late, "i": { "description": "still late" } })).await;
    let fired = notifications(&app).await;
    let overdue: Vec<&Value> = fired.iter().filter(|n| n["kind"] == "TASK_OVERDUE").collect();
    assert_eq!(overdue.len(), 1, "{fired:?}");
    assert_eq!(overdue[0]["targetId"], late.as_str());
    assert_eq!(overdue[0]["targetType"], "task");
}

#[tokio::test]
async fn agent_rules_fire_once_when_an_agent_fails_or_is_killed() {
    let runtime =
        SimulatedRuntime::new(SimulatedConfig { seed: Some(3), step: Duration::from_millis(20), failure_rate: 1.0 });
    let app = spawn_app_with(
        |c| {
            alerting(c);
            c.agent_poll_interval = Duration::from_millis(50);
        },
        Some(Arc::new(runtime)),
    )
    .await;
    let receiver = Receiver::start(&[]).await;
    webhook(&app, &receiver.url(), &["agent.status_changed"]).await;
    app.ok(CREATE_RULE, json!({ "i": { "name": "failures", "kind": "AGENT_FAILED" } })).await;
    app.ok(CREATE_RULE, json!({ "i": { "name": "kills", "kind": "AGENT_KILLED" } })).await;
    let spawn = "mutation($l: String!) { spawnAgent(input: { label: $l, task: \"work\" }) { id } }";
    let failing = app.ok(spawn, json!({ "l": "doomed" })).await["spawnAgent"]["id"].as_str().unwrap().to_owned();
    let fired = eventually(
        "the failure noticed",
        || async { json!(notifications(&app).await) },
        |n| n.as_array().unwrap().iter().any(|n| n["kind"] == "AGENT_FAILED"),
    )
    .await;
    let failure = fired.as_array().unwrap().iter().find(|n| n["kind"] == "AGENT_FAILED").unwrap().clone();
    assert_eq!(failure["targetId"], failing.as_str());
    assert_eq!(failure["severity"], "CRITICAL");
    assert!(failure["title"].as_str().unwrap().contains("doomed"), "{failure}");
    let changes = receiver.wait_for("agent.status_changed", 1).await;
    let failed_change =
        changes.iter().map(Received::json).find(|c| c["data"]["status"] == "FAILED").expect("FAILED sent");
    assert_eq!(failed_change["data"]["id"], failing.as_str());

    // Spawned agents run, then fail; kill one while it runs.
    let victim = app.ok(spawn, json!({ "l": "victim" })).await["spawnAgent"]["id"].as_str().unwrap().to_owned();
    app.ok("mutation($id: ID!) { killAgent(id: $id) { status } }", json!({ "id": victim })).await;
    let killed = eventually(
        "the kill noticed",
        || async { json!(notifications(&app).await) },
        |n| n.as_array().unwrap().iter().any(|n| n["kind"] == "AGENT_KILLED"),
    )
    .await;
    let kill = killed.as_array().unwrap().iter().find(|n| n["kind"] == "AGENT_KILLED").unwrap();
    assert_eq!(kill["targetId"], victim.as_str());
    // Many polls later, still once each.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = notifications(&app).await;
    let count = |kind: &str, target: &str| all.iter().filter(|n| n["kind"] == kind && n["targetId"] == target).count();
    assert_eq!(count("AGENT_FAILED", &failing), 1, "{all:?}");
    assert_eq!(count("AGENT_KILLED", &victim), 1, "{all:?}");
}

#[tokio::test]
async fn notifications_page_newest_first_and_are_marked_read() {
    let app = app().await;
    app.ok(CREATE_RULE, json!({ "i": { "name": "any", "kind": "TASK_ASSIGNED" } })).await;
    for i in 0..5 {
        app.create_task(json!({ "title": format!("t{i}"), "assignedAgent": format!("a{i}") })).await;
    }
    let page = app.ok(NOTIFICATIONS, json!({ "f": 2 })).await["notifications"].clone();
    let titles: Vec<String> =
        page["edges"].as_array().unwrap().iter().map(|e| e["node"]["title"].as_str().unwrap().to_owned()).collect();
    assert_eq!(titles.len(), 2);
    assert!(titles[0].contains("t4") && titles[1].contains("t3"), "{titles:?}");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let next =
        app.ok(NOTIFICATIONS, json!({ "f": 10, "a": page["pageInfo"]["endCursor"] })).await["notifications"].clone();
    assert_eq!(next["edges"].as_array().unwrap().len(), 3);

    let first_id = page["edges"][0]["node"]["id"].clone();
    let marked =
        app.ok("mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }", json!({ "ids": [first_id] })).await;
    assert_eq!(marked["markNotificationsRead"], 1);
    let again =
        app.ok("mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }", json!({ "ids": [first_id] })).await;
    assert_eq!(again["markNotificationsRead"], 0, "already read");
    let unread = app.ok(NOTIFICATIONS, json!({ "u": true, "f": 10 })).await["notifications"]["edges"].clone();
    assert_eq!(unread.as_array().unwrap().len(), 4);
    // The counts: of what the filter matches, and of the unread whatever the filter (a badge).
    let counts = "query($u: Boolean) { notifications(unreadOnly: $u, first: 1) { totalCount unreadCount } }";
    let every = app.ok(counts, json!({})).await["notifications"].clone();
    assert_eq!((every["totalCount"].as_i64(), every["unreadCount"].as_i64()), (Some(5), Some(4)));
    let unread_only = app.ok(counts, json!({ "u": true })).await["notifications"].clone();
    assert_eq!((unread_only["totalCount"].as_i64(), unread_only["unreadCount"].as_i64()), (Some(4), Some(4)));
    let all = app.ok("mutation { markNotificationsRead }", json!({})).await;
    assert_eq!(all["markNotificationsRead"], 4);
    let unread = app.ok(NOTIFICATIONS, json!({ "u": true })).await["notifications"]["edges"].clone();
    assert!(unread.as_array().unwrap().is_empty());
    let read = notifications(&app).await;
    assert!(read.iter().all(|n| n["readAt"].is_string()));
    assert_eq!(app.ok(counts, json!({})).await["notifications"]["unreadCount"], 0);
}

#[tokio::test]
async fn tasks_that_fall_overdue_while_untouched_are_found_by_the_sweep() {
    let app = app().await;
    app.ok(CREATE_RULE, json!({ "i": { "name": "late", "kind": "TASK_OVERDUE" } })).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let a = app.create_task(json!({ "title": "due soon", "dueDate": soon })).await;
    let b = app.create_task(json!({ "title": "due soon too", "dueDate": soon })).await;
    app.create_task(json!({ "title": "done anyway", "dueDate": soon, "status": "DONE" })).await;
    assert!(notifications(&app).await.is_empty(), "not overdue yet");
    let deadline = std::time::Instant::now() + mission_control::alerts::watch::OVERDUE_EVERY * 3;
    let fired = loop {
        let fired = notifications(&app).await;
        if fired.len() >= 2 || std::time::Instant::now() > deadline {
            break fired;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut targets: Vec<&str> = fired.iter().map(|n| n["targetId"].as_str().unwrap()).collect();
    targets.sort();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(targets, expected, "each once, the DONE one never: {fired:?}");
    tokio::time::sleep(mission_control::alerts::watch::OVERDUE_EVERY + Duration::from_millis(500)).await;
    assert_eq!(notifications(&app).await.len(), 2, "the next sweep fires nothing again");
}
