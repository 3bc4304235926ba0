//! A fake OpenClaw (protocol 4) or Clawdbot (protocol 3) gateway on 127.0.0.1: a WebSocket
//! server that answers as the recorded real ones do (`tests/fixtures/openclaw/` and
//! `clawdbot/`): the challenge, `hello-ok` from the captures, the refusals (wrong token →
//! close 1008, protocol mismatch → close 1002), `agent` answering twice, runs pushed as
//! `agent` / `chat` events with a connection-wide `seq`, `chat.abort`, `agent.wait`, exec
//! approvals for connections that declared `caps: ["exec-approvals"]`.
//!
//! A run also writes the session store as OpenClaw does (a `session_nodes` row and its
//! `transcript_events`), when the fake is given the SQLite file; without one, the fake keeps
//! its sessions for `sessions.list` and `chat.history`, as a gateway on another machine.
//!
//! Controls for tests: silence a method, drop every connection (a restart), mute a connection
//! (no tick), skip `seq` numbers, push any event, flood events.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The crate's fixtures folder.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// What the mock model answers, and what one reply costs (1,234 in / 56 out at $3/$15 per M).
pub const REPLY: &str = "Mock reply: haiku about lobsters.";
pub const REPLY_COST: f64 = 0.004542;
pub const REPLY_TOKENS: i64 = 1290;
/// Why a run whose message says FAIL fails.
pub const MODEL_ERROR: &str = "mock model overloaded";

/// How the fake behaves.
#[derive(Clone)]
pub struct Options {
    /// 4 (OpenClaw 2026.9) or 3 (Clawdbot 2026.1).
    pub protocol: u64,
    pub token: String,
    pub tick_ms: u64,
    /// The SQLite store to write runs into (OpenClaw only).
    pub store: Option<PathBuf>,
}

impl Options {
    pub fn openclaw(store: Option<PathBuf>) -> Self {
        Options { protocol: 4, token: "gw-token".into(), tick_ms: 30_000, store }
    }
}

/// A run the fake is carrying out.
#[derive(Debug, Clone)]
struct Run {
    session_key: String,
    /// How it ended: `ok` or `aborted`; `None` while running.
    ended: Option<&'static str>,
}

/// An approval waiting for a decision.
struct Asked {
    payload: Value,
    answer: Option<oneshot::Sender<Option<String>>>,
}

#[derive(Default)]
struct State {
    connects: Vec<Value>,
    requests: Vec<(String, Value)>,
    silent: HashSet<String>,
    runs: HashMap<String, Run>,
    asked: HashMap<String, Asked>,
    /// Open connections that declared `caps: ["exec-approvals"]`.
    approvers: usize,
    /// Without a store file: the sessions (`sessions.list` rows) and their messages.
    sessions: std::collections::BTreeMap<String, Value>,
    history: HashMap<String, Vec<Value>>,
}

/// The running fake; stops when dropped.
pub struct FakeGateway {
    pub port: u16,
    options: Options,
    state: Arc<Mutex<State>>,
    /// Events for every connection: (event name, payload, only for approvers).
    push: broadcast::Sender<(String, Value, bool)>,
    /// Bumped to drop every connection.
    restart: watch::Sender<u64>,
    mute: Arc<AtomicBool>,
    skip_seq: Arc<AtomicU64>,
    run_changed: Arc<tokio::sync::Notify>,
    store: Option<SqlitePool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.restart.send(u64::MAX);
    }
}

fn fixture_frames(file: &str) -> Vec<Value> {
    std::fs::read_to_string(format!("{FIXTURES}/{file}"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

/// The recorded `hello-ok` payload of the protocol's gateway.
fn recorded_hello(protocol: u64) -> Value {
    let file = if protocol >= 4 { "openclaw/gateway-session.jsonl" } else { "clawdbot/gateway-session.jsonl" };
    fixture_frames(file)
        .into_iter()
        .map(|l| l["frame"].clone())
        .find(|f| f["type"] == "res" && f["payload"]["type"] == "hello-ok")
        .map(|f| f["payload"].clone())
        .expect("a recorded hello-ok")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl FakeGateway {
    pub async fn start(options: Options) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (push, _) = broadcast::channel(200_000);
        let (restart, _) = watch::channel(0u64);
        let store = match &options.store {
            Some(path) => {
                // WAL, as the real gateway keeps its store.
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5));
                Some(SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap())
            }
            None => None,
        };
        let mut fake = FakeGateway {
            port,
            options,
            state,
            push,
            restart,
            mute: Arc::new(AtomicBool::new(false)),
            skip_seq: Arc::new(AtomicU64::new(0)),
            run_changed: Arc::new(tokio::sync::Notify::new()),
            store,
            task: tokio::spawn(async {}),
        };
        let server = fake.server();
        fake.task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    if let Ok(socket) = tokio_tungstenite::accept_async(stream).await {
                        server.serve(socket).await;
                    }
                });
            }
        });
        fake
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn server(&self) -> Server {
        Server {
            options: self.options.clone(),
            state: Arc::clone(&self.state),
            push: self.push.clone(),
            restart: self.restart.subscribe(),
            mute: Arc::clone(&self.mute),
            skip_seq: Arc::clone(&self.skip_seq),
            run_changed: Arc::clone(&self.run_changed),
            store: self.store.clone(),
        }
    }

    /// The `connect` params of every connection attempt, in order.
    pub fn connects(&self) -> Vec<Value> {
        self.state.lock().unwrap().connects.clone()
    }

    /// Every request after `connect`, as (method, params).
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// `method` is never answered from now on.
    pub fn silence(&self, method: &str) {
        self.state.lock().unwrap().silent.insert(method.to_owned());
    }

    /// Drops every connection at once, without a close frame, as a gateway restart does.
    pub fn restart(&self) {
        self.restart.send_modify(|n| *n += 1);
    }

    /// Stops sending anything (ticks included) while keeping connections open.
    pub fn mute(&self, muted: bool) {
        self.mute.store(muted, Ordering::SeqCst);
    }

    /// The next event skips `n` sequence numbers (as if they were lost).
    pub fn skip_seq(&self, n: u64) {
        self.skip_seq.store(n, Ordering::SeqCst);
    }

    /// Pushes an event to every connection.
    pub fn push(&self, event: &str, payload: Value) {
        let _ = self.push.send((event.to_owned(), payload, false));
    }

    /// Asks for an approval as an agent host would; the receiver gets the decision (`None` when
    /// it expired). With no approver connected it expires at once, as OpenClaw does.
    pub fn request_approval(
        &self,
        command: &str,
        session_key: &str,
        timeout_ms: i64,
    ) -> (String, oneshot::Receiver<Option<String>>) {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let created = now_ms();
        let payload = json!({
            "approvalKind": "exec",
            "id": id,
            "request": {"command": command, "cwd": "/home/operator/project", "agentId": "main", "sessionKey": session_key},
            "allowedDecisions": ["allow-once", "allow-always", "deny"],
            "createdAtMs": created,
            "expiresAtMs": created + timeout_ms,
        });
        let mut state = self.state.lock().unwrap();
        if state.approvers == 0 {
            let _ = tx.send(None);
            return (id, rx);
        }
        state.asked.insert(id.clone(), Asked { payload: payload.clone(), answer: Some(tx) });
        drop(state);
        let _ = self.push.send(("exec.approval.requested".into(), payload, true));
        let state = Arc::clone(&self.state);
        let expired = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout_ms as u64)).await;
            if let Some(mut asked) = state.lock().unwrap().asked.remove(&expired)
                && let Some(answer) = asked.answer.take()
            {
                let _ = answer.send(None);
            }
        });
        (id, rx)
    }

    /// Writes a transcript row without touching the session (only a full re-read sees it).
    pub async fn append_silently(&self, session_id: &str, seq: i64, cost: f64) {
        let pool = self.store.as_ref().expect("a store");
        insert_row(pool, session_id, seq, &assistant_line(REPLY, cost)).await;
    }
}

/// One connection's server side.
#[derive(Clone)]
struct Server {
    options: Options,
    state: Arc<Mutex<State>>,
    push: broadcast::Sender<(String, Value, bool)>,
    restart: watch::Receiver<u64>,
    mute: Arc<AtomicBool>,
    skip_seq: Arc<AtomicU64>,
    run_changed: Arc<tokio::sync::Notify>,
    store: Option<SqlitePool>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn res(id: &Value, payload: Value) -> Message {
    Message::text(json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string())
}

fn res_error(id: &Value, code: &str, message: &str, details: Value) -> Message {
    let frame =
        json!({"type": "res", "id": id, "ok": false, "error": {"code": code, "message": message, "details": details}});
    Message::text(frame.to_string())
}

fn assistant_line(text: &str, cost: f64) -> String {
    json!({
        "type": "message",
        "id": uuid::Uuid::new_v4().to_string(),
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "message": {
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "model": "mock-1",
            "usage": {"input": 1234, "output": 56, "cacheRead": 0, "cacheWrite": 0, "totalTokens": REPLY_TOKENS, "cost": {"total": cost}},
            "timestamp": now_ms(),
        }
    })
    .to_string()
}

async fn insert_row(pool: &SqlitePool, session_id: &str, seq: i64, line: &str) {
    sea_orm::sqlx::query("INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)")
        .bind(session_id)
        .bind(seq)
        .bind(line)
        .bind(now_ms())
        .execute(pool)
        .await
        .unwrap();
}

impl Server {
    async fn serve(mut self, mut socket: Socket) {
        let v4 = self.options.protocol >= 4;
        let mut challenge = json!({"nonce": uuid::Uuid::new_v4().to_string(), "ts": now_ms()});
        if v4 {
            challenge["capabilities"] = json!(["model-catalog-snapshot"]);
        }
        let frame = json!({"type": "event", "event": "connect.challenge", "payload": challenge});
        if socket.send(Message::text(frame.to_string())).await.is_err() {
            return;
        }
        let Some(Ok(Message::Text(text))) = socket.next().await else { return };
        let connect: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        let params = connect["params"].clone();
        self.state.lock().unwrap().connects.push(params.clone());
        let id = connect["id"].clone();
        let (min, max) = (params["minProtocol"].as_u64().unwrap_or(0), params["maxProtocol"].as_u64().unwrap_or(0));
        if params["auth"]["token"] != self.options.token.as_str() {
            let message = "unauthorized: gateway token mismatch (provide gateway auth token)";
            let details = if v4 { json!({"code": "AUTH_TOKEN_MISMATCH"}) } else { json!({}) };
            let _ = socket.send(res_error(&id, "INVALID_REQUEST", message, details)).await;
            let _ = socket.close(Some(CloseFrame { code: CloseCode::Policy, reason: message.into() })).await;
            return;
        }
        if !(min..=max).contains(&self.options.protocol) {
            let details = json!({"code": "PROTOCOL_MISMATCH", "expectedProtocol": self.options.protocol});
            let _ = socket.send(res_error(&id, "INVALID_REQUEST", "protocol mismatch", details)).await;
            let _ =
                socket.close(Some(CloseFrame { code: CloseCode::Protocol, reason: "protocol mismatch".into() })).await;
            return;
        }
        let mut hello = recorded_hello(self.options.protocol);
        hello["policy"]["tickIntervalMs"] = json!(self.options.tick_ms);
        if socket.send(res(&id, hello)).await.is_err() {
            return;
        }
        let approver = params["caps"].as_array().is_some_and(|c| c.iter().any(|c| c == "exec-approvals"));
        if approver {
            self.state.lock().unwrap().approvers += 1;
        }
        self.connected(socket, approver).await;
        if approver {
            self.state.lock().unwrap().approvers -= 1;
        }
    }

    async fn connected(&mut self, socket: Socket, approver: bool) {
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        let mut pushed = self.push.subscribe();
        let mut seq = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(self.options.tick_ms));
        let started = *self.restart.borrow();
        let mut restart = self.restart.clone();
        loop {
            tokio::select! {
                _ = restart.changed() => {
                    if *restart.borrow() != started {
                        return; // dropped without a close frame
                    }
                }
                incoming = stream.next() => {
                    let Some(Ok(Message::Text(text))) = incoming else { return };
                    let request: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    self.handle(request, out_tx.clone());
                }
                Some(message) = out_rx.recv() => {
                    if !self.mute.load(Ordering::SeqCst) && sink.send(message).await.is_err() {
                        return;
                    }
                }
                event = pushed.recv() => {
                    let Ok((name, payload, approvers_only)) = event else { continue };
                    if (approvers_only && !approver) || self.mute.load(Ordering::SeqCst) {
                        continue;
                    }
                    seq += 1 + self.skip_seq.swap(0, Ordering::SeqCst);
                    let frame = json!({"type": "event", "event": name, "payload": payload, "seq": seq});
                    if sink.send(Message::text(frame.to_string())).await.is_err() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    if !self.mute.load(Ordering::SeqCst) {
                        let frame = json!({"type": "event", "event": "tick", "payload": {"ts": now_ms()}});
                        let _ = sink.send(Message::text(frame.to_string())).await;
                    }
                }
            }
        }
    }

    fn handle(&self, request: Value, out: tokio::sync::mpsc::UnboundedSender<Message>) {
        let method = request["method"].as_str().unwrap_or_default().to_owned();
        let params = request["params"].clone();
        let id = request["id"].clone();
        {
            let mut state = self.state.lock().unwrap();
            state.requests.push((method.clone(), params.clone()));
            if state.silent.contains(&method) {
                return;
            }
        }
        let server = self.clone();
        tokio::spawn(async move {
            match method.as_str() {
                "agent" | "chat.send" => server.start_run(&method, &id, &params, out).await,
                "chat.abort" => {
                    let key = params["sessionKey"].as_str().unwrap_or_default().to_owned();
                    let aborted = server.abort(&key).await;
                    let _ = out.send(res(&id, json!({"ok": true, "aborted": !aborted.is_empty(), "runIds": aborted})));
                }
                "agent.wait" => {
                    let run_id = params["runId"].as_str().unwrap_or_default().to_owned();
                    let timeout = Duration::from_millis(params["timeoutMs"].as_u64().unwrap_or(30_000));
                    let answer = server.wait(&run_id, timeout).await;
                    let _ = out.send(res(&id, answer));
                }
                "sessions.list" => {
                    let rows: Vec<Value> = server.state.lock().unwrap().sessions.values().cloned().collect();
                    let _ = out.send(res(&id, json!({"sessions": rows, "count": rows.len(), "hasMore": false})));
                }
                "chat.history" => {
                    let key = params["sessionKey"].as_str().unwrap_or_default();
                    let messages = server.state.lock().unwrap().history.get(key).cloned().unwrap_or_else(|| {
                        vec![json!({"role": "assistant", "content": [{"type": "text", "text": REPLY}]})]
                    });
                    let _ = out.send(res(&id, json!({"sessionKey": key, "messages": messages})));
                }
                "exec.approval.resolve" => {
                    let approval_id = params["id"].as_str().unwrap_or_default().to_owned();
                    let decision = params["decision"].as_str().unwrap_or_default().to_owned();
                    let asked = server.state.lock().unwrap().asked.remove(&approval_id);
                    let Some(mut asked) = asked else {
                        let _ =
                            out.send(res_error(&id, "INVALID_REQUEST", "unknown or expired approval id", json!({})));
                        return;
                    };
                    let mut resolved = asked.payload.clone();
                    resolved["decision"] = json!(decision);
                    resolved["resolvedBy"] = json!("mission-control");
                    resolved["ts"] = json!(now_ms());
                    let _ = server.push.send(("exec.approval.resolved".into(), resolved, true));
                    if let Some(answer) = asked.answer.take() {
                        let _ = answer.send(Some(decision));
                    }
                    let _ = out.send(res(&id, json!({"ok": true})));
                }
                other => {
                    let _ = out.send(res_error(&id, "INVALID_REQUEST", &format!("unknown method: {other}"), json!({})));
                }
            }
        });
    }

    fn event(&self, name: &str, payload: Value) {
        let _ = self.push.send((name.to_owned(), payload, false));
    }

    fn agent_event(&self, run_id: &str, key: &str, stream: &str, data: Value) {
        let payload = json!({"runId": run_id, "sessionKey": key, "sessionId": session_id_of(key), "agentId": "main", "stream": stream, "data": data, "ts": now_ms()});
        self.event("agent", payload);
    }

    async fn start_run(
        &self,
        method: &str,
        id: &Value,
        params: &Value,
        out: tokio::sync::mpsc::UnboundedSender<Message>,
    ) {
        let key = params["sessionKey"].as_str().unwrap_or_default().to_owned();
        let run_id = params["idempotencyKey"].as_str().map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let message = params["message"].as_str().unwrap_or_default().to_owned();
        self.state.lock().unwrap().runs.insert(run_id.clone(), Run { session_key: key.clone(), ended: None });
        let accepted = if method == "agent" {
            json!({"runId": run_id, "sessionKey": key, "agentId": "main", "status": "accepted", "acceptedAt": now_ms()})
        } else {
            json!({"runId": run_id, "status": "started"})
        };
        let _ = out.send(res(id, accepted));
        self.write_user_message(&key, params["label"].as_str(), &message).await;
        for phase in ["preparing_workspace", "preparing_context"] {
            self.agent_event(&run_id, &key, "run_status", json!({"phase": phase}));
        }
        self.agent_event(&run_id, &key, "lifecycle", json!({"phase": "start", "startedAt": now_ms()}));
        if message.contains("SLOW") {
            return; // answered only by an abort
        }
        if message.contains("FAIL") {
            // The model gives up: the run ends in an error, with no reply.
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.set_status(&key, "failed").await;
            self.finish(&run_id, "error");
            let end = json!({"phase": "error", "error": MODEL_ERROR, "endedAt": now_ms()});
            self.agent_event(&run_id, &key, "lifecycle", end);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (first, rest) = REPLY.split_at(12);
        for delta in [first, rest] {
            self.agent_event(&run_id, &key, "assistant", json!({"delta": delta}));
        }
        self.write_reply(&key, "done").await;
        let message = json!({"role": "assistant", "content": [{"type": "text", "text": REPLY}], "timestamp": now_ms()});
        self.event("chat", json!({"runId": run_id, "sessionKey": key, "state": "final", "message": message}));
        self.finish(&run_id, "ok");
        self.agent_event(&run_id, &key, "lifecycle", json!({"phase": "end", "aborted": false, "endedAt": now_ms()}));
        if method == "agent" {
            let _ = out.send(res(id, json!({"runId": run_id, "status": "ok", "summary": "completed"})));
        }
    }

    fn finish(&self, run_id: &str, how: &'static str) {
        if let Some(run) = self.state.lock().unwrap().runs.get_mut(run_id) {
            run.ended = Some(how);
        }
        self.run_changed.notify_waiters();
    }

    /// Aborts the session's running runs; returns their ids.
    async fn abort(&self, key: &str) -> Vec<String> {
        let running: Vec<String> = {
            let state = self.state.lock().unwrap();
            state
                .runs
                .iter()
                .filter(|(_, r)| r.session_key == key && r.ended.is_none())
                .map(|(id, _)| id.clone())
                .collect()
        };
        for run_id in &running {
            self.event("chat", json!({"runId": run_id, "sessionKey": key, "state": "aborted", "stopReason": "rpc"}));
            self.agent_event(run_id, key, "lifecycle", json!({"phase": "end", "status": "cancelled", "aborted": true}));
            self.finish(run_id, "aborted");
        }
        self.set_status(key, "killed").await;
        running
    }

    async fn wait(&self, run_id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.run_changed.notified();
            let ended = self.state.lock().unwrap().runs.get(run_id).and_then(|r| r.ended);
            match ended {
                Some("ok") => return json!({"runId": run_id, "status": "ok"}),
                Some("error") => return json!({"runId": run_id, "status": "error", "error": MODEL_ERROR}),
                Some(_) => return json!({"runId": run_id, "status": "error", "error": "aborted"}),
                None => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return json!({"runId": run_id, "status": "timeout"});
            }
        }
    }

    /// The session's node and window (created on its first run) and its user message.
    async fn write_user_message(&self, key: &str, label: Option<&str>, message: &str) {
        let Some(pool) = &self.store else {
            let mut state = self.state.lock().unwrap();
            let row = state.sessions.entry(key.to_owned()).or_insert_with(|| {
                json!({"key": key, "label": label, "sessionId": session_id_of(key), "model": "mock-1", "modelProvider": "mock"})
            });
            row["status"] = json!("running");
            row["updatedAt"] = json!(now_ms());
            state
                .history
                .entry(key.to_owned())
                .or_default()
                .push(json!({"role": "user", "content": message, "timestamp": now_ms()}));
            return;
        };
        let session_id = session_id_of(key);
        let entry = json!({"sessionId": session_id, "updatedAt": now_ms(), "label": label, "model": "mock-1", "modelProvider": "mock"});
        sea_orm::sqlx::query(
            "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, status, label, created_at) \
             VALUES (?, ?, ?, ?, 'running', ?, ?) \
             ON CONFLICT(session_key) DO UPDATE SET status = 'running', updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(&session_id)
        .bind(entry.to_string())
        .bind(now_ms())
        .bind(label)
        .bind(now_ms())
        .execute(pool)
        .await
        .unwrap();
        sea_orm::sqlx::query(
            "INSERT INTO session_windows (session_id, session_key, created_at, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(session_id) DO NOTHING",
        )
        .bind(&session_id)
        .bind(key)
        .bind(now_ms())
        .bind(now_ms())
        .execute(pool)
        .await
        .unwrap();
        let line = json!({"type": "message", "message": {"role": "user", "content": message, "timestamp": now_ms()}});
        let seq = next_seq(pool, &session_id).await;
        insert_row(pool, &session_id, seq, &line.to_string()).await;
    }

    async fn write_reply(&self, key: &str, status: &str) {
        let Some(pool) = &self.store else {
            let line: Value = serde_json::from_str(&assistant_line(REPLY, REPLY_COST)).unwrap();
            self.state.lock().unwrap().history.entry(key.to_owned()).or_default().push(line["message"].clone());
            self.set_status(key, status).await;
            return;
        };
        let session_id = session_id_of(key);
        let seq = next_seq(pool, &session_id).await;
        insert_row(pool, &session_id, seq, &assistant_line(REPLY, REPLY_COST)).await;
        self.set_status(key, status).await;
    }

    async fn set_status(&self, key: &str, status: &str) {
        let Some(pool) = &self.store else {
            if let Some(row) = self.state.lock().unwrap().sessions.get_mut(key) {
                row["status"] = json!(status);
                row["updatedAt"] = json!(now_ms());
            }
            return;
        };
        sea_orm::sqlx::query("UPDATE session_nodes SET status = ?, updated_at = ? WHERE session_key = ?")
            .bind(status)
            .bind(now_ms())
            .bind(key)
            .execute(pool)
            .await
            .unwrap();
    }
}

async fn next_seq(pool: &SqlitePool, session_id: &str) -> i64 {
    let max: Option<i64> = sea_orm::sqlx::query_scalar("SELECT MAX(seq) FROM transcript_events WHERE session_id = ?")
        .bind(session_id)
        .fetch_one(pool)
        .await
        .unwrap();
    max.map_or(0, |m| m + 1)
}

/// The fake's session id of a session key: stable, so tests can find its rows.
pub fn session_id_of(key: &str) -> String {
    format!("session-{}", key.replace(':', "-"))
}
