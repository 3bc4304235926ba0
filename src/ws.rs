//! `/graphql/ws`: GraphQL subscriptions over WebSocket, both `graphql-transport-ws` and the
//! legacy `graphql-ws` subprotocol.
//!
//! async-graphql runs the protocol; this module adds what it lacks: the token check in
//! `connection_init` (close `4401`), the init timeout (`4408`), closing when the token
//! expires (`4401`), a per-socket subscription limit, a keep-alive ping, and a limit on the
//! size of one whole message (close `1009`), smaller before `connection_init` than after.
//!
//! The upgrade is done here rather than by axum's extractor so that the bytes read from the
//! socket can be metered while a message is still arriving (tungstenite only checks a message's
//! size once a whole frame is in), and so that the per-socket buffers stay small.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{
    ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphQLStream, WebSocketProtocols as Protocols, WsMessage,
};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::auth::{Credentials, Viewer};
use crate::error::ErrorCode;
use crate::startup::AppState;

/// Close code: the token is missing, invalid or expired.
const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: no `connection_init` in time.
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// Close code: a message is larger than allowed.
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the server is shutting down (clients reconnect, to another instance).
const CLOSE_GOING_AWAY: u16 = 1001;

/// How long a closing socket keeps reading (and discarding) what its client still sends, so
/// that the close frame is delivered rather than lost to a TCP reset.
const LINGER: Duration = Duration::from_secs(2);

/// `GET /graphql/ws`: upgrades and serves the socket.
pub async fn handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let client = state.rate.client_ip(peer, headers);
    if let Err(wait) = state.rate.check_websocket(client).await {
        tracing::warn!(client = %client, "WebSocket refused: rate limit");
        let secs = crate::limits::retry_after_secs(wait).to_string();
        let body = format!("too many WebSocket connections: retry in {secs} s");
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs)], body).into_response();
    }
    let (protocol, named) = match choose_protocol(headers) {
        Ok(chosen) => chosen,
        Err(refused) => return refused.into_response(),
    };
    let accept = match handshake_key(request.method(), headers) {
        Ok(key) => tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
        Err((StatusCode::UPGRADE_REQUIRED, why)) => {
            return (StatusCode::UPGRADE_REQUIRED, [(header::UPGRADE, "websocket")], why).into_response();
        }
        Err(refused) => return refused.into_response(),
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "this connection cannot be upgraded to a WebSocket").into_response();
    };
    let running = state.sockets.enter();
    tokio::spawn(async move {
        let _running = running;
        let Ok(upgraded) = on_upgrade.await else { return };
        let budget = Arc::new(ReadBudget::new(state.limits.ws_max_init_message));
        let io = Metered { inner: TokioIo::new(upgraded), budget: Arc::clone(&budget) };
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(state.limits.ws_max_message))
            .max_frame_size(Some(state.limits.ws_max_message));
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        serve(socket, budget, protocol, state, client).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let out = response.headers_mut();
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        out.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(name) = named {
        out.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(name));
    }
    response
}

/// The subprotocol to speak, and its name to answer with when the client named one.
fn choose_protocol(headers: &HeaderMap) -> Result<(Protocols, Option<&'static str>), Refused> {
    let Some(list) = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()) else {
        // No subprotocol named: assume the current one (graphql-transport-ws).
        return Ok((Protocols::GraphQLWS, None));
    };
    // In our order of preference, among those offered.
    ALL_WEBSOCKET_PROTOCOLS
        .iter()
        .find(|ours| list.split(',').any(|offered| offered.trim() == **ours))
        .and_then(|ours| ours.parse::<Protocols>().ok().map(|p| (p, Some(*ours))))
        .ok_or((StatusCode::BAD_REQUEST, "unsupported WebSocket subprotocol: use graphql-transport-ws or graphql-ws"))
}

/// Why an upgrade request was turned away.
type Refused = (StatusCode, &'static str);

/// The client's `Sec-WebSocket-Key`, once the request is a well-formed upgrade (RFC 6455 §4.2.1).
fn handshake_key<'h>(method: &Method, headers: &'h HeaderMap) -> Result<&'h HeaderValue, Refused> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    if method != Method::GET {
        return Err((StatusCode::BAD_REQUEST, "a WebSocket upgrade is a GET request"));
    }
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err((StatusCode::UPGRADE_REQUIRED, "this endpoint speaks WebSocket only"));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13"));
    }
    headers.get(header::SEC_WEBSOCKET_KEY).ok_or((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"))
}

/// How many bytes the message now arriving may still take, shared by the metered socket and
/// the loop that reads messages.
struct ReadBudget {
    /// Bytes read since the last whole message.
    since_message: AtomicUsize,
    /// The most one message may take now.
    limit: AtomicUsize,
    /// `OPEN`, or `DISCARD` once a message passed its limit (reads then swallow everything).
    state: AtomicU8,
}

const OPEN: u8 = 0;
const DISCARD: u8 = 1;

impl ReadBudget {
    fn new(limit: usize) -> Self {
        ReadBudget { since_message: AtomicUsize::new(0), limit: AtomicUsize::new(limit), state: AtomicU8::new(OPEN) }
    }

    fn message_done(&self) {
        self.since_message.store(0, Ordering::Relaxed);
    }

    fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    fn exceeded(&self) -> bool {
        self.state.load(Ordering::Relaxed) != OPEN
    }

    fn discard(&self) {
        self.state.store(DISCARD, Ordering::Relaxed);
    }
}

/// The upgraded socket, counting what is read: once a message passes its budget, that read
/// fails (so the WebSocket layer stops assembling it) and later reads discard the input.
struct Metered<T> {
    inner: T,
    budget: Arc<ReadBudget>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.budget.exceeded() {
            // Swallow input until the client stops or closes; report only the end.
            let mut scratch = [0u8; 8 * 1024];
            loop {
                let mut sink = ReadBuf::new(&mut scratch);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sink))?;
                if sink.filled().is_empty() {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        let total = this.budget.since_message.fetch_add(read, Ordering::Relaxed) + read;
        if total > this.budget.limit.load(Ordering::Relaxed) {
            this.budget.discard();
            return Poll::Ready(Err(io::Error::other("message too large")));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

type Socket = WebSocketStream<Metered<TokioIo<hyper::upgrade::Upgraded>>>;

/// The `type` and `id` of a protocol message, for the subscription count.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }))
}

/// Sends the close frame, then reads (and drops) whatever the client still sends until it
/// answers the close or `LINGER` passes, so the frame is not lost to a reset.
async fn close_gracefully(
    sink: &mut SplitSink<Socket, Message>,
    source: &mut SplitStream<Socket>,
    code: u16,
    reason: &str,
) {
    if sink.send(close_frame(code, reason)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(message)) = source.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

/// What `connection_init` settled: who the socket acts as, or why it was refused.
type InitOutcome = Arc<Mutex<Option<Result<Viewer, String>>>>;

/// How often a socket checks that its token and account may still act.
const ACCOUNT_CHECK: Duration = Duration::from_secs(1);

/// The protocol engine, fed with the client's messages; its init callback checks the token.
fn engine(
    state: &AppState,
    protocol: Protocols,
    from_client: mpsc::Receiver<String>,
    outcome: InitOutcome,
    client: std::net::IpAddr,
) -> impl futures_util::Stream<Item = WsMessage> + Unpin {
    let auth = Arc::clone(&state.auth);
    let on_init = move |payload: serde_json::Value| async move {
        let verified = auth.authenticate(Credentials::ConnectionInit(&payload)).map_err(|e| e.to_string());
        let (result, data) = match verified {
            Ok(principal) => {
                let viewer = principal.viewer.from_client(client);
                let mut data = Data::default();
                data.insert(viewer.clone());
                (Ok(viewer), Ok(data))
            }
            Err(why) => (Err(why.clone()), Err(async_graphql::Error::new(why))),
        };
        if let Ok(mut slot) = outcome.lock() {
            *slot = Some(result);
        }
        data
    };
    GraphQLStream::new(state.schema.clone(), ReceiverStream::new(from_client), protocol).on_connection_init(on_init)
}

/// What one pass of the loop decided.
enum Next {
    Go,
    /// Send this text, then go on.
    Send(String),
    /// Close with this code and reason, gracefully.
    Close(u16, String),
    /// The socket is gone or already closed.
    Stop,
}

/// One socket's bookkeeping around the protocol engine.
struct Session {
    protocol: Protocols,
    max_subscriptions: usize,
    /// A `connection_init` arrived (subscriptions are counted from then on).
    init_seen: bool,
    /// The server acknowledged it.
    acknowledged: bool,
    active: HashSet<String>,
    outcome: InitOutcome,
    /// `mc_subscriptions_active`: moved with `active`.
    gauge: prometheus_client::metrics::gauge::Gauge,
    /// `mc_ws_connections`: raised when the session starts.
    connections: prometheus_client::metrics::gauge::Gauge,
}

/// The socket's end, however it ends: its subscriptions and itself stop counting.
impl Drop for Session {
    fn drop(&mut self) {
        self.gauge.dec_by(self.active.len() as i64);
        self.connections.dec();
    }
}

impl Session {
    fn start(&mut self, id: String) {
        if self.active.insert(id) {
            self.gauge.inc();
        }
    }

    fn end(&mut self, id: &str) {
        if self.active.remove(id) {
            self.gauge.dec();
        }
    }

    fn refused(&self) -> bool {
        self.outcome.lock().ok().and_then(|slot| slot.clone()).is_some_and(|r| r.is_err())
    }

    /// Who the socket acts as, once `connection_init` was accepted.
    fn viewer(&self) -> Option<Viewer> {
        self.outcome.lock().ok().and_then(|slot| slot.clone()).and_then(Result::ok)
    }

    /// Counts a client message; `Some(reply)` when a subscription is refused (over the cap).
    fn on_client(&mut self, text: &str) -> Option<String> {
        let envelope = serde_json::from_str::<Envelope>(text).ok()?;
        match (envelope.kind.as_str(), envelope.id) {
            ("connection_init", _) => self.init_seen = true,
            ("subscribe" | "start", Some(id)) if self.init_seen && !self.active.contains(&id) => {
                if self.active.len() >= self.max_subscriptions {
                    let message = format!("at most {} concurrent subscriptions per connection", self.max_subscriptions);
                    return Some(too_many(self.protocol, &id, &message));
                }
                self.start(id);
            }
            ("complete" | "stop", Some(id)) => self.end(&id),
            _ => {}
        }
        None
    }

    /// Notes a server message: the ack (true when this is it), and subscriptions that ended.
    fn on_server(&mut self, text: &str) -> bool {
        let ack = !self.acknowledged && text.contains("\"connection_ack\"");
        if ack {
            self.acknowledged = true;
        }
        if (text.contains("\"complete\"") || text.contains("\"error\""))
            && let Ok(envelope) = serde_json::from_str::<Envelope>(text)
            && matches!(envelope.kind.as_str(), "complete" | "error")
            && let Some(id) = envelope.id
        {
            self.end(&id);
        }
        ack
    }

    /// The engine closed the socket (`Some(code, reason)`) or ended.
    fn engine_closed(&self, close: Option<(u16, String)>) -> Next {
        match close {
            Some((code, reason)) => {
                // A refused init (1002) or a subscribe before init (1011) is an auth failure.
                let unauthorized = self.refused() || (!self.acknowledged && code == 1011);
                Next::Close(if unauthorized { CLOSE_UNAUTHORIZED } else { code }, reason)
            }
            None if self.refused() => Next::Close(CLOSE_UNAUTHORIZED, "unauthorized".into()),
            None => Next::Close(1000, String::new()),
        }
    }
}

async fn serve(
    socket: Socket,
    budget: Arc<ReadBudget>,
    protocol: Protocols,
    state: AppState,
    client: std::net::IpAddr,
) {
    let (mut sink, mut source) = socket.split();
    let (to_engine, client_messages) = mpsc::channel::<String>(32);
    let outcome: InitOutcome = Arc::default();
    let mut graphql = engine(&state, protocol, client_messages, Arc::clone(&outcome), client);
    let limits = state.limits.clone();
    let mut session = Session {
        protocol,
        max_subscriptions: limits.ws_max_subscriptions,
        init_seen: false,
        acknowledged: false,
        active: HashSet::new(),
        outcome,
        gauge: state.metrics.subscriptions_active.clone(),
        connections: state.metrics.ws_connections.clone(),
    };
    session.connections.inc();

    let init_deadline = tokio::time::sleep(limits.ws_init_timeout);
    tokio::pin!(init_deadline);
    let expiry = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(expiry);
    let mut keepalive = tokio::time::interval(limits.ws_keepalive);
    keepalive.tick().await;
    let mut account_check = tokio::time::interval(ACCOUNT_CHECK);
    let mut stopping = state.stopping.clone();

    let next = loop {
        let step = tokio::select! {
            // Read only while the engine has room: a client that sends faster than the engine
            // takes its messages waits on TCP instead. (`select!` polls this branch before the
            // engine's six times in seven, so a burst of a few dozen messages could fill the
            // queue before the engine ran, and was closed as a flood.)
            incoming = source.next(), if to_engine.capacity() > 0 => from_client(incoming, &mut session, &budget, &to_engine),
            outgoing = graphql.next() => match outgoing {
                Some(WsMessage::Text(text)) => {
                    if session.on_server(&text) {
                        budget.set_limit(limits.ws_max_message);
                        if let Some(exp) = session.viewer().and_then(|v| v.expires_at) {
                            let left = (exp - chrono::Utc::now().timestamp()).max(0) as u64;
                            expiry.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(left));
                        }
                    }
                    Next::Send(text)
                }
                Some(WsMessage::Close(code, reason)) => session.engine_closed(Some((code, reason))),
                None => session.engine_closed(None),
            },
            _ = &mut init_deadline, if !session.acknowledged => {
                if protocol == Protocols::SubscriptionsTransportWS {
                    let msg = r#"{"type":"connection_error","payload":{"message":"connection initialisation timeout"}}"#;
                    let _ = sink.send(Message::Text(msg.into())).await;
                }
                Next::Close(CLOSE_INIT_TIMEOUT, "connection initialisation timeout".into())
            }
            _ = &mut expiry, if session.acknowledged => Next::Close(CLOSE_UNAUTHORIZED, "token expired".into()),
            _ = stopping.wait() => Next::Close(CLOSE_GOING_AWAY, "the server is shutting down; reconnect".into()),
            _ = keepalive.tick(), if session.acknowledged => Next::Send(keepalive_ping(protocol).to_owned()),
            // The sockets of a logged-out token, a disabled or deleted account, a revoked or
            // expired key close within a second or two.
            _ = account_check.tick(), if session.acknowledged => match session.viewer().map(|v| state.auth.current(v)) {
                Some(Err(why)) => Next::Close(CLOSE_UNAUTHORIZED, why.into()),
                _ => Next::Go,
            },
        };
        match step {
            Next::Go => {}
            Next::Send(text) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break Next::Stop;
                }
            }
            other => break other,
        }
    };
    if let Next::Close(code, reason) = next {
        close_gracefully(&mut sink, &mut source, code, &reason).await;
    }
}

/// What to do with one read from the client.
fn from_client(
    incoming: Option<Result<Message, WsError>>,
    session: &mut Session,
    budget: &ReadBudget,
    to_engine: &mpsc::Sender<String>,
) -> Next {
    budget.message_done();
    match incoming {
        Some(Ok(Message::Text(text))) => {
            let text = text.to_string();
            if let Some(refusal) = session.on_client(&text) {
                return Next::Send(refusal);
            }
            // Never wait here: the engine is drained only by the loop's other branch. (The loop
            // reads only while there is room, so the queue is never full here.)
            match to_engine.try_send(text) {
                Ok(()) => Next::Go,
                Err(mpsc::error::TrySendError::Full(_)) => Next::Close(4429, "too many messages: slow down".into()),
                Err(mpsc::error::TrySendError::Closed(_)) => Next::Stop,
            }
        }
        Some(Ok(Message::Binary(_))) => Next::Close(4400, "binary messages are not part of the protocol".into()),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Next::Go,
        Some(Err(WsError::Capacity(_))) => too_big(budget),
        Some(Err(_)) if budget.exceeded() => too_big(budget),
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Next::Stop,
    }
}

fn keepalive_ping(protocol: Protocols) -> &'static str {
    match protocol {
        Protocols::GraphQLWS => r#"{"type":"ping"}"#,
        Protocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
    }
}

/// A message passed its size limit: close with 1009 and swallow the rest of it.
fn too_big(budget: &ReadBudget) -> Next {
    budget.discard();
    let limit = budget.limit.load(Ordering::Relaxed);
    Next::Close(CLOSE_TOO_BIG, format!("a message may be at most {limit} bytes"))
}

/// The protocol's error message for a refused subscription.
fn too_many(protocol: Protocols, id: &str, message: &str) -> String {
    let error =
        serde_json::json!({ "message": message, "extensions": { "code": ErrorCode::TooManySubscriptions.as_str() } });
    let payload = match protocol {
        Protocols::GraphQLWS => serde_json::json!([error]),
        Protocols::SubscriptionsTransportWS => error,
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}
