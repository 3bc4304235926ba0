//! The board as MCP tools at `POST /mcp` (MCP streamable HTTP, from the official Rust SDK).
//!
//! Any MCP-capable agent (Claude Code, Codex, an agent on another machine) works the board
//! with no custom code: `list_tasks`, `get_task`, `create_task`, `claim_task`,
//! `heartbeat_task`, `comment_task`, `complete_task` (and `release_task`). Each tool calls the
//! same service function as its GraphQL field, after the same role check, so the rules, the
//! activity rows and the audit entries are the same. The caller authenticates like a GraphQL
//! client (`Authorization: Bearer <token or API key>`, within the same per-token rate limit)
//! and is the actor and comment author.
//!
//! The server is stateless (no MCP session to keep): every request stands alone, so any
//! instance of a fleet can answer it. Bad arguments are a JSON-RPC error (`-32602`) carrying
//! the message the GraphQL error would; a refused call (`FORBIDDEN`, `NOT_FOUND`, ...) is a
//! tool error (`isError`) carrying its code.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::{Extension, ToolCallContext, schema_for_input};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{Viewer, permissions};
use crate::entity::{task, task_run};
use crate::error::{AppError, AppResult};
use crate::startup::AppState;
use crate::tasks::commands::{self, NewTask};
use crate::tasks::queries;
use crate::tasks::types::{TaskFilter, TaskOrder, TaskPriority, TaskStatus};
use crate::time::from_millis;
use crate::work::{Work, claims};

/// Largest MCP request body (as for GraphQL).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The `/mcp` route: authentication first, then the MCP service.
pub fn routes(state: &AppState) -> axum::Router<AppState> {
    let board = Board { work: Arc::clone(&state.work) };
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // Every request carries a bearer credential, which a rebinding page cannot forge, so
        // the SDK's loopback-only `Host` check would only lock out real deployments.
        .disable_allowed_hosts();
    config.max_request_body_bytes = MAX_BODY_BYTES;
    let service =
        StreamableHttpService::new(move || Ok(board.clone()), Arc::new(NeverSessionManager::default()), config);
    axum::Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
}

/// Lets through only authenticated callers within their rate limit; the caller rides along
/// in the request's extensions, where the tools find it.
async fn authenticate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    match crate::http::authenticate(&state, peer, request.headers()).await {
        Ok(viewer) => {
            request.extensions_mut().insert(viewer);
            next.run(request).await
        }
        Err(refusal) => {
            let (status, err) = refusal.into_parts();
            let body = json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": { "code": -32001, "message": err.public_message(), "data": { "code": err.code().as_str() } },
            });
            let mut response = (status, axum::Json(body)).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// The board's tools.
#[derive(Clone)]
pub struct Board {
    work: Arc<Work>,
}

/// Arguments of `list_tasks` and `claim_task`: the fields of `TaskFilter`, and the page size
/// or the lease.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterArgs {
    /// Any of these statuses.
    pub status: Option<Vec<TaskStatus>>,
    /// Any of these priorities.
    pub priority: Option<Vec<TaskPriority>>,
    /// Assigned to this agent id.
    pub assigned_agent: Option<String>,
    /// Carrying this tag.
    pub tag: Option<String>,
    /// Case-insensitive words of the title or description.
    pub search: Option<String>,
    /// `list_tasks`: how many (1..100, default 50).
    pub first: Option<i32>,
    /// `claim_task`: the lease in seconds (30..86400, default 900).
    pub lease_seconds: Option<i32>,
}

impl FilterArgs {
    fn filter(&self) -> TaskFilter {
        TaskFilter {
            status: self.status.clone(),
            priority: self.priority.clone(),
            assigned_agent: self.assigned_agent.clone(),
            tag: self.tag.clone(),
            search: self.search.clone(),
        }
    }
}

/// A task, by id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdArgs {
    /// The task's id.
    pub id: String,
}

/// Arguments of `create_task` (those of `createTask`'s input).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateArgs {
    pub title: String,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<TaskPriority>,
    pub assigned_agent: Option<String>,
    /// RFC 3339.
    pub due_date: Option<chrono::DateTime<chrono::Utc>>,
    pub tags: Option<Vec<String>>,
    #[schemars(schema_with = "any_json")]
    pub metadata: Option<Value>,
}

/// Any JSON value, as an object schema (some clients refuse the bare `true` schema).
fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "description": "Any JSON value." })
}

/// Arguments of `comment_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommentArgs {
    /// The task's id.
    pub id: String,
    pub content: String,
}

/// Arguments of `complete_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteArgs {
    /// The task's id.
    pub id: String,
    /// Where the task goes (DONE, REVIEW, BLOCKED, ...).
    pub status: TaskStatus,
    /// Posted on the task as the caller's comment.
    pub result: Option<String>,
}

type ToolResult = Result<CallToolResult, ErrorData>;

/// A tool's arguments, decoded strictly: a malformed or unknown argument is a JSON-RPC
/// invalid-params error, as a refused argument value is. (The SDK's own `Parameters` answers
/// a tool error for these instead.)
pub struct Args<T>(pub T);

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Args<T> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        serde_json::from_value(Value::Object(arguments)).map(Args).map_err(|e| {
            ErrorData::invalid_params(format!("arguments: {e}"), Some(json!({ "code": "BAD_USER_INPUT" })))
        })
    }
}

/// The input schema of a tool taking `Args<T>`.
fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // The argument types are this module's own: a schema they cannot give is a bug here.
    schema_for_input::<T>().unwrap_or_else(|e| panic!("the input schema of {}: {e}", std::any::type_name::<T>()))
}

/// The caller, after the role check for the GraphQL field `field` of an operation `ty`.
fn caller(parts: &axum::http::request::Parts, ty: OperationType, field: &str) -> AppResult<Viewer> {
    let viewer = parts
        .extensions
        .get::<Viewer>()
        .cloned()
        .ok_or_else(|| AppError::Unauthenticated("authentication required".into()))?;
    viewer.require(permissions::required(ty, field))?;
    Ok(viewer)
}

/// A service result as MCP shows it: the value, a JSON-RPC error for bad arguments, or a tool
/// error carrying the code.
fn answer(result: AppResult<Value>) -> ToolResult {
    match result {
        Ok(value) => Ok(CallToolResult::structured(value)),
        Err(err @ AppError::Validation(_)) => {
            Err(ErrorData::invalid_params(err.public_message(), Some(json!({ "code": err.code().as_str() }))))
        }
        Err(err) => {
            let (code, message) = (err.code().as_str(), err.public_message());
            let mut result = CallToolResult::error(vec![ContentBlock::text(format!("{code}: {message}"))]);
            result.structured_content = Some(json!({ "code": code, "message": message }));
            Ok(result)
        }
    }
}

fn run_json(row: &task_run::Model) -> Value {
    json!({
        "id": row.id,
        "agentId": row.agent_id,
        "kind": row.kind,
        "status": row.status,
        "startedAt": from_millis(row.started_at),
        "endedAt": row.ended_at.map(from_millis),
        "tokens": row.tokens,
        "cost": row.cost,
        "result": row.result,
    })
}

/// `null` for "none", else the task.
fn maybe_task(row: Option<task::Model>) -> Value {
    row.as_ref().map_or(Value::Null, crate::tasks::json::task)
}

/// Refuses an argument the tool does not take.
fn not_taken(name: &str, value: Option<i32>, tool: &str) -> AppResult<()> {
    match value {
        Some(_) => Err(AppError::invalid(name, format!("is not an argument of {tool}"))),
        None => Ok(()),
    }
}

#[tool_router]
impl Board {
    #[tool(input_schema = schema::<FilterArgs>(), description = "List tasks on the board, newest first. Filters: status, priority, assignedAgent, tag, search; first (1..100).", annotations(read_only_hint = true))]
    async fn list_tasks(
        &self,
        Args(args): Args<FilterArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                caller(&parts, OperationType::Query, "tasks")?;
                not_taken("leaseSeconds", args.lease_seconds, "list_tasks")?;
                let first = crate::pagination::page_size(args.first)?;
                let db = self.work.writer.db();
                let page = queries::list(db, &args.filter(), TaskOrder::default(), first, None).await?;
                let tasks: Vec<Value> = page.rows.iter().map(crate::tasks::json::task).collect();
                Ok(json!({ "tasks": tasks, "hasMore": page.has_next }))
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<IdArgs>(), description = "One task with its comments and runs (what each run cost).", annotations(read_only_hint = true))]
    async fn get_task(
        &self,
        Args(args): Args<IdArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                caller(&parts, OperationType::Query, "task")?;
                let db = self.work.writer.db();
                let row = queries::get(db, &args.id)
                    .await?
                    .ok_or_else(|| AppError::NotFound(format!("task {} not found", args.id)))?;
                let ids = [row.id.clone()];
                let comments = queries::comments_of(db, &ids).await?.remove(&row.id).unwrap_or_default();
                let runs = queries::runs_of(db, &ids).await?.remove(&row.id).unwrap_or_default();
                let mut value = crate::tasks::json::task(&row);
                value["comments"] = comments.iter().map(crate::tasks::json::comment).collect();
                value["tokens"] = runs.iter().fold(0i64, |sum, r| sum.saturating_add(r.tokens)).into();
                value["cost"] = runs.iter().map(|r| r.cost).sum::<f64>().into();
                value["runs"] = runs.iter().map(run_json).collect();
                Ok(value)
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<CreateArgs>(), description = "Create a task (TODO unless a status is given).")]
    async fn create_task(
        &self,
        Args(args): Args<CreateArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                let who = caller(&parts, OperationType::Mutation, "createTask")?;
                let input = NewTask {
                    title: args.title,
                    description: args.description,
                    status: args.status,
                    priority: args.priority,
                    assigned_agent: args.assigned_agent,
                    due_date: args.due_date,
                    tags: args.tags.unwrap_or_default(),
                    metadata: args.metadata,
                };
                Ok(crate::tasks::json::task(&commands::create(&self.work.writer, &who.actor(), input).await?))
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<FilterArgs>(), description = "Claim the next TODO task (highest priority, then oldest) matching the filter, for leaseSeconds (30..86400, default 900). Returns null when none is left. Keep it with heartbeat_task; end it with complete_task.")]
    async fn claim_task(
        &self,
        Args(args): Args<FilterArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                let who = caller(&parts, OperationType::Mutation, "claimTask")?;
                not_taken("first", args.first, "claim_task")?;
                let claimed = claims::claim(&self.work.writer, &who.actor(), args.filter(), args.lease_seconds).await?;
                Ok(json!({ "task": maybe_task(claimed) }))
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<IdArgs>(), description = "Renew your lease on a task you claimed.")]
    async fn heartbeat_task(
        &self,
        Args(args): Args<IdArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                let who = caller(&parts, OperationType::Mutation, "heartbeatTask")?;
                Ok(crate::tasks::json::task(&claims::heartbeat(&self.work.writer, &who.actor(), &args.id).await?))
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<CommentArgs>(), description = "Comment on a task, as yourself.")]
    async fn comment_task(
        &self,
        Args(args): Args<CommentArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                let who = caller(&parts, OperationType::Mutation, "addComment")?;
                let row = commands::add_comment(&self.work.writer, &who.actor(), &args.id, &who.subject, &args.content)
                    .await?;
                Ok(crate::tasks::json::comment(&row))
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<CompleteArgs>(), description = "End your claim on a task with a status (DONE, REVIEW, BLOCKED, ...); result is posted as your comment.")]
    async fn complete_task(
        &self,
        Args(args): Args<CompleteArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                let who = caller(&parts, OperationType::Mutation, "completeTask")?;
                let row = claims::complete(&self.work.writer, &who.actor(), &args.id, args.status, args.result).await?;
                Ok(crate::tasks::json::task(&row))
            }
            .await,
        )
    }

    #[tool(input_schema = schema::<IdArgs>(), description = "Give up your claim on a task: it returns to TODO for the next claimer.")]
    async fn release_task(
        &self,
        Args(args): Args<IdArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        answer(
            async {
                let who = caller(&parts, OperationType::Mutation, "releaseTask")?;
                Ok(crate::tasks::json::task(&claims::release(&self.work.writer, &who.actor(), &args.id).await?))
            }
            .await,
        )
    }
}

#[tool_handler(
    name = "mission-control",
    instructions = "The Mission Control board. Claim work with claim_task, keep it with heartbeat_task while you work, report with comment_task, and finish with complete_task."
)]
impl ServerHandler for Board {}
