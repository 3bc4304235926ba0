//! `spawn_app()`: the real server on 127.0.0.1:0 with a fresh database, and clients for it.
//!
//! With `TEST_DATABASE_URL` set (PostgreSQL) every app gets a database of its own, created
//! for it; otherwise a fresh SQLite file in the temp folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mission_control::agents::AgentHub;
use mission_control::agents::runtime::AgentRuntime;
use mission_control::auth::{Claims, Role, TokenService};
use mission_control::config::Config;
use mission_control::startup::App;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The admin password of test apps.
pub const PASSWORD: &str = "admin123";
/// The read-only password of test apps.
pub const VIEWER_PASSWORD: &str = "viewer-password";
/// The JWT secret of test apps (so tests can sign tokens of their own).
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_env_filter("info").with_test_writer().init();
        }
    });
}

/// A running server and a logged-in client.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub token: String,
    pub tokens: TokenService,
    pub hub: Arc<AgentHub>,
    pub db: DatabaseConnection,
    /// The server's own writer (a change made through another would not reach its read cache).
    pub writer: mission_control::db::Writer,
    pub scheduler: Arc<mission_control::schedules::Scheduler>,
    bus: mission_control::events::EventBus,
    /// The SQLite file to delete when the app is dropped.
    sqlite_file: Option<std::path::PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// A fresh database URL: a new PostgreSQL database, or a new SQLite file.
pub async fn fresh_database_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let name = format!("mc_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&base).await.expect("connect to TEST_DATABASE_URL");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            admin.close().await.ok();
            let (prefix, _) = base.rsplit_once('/').expect("TEST_DATABASE_URL ends in /DBNAME");
            format!("{prefix}/{name}")
        }
        _ => {
            let path = std::env::temp_dir().join(format!("mc-test-{}.db", uuid::Uuid::new_v4()));
            format!("sqlite://{}?mode=rwc", path.display())
        }
    }
}

/// Starts the server with the `none` runtime.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, None).await
}

/// Starts the server after `tweak` adjusts its config, with `runtime` if given.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config), runtime: Option<Arc<dyn AgentRuntime>>) -> TestApp {
    let database_url = fresh_database_url().await;
    spawn_app_on(&database_url, true, tweak, runtime).await
}

/// Starts the server in production mode, with settings it accepts there.
pub async fn spawn_production_app() -> TestApp {
    spawn_app_with(
        |c| {
            c.production = true;
            c.password = Some("a-production-password".into());
            c.jwt_secret = Some(SECRET.into());
        },
        None,
    )
    .await
}

/// Starts the server on `database_url` (left in place when the app is dropped, unless `owned`),
/// after `tweak` adjusts its config: for restarts and several instances on one database.
pub async fn spawn_app_on(
    database_url: &str,
    owned: bool,
    tweak: impl FnOnce(&mut Config),
    runtime: Option<Arc<dyn AgentRuntime>>,
) -> TestApp {
    init_tracing();
    let mut config = Config::for_tests(database_url);
    config.jwt_secret = Some(SECRET.into());
    config.viewer_password = Some(VIEWER_PASSWORD.into());
    config.db_pool = 5;
    tweak(&mut config);
    let password = config.effective_password().to_owned();
    let app = App::build_with_runtime(config, runtime).await.expect("build app");
    let port = app.port();
    let tokens = app.state().auth.tokens.clone();
    let hub = Arc::clone(&app.state().hub);
    let db = app.state().db.clone();
    let writer = app.state().writer.clone();
    let scheduler = Arc::clone(&app.state().scheduler);
    let bus = app.state().bus.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut app = TestApp {
        address,
        port,
        client,
        token: String::new(),
        tokens,
        hub,
        db,
        writer,
        scheduler,
        bus,
        sqlite_file: database_url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split('?').next())
            .filter(|_| owned)
            .map(std::path::PathBuf::from),
        stop: Some(stop),
        served: Some(served),
    };
    app.token = app.login_token(&password).await;
    app
}

impl TestApp {
    /// Starts the server's graceful shutdown (as a signal would) and waits until it is done.
    pub async fn shut_down(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.served.take() {
            Some(served) => served.await.expect("the server task"),
            None => Ok(()),
        }
    }

    /// Starts the shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// `POST /api/auth/login` with `body`.
    pub async fn login(&self, body: Value) -> reqwest::Response {
        self.client.post(format!("{}/api/auth/login", self.address)).json(&body).send().await.expect("login request")
    }

    /// A token for `password` (panics when refused).
    pub async fn login_token(&self, password: &str) -> String {
        login_at(&self.client, &self.address, password).await
    }

    /// The server's event bus.
    pub fn bus(&self) -> mission_control::events::EventBus {
        self.bus.clone()
    }

    /// Signs claims with the server's secret (expired tokens, custom roles).
    pub fn sign(&self, subject: &str, role: Role, iat: i64, exp: i64) -> String {
        let claims = Claims { sub: subject.into(), role, iat, exp, jti: uuid::Uuid::new_v4().to_string(), uid: None };
        self.tokens.sign(&claims).expect("sign")
    }

    /// Runs a GraphQL operation as the admin; returns the whole body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(Some(&self.token), query, variables).await.1
    }

    /// Runs a GraphQL operation with `token`; returns status and body.
    pub async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        post_graphql(&self.client, &self.address, token, query, variables).await
    }

    /// Runs an operation that must succeed; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Creates a task with `input`; returns its id.
    pub async fn create_task(&self, input: Value) -> String {
        let data =
            self.ok("mutation($i: CreateTaskInput!) { createTask(input: $i) { id } }", json!({ "i": input })).await;
        data["createTask"]["id"].as_str().expect("id").to_owned()
    }

    /// Opens `/graphql/ws` with `protocol` (`graphql-transport-ws` or `graphql-ws`).
    pub async fn ws(&self, protocol: &str) -> WsClient {
        ws_connect(self.port, protocol).await
    }

    /// A `graphql-transport-ws` socket, initialised with the admin token.
    pub async fn ws_ready(&self) -> WsClient {
        ws_ready_on(self.port, &self.token).await
    }
}

/// POSTs an operation to `<base>/graphql` with `token`; returns status and body.
pub async fn post_graphql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut request = client.post(format!("{base}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("graphql request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("graphql json"))
}

/// Logs in at `<base>/api/auth/login` with `password`; the token (panics when refused).
pub async fn login_at(client: &reqwest::Client, base: &str, password: &str) -> String {
    let response = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200, "login refused");
    let body: Value = response.json().await.expect("login json");
    body["token"].as_str().expect("token").to_owned()
}

/// The `field` of every node of a connection (`{ edges { node { field } } }`), as strings.
pub fn node_strings(connection: &Value, field: &str) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {connection}"))
        .iter()
        .map(|e| e["node"][field].as_str().unwrap_or_else(|| panic!("no string {field} in {e}")).to_owned())
        .collect()
}

/// Every activity id in the feed at `<base>`, oldest first.
pub async fn feed_ids_oldest_first(client: &reqwest::Client, base: &str, token: &str) -> Vec<String> {
    let query = "query($a: String) { feed(first: 100, after: $a) { edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (_, body) = post_graphql(client, base, Some(token), query, json!({ "a": after })).await;
        let feed = &body["data"]["feed"];
        ids.extend(node_strings(feed, "id"));
        if feed["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = feed["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    ids.reverse();
    ids
}

/// Opens `/graphql/ws` on `port` with `protocol`.
pub async fn ws_connect(port: u16, protocol: &str) -> WsClient {
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request().expect("ws request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol).expect("header"));
    let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("ws connect");
    WsClient { stream }
}

/// A `graphql-transport-ws` socket on `port`, initialised with `token`.
pub async fn ws_ready_on(port: u16, token: &str) -> WsClient {
    let mut ws = ws_connect(port, "graphql-transport-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
    let ack = ws.next_json().await.expect("ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

/// How a WebSocket read ended.
#[derive(Debug)]
pub enum WsEnd {
    Closed(Option<u16>, #[allow(dead_code)] String),
    Timeout,
}

/// A minimal GraphQL WebSocket client.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(10);

impl WsClient {
    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) {
        self.stream.send(Message::Text(message.to_string().into())).await.expect("ws send");
    }

    /// Sends the messages in one write, so they reach the server as one burst.
    pub async fn send_burst(&mut self, messages: impl IntoIterator<Item = Value>) {
        for message in messages {
            self.stream.feed(Message::Text(message.to_string().into())).await.expect("ws send");
        }
        self.stream.flush().await.expect("ws flush");
    }

    /// Sends a JSON message; false when the server has already closed the socket.
    pub async fn try_send(&mut self, message: Value) -> bool {
        self.stream.send(Message::Text(message.to_string().into())).await.is_ok()
    }

    /// Starts a subscription (`graphql-transport-ws`).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next JSON message within `WAIT`, skipping keep-alive pings.
    pub async fn next_json(&mut self) -> Result<Value, WsEnd> {
        self.next_within(WAIT).await
    }

    /// The next JSON message within `wait`, skipping keep-alive pings.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Value, WsEnd> {
        self.next_message(wait, true).await
    }

    /// The next JSON message within `wait`, keep-alive pings included.
    pub async fn next_raw(&mut self, wait: Duration) -> Result<Value, WsEnd> {
        self.next_message(wait, false).await
    }

    async fn next_message(&mut self, wait: Duration, skip_pings: bool) -> Result<Value, WsEnd> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(WsEnd::Timeout),
                Ok(None) => return Err(WsEnd::Closed(None, "stream ended".into())),
                Ok(Some(Err(err))) => return Err(WsEnd::Closed(None, err.to_string())),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("server sends JSON");
                    if skip_pings && matches!(value["type"].as_str(), Some("ping" | "ka")) {
                        continue;
                    }
                    return Ok(value);
                }
                Message::Close(frame) => {
                    let code = frame.as_ref().map(|f| u16::from(f.code));
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return Err(WsEnd::Closed(code, reason));
                }
                _ => continue,
            }
        }
    }

    /// The payload `data` of the next `next` message for subscription `id`.
    pub async fn next_data(&mut self, id: &str) -> Value {
        loop {
            let message = self.next_json().await.expect("a subscription message");
            if message["id"] == id && message["type"] == "next" {
                assert!(message["payload"].get("errors").is_none(), "subscription error: {message}");
                return message["payload"]["data"].clone();
            }
            if message["id"] == id && message["type"] == "error" {
                panic!("subscription failed: {message}");
            }
        }
    }

    /// Waits for the socket to close; returns the close code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            match self.next_json().await {
                Ok(_) => continue,
                Err(WsEnd::Closed(code, _)) => return code,
                Err(WsEnd::Timeout) => panic!("socket not closed in time"),
            }
        }
    }

    /// The underlying stream, for tests that write raw frames.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// The `extensions.code` of the first error in `body`.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}")).to_owned()
}

/// The `message` of the first error in `body`.
pub fn error_message(body: &Value) -> String {
    body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One `mission-control` process.
pub struct Instance {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Instance {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Starts the `mission-control` binary with `env` (over the test defaults), waits for `/health`.
pub async fn start(env: &[(&str, String)], workdir: &Path) -> Instance {
    let port = free_port();
    let log = workdir.join(format!("instance-{port}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_mission-control"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MC_BIND", format!("127.0.0.1:{port}"))
        .env("MC_PASSWORD", PASSWORD)
        .env("JWT_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .env("MC_LOGIN_RATE_LIMIT", "10000")
        .env("MC_REQUEST_RATE_LIMIT", "1000000")
        .env("MC_WS_RATE_LIMIT", "10000")
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log file"))
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().expect("start mission-control");
    let instance = Instance { child, port, log };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{}/health", instance.url())).send().await.is_ok_and(|r| r.status() == 200) {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("instance did not start: {}", std::fs::read_to_string(&instance.log).unwrap_or_default());
}

impl Instance {
    /// The process's resident memory, in KiB (from `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("instance is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Runs the binary with only `env` (and a fresh SQLite file) until it exits, as a start-up
/// check would; returns whether it succeeded and what it wrote to stderr.
pub async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let db = std::env::temp_dir().join(format!("mc-exit-{}.db", uuid::Uuid::new_v4()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_mission-control"));
    command
        .env_clear()
        .args(args)
        .env("MC_BIND", "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("run mission-control");
    let _ = std::fs::remove_file(&db);
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Waits (up to 10 s) until `check` holds for the value `read` gives; returns that value.
pub async fn eventually<F, Fut>(what: &str, mut read: F, check: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = read().await;
        if check(&value) {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: still {value}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
