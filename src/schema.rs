//! The GraphQL schema: merged roots of every domain, and the extension that gives every
//! error an `extensions.code`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    MergedObject, MergedSubscription, Response, Schema, SchemaBuilder, ServerError, ServerResult, ValidationResult,
    Variables,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

pub use crate::query_limits::QueryLimits;

use crate::agents::resolvers::{AgentMutation, AgentQuery, AgentSubscription};
use crate::alerts::resolvers::{AlertMutation, AlertQuery, AlertSubscription};
use crate::audit::resolvers::AuditQuery;
use crate::auth::resolvers::{AuthMutation, AuthQuery};
use crate::error::{ErrorCode, with_code};
use crate::feed::resolvers::{FeedQuery, FeedSubscription};
use crate::schedules::resolvers::{ScheduleMutation, ScheduleQuery};
use crate::tasks::resolvers::{TaskMutation, TaskQuery, TaskSubscription};
use crate::usage::resolvers::UsageQuery;
use crate::work::resolvers::WorkMutation;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(TaskQuery, AgentQuery, FeedQuery, AuthQuery, AuditQuery, ScheduleQuery, AlertQuery, UsageQuery);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(TaskMutation, WorkMutation, AgentMutation, AuthMutation, ScheduleMutation, AlertMutation);

/// The subscription root.
#[derive(MergedSubscription, Default)]
pub struct Subscription(AgentSubscription, TaskSubscription, FeedSubscription, AlertSubscription);

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema builder with default limits; callers attach data (database, bus, hub).
pub fn build() -> SchemaBuilder<Query, Mutation, Subscription> {
    build_with(QueryLimits::default())
}

/// The schema builder with `limits` and the error-code extension.
pub fn build_with(limits: QueryLimits) -> SchemaBuilder<Query, Mutation, Subscription> {
    build_observed(limits, None)
}

/// Like [`build_with`], counting operations and errors in `metrics`.
pub fn build_observed(
    limits: QueryLimits,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .extension(crate::query_limits::Checking::new(limits))
        .extension(ErrorCodes { metrics })
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    build().finish().sdl()
}

/// Gives every error an `extensions.code` (and counts operations and errors, when given
/// the metrics: this extension sees both already, so counting costs no extra hook per field).
///
/// Resolver errors carry theirs already. Parse failures become `GRAPHQL_PARSE_FAILED`,
/// validation failures `GRAPHQL_VALIDATION_FAILED` (or `BAD_USER_INPUT` for bad argument values,
/// and `QUERY_TOO_COMPLEX`/`QUERY_TOO_DEEP` for the cost limits), and anything left
/// `INTERNAL_SERVER_ERROR`.
struct ErrorCodes {
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension { metrics: self.metrics.clone() })
    }
}

struct ErrorCodesExtension {
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Gives `response`'s errors their codes, and counts them in `metrics`.
fn finish_counted(response: Response, metrics: Option<&crate::metrics::Metrics>) -> Response {
    let response = finish(response);
    if let Some(metrics) = metrics {
        for err in &response.errors {
            let code = err.extensions.as_ref().and_then(|e| e.get("code")).map(|c| c.to_string());
            metrics.count_error(code.as_deref().map_or("UNKNOWN", |c| c.trim_matches('"')));
        }
    }
    response
}

/// The code for a validation (or argument-coercion) failure, judged by its message.
fn validation_code(message: &str) -> ErrorCode {
    if message.contains("nested too deep") {
        ErrorCode::QueryTooDeep
    } else if message.contains("too complex") {
        ErrorCode::QueryTooComplex
    } else if message.starts_with("Invalid value")
        || message.starts_with("Failed to parse")
        || message.contains("Variable")
        || message.contains("variable")
        || message.contains("enum")
        || message.contains("expected type")
    {
        ErrorCode::BadUserInput
    } else {
        ErrorCode::GraphqlValidationFailed
    }
}

/// Whether a code-less field error is async-graphql's complaint about an argument or variable
/// value ("Failed to parse", "Invalid value", "Expected input type", "Variable x is not
/// defined", ...). Every error our resolvers raise carries a code already, so code-less ones
/// are input problems, except a missing context value, which is a wiring bug.
fn is_input_error(message: &str) -> bool {
    !(message.starts_with("Data `") && message.ends_with("does not exist."))
}

fn finish(mut response: Response) -> Response {
    response.errors = response
        .errors
        .into_iter()
        .map(|err| {
            let code =
                if is_input_error(&err.message) { ErrorCode::BadUserInput } else { ErrorCode::InternalServerError };
            with_code(err, code)
        })
        .collect();
    response
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        finish_counted(next.run(ctx).await, self.metrics.as_deref())
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let metrics = self.metrics.clone();
        next.run(ctx, stream).map(move |response| finish_counted(response, metrics.as_deref())).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await;
        if let (Some(metrics), Ok(doc)) = (&self.metrics, &document) {
            let name = ctx.data_opt::<crate::query_limits::OperationName>().and_then(|n| n.0.as_deref());
            count_operation(metrics, doc, name);
        }
        document.map_err(|e| {
            // async-graphql's own recursion limit is checked as part of parsing.
            let code = if e.message.contains("recursion depth") {
                ErrorCode::QueryTooDeep
            } else {
                ErrorCode::GraphqlParseFailed
            };
            with_code(e, code)
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = validation_code(&e.message);
                    with_code(e, code)
                })
                .collect()
        })
    }
}

/// Counts the operation of `doc` that runs (the one named, or the only one).
fn count_operation(metrics: &crate::metrics::Metrics, doc: &ExecutableDocument, name: Option<&str>) {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Some(op) = crate::query_limits::selected_operation(doc, name) else { return };
    let name = name.or(match &doc.operations {
        DocumentOperations::Multiple(ops) => ops.keys().next().map(|n| n.as_str()),
        DocumentOperations::Single(_) => None,
    });
    let ty = match op.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    metrics.count_operation(ty, name);
}
