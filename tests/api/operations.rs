//! Running it in production: `/metrics`, and (below) graceful shutdown.

use serde_json::json;

use crate::helpers::*;

/// `/metrics`, parsed as Prometheus text.
async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, Option<prometheus_parse::Scrape>) {
    let mut request = app.client.get(format!("{}/metrics", app.address));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status != 200 {
        return (status, None);
    }
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    (status, Some(prometheus_parse::Scrape::parse(lines).expect("Prometheus text")))
}

/// The value of series `name` whose labels include `labels` (0 when absent).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_requests() {
    let app = spawn_app().await;
    let (status, first) = scrape(&app, None).await;
    assert_eq!(status, 200);
    let first = first.unwrap();
    let posts = [("route", "/graphql"), ("method", "POST"), ("status", "200")];
    let before = value(&first, "mc_http_requests_total", &posts);

    app.ok("query Board { tasks { totalCount } }", json!({})).await;
    app.create_task(json!({ "title": "counted" })).await;
    let bad = app.graphql("{ tasks(first: 0) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
    let mut ws = app.ws_ready().await;
    ws.subscribe("s", "subscription { taskUpdated { kind } }", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let (_, after) = scrape(&app, None).await;
    let after = after.unwrap();
    assert!(value(&after, "mc_http_requests_total", &posts) >= before + 3.0, "three more POSTs");
    assert_eq!(value(&after, "mc_graphql_operations_total", &[("type", "query"), ("name", "Board")]), 1.0);
    assert!(value(&after, "mc_graphql_operations_total", &[("type", "mutation")]) >= 1.0);
    assert_eq!(value(&after, "mc_graphql_errors_total", &[("code", "BAD_USER_INPUT")]), 1.0);
    assert_eq!(value(&after, "mc_ws_connections", &[]), 1.0);
    assert_eq!(value(&after, "mc_subscriptions_active", &[]), 1.0);
    assert!(value(&after, "mc_events_published_total", &[]) >= 2.0, "the task and its activity");
    assert!(value(&after, "mc_agent_runtime_calls_total", &[("method", "list")]) >= 1.0, "the poller's reads");
    assert!(value(&after, "mc_agent_poller_last_success_timestamp_seconds", &[]) > 1.7e9);
    assert!(value(&after, "mc_db_pool_connections", &[]) >= 1.0);
    assert!(after.samples.iter().any(|s| s.metric == "mc_http_request_duration_seconds"), "a latency histogram");
    assert!(after.samples.iter().any(|s| s.metric == "mc_db_write_wait_seconds"));

    ws.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, closed) = scrape(&app, None).await;
    let closed = closed.unwrap();
    assert_eq!(value(&closed, "mc_ws_connections", &[]), 0.0, "the gauge follows the socket");
    assert_eq!(value(&closed, "mc_subscriptions_active", &[]), 0.0);
}

#[tokio::test]
async fn a_metrics_token_closes_the_endpoint_to_anyone_without_it() {
    let app = spawn_app_with(|c| c.metrics_token = Some("scrape-me".into()), None).await;
    assert_eq!(scrape(&app, None).await.0, 401);
    assert_eq!(scrape(&app, Some("wrong")).await.0, 401);
    assert_eq!(scrape(&app, Some(&app.token)).await.0, 401, "an API token is not the metrics token");
    assert_eq!(scrape(&app, Some("scrape-me")).await.0, 200);
}

/// Sends `signal` (`TERM`, `INT`) to `instance`'s process.
async fn signal(instance: &Instance, signal: &str) {
    let pid = instance.child.id().expect("running").to_string();
    let sent = tokio::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().await.unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// A `spawnAgent` that the hanging runtime holds until its call timeout (or the server's exit).
async fn held_request(client: reqwest::Client, url: String, token: String) {
    let query = json!({ "query": "mutation { spawnAgent(input: {label: \"x\", task: \"y\"}) { id } }" });
    // Cut off when the server exits at once: that is what is tested, not an error.
    let _ = client.post(format!("{url}/graphql")).bearer_auth(token).json(&query).send().await;
}

/// Starts an instance with `env` and puts a held request in flight on it.
async fn start_holding(env: &[(&str, String)], workdir: &std::path::Path) -> (Instance, tokio::task::JoinHandle<()>) {
    let instance = start(env, workdir).await;
    let client = reqwest::Client::new();
    let token = login_at(&client, &instance.url(), PASSWORD).await;
    let held = tokio::spawn(held_request(client, instance.url(), token));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    (instance, held)
}

/// Waits (up to `limit`) for `instance` to exit; its exit code.
async fn exit_code(instance: &mut Instance, limit: std::time::Duration) -> Option<i32> {
    let status = tokio::time::timeout(limit, instance.child.wait()).await.expect("the server exits in time").unwrap();
    status.code()
}

#[tokio::test]
async fn shutting_down_closes_sockets_with_1001_and_lets_an_in_flight_request_finish() {
    use std::sync::Arc;
    use std::time::Duration;
    let mut app = spawn_app_with(|_| {}, Some(Arc::new(crate::hardening::SlowTranscripts))).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("a", "subscription { activity { id } }", json!({})).await;
    // A request that takes a second (the runtime reads the transcript slowly).
    let (client, address, token) = (app.client.clone(), app.address.clone(), app.token.clone());
    let slow = tokio::spawn(async move {
        post_graphql(&client, &address, Some(&token), "{ agents { transcript { text } } }", json!({})).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.begin_shutdown();
    match ws.next_within(Duration::from_secs(3)).await {
        Err(WsEnd::Closed(code, reason)) => {
            assert_eq!(code, Some(1001), "going away: {reason}");
            assert!(started.elapsed() < Duration::from_millis(900), "at once, not after the slow request");
        }
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "the in-flight request completes: {body}");
    assert!(body["data"]["agents"].is_array(), "{body}");
    app.shut_down().await.expect("a clean stop");
    let refused = app.client.get(format!("{}/health", app.address)).send().await;
    assert!(refused.is_err(), "no longer accepting");
}

#[tokio::test]
async fn a_signal_stops_the_server_with_status_0_and_a_second_one_at_once() {
    use std::time::Duration;
    let workdir = std::env::temp_dir().join(format!("mc-signal-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let db = |name: &str| ("DATABASE_URL", format!("sqlite://{}?mode=rwc", workdir.join(name).display()));
    let mut quiet = start(&[db("a.db"), ("MC_AGENT_RUNTIME", "none".into())], &workdir).await;
    let mut ws = ws_ready_on(quiet.port, &login_at(&reqwest::Client::new(), &quiet.url(), PASSWORD).await).await;
    signal(&quiet, "TERM").await;
    assert!(matches!(ws.next_within(Duration::from_secs(5)).await, Err(WsEnd::Closed(Some(1001), _))));
    assert_eq!(exit_code(&mut quiet, Duration::from_secs(10)).await, Some(0), "a graceful stop is a success");

    // A request held by a runtime that never answers (its CLI hangs until the call timeout):
    // the first signal waits for it, the second does not.
    let home = crate::agents::ClawdbotHome::new();
    let env = [
        db("b.db"),
        ("MC_AGENT_RUNTIME", "clawdbot".into()),
        ("CLAWDBOT_STATE_DIR", home.dir.display().to_string()),
        ("CLAWDBOT_BIN", home.bin.display().to_string()),
        ("OPENCLAW_GATEWAY_URL", format!("ws://127.0.0.1:{}", free_port())),
        ("FAKE_CLAWDBOT_MODE", "hang".into()),
        ("MC_AGENT_CALL_TIMEOUT", "4s".into()),
    ];
    let (mut held, spawn) = start_holding(&env, &workdir).await;
    signal(&held, "TERM").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(held.alive(), "the first signal waits for the request in flight");
    let second = std::time::Instant::now();
    signal(&held, "TERM").await;
    assert_eq!(exit_code(&mut held, Duration::from_secs(2)).await, Some(130), "the second exits at once");
    assert!(second.elapsed() < Duration::from_secs(2));
    let _ = spawn.await;

    // A request held longer than --shutdown-timeout does not hold the exit.
    let mut env = env.to_vec();
    env[0] = db("c.db");
    env.push(("MC_AGENT_CALL_TIMEOUT", "20s".into()));
    env.push(("MC_SHUTDOWN_TIMEOUT", "1s".into()));
    let (mut bounded, spawn) = start_holding(&env, &workdir).await;
    let signalled = std::time::Instant::now();
    signal(&bounded, "TERM").await;
    assert_eq!(exit_code(&mut bounded, Duration::from_secs(10)).await, Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(8), "about the shutdown timeout, not the 20 s call");
    spawn.abort();
    let _ = std::fs::remove_dir_all(&workdir);
}
