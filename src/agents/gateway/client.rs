//! One WebSocket to the gateway, shared by every request, kept alive by a background task.
//!
//! The protocol (OpenClaw `docs/gateway/protocol.md`, the same frames since Clawdbot):
//! the gateway opens with a `connect.challenge` event; the client answers with a `connect`
//! request offering protocols 3 to 4, and `hello-ok` says which one is spoken, how big a frame
//! may be and how often `tick` comes. After that, requests `{type:"req", id, method, params}`
//! are answered by `{type:"res", id, ok, payload|error}` in any order, and events
//! `{type:"event", event, payload, seq?}` arrive in between.
//!
//! The client:
//! - reconnects with exponential backoff and jitter; a `connect` the gateway refuses (a wrong
//!   token, close 1008; a protocol mismatch, close 1002) is reported and retried only at the
//!   longest interval, and a connection that drops soon after it came up backs off too, so
//!   there is never a busy loop;
//! - fails every pending request at once when the connection drops ([`RuntimeError::Unavailable`]);
//! - gives each request a deadline and bounds how many are in flight;
//! - watches `tick`: two silent intervals and the connection is replaced;
//! - reports a `seq` gap as [`GatewayEvent::Gap`], so the runtime re-reads its store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::lock;
use crate::agents::runtime::RuntimeError;

/// The protocols this client speaks: Clawdbot 2026.1 speaks 3, OpenClaw 2026.9 speaks 4.
pub const MIN_PROTOCOL: u64 = 3;
pub const MAX_PROTOCOL: u64 = 4;
/// The largest frame read. `hello-ok.policy.maxPayload` is what the gateway accepts from us
/// (25 MiB on OpenClaw, 512 KiB on Clawdbot); its own frames stay below this cap.
const MAX_FRAME: usize = 32 << 20;
/// Deadline of the WebSocket handshake, the challenge and the `connect` answer together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that stayed up this long was healthy: the next one starts the backoff afresh.
const HEALTHY_UPTIME: Duration = Duration::from_secs(10);
/// Longest a frame may take to be written before the connection counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The tick interval assumed until `hello-ok` gives one.
const DEFAULT_TICK: Duration = Duration::from_secs(30);
/// Events a slow consumer may fall behind before it is told it lagged.
const EVENT_BUFFER: usize = 4096;

/// How to reach the gateway.
#[derive(Clone)]
pub struct ClientSettings {
    /// `ws://host:port`.
    pub url: String,
    pub token: Option<String>,
    /// Deadline of one request when the caller gives none.
    pub request_timeout: Duration,
    /// Requests in flight at once; more wait for a slot (within their deadline).
    pub max_in_flight: usize,
    /// First and longest wait between connection attempts.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientSettings {
    pub fn new(url: impl Into<String>, token: Option<String>) -> Self {
        ClientSettings {
            url: url.into(),
            token,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 256,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// What the connection tells the runtime.
#[derive(Debug, Clone)]
pub enum GatewayEvent {
    /// A connection is up (the first, or one after a drop): events may have been missed.
    Connected,
    /// An event frame.
    Event { name: String, payload: Arc<Value> },
    /// Events were missed (a `seq` gap, or this consumer lagged): re-read from the store.
    Gap,
}

/// The state of the link, for `/health` and the logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkStatus {
    pub connected: bool,
    pub protocol: Option<u64>,
    pub gateway_version: Option<String>,
    /// Why the last attempt failed, or why the connection was lost; `None` while connected.
    pub error: Option<String>,
}

/// A request waiting for its answer.
struct Pending {
    method: String,
    reply: oneshot::Sender<Result<Value, RuntimeError>>,
}

struct Shared {
    settings: ClientSettings,
    /// The writer of the current connection, when there is one.
    outgoing: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
    events: broadcast::Sender<GatewayEvent>,
    status: Mutex<LinkStatus>,
    slots: Semaphore,
}

/// A handle on the gateway connection; cheap to clone. The connection task stops within a few
/// seconds of the last handle being dropped.
#[derive(Clone)]
pub struct GatewayClient {
    shared: Arc<Shared>,
}

/// Why a connection ended.
enum Ended {
    /// It was up (for the given time) and then dropped or went silent: reconnect soon.
    Lost(String, Duration),
    /// It never came up: back off.
    Failed(String),
    /// The gateway refused this client (token, protocol): retry only at the longest interval.
    Refused(String),
    /// Shutting down.
    Stopped,
}

impl GatewayClient {
    /// Starts connecting in the background.
    pub fn start(settings: ClientSettings) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            slots: Semaphore::new(settings.max_in_flight.max(1)),
            settings,
            outgoing: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            events,
            status: Mutex::new(LinkStatus::default()),
        });
        tokio::spawn(run(Arc::downgrade(&shared)));
        GatewayClient { shared }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.shared.events.subscribe()
    }

    pub fn status(&self) -> LinkStatus {
        lock(&self.shared.status).clone()
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.shared.outgoing).is_some()
    }

    /// Sends `method` and waits for its answer (the first one: `agent` answers twice, and the
    /// second answer comes as the run's events too). `timeout` defaults to the setting.
    pub async fn request(&self, method: &str, params: Value, timeout: Option<Duration>) -> Result<Value, RuntimeError> {
        let timeout = timeout.unwrap_or(self.shared.settings.request_timeout);
        let deadline = Instant::now() + timeout;
        let _slot = tokio::time::timeout_at(deadline, self.shared.slots.acquire())
            .await
            .map_err(|_| {
                RuntimeError::Unavailable(format!("too many gateway requests in flight; {method} was not sent"))
            })?
            .map_err(|_| RuntimeError::Unavailable("the gateway client is shutting down".into()))?;
        let id = format!("mc-{}", self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = oneshot::channel();
        let frame = json!({ "type": "req", "id": id, "method": method, "params": params }).to_string();
        {
            // Registered before sending, under the writer lock, so a drop between the two
            // cannot leave it waiting: the drop takes the writer first, then fails the pending.
            let outgoing = lock(&self.shared.outgoing);
            let Some(tx) = outgoing.as_ref() else {
                return Err(RuntimeError::Unavailable(format!("not connected to the gateway; {method} was not sent")));
            };
            lock(&self.shared.pending).insert(id.clone(), Pending { method: method.to_owned(), reply });
            if tx.send(Message::text(frame)).is_err() {
                lock(&self.shared.pending).remove(&id);
                return Err(RuntimeError::Unavailable(format!("the gateway connection closed; {method} was not sent")));
            }
        }
        // Removes the entry however this ends (answered, timed out, or the caller gone).
        let _forget = ForgetOnDrop { shared: &self.shared, id: &id };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                Err(RuntimeError::Unavailable(format!("the gateway connection closed before {method} answered")))
            }
            Err(_) => {
                Err(RuntimeError::Failed(format!("gateway {method} did not answer within {} ms", timeout.as_millis())))
            }
        }
    }
}

/// Removes a pending request's entry when its caller stops waiting.
struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(self.id);
    }
}

/// Takes the writer away and fails every pending request when a connection ends, also when its
/// task unwinds: requests then fail or fall back instead of waiting on a dead connection.
struct EndOfConnection<'a>(&'a Shared);

impl Drop for EndOfConnection<'_> {
    fn drop(&mut self) {
        fail_pending(self.0, "the gateway connection was lost");
    }
}

/// The connection loop: connect, serve, back off, again, until every handle is gone.
async fn run(shared: std::sync::Weak<Shared>) {
    let mut failures: u32 = 0;
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let settings = strong.settings.clone();
        let ended = {
            let _end = EndOfConnection(&strong);
            connect_and_serve(&strong).await
        };
        let wait = match &ended {
            Ended::Stopped => return,
            Ended::Lost(why, up) => {
                tracing::warn!(url = %settings.url, reason = %why, "gateway connection lost; reconnecting");
                failures = if *up >= HEALTHY_UPTIME { 1 } else { failures.saturating_add(1) };
                backoff(settings.backoff_min, settings.backoff_max, failures)
            }
            Ended::Failed(why) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(url = %settings.url, reason = %why, "cannot connect to the gateway; retrying with backoff");
                }
                backoff(settings.backoff_min, settings.backoff_max, failures)
            }
            Ended::Refused(why) => {
                tracing::error!(url = %settings.url, reason = %why, "the gateway refused this server; check the token and the gateway version");
                failures = failures.saturating_add(1);
                settings.backoff_max
            }
        };
        if let Ended::Lost(why, _) | Ended::Failed(why) | Ended::Refused(why) = ended {
            let mut status = lock(&strong.status);
            status.connected = false;
            status.error = Some(why);
        }
        drop(strong);
        tokio::time::sleep(wait).await;
    }
}

/// `min · 2^(n-1)`, capped at `max`, with ±25 % jitter so a fleet does not reconnect in step.
fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    let base = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(max);
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    base.mul_f64(jitter).min(max)
}

fn fail_pending(shared: &Shared, why: &str) {
    lock(&shared.outgoing).take();
    let pending: Vec<Pending> = lock(&shared.pending).drain().map(|(_, p)| p).collect();
    for p in pending {
        let _ = p.reply.send(Err(RuntimeError::Unavailable(format!("{why} before {} answered; retry", p.method))));
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What `hello-ok` settled.
struct Hello {
    protocol: u64,
    version: Option<String>,
    tick: Duration,
}

async fn connect_and_serve(shared: &Arc<Shared>) -> Ended {
    let (mut socket, hello) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&shared.settings)).await {
        Ok(Ok(up)) => up,
        Ok(Err(ended)) => return ended,
        Err(_) => return Ended::Failed("the gateway did not complete the handshake in time".into()),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut status = lock(&shared.status);
        status.connected = true;
        status.protocol = Some(hello.protocol);
        status.gateway_version = hello.version.clone();
        status.error = None;
    }
    *lock(&shared.outgoing) = Some(tx);
    tracing::info!(url = %shared.settings.url, protocol = hello.protocol, version = hello.version.as_deref().unwrap_or("?"), "connected to the gateway");
    let _ = shared.events.send(GatewayEvent::Connected);

    let mut last_seq: Option<u64> = None;
    let up_since = Instant::now();
    let lost = |why: String| Ended::Lost(why, up_since.elapsed());
    let mut heard = Instant::now();
    let mut watchdog = tokio::time::interval(hello.tick.min(Duration::from_secs(5)).max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(message) = out else { return Ended::Stopped };
                match tokio::time::timeout(WRITE_TIMEOUT, socket.send(message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return lost(format!("cannot write to the gateway: {e}")),
                    Err(_) => return lost("the gateway stopped reading".into()),
                }
            }
            incoming = socket.next() => {
                heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => on_frame(shared, text.as_str(), &mut last_seq),
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map_or_else(|| "closed".to_owned(), |f| format!("closed with {} {}", u16::from(f.code), f.reason));
                        return lost(why);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return lost(format!("gateway connection error: {e}")),
                    None => return lost("the gateway closed the connection".into()),
                }
            }
            _ = watchdog.tick() => {
                if heard.elapsed() > hello.tick * 2 {
                    return lost(format!("no tick from the gateway for {} ms", heard.elapsed().as_millis()));
                }
                if Arc::strong_count(shared) == 1 {
                    let _ = socket.close(None).await;
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// Dispatches one frame: answers to their request, events to the subscribers.
fn on_frame(shared: &Shared, text: &str, last_seq: &mut Option<u64>) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        tracing::debug!("ignoring a gateway frame that is not JSON");
        return;
    };
    match frame.get("type").and_then(Value::as_str) {
        Some("res") => {
            let Some(id) = frame.get("id").and_then(Value::as_str) else { return };
            let Some(pending) = lock(&shared.pending).remove(id) else {
                // `agent` answers a second time when its run ends; the events said it already.
                return;
            };
            let _ = pending.reply.send(answer_of(&pending.method, frame));
        }
        Some("event") => {
            let Some(name) = frame.get("event").and_then(Value::as_str) else { return };
            if let Some(seq) = frame.get("seq").and_then(Value::as_u64) {
                if last_seq.is_some_and(|last| seq > last.saturating_add(1)) {
                    tracing::info!(
                        after = last_seq.unwrap_or_default(),
                        got = seq,
                        "gateway events were missed; re-reading"
                    );
                    let _ = shared.events.send(GatewayEvent::Gap);
                }
                *last_seq = Some(seq);
            }
            if name == "tick" {
                return;
            }
            let payload = Arc::new(frame.get("payload").cloned().unwrap_or(Value::Null));
            let _ = shared.events.send(GatewayEvent::Event { name: name.to_owned(), payload });
        }
        _ => {}
    }
}

/// A `res` frame as the caller's result.
fn answer_of(method: &str, frame: Value) -> Result<Value, RuntimeError> {
    if frame.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(frame.get("payload").cloned().unwrap_or(Value::Null));
    }
    let error = frame.get("error");
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("request failed");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("ERROR");
    Err(RuntimeError::Failed(format!("gateway {method}: {code}: {message}")))
}

/// Opens the socket and completes challenge → `connect` → `hello-ok`.
async fn handshake(settings: &ClientSettings) -> Result<(Socket, Hello), Ended> {
    let config = WebSocketConfig::default().max_message_size(Some(MAX_FRAME)).max_frame_size(Some(MAX_FRAME));
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(settings.url.as_str(), Some(config), true)
        .await
        .map_err(|e| Ended::Failed(format!("cannot open {}: {e}", settings.url)))?;
    // The challenge comes first; its nonce matters only to device-signed clients.
    loop {
        let frame = next_json(&mut socket).await?;
        if frame.get("event").and_then(Value::as_str) == Some("connect.challenge") {
            break;
        }
    }
    let connect = json!({
        "type": "req",
        "id": "connect",
        "method": "connect",
        "params": {
            "minProtocol": MIN_PROTOCOL,
            "maxProtocol": MAX_PROTOCOL,
            "client": {
                "id": "gateway-client",
                "version": env!("CARGO_PKG_VERSION"),
                "platform": std::env::consts::OS,
                "mode": "backend",
                "displayName": "mission-control",
            },
            "auth": { "token": settings.token.clone().unwrap_or_default() },
            "role": "operator",
            "scopes": ["operator.admin"],
            "caps": ["exec-approvals"],
        },
    });
    socket
        .send(Message::text(connect.to_string()))
        .await
        .map_err(|e| Ended::Failed(format!("cannot send connect: {e}")))?;
    let answer = loop {
        let frame = next_json(&mut socket).await?;
        if frame.get("type").and_then(Value::as_str) == Some("res")
            && frame.get("id").and_then(Value::as_str) == Some("connect")
        {
            break frame;
        }
    };
    if answer.get("ok").and_then(Value::as_bool) != Some(true) {
        let error = answer.get("error").cloned().unwrap_or(Value::Null);
        let detail = error.pointer("/details/code").and_then(Value::as_str).unwrap_or("");
        let message = error.get("message").and_then(Value::as_str).unwrap_or("connect refused");
        return Err(match detail {
            "PROTOCOL_MISMATCH" => Ended::Refused(format!(
                "the gateway speaks protocol {} and this server {MIN_PROTOCOL}-{MAX_PROTOCOL}: {message}",
                error.pointer("/details/expectedProtocol").map_or_else(|| "?".to_owned(), Value::to_string)
            )),
            _ => Ended::Refused(format!("the gateway refused the connection: {message}")),
        });
    }
    let hello = answer.get("payload").cloned().unwrap_or(Value::Null);
    let protocol = hello.get("protocol").and_then(Value::as_u64).unwrap_or(MIN_PROTOCOL);
    let policy = hello.get("policy");
    let tick = policy
        .and_then(|p| p.get("tickIntervalMs"))
        .and_then(Value::as_u64)
        .filter(|&ms| ms > 0)
        .map_or(DEFAULT_TICK, Duration::from_millis);
    let version = hello.pointer("/server/version").and_then(Value::as_str).map(str::to_owned);
    Ok((socket, Hello { protocol, version, tick }))
}

/// The next text frame as JSON; a close during the handshake says why the gateway refused.
async fn next_json(socket: &mut Socket) -> Result<Value, Ended> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Ok(value) = serde_json::from_str::<Value>(text.as_str()) {
                    return Ok(value);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                return Err(match code {
                    1008 => Ended::Refused(format!("the gateway refused the token (close 1008: {reason})")),
                    1002 => Ended::Refused(format!("the gateway refused the protocol (close 1002: {reason})")),
                    _ => Ended::Failed(format!("the gateway closed during the handshake ({code} {reason})")),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Ended::Failed(format!("gateway handshake failed: {e}"))),
            None => return Err(Ended::Failed("the gateway closed during the handshake".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let first = backoff(min, max, 1);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125), "{first:?}");
        let fourth = backoff(min, max, 4);
        assert!(fourth >= Duration::from_millis(600) && fourth <= Duration::from_millis(1000), "{fourth:?}");
        for n in 10..40 {
            assert!(backoff(min, max, n) <= max);
            assert!(backoff(min, max, n) >= max.mul_f64(0.75));
        }
    }

    #[test]
    fn answers_carry_the_gateway_error() {
        let ok = answer_of("agent", json!({"type":"res","id":"1","ok":true,"payload":{"runId":"r"}}));
        assert_eq!(ok.unwrap(), json!({"runId":"r"}));
        let err = answer_of(
            "chat.send",
            json!({"type":"res","id":"1","ok":false,"error":{"code":"INVALID_REQUEST","message":"unknown session"}}),
        );
        assert_eq!(
            err.unwrap_err(),
            RuntimeError::Failed("gateway chat.send: INVALID_REQUEST: unknown session".into())
        );
    }
}
