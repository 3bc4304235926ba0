//! Running it in production: `/metrics`, and (below) shutdown and backups.

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
