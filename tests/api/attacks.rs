//! Requests an attacker would send with a read-only token, each against the real server: the
//! refusal a client sees, and that the same server then still answers `/health` and a normal
//! query. The requests that once crashed or bloated the server run against a server process
//! of its own, so a crash fails the test rather than the test runner, and its memory is read
//! from `/proc`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::helpers::*;

/// A server process on its own SQLite file, with a viewer password.
struct Target {
    instance: Instance,
    client: reqwest::Client,
    viewer: String,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn target(extra: &[(&str, &str)]) -> Target {
    let dir = std::env::temp_dir().join(format!("mc-attack-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut env = vec![
        ("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.join("mc.db").display())),
        ("MC_AGENT_RUNTIME", "none".to_owned()),
        ("MC_VIEWER_PASSWORD", VIEWER_PASSWORD.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let instance = start(&env, &dir).await;
    let client = reqwest::Client::new();
    let viewer = login_at(&client, &instance.url(), VIEWER_PASSWORD).await;
    Target { instance, client, viewer, _dir: TempDir(dir) }
}

impl Target {
    async fn post(&self, query: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/graphql", self.instance.url()))
            .bearer_auth(&self.viewer)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body, started.elapsed())
    }

    async fn get(&self, query: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/graphql", self.instance.url()))
            .query(&[("query", query)])
            .bearer_auth(&self.viewer)
            .header("accept", "application/json")
            .send()
            .await
            .expect("the server answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Still alive, `/health` answers and a normal query runs.
    async fn still_serving(&mut self) {
        assert!(self.instance.alive(), "the server process died: {}", self.log());
        let health = self.client.get(format!("{}/health", self.instance.url())).send().await.expect("health");
        assert_eq!(health.status(), 200);
        let (status, body, _) = self.post("{ tasks { totalCount } }").await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["tasks"]["totalCount"].is_i64(), "{body}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.instance.log).unwrap_or_default()
    }

    async fn ws(&self, protocol: &str) -> WsClient {
        ws_connect(self.instance.port, protocol).await
    }
}

fn nested_list(levels: usize) -> String {
    format!("{{ tasks(filter: {{search: {}\"x\"{}}}) {{ totalCount }} }}", "[".repeat(levels), "]".repeat(levels))
}

fn doubling_fragments(levels: usize) -> String {
    let mut text = String::from("{ ...F0 }\n");
    for i in 0..levels {
        text.push_str(&format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1));
    }
    text.push_str(&format!("fragment F{levels} on Query {{ feedStats {{ totalActivities }} }}\n"));
    text
}

/// `copies` root fields spread over inline fragments nested `levels` deep.
fn nested_inline_roots(copies: usize, levels: usize) -> String {
    let per_level = copies.div_ceil(levels);
    let fields = "feedStats { totalActivities } ".repeat(per_level);
    let mut text = String::new();
    for _ in 0..levels {
        text.push_str("... { ");
        text.push_str(&fields);
    }
    text.push_str(&"} ".repeat(levels));
    format!("{{ {text} }}")
}

/// RSS stays within this much of where it started.
const RSS_SLACK_KIB: u64 = 16 * 1024;

#[tokio::test]
async fn a_list_literal_nested_thousands_deep_is_refused_everywhere_without_a_crash() {
    let mut t = target(&[]).await;
    let before = t.instance.rss_kib();
    for levels in [2_000, 20_000] {
        let query = nested_list(levels);
        let (status, body, took) = t.post(&query).await;
        assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{status} {body}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    // Over GET (a URL of 20,000 levels is longer than clients send).
    let (_, body) = t.get(&nested_list(2_000)).await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");
    // Both WebSocket protocols.
    let query = nested_list(2_000);
    let mut ws = t.ws("graphql-transport-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", t.viewer) } })).await;
    assert_eq!(ws.next_json().await.unwrap()["type"], "connection_ack");
    ws.subscribe("deep", &query, json!({})).await;
    // async-graphql answers a refused subscribe with a `next` carrying the errors, then `complete`.
    let reply = ws.next_json().await.unwrap();
    assert_eq!(reply["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP", "{reply}");
    let mut legacy = t.ws("graphql-ws").await;
    legacy.send(json!({ "type": "connection_init", "payload": { "token": t.viewer } })).await;
    assert_eq!(legacy.next_json().await.unwrap()["type"], "connection_ack");
    legacy.send(json!({ "id": "deep", "type": "start", "payload": { "query": query } })).await;
    let reply = legacy.next_json().await.unwrap();
    assert_eq!(reply["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP", "{reply}");
    t.still_serving().await;
    assert!(t.instance.rss_kib() < before + RSS_SLACK_KIB, "RSS grew from {before} KiB to {}", t.instance.rss_kib());
}

#[tokio::test]
async fn fragments_that_double_at_every_level_are_refused_in_milliseconds_with_flat_memory() {
    let mut t = target(&[]).await;
    let before = t.instance.rss_kib();
    let (_, body, took) = t.post(&doubling_fragments(22)).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(error_message(&body).contains("fragments are expanded"), "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Ten times the size: a chain that deep is refused as such.
    let (_, body, took) = t.post(&doubling_fragments(220)).await;
    assert!(["QUERY_TOO_COMPLEX", "QUERY_TOO_DEEP"].contains(&error_code(&body).as_str()), "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Two at once, while /health stays quick.
    let (twenty_two, thirty) = (doubling_fragments(22), doubling_fragments(30));
    let (a, b, health) = tokio::join!(t.post(&twenty_two), t.post(&thirty), async {
        let started = Instant::now();
        t.client.get(format!("{}/health", t.instance.url())).send().await.map(|_| started.elapsed())
    });
    assert!(a.1["errors"].is_array() && b.1["errors"].is_array());
    assert!(health.expect("health") < Duration::from_secs(2));
    t.still_serving().await;
    assert!(t.instance.rss_kib() < before + RSS_SLACK_KIB, "RSS grew from {before} KiB to {}", t.instance.rss_kib());
}

#[tokio::test]
async fn root_fields_hidden_in_nested_inline_fragments_count_against_the_limit() {
    let mut t = target(&[]).await;
    let before = t.instance.rss_kib();
    let (_, body, took) = t.post(&nested_inline_roots(1_500, 30)).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // 51 through one level of fragments is over the 50-root limit; 50 is fine.
    let (_, body, _) = t.post(&nested_inline_roots(51, 3)).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(error_message(&body).contains("root fields"), "{body}");
    let (_, body, _) = t.post(&nested_inline_roots(48, 3)).await;
    assert!(body["errors"].is_null(), "{body}");
    // Ten times the size is refused too (by its size).
    let (_, body, took) = t.post(&nested_inline_roots(15_000, 30)).await;
    assert!(body["errors"].is_array(), "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    t.still_serving().await;
    assert!(t.instance.rss_kib() < before + RSS_SLACK_KIB, "RSS grew from {before} KiB to {}", t.instance.rss_kib());
}

/// Sends one text message of `total` bytes in frames of `frame` bytes, concurrently with
/// reading; returns the close code the server sent.
async fn send_fragmented(ws: WsClient, total: usize, frame: usize) -> Option<u16> {
    let (mut sink, mut stream) = ws.into_inner().split();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            let n = frame.min(total - sent);
            let opcode = if sent == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            let header = FrameHeader { is_final: sent + n == total, opcode, ..FrameHeader::default() };
            if sink.send(Message::Frame(Frame::from_payload(header, vec![b' '; n].into()))).await.is_err() {
                break;
            }
            sent += n;
        }
    });
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the server closes in time");
    writer.abort();
    code
}

#[tokio::test]
async fn a_huge_websocket_message_is_closed_with_1009_as_it_arrives() {
    let mut t = target(&[]).await;
    let before = t.instance.rss_kib();
    // 50 MB in 4 frames, and in 64 KiB frames, before connection_init, with no token.
    assert_eq!(send_fragmented(t.ws("graphql-transport-ws").await, 50 << 20, (50 << 20) / 4).await, Some(1009));
    assert_eq!(send_fragmented(t.ws("graphql-transport-ws").await, 50 << 20, 64 << 10).await, Some(1009));
    // Four at once.
    let sockets = futures_util::future::join_all((0..4).map(|_| t.ws("graphql-ws"))).await;
    let codes =
        futures_util::future::join_all(sockets.into_iter().map(|ws| send_fragmented(ws, 50 << 20, 1 << 20))).await;
    assert!(codes.iter().all(|c| *c == Some(1009)), "{codes:?}");
    assert!(t.instance.rss_kib() < before + RSS_SLACK_KIB, "RSS grew from {before} KiB to {}", t.instance.rss_kib());

    // Before init the limit is 256 KiB; once acknowledged a 512 KiB message is fine, 2 MiB is not.
    assert_eq!(send_fragmented(t.ws("graphql-transport-ws").await, 300 << 10, 300 << 10).await, Some(1009));
    let mut ws = ws_ready_on(t.instance.port, &t.viewer).await;
    let big = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($p: String) { taskUpdated { taskId } }", "variables": { "p": "x".repeat(512 << 10) } } });
    ws.send(big).await;
    ws.send(json!({ "id": "1", "type": "complete" })).await;
    ws.send(json!({ "type": "ping" })).await;
    let pong = ws.next_raw(WAIT).await.expect("the socket stays open");
    assert!(pong["type"] == "pong" || pong["id"] == "1", "{pong}");
    assert_eq!(send_fragmented(ws, 2 << 20, 2 << 20).await, Some(1009));
    t.still_serving().await;
}

#[tokio::test]
async fn the_subscription_cap_is_exact_even_for_subscribes_sent_before_the_ack() {
    let mut t = target(&[]).await;
    let mut ws = t.ws("graphql-transport-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", t.viewer) } })).await;
    let query = "subscription { taskUpdated { taskId } }";
    for i in 0..30 {
        ws.subscribe(&format!("early-{i}"), query, json!({})).await;
    }
    for i in 0..100 {
        ws.subscribe(&format!("late-{i}"), query, json!({})).await;
    }
    // Read until the 30 refusals are in (a busy machine may be slow), then a little longer
    // to see that no more come.
    let mut refused = 0;
    let (mut other, mut ended) = (Vec::new(), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let wait = if refused >= 30 { Duration::from_millis(700) } else { Duration::from_secs(2) };
        match ws.next_within(wait).await {
            Ok(message) if message["type"] == "error" => {
                assert_eq!(message["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS", "{message}");
                refused += 1;
            }
            Ok(message) => other.push(message),
            Err(_) if refused >= 30 => break,
            Err(WsEnd::Timeout) => {}
            Err(end) => {
                ended = Some(end);
                break;
            }
        }
    }
    let log = std::fs::read_to_string(&t.instance.log).unwrap_or_default();
    let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    assert_eq!(
        refused, 30,
        "130 asked, 100 allowed; socket end {ended:?}; other messages {other:?}; server log (last lines, newest first):\n{tail}"
    );
    // Every one of the 100 live subscriptions gets the next event; nothing else does.
    let admin = login_at(&t.client, &t.instance.url(), PASSWORD).await;
    let (_, created) = post_graphql(
        &t.client,
        &t.instance.url(),
        Some(&admin),
        "mutation { createTask(input: {title: \"one\"}) { id } }",
        json!({}),
    )
    .await;
    assert!(created["errors"].is_null(), "{created}");
    let mut delivered = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let wait = if delivered.len() >= 100 { Duration::from_millis(700) } else { Duration::from_secs(2) };
        match ws.next_within(wait).await {
            Ok(message) if message["type"] == "next" => {
                delivered.insert(message["id"].as_str().unwrap_or_default().to_owned());
            }
            Ok(_) => {}
            Err(_) if delivered.len() >= 100 => break,
            Err(_) => {}
        }
    }
    assert_eq!(delivered.len(), 100);
    t.still_serving().await;
}

#[tokio::test]
async fn a_refused_socket_always_gets_its_close_frame_even_while_its_client_keeps_sending() {
    let mut t = target(&[]).await;
    for burst in 0..21 {
        let mut ws = t.ws("graphql-transport-ws").await;
        ws.send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer not-a-token" } })).await;
        for i in 0..200 {
            let message =
                json!({ "id": format!("{i}"), "type": "subscribe", "payload": { "query": "{ __typename }" } });
            if !ws.try_send(message).await {
                break;
            }
        }
        assert_eq!(ws.closed_with().await, Some(4401), "burst {burst}");
    }
    t.still_serving().await;
}

#[tokio::test]
async fn tokens_issued_in_the_future_or_for_fifty_years_are_refused() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let ahead = app.sign("mallory", mission_control::auth::Role::Viewer, now + 365 * 86_400, now + 366 * 86_400);
    let forever = app.sign("mallory", mission_control::auth::Role::Viewer, now, now + 50 * 365 * 86_400);
    for token in [&ahead, &forever] {
        let (status, body) = app.graphql_as(Some(token), "{ tasks { totalCount } }", json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
        let mut ws = app.ws("graphql-transport-ws").await;
        ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
        assert_eq!(ws.closed_with().await, Some(4401));
    }
    let ok = app.sign("alice", mission_control::auth::Role::Viewer, now, now + 3600);
    assert_eq!(app.graphql_as(Some(&ok), "{ tasks { totalCount } }", json!({})).await.0, 200);
}

#[tokio::test]
async fn metadata_nested_too_deep_is_refused_as_a_literal_and_as_a_variable() {
    let app = spawn_app().await;
    let literal = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let mutation =
        |meta: &str| format!("mutation {{ createTask(input: {{title: \"t\", metadata: {meta}}}) {{ id }} }}");
    let body = app.graphql(&mutation(&literal(1_000)), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");
    let body = app.graphql(&mutation(&literal(40)), json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(error_message(&body).contains("metadata"), "{body}");
    let nested = (0..40).fold(json!(1), |v, _| json!([v]));
    let with_variable = "mutation($m: JSON) { createTask(input: {title: \"t\", metadata: $m}) { id } }";
    let body = app.graphql(with_variable, json!({ "m": nested })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(error_message(&body).contains("metadata"), "{body}");
    // Nothing was stored.
    assert_eq!(app.ok("{ tasks { totalCount } }", json!({})).await["tasks"]["totalCount"], 0);
    let fine = (0..10).fold(json!({"k": 1}), |v, _| json!({ "k": v }));
    let body = app.graphql(with_variable, json!({ "m": fine })).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn a_leap_second_at_the_end_of_year_9999_is_refused() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "mutation { createTask(input: {title: \"t\", dueDate: \"9999-12-31T23:59:60Z\"}) { id dueDate } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(error_message(&body).contains("dueDate"), "{body}");
    assert_eq!(app.ok("{ tasks { totalCount } }", json!({})).await["tasks"]["totalCount"], 0);
}

#[tokio::test]
async fn repeated_directives_and_unknown_directive_arguments_are_refused() {
    let app = spawn_app().await;
    let many = format!("{{ tasks {}{{ totalCount }} }}", "@include(if: true) ".repeat(5_000));
    let body = app.graphql(&many, json!({})).await;
    assert!(body["data"].is_null() && body["errors"].is_array(), "{body}");
    let body = app.graphql("{ tasks @include(if: true) @include(if: true) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(error_message(&body).contains("only be used once"), "{body}");
    let body = app.graphql("{ tasks @include(iff: true) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(error_message(&body).contains("iff"), "{body}");
    let body = app.graphql("{ tasks @skip(if: false) { totalCount } }", json!({})).await;
    assert_eq!(body["data"]["tasks"]["totalCount"], 0, "{body}");
}

#[tokio::test]
async fn production_refuses_a_short_password_and_a_secret_without_entropy() {
    let run = |password: &'static str, secret: String| async move {
        let (ok, stderr) = run_to_exit(&["--production"], &[("MC_PASSWORD", password), ("JWT_SECRET", &secret)]).await;
        assert!(!ok);
        stderr
    };
    let stderr = run("x", "Zq8vR2nXw4Lk9TfB3mYc7HdJ1sGp6EaU".into()).await;
    assert!(stderr.contains("MC_PASSWORD") && stderr.contains("shorter"), "{stderr}");
    let stderr = run("a-long-production-password", "a".repeat(32)).await;
    assert!(stderr.contains("JWT_SECRET") && stderr.contains("entropy"), "{stderr}");
}

#[tokio::test]
async fn get_reads_the_specs_operation_name() {
    let app = spawn_app().await;
    let get = |params: Vec<(&'static str, &'static str)>| {
        app.client
            .get(format!("{}/graphql", app.address))
            .query(&params)
            .bearer_auth(&app.token)
            .header("accept", "application/json")
            .send()
    };
    let two = "query A { a: __typename } query B { b: __typename }";
    let body: Value = get(vec![("query", two), ("operationName", "B")]).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"], json!({ "b": "Query" }), "{body}");
    let body: Value = get(vec![("query", two), ("operation_name", "A")]).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"], json!({ "a": "Query" }), "{body}");
    let mixed = "query A { __typename } mutation M { createTask(input: {title: \"via GET\"}) { id } }";
    let response = get(vec![("query", mixed), ("operationName", "M")]).await.unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = get(vec![("query", mixed), ("operationName", "A")]).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    assert_eq!(app.ok("{ tasks { totalCount } }", json!({})).await["tasks"]["totalCount"], 0);
}

#[tokio::test]
async fn sockets_that_trickle_their_headers_are_dropped_after_the_header_timeout() {
    let mut t = target(&[("MC_HEADER_TIMEOUT", "2s")]).await;
    let address = format!("127.0.0.1:{}", t.instance.port);
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.expect("connect");
        socket.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        slow.push(socket);
    }
    let trickle = async {
        let started = Instant::now();
        let mut open = slow.len();
        while started.elapsed() < Duration::from_secs(8) && open > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            open = 0;
            for socket in &mut slow {
                // One more header byte; a closed socket fails the write or reads its end.
                let mut buf = [0u8; 256];
                let alive = socket.write_all(b"X").await.is_ok()
                    && !matches!(
                        tokio::time::timeout(Duration::from_millis(5), socket.read(&mut buf)).await,
                        Ok(Ok(0) | Err(_))
                    );
                open += usize::from(alive);
            }
        }
        open
    };
    let (open, normal) = tokio::join!(trickle, async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        t.client.get(format!("{}/health", t.instance.url())).send().await.map(|r| r.status().as_u16())
    });
    assert_eq!(normal.expect("a normal request meanwhile"), 200);
    assert_eq!(open, 0, "every trickling socket is dropped");
    t.still_serving().await;
}

/// A random document of one of the shapes an attacker nests: values, selections, inline
/// fragments, fragment fan-out, directives; sizes from small to far past every limit.
fn nested_document(rng: &mut rand::rngs::StdRng) -> String {
    use rand::Rng;
    let depth = match rng.random_range(0..3) {
        0 => rng.random_range(1..40),
        1 => rng.random_range(40..400),
        _ => rng.random_range(400..5_000),
    };
    match rng.random_range(0..6) {
        0 => {
            let (open, close) = if rng.random_bool(0.5) { ("[", "]") } else { ("{k: ", "}") };
            format!(
                "{{ tasks(filter: {{search: {}\"x\"{}}}) {{ totalCount }} }}",
                open.repeat(depth),
                close.repeat(depth)
            )
        }
        1 => format!(
            "{{ {}id{} }}",
            "tasks { edges { node { agent { ".repeat(depth / 4 + 1),
            " } } } }".repeat(depth / 4 + 1)
        ),
        2 => nested_inline_roots(rng.random_range(1..depth * 4 + 2), depth.min(300)),
        3 => {
            let fan = rng.random_range(1..5);
            let levels = depth.min(400);
            let mut text = String::from("{ ...F0 }\n");
            for i in 0..levels {
                let spreads = format!("...F{} ", i + 1).repeat(fan);
                text.push_str(&format!("fragment F{i} on Query {{ {spreads} }}\n"));
            }
            text.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
            text
        }
        4 => {
            let name = ["include", "skip", "deprecated", "x"][rng.random_range(0..4)];
            let arg = ["if: true", "if: false", "iff: true", ""][rng.random_range(0..4)];
            format!("{{ tasks {}{{ totalCount }} }}", format!("@{name}({arg}) ").repeat(depth.min(5_000)))
        }
        _ => {
            let meta = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            format!("mutation {{ createTask(input: {{title: \"t\", metadata: {meta}}}) {{ id }} }}")
        }
    }
}

#[tokio::test]
async fn random_deeply_nested_documents_never_crash_or_stall_the_server() {
    use rand::SeedableRng;
    let mut t = target(&[("MC_REQUEST_RATE_LIMIT", "100000")]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    for round in 0..150 {
        let doc = nested_document(&mut rng);
        let (status, body, took) = t.post(&doc).await;
        assert!(status < 500, "round {round}: {status} {body}");
        assert!(took < Duration::from_secs(5), "round {round} took {took:?}");
        if doc.len() < 8_000 {
            let (status, _) = t.get(&doc).await;
            assert!(status < 500, "round {round} over GET: {status}");
        }
    }
    t.still_serving().await;
}
