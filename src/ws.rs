//! `/graphql/ws`: GraphQL subscriptions over WebSocket, both `graphql-transport-ws` and the
//! legacy `graphql-ws` subprotocol.
//!
//! async-graphql runs the protocol; this module adds what it lacks: the token check in
//! `connection_init` (close `4401`), the init timeout (`4408`), closing when the token
//! expires (`4401`), a per-socket subscription limit and a keep-alive ping.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{
    ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphQLStream, WebSocketProtocols as Protocols, WsMessage,
};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::{Viewer, bearer};
use crate::startup::AppState;

/// Close code: the token is missing, invalid or expired.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: no `connection_init` in time.
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// `GET /graphql/ws`: upgrades and serves the socket.
pub async fn handler(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = state.rate.client_ip(peer, &headers);
    if let Err(wait) = state.rate.check_websocket(client).await {
        tracing::warn!(client = %client, "WebSocket refused: rate limit");
        let secs = crate::limits::retry_after_secs(wait).to_string();
        let body = format!("too many WebSocket connections: retry in {secs} s");
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs)], body).into_response();
    }
    let requested = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
    let protocol = match requested {
        // No subprotocol named: assume the current one (graphql-transport-ws).
        None => Protocols::GraphQLWS,
        // Choose as axum answers: in our order of preference, among those offered.
        Some(list) => match ALL_WEBSOCKET_PROTOCOLS
            .iter()
            .find(|ours| list.split(',').any(|offered| offered.trim() == **ours))
            .and_then(|ours| ours.parse::<Protocols>().ok())
        {
            Some(protocol) => protocol,
            None => {
                let msg = "unsupported WebSocket subprotocol: use graphql-transport-ws or graphql-ws";
                return (StatusCode::BAD_REQUEST, msg).into_response();
            }
        },
    };
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| serve(socket, protocol, state))
}

/// The token of a `connection_init` payload: `{"authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`.
fn token_of(payload: &serde_json::Value) -> Option<String> {
    let get = |key: &str| payload.get(key).and_then(|v| v.as_str());
    get("authorization").or_else(|| get("Authorization")).and_then(bearer).or_else(|| get("token")).map(str::to_owned)
}

/// The `type` and `id` of a client message, for the subscription count.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

async fn serve(socket: WebSocket, protocol: Protocols, state: AppState) {
    let (mut sink, mut source) = socket.split();
    let (to_graphql, from_client) = mpsc::channel::<String>(32);

    // Filled by the init callback: the caller when the token is good, or the refusal.
    let auth: Arc<Mutex<Option<Result<i64, String>>>> = Arc::new(Mutex::new(None));
    let tokens = state.auth.tokens.clone();
    let auth_slot = Arc::clone(&auth);
    let on_init = move |payload: serde_json::Value| async move {
        let verified = token_of(&payload)
            .ok_or_else(|| "connection_init must carry {\"authorization\": \"Bearer <jwt>\"}".to_owned())
            .and_then(|token| tokens.verify(&token).map_err(|e| e.public_message()));
        let (result, data) = match verified {
            Ok(claims) => {
                let viewer = Viewer::from(claims);
                let mut data = Data::default();
                let expires = viewer.expires_at;
                data.insert(viewer);
                (Ok(expires), Ok(data))
            }
            Err(why) => (Err(why.clone()), Err(async_graphql::Error::new(why))),
        };
        if let Ok(mut slot) = auth_slot.lock() {
            *slot = Some(result);
        }
        data
    };
    let mut graphql = GraphQLStream::new(state.schema.clone(), ReceiverStream::new(from_client), protocol)
        .on_connection_init(on_init);

    let limits = state.limits.clone();
    let init_deadline = tokio::time::sleep(limits.ws_init_timeout);
    tokio::pin!(init_deadline);
    let expiry = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(expiry);
    let mut keepalive = tokio::time::interval(limits.ws_keepalive);
    keepalive.tick().await;
    let mut initialised = false;
    let mut active: HashSet<String> = HashSet::new();
    let refused = || auth.lock().ok().and_then(|slot| slot.clone()).is_some_and(|r| r.is_err());

    loop {
        tokio::select! {
            incoming = source.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        let _ = sink.send(close(4400, "binary messages are not part of the protocol")).await;
                        break;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                if let Ok(envelope) = serde_json::from_str::<Envelope>(&text) {
                    match (envelope.kind.as_str(), envelope.id) {
                        ("subscribe" | "start", Some(id)) if initialised && !active.contains(&id) => {
                            if active.len() >= limits.ws_max_subscriptions {
                                let message = format!("at most {} concurrent subscriptions per connection", limits.ws_max_subscriptions);
                                let _ = sink.send(Message::Text(too_many(protocol, &id, &message).into())).await;
                                continue;
                            }
                            active.insert(id);
                        }
                        ("complete" | "stop", Some(id)) => { active.remove(&id); }
                        _ => {}
                    }
                }
                // Never wait here: the protocol engine is drained only by the other branch.
                match to_graphql.try_send(text) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let _ = sink.send(close(4429, "too many messages: slow down")).await;
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            outgoing = graphql.next() => {
                match outgoing {
                    Some(WsMessage::Text(text)) => {
                        if !initialised && text.contains("\"connection_ack\"") {
                            initialised = true;
                            if let Some(Ok(exp)) = auth.lock().ok().and_then(|slot| slot.clone()) {
                                let left = (exp - chrono::Utc::now().timestamp()).max(0) as u64;
                                expiry.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(left));
                            }
                        }
                        if text.contains("\"complete\"")
                            && let Ok(envelope) = serde_json::from_str::<Envelope>(&text)
                            && envelope.kind == "complete"
                            && let Some(id) = envelope.id
                        {
                            active.remove(&id);
                        }
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        // Refused init (1002) or a subscribe before init (1011) is an auth failure.
                        let code = if refused() || (!initialised && code == 1011) { CLOSE_UNAUTHORIZED } else { code };
                        let _ = sink.send(close(code, &reason)).await;
                        break;
                    }
                    None => {
                        if refused() {
                            let _ = sink.send(close(CLOSE_UNAUTHORIZED, "unauthorized")).await;
                        }
                        break;
                    }
                }
            }
            _ = &mut init_deadline, if !initialised => {
                if protocol == Protocols::SubscriptionsTransportWS {
                    let msg = r#"{"type":"connection_error","payload":{"message":"connection initialisation timeout"}}"#;
                    let _ = sink.send(Message::Text(msg.into())).await;
                }
                let _ = sink.send(close(CLOSE_INIT_TIMEOUT, "connection initialisation timeout")).await;
                break;
            }
            _ = &mut expiry, if initialised => {
                let _ = sink.send(close(CLOSE_UNAUTHORIZED, "token expired")).await;
                break;
            }
            _ = keepalive.tick(), if initialised => {
                let ping = match protocol {
                    Protocols::GraphQLWS => r#"{"type":"ping"}"#,
                    Protocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
                };
                if sink.send(Message::Text(ping.into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// The protocol's error message for a refused subscription.
fn too_many(protocol: Protocols, id: &str, message: &str) -> String {
    let error = serde_json::json!({ "message": message, "extensions": { "code": "TOO_MANY_SUBSCRIPTIONS" } });
    let payload = match protocol {
        Protocols::GraphQLWS => serde_json::json!([error]),
        Protocols::SubscriptionsTransportWS => error,
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}
