//! The axum router: GraphQL over HTTP (per the GraphQL-over-HTTP spec), GraphiQL, the REST
//! auth shim, health checks, and the board's MCP tools (`/mcp`, see [`crate::mcp`]).

use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::{BatchRequest, BatchResponse};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::{self, Credentials, Viewer};
use crate::error::{AppError, ErrorCode};
use crate::query_limits::ReadOnlyRequest;
use crate::read_cache::{self, Generation, ReadCache};
use crate::startup::AppState;

/// Largest request body.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// GraphiQL with a login bar; the WebSocket takes its token from GraphiQL's headers editor.
const GRAPHIQL_PAGE: &str = include_str!("graphiql.html");

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.limits.cors_origins);
    let production = state.limits.production;
    let mut routes = Router::new()
        .route("/", get(crate::page::index))
        .route("/assets/{file}", get(crate::page::asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(crate::ws::handler))
        .route("/api/auth/login", post(auth::http::login))
        .route("/api/auth/verify", get(auth::http::verify))
        .route("/api/auth/logout", post(auth::http::logout))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(crate::mcp::routes(&state));
    if state.limits.graphiql {
        routes = routes.route("/graphiql/assets/{file}", get(crate::graphiql::asset));
    }
    let mut router = routes
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .layer(tower_http::trace::TraceLayer::new_for_http());
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    if production {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    router.with_state(state)
}

/// Headers on every response (GraphiQL sets a looser CSP of its own first).
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// True for `http://localhost[:port]` and `http://127.0.0.1[:port]`, the default allow-list.
fn is_local_origin(origin: &str) -> bool {
    ["http://localhost", "http://127.0.0.1"].iter().any(|base| {
        origin.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// CORS from the allow-list: the given origins, or local ones by default. No credentials:
/// clients authenticate with a bearer token, not cookies.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allowed: Vec<String> = origins.iter().map(|o| o.trim_end_matches('/').to_owned()).collect();
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        let Ok(origin) = origin.to_str() else { return false };
        if allowed.is_empty() { is_local_origin(origin) } else { allowed.iter().any(|o| o == origin) }
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST, axum::http::Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(Duration::from_secs(600))
}

/// `429` with `Retry-After`, GraphQL-shaped.
fn rate_limited(media: MediaType, wait: Duration) -> Response {
    let secs = crate::limits::retry_after_secs(wait);
    let mut response = request_error(
        StatusCode::TOO_MANY_REQUESTS,
        media,
        &format!("too many requests: retry in {secs} s"),
        ErrorCode::RateLimited,
    );
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Counts and times every request by its route (the router's path, never the raw URL).
async fn count_request(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let metrics = &state.metrics;
    metrics
        .http_duration
        .get_or_create(&crate::metrics::RouteLabels { route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.http_requests.get_or_create(&crate::metrics::HttpLabels { route, method, status }).inc();
    response
}

/// `GET /metrics`: Prometheus (OpenMetrics) text; behind `--metrics-token` when one is set.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.metrics_token {
        use subtle::ConstantTimeEq;
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(auth::bearer);
        let ok = given.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())));
        if !ok {
            let err = AppError::Unauthenticated("send Authorization: Bearer <the metrics token>".into());
            return err.into_response();
        }
    }
    let m = &state.metrics;
    let (open, idle) = pool_sizes(&state.db);
    m.db_pool_connections.set(open);
    m.db_pool_idle.set(idle);
    if let Some(at) = state.hub.last_poll_success() {
        m.poller_last_success.set(at);
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], m.render()).into_response()
}

/// Open and idle connections of the database pool.
fn pool_sizes(db: &sea_orm::DatabaseConnection) -> (i64, i64) {
    // The backend says which pool it is, so neither getter can panic.
    match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64)
        }
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64)
        }
        _ => (0, 0),
    }
}

/// `GET /health`: liveness, no auth.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "instance": state.instance,
        "eventBus": state.bus.transport_name(),
        "eventBusHealthy": state.bus.healthy(),
        "agentRuntime": state.hub.runtime().name(),
        "agentGateway": state.hub.runtime().gateway_status(),
        "agentPollerLeader": state.hub.is_leader(),
    }))
}

/// `GET /ready`: 200 when the database answers, 503 otherwise.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let answers = tokio::time::timeout(Duration::from_secs(3), crate::db::ping(&state.db)).await.unwrap_or(false);
    if answers {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database does not answer" })),
        )
    }
}

/// Which media type the response uses, from the request's `Accept`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MediaType {
    Json,
    GraphqlResponse,
}

impl MediaType {
    fn as_str(self) -> &'static str {
        match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// Negotiates the response type; a `406` response when the client accepts neither.
fn negotiate(headers: &HeaderMap) -> Result<MediaType, Box<Response>> {
    accepted(headers).ok_or_else(|| {
        Box::new(request_error(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "accept application/json or application/graphql-response+json",
            ErrorCode::NotAcceptable,
        ))
    })
}

/// The response type the client accepts, if any.
fn accepted(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let types: Vec<&str> = accept.split(',').map(|t| t.split(';').next().unwrap_or("").trim()).collect();
    if types.contains(&GRAPHQL_RESPONSE_JSON) {
        Some(MediaType::GraphqlResponse)
    } else if types.iter().any(|t| matches!(*t, "application/json" | "application/*" | "*/*"))
        || accept.trim().is_empty()
    {
        Some(MediaType::Json)
    } else {
        None
    }
}

/// A GraphQL-shaped error response (no `data`).
fn error_response(status: StatusCode, media: MediaType, err: &AppError) -> Response {
    request_error(status, media, &err.public_message(), err.code())
}

fn request_error(status: StatusCode, media: MediaType, message: &str, code: ErrorCode) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    with_type(status, media, body.to_string())
}

fn with_type(status: StatusCode, media: MediaType, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media.as_str()));
    response
}

/// Where an answer to a cacheable read goes: the cache, under the request, at the generation
/// read before it was computed.
struct CacheSlot<'a> {
    cache: &'a ReadCache,
    key: Bytes,
    generation: Generation,
    /// The request's document and operation, judged only once it ran without error (so it
    /// met every limit before it is parsed again here).
    query: String,
    operation: Option<String>,
}

/// The generation of the data reads see now (see [`crate::read_cache`]).
fn generation(state: &AppState) -> Generation {
    (state.writer.transactions(), state.hub.version())
}

/// Why a GraphQL request was turned away before execution.
pub(crate) enum Refusal {
    Unauthenticated(AppError),
    RateLimited(Duration),
}

impl Refusal {
    /// The HTTP status and the error, for transports that shape their own answers (MCP).
    pub(crate) fn into_parts(self) -> (StatusCode, AppError) {
        match self {
            Refusal::Unauthenticated(err) => (StatusCode::UNAUTHORIZED, err),
            Refusal::RateLimited(wait) => {
                let secs = crate::limits::retry_after_secs(wait);
                (StatusCode::TOO_MANY_REQUESTS, AppError::RateLimited(format!("too many requests: retry in {secs} s")))
            }
        }
    }

    fn respond(self, media: MediaType) -> Response {
        match self {
            Refusal::Unauthenticated(err) => error_response(StatusCode::UNAUTHORIZED, media, &err),
            Refusal::RateLimited(wait) => rate_limited(media, wait),
        }
    }
}

/// The caller, through the one auth door, within the per-token rate limit.
pub(crate) async fn authenticate(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<Viewer, Refusal> {
    let principal = state
        .auth
        .authenticate(Credentials::Headers(headers))
        .map_err(|e| Refusal::Unauthenticated(AppError::from(e)))?;
    state.rate.check_request(&principal.token).await.map_err(Refusal::RateLimited)?;
    Ok(principal.viewer.from_client(state.rate.client_ip(peer, headers)))
}

/// Executes a parsed request and shapes the HTTP response.
async fn execute(
    state: &AppState,
    media: MediaType,
    viewer: Viewer,
    batch: BatchRequest,
    slot: Option<CacheSlot<'_>>,
) -> Response {
    let batch = batch.data(viewer);
    let response = match tokio::time::timeout(state.limits.execution_timeout, state.schema.execute_batch(batch)).await {
        Ok(response) => response,
        Err(_) => {
            let msg = format!(
                "the request took longer than {} ms and was stopped",
                state.limits.execution_timeout.as_millis()
            );
            return request_error(StatusCode::SERVICE_UNAVAILABLE, media, &msg, ErrorCode::Timeout);
        }
    };
    let (body, request_error) = match &response {
        BatchResponse::Single(single) => {
            let sent = Sent::new(single);
            (serde_json::to_string(&sent), sent.request_error)
        }
        BatchResponse::Batch(list) => (serde_json::to_string(&list.iter().map(Sent::new).collect::<Vec<_>>()), false),
    };
    let body = body.unwrap_or_else(|_| r#"{"errors":[{"message":"internal error"}]}"#.to_owned());
    if let BatchResponse::Single(single) = &response
        && single.errors.iter().any(|e| has_code(e, ErrorCode::MethodNotAllowed))
    {
        let mut response = with_type(StatusCode::METHOD_NOT_ALLOWED, media, body);
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    // GraphQL over HTTP: with the new media type a request error (no `data`) is a 4xx;
    // with application/json every well-formed request gets 200.
    let status =
        if request_error && media == MediaType::GraphqlResponse { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    if let (Some(slot), BatchResponse::Single(single)) = (slot, &response)
        && single.errors.is_empty()
        && crate::query_limits::cacheable_read(&slot.query, slot.operation.as_deref())
    {
        let body = Bytes::from(body);
        slot.cache.put(slot.key, slot.generation, body.clone());
        return with_type(status, media, body);
    }
    with_type(status, media, body)
}

fn has_code(err: &async_graphql::ServerError, code: ErrorCode) -> bool {
    err.extensions.as_ref().and_then(|e| e.get("code")).is_some_and(|c| *c == async_graphql::Value::from(code.as_str()))
}

/// One response as sent, serialised once: request errors (parse, validation) carry no
/// `data` entry, everything else is the response as async-graphql shapes it.
struct Sent<'a> {
    response: &'a async_graphql::Response,
    request_error: bool,
}

impl<'a> Sent<'a> {
    fn new(response: &'a async_graphql::Response) -> Self {
        let request_error = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        Sent { response, request_error }
    }
}

impl serde::Serialize for Sent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if !self.request_error {
            return self.response.serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        if !self.response.extensions.is_empty() {
            map.serialize_entry("extensions", &self.response.extensions)?;
        }
        map.serialize_entry("errors", &self.response.errors)?;
        map.end()
    }
}

/// `POST /graphql`.
async fn graphql_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let media = match negotiate(&headers) {
        Ok(media) => media,
        Err(refused) => return *refused,
    };
    // Only JSON bodies: a form or text/plain POST could be a cross-site request forgery.
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && essence != GRAPHQL_RESPONSE_JSON {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "send the request as Content-Type: application/json",
            ErrorCode::UnsupportedMediaType,
        );
    }
    let viewer = match authenticate(&state, peer, &headers).await {
        Ok(v) => v,
        Err(refusal) => return refusal.respond(media),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let msg = format!("the request body is larger than {MAX_BODY_BYTES} bytes");
            return request_error(StatusCode::PAYLOAD_TOO_LARGE, media, &msg, ErrorCode::PayloadTooLarge);
        }
        Err(rejection) => {
            return request_error(rejection.status(), media, &rejection.body_text(), ErrorCode::BadRequest);
        }
    };
    // A board read answered since the last change is sent again as it was.
    let generation = generation(&state);
    let cached = state.read_cache.as_ref().zip(read_cache::key(media.as_str(), &body));
    if let Some(answer) = cached.as_ref().and_then(|(cache, key)| cache.get(key, generation)) {
        return with_type(StatusCode::OK, media, answer);
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(err) => {
            let what = if std::str::from_utf8(&body).is_err() {
                "body is not valid UTF-8".to_owned()
            } else {
                format!("malformed GraphQL request: {err}")
            };
            return request_error(StatusCode::BAD_REQUEST, media, &what, ErrorCode::BadRequest);
        }
    };
    if let BatchRequest::Batch(list) = &batch
        && (list.len() > state.limits.max_batch || list.is_empty())
    {
        let msg = match state.limits.max_batch {
            0 => "batched requests are turned off".to_owned(),
            max => format!("a batch holds 1 to {max} operations, got {}", list.len()),
        };
        return request_error(StatusCode::BAD_REQUEST, media, &msg, ErrorCode::BatchTooLarge);
    }
    let slot = match (cached, &batch) {
        (Some((cache, key)), BatchRequest::Single(request)) if !request.query.trim_start().starts_with("mutation") => {
            let (query, operation) = (request.query.clone(), request.operation_name.clone());
            Some(CacheSlot { cache, key, generation, query, operation })
        }
        _ => None,
    };
    execute(&state, media, viewer, batch, slot).await
}

/// The parameters of a GraphQL GET request: `query`, `operationName` (the spec's spelling;
/// `operation_name` is read too), and `variables` / `extensions` as JSON text.
#[derive(serde::Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName", alias = "operation_name")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

fn get_request(raw: &str) -> Result<async_graphql::Request, String> {
    let params: GetParams = serde_urlencoded::from_str(raw).map_err(|e| format!("malformed GraphQL request: {e}"))?;
    let query = params.query.ok_or_else(|| "malformed GraphQL request: missing `query`".to_owned())?;
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(text) = params.variables.filter(|v| !v.is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("malformed GraphQL request: variables: {e}"))?;
        request = request.variables(async_graphql::Variables::from_json(value));
    }
    if let Some(text) = params.extensions.filter(|v| !v.is_empty()) {
        // Extensions (persisted-query hashes, say) are not used here; they must still be JSON.
        serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| format!("malformed GraphQL request: extensions: {e}"))?;
    }
    Ok(request)
}

/// `GET /graphql`: GraphiQL for browsers, otherwise a query (never a mutation) from the URL.
async fn graphql_get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // A browser navigating here (HTML, not a GraphQL media type) gets GraphiQL, `?query=`
    // links included; GraphQL clients asking for JSON get their query run.
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("text/html") && !accept.contains("application/json") && !accept.contains(GRAPHQL_RESPONSE_JSON) {
        if !state.limits.graphiql {
            return (StatusCode::NOT_FOUND, "GraphiQL is off in production (turn it on with --graphiql)")
                .into_response();
        }
        let mut page = Html(GRAPHIQL_PAGE).into_response();
        page.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::graphiql::CSP));
        return page;
    }
    let media = match negotiate(&headers) {
        Ok(media) => media,
        Err(refused) => return *refused,
    };
    let viewer = match authenticate(&state, peer, &headers).await {
        Ok(v) => v,
        Err(refusal) => return refusal.respond(media),
    };
    let request = match get_request(query.as_deref().unwrap_or("")) {
        Ok(request) => request,
        Err(why) => return request_error(StatusCode::BAD_REQUEST, media, &why, ErrorCode::BadRequest),
    };
    // Mutations over GET are refused (GET must be safe, and is what a forged link sends);
    // the query-limits extension checks this once the document is parsed.
    let read_only = ReadOnlyRequest { operation_name: request.operation_name.clone() };
    let request = request.data(read_only);
    execute(&state, media, viewer, BatchRequest::Single(request), None).await
}
