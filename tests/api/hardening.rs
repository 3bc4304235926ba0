//! Abuse and bad input: every limit answers with the right status and code, and the server
//! keeps serving normal requests afterwards.

use std::sync::Arc;
use std::time::Duration;

use mission_control::agents::runtime::{
    AgentInfo, AgentRuntime, AgentState, RunHandle, RunOutcome, RuntimeError, SpawnRequest, TranscriptEntry, Usage,
};

use serde_json::{Value, json};

use crate::helpers::*;

/// POSTs a raw body with `content_type`; returns status, headers and JSON body (or null).
pub async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn still_serving(app: &TestApp) {
    let data = app.ok("{ tasks { totalCount } }", json!({})).await;
    assert!(data["tasks"]["totalCount"].is_i64());
}

#[tokio::test]
async fn deep_wide_and_huge_queries_are_refused_with_codes() {
    let app = spawn_app().await;
    // 50 levels through the Task -> Agent -> Task cycle.
    let mut deep = String::from("id");
    for i in 0..24 {
        deep = if i % 2 == 0 { format!("agent {{ {deep} }}") } else { format!("tasks {{ {deep} }}") };
    }
    let body = app.graphql(&format!("{{ tasks {{ edges {{ node {{ {deep} }} }} }} }}"), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");

    let aliases: String = (0..1000).map(|i| format!("a{i}: __typename ")).collect();
    let body = app.graphql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX");
    assert!(error_message(&body).contains("aliases"));

    let roots: String = (0..60).map(|_| "feedStats { totalActivities } ").collect();
    let body = app.graphql(&format!("{{ {roots} }}"), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");

    let costly = "{ tasks(first: 100) { edges { node { agent { metricsHistory(first: 100) { edges { node { id tokens } } } } } } } }";
    let body = app.graphql(costly, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");

    let padding = " ".repeat(100_001);
    let body = app.graphql(&format!("{{ tasks {{ totalCount }} }}{padding}"), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_LARGE");
    still_serving(&app).await;
}

#[tokio::test]
async fn batches_are_capped_at_ten_operations() {
    let app = spawn_app().await;
    let one = json!({ "query": "{ tasks { totalCount } }" });
    let (status, _, body) =
        post_raw(&app, "application/json", serde_json::to_vec(&vec![one.clone(); 2]).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    let (status, _, body) = post_raw(&app, "application/json", serde_json::to_vec(&vec![one; 100]).unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "BATCH_TOO_LARGE");
    still_serving(&app).await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ tasks { totalCount } }", "variables": { "blob": "x".repeat(2 * 1024 * 1024) } });
    let (status, _, body) = post_raw(&app, "application/json", serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");
    still_serving(&app).await;
}

#[tokio::test]
async fn get_runs_queries_but_refuses_mutations() {
    let app = spawn_app().await;
    let get = |q: &str| {
        app.client
            .get(format!("{}/graphql", app.address))
            .query(&[("query", q)])
            .bearer_auth(&app.token)
            .header("accept", "application/json")
            .send()
    };
    let response = get("{ tasks { totalCount } }").await.unwrap();
    assert_eq!(response.status(), 200);
    let response = get("mutation { createTask(input: {title: \"via GET\"}) { id } }").await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(app.ok("{ tasks { totalCount } }", json!({})).await["tasks"]["totalCount"], 0);
}

#[tokio::test]
async fn non_json_posts_are_refused_so_forms_cannot_forge_requests() {
    let app = spawn_app().await;
    let mutation = br#"{"query":"mutation { createTask(input: {title: \"csrf\"}) { id } }"}"#.to_vec();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""] {
        let (status, _, body) = post_raw(&app, content_type, mutation.clone()).await;
        assert_eq!(status, 415, "{content_type}");
        assert_eq!(error_code(&body), "UNSUPPORTED_MEDIA_TYPE");
    }
    assert_eq!(app.ok("{ tasks { totalCount } }", json!({})).await["tasks"]["totalCount"], 0);
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8_are_400_not_a_crash() {
    let app = spawn_app().await;
    for body in [
        b"{\"query\": ".to_vec(),
        b"[1, 2".to_vec(),
        vec![0xff, 0xfe, 0x7b],
        b"{\"query\": 42}".to_vec(),
        b"null".to_vec(),
    ] {
        let (status, _, json) = post_raw(&app, "application/json", body.clone()).await;
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(&body));
        assert!(json["errors"][0]["message"].is_string());
        assert_eq!(error_code(&json), "BAD_REQUEST");
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn the_sixth_login_in_a_minute_is_429_with_retry_after() {
    let app = spawn_app().await; // spawn_app logged in once
    for _ in 0..4 {
        assert_eq!(app.login(json!({ "password": "wrong" })).await.status(), 401);
    }
    let response = app.login(json!({ "password": PASSWORD })).await;
    assert_eq!(response.status(), 429, "even the right password is refused once over the limit");
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    still_serving(&app).await;
}

#[tokio::test]
async fn requests_per_token_and_sockets_per_address_are_limited() {
    let app = spawn_app_with(
        |c| {
            c.request_rate_limit = 3;
            c.ws_rate_limit = 2;
        },
        None,
    )
    .await;
    for _ in 0..3 {
        app.ok("{ tasks { totalCount } }", json!({})).await;
    }
    let (status, body) = app.graphql_as(Some(&app.token), "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(error_code(&body), "RATE_LIMITED");
    // Another token has a budget of its own.
    let other = app.login_token(PASSWORD).await;
    let (status, _) = app.graphql_as(Some(&other), "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(status, 200);

    let _a = app.ws("graphql-transport-ws").await;
    let _b = app.ws("graphql-transport-ws").await;
    let refused = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/graphql/ws", app.port)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
}

#[tokio::test]
async fn cors_allows_local_origins_by_default_and_only_the_list_when_given() {
    let app = spawn_app().await;
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight(&app, "http://localhost:5173").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://localhost:5173");
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let evil = preflight(&app, "https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let sneaky = preflight(&app, "http://localhost.evil.example").await.unwrap();
    assert!(sneaky.headers().get("access-control-allow-origin").is_none());

    let listed = spawn_app_with(|c| c.cors_origins = vec!["https://board.example.com".into()], None).await;
    let ok = preflight(&listed, "https://board.example.com").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://board.example.com");
    let local = preflight(&listed, "http://localhost:5173").await.unwrap();
    assert!(local.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for path in ["/health", "/graphql", "/api/auth/verify"] {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
    }
    let page = app.client.get(format!("{}/graphql", app.address)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self';") && !csp.contains("http") && !csp.contains("unsafe-eval"), "{csp}");
    let html = page.text().await.unwrap();
    // Everything the page loads comes from this server.
    let mut loaded = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            loaded.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    assert_eq!(loaded.len(), 6, "{loaded:?}");
    let mut scripts = String::new();
    for path in &loaded {
        assert!(path.starts_with("/graphiql/assets/"), "{path} is not served here");
        let asset = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let media = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let wanted = if path.ends_with(".js") { "text/javascript" } else { "text/css" };
        assert!(media.starts_with(wanted), "{path}: {media}");
        if path.ends_with("page.js") {
            scripts = asset.text().await.unwrap();
        }
    }
    assert!(scripts.contains("/graphql/ws") && scripts.contains("/api/auth/login"));
    let missing = app.client.get(format!("{}/graphiql/assets/../Cargo.toml", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn production_mode_hides_the_schema_and_refuses_weak_settings() {
    let weak = mission_control::config::Config::for_tests("sqlite::memory:");
    let mut weak = weak;
    weak.production = true;
    assert!(mission_control::startup::App::build(weak).await.is_err(), "default password refused");

    let app = spawn_production_app().await;
    let body = app.graphql("{ __schema { types { name } } }", json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "introspection off: {body}");
    let body = app.graphql("{ taks { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(!error_message(&body).contains("Did you mean"), "no suggestions: {body}");
    let page = app.client.get(format!("{}/graphql", app.address)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 404);
    let asset = app.client.get(format!("{}/graphiql/assets/page.js", app.address)).send().await.unwrap();
    assert_eq!(asset.status(), 404, "nor its files");
    let health = app.client.get(format!("{}/health", app.address)).send().await.unwrap();
    assert!(health.headers().contains_key("strict-transport-security"));
}

/// A runtime with one agent whose transcript takes a second to read.
/// A runtime whose transcripts take a second to read: a slow request.
pub struct SlowTranscripts;

#[async_trait::async_trait]
impl AgentRuntime for SlowTranscripts {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn list(&self) -> Result<Vec<AgentInfo>, RuntimeError> {
        Ok(vec![AgentInfo {
            id: "agent:main:slow".into(),
            label: None,
            status: AgentState::Idle,
            model: None,
            session_id: None,
            updated_at: None,
            input_tokens: None,
            output_tokens: None,
            usage: Usage::default(),
            runtime_status: None,
        }])
    }
    async fn spawn(&self, _: SpawnRequest) -> Result<RunHandle, RuntimeError> {
        Err(RuntimeError::Failed("unused".into()))
    }
    async fn send(&self, _: &str, _: &str) -> Result<RunHandle, RuntimeError> {
        Err(RuntimeError::Failed("unused".into()))
    }
    async fn kill(&self, _: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::Failed("unused".into()))
    }
    async fn transcript(&self, _: &str, _: usize) -> Result<Vec<TranscriptEntry>, RuntimeError> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Vec::new())
    }
    async fn wait(&self, _: &str, _: u64) -> Result<RunOutcome, RuntimeError> {
        Ok(RunOutcome::Timeout)
    }
}

#[tokio::test]
async fn a_request_over_its_time_budget_is_stopped_with_timeout() {
    // A budget well below the request's own time: the timer's millisecond grain cannot let a
    // fast request slip under it.
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_millis(50), Some(Arc::new(SlowTranscripts))).await;
    let (status, body) = app.graphql_as(Some(&app.token), "{ agents { transcript { text } } }", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "TIMEOUT");
}

#[tokio::test]
async fn production_from_the_environment_accepts_the_usual_spellings_and_says_what_to_set() {
    for value in ["1", "true", "yes", "on"] {
        let (ok, stderr) = run_to_exit(&[], &[("MC_PRODUCTION", value)]).await;
        assert!(!ok, "MC_PRODUCTION={value} must refuse the default password");
        assert!(stderr.contains("set MC_PASSWORD"), "MC_PRODUCTION={value}: {stderr}");
    }
}
