//! The GraphQL schema: merged roots of every domain, and the extension that gives every
//! error an `extensions.code`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    MergedObject, MergedSubscription, Response, Schema, SchemaBuilder, ServerError, ServerResult, ValidationResult,
    Variables,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::agents::resolvers::{AgentMutation, AgentQuery, AgentSubscription};
use crate::feed::resolvers::{FeedQuery, FeedSubscription};
use crate::tasks::resolvers::{TaskMutation, TaskQuery, TaskSubscription};

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(TaskQuery, AgentQuery, FeedQuery);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(TaskMutation, AgentMutation);

/// The subscription root.
#[derive(MergedSubscription, Default)]
pub struct Subscription(AgentSubscription, TaskSubscription, FeedSubscription);

/// The schema type.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema builder with default limits; callers attach data (database, bus, hub).
pub fn build() -> SchemaBuilder<Query, Mutation, Subscription> {
    build_with(QueryLimits::default())
}

/// The schema builder with `limits` and the error-code extension.
pub fn build_with(limits: QueryLimits) -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .extension(limits)
        .extension(ErrorCodes)
}

/// Limits checked on every document before it is validated or run.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Most aliased fields in one document.
    pub max_aliases: usize,
    /// Most root fields in one operation.
    pub max_root_fields: usize,
    /// Largest document, in bytes.
    pub max_query_bytes: usize,
    /// Deepest selection allowed (introspection excepted: clients' standard introspection
    /// query is deeper than any real query needs to be).
    pub max_depth: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_aliases: 100, max_root_fields: 50, max_query_bytes: 100_000, max_depth: 12 }
    }
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

fn limit_error(message: String, code: &str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// Aliased fields in a selection set, recursively (fragment bodies are counted once, apart).
fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Depth of a selection set with fragments expanded, not counting introspection subtrees.
fn depth<'d>(set: &'d SelectionSet, doc: &'d ExecutableDocument, visiting: &mut Vec<&'d str>) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) if field.node.name.node.starts_with("__") => 0,
            Selection::Field(field) => 1 + depth(&field.node.selection_set.node, doc, visiting),
            Selection::InlineFragment(fragment) => depth(&fragment.node.selection_set.node, doc, visiting),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                // A cycle is a validation error reported later; here it just stops.
                match doc.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) if !visiting.contains(&name) => {
                        visiting.push(name);
                        let d = depth(&fragment.node.selection_set.node, doc, visiting);
                        visiting.pop();
                        d
                    }
                    _ => 0,
                }
            }
        })
        .max()
        .unwrap_or(0)
}

/// Fields at the top of a selection set, looking through fragments one level.
fn count_root_fields(set: &SelectionSet, doc: &ExecutableDocument) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fragment) => fragment.node.selection_set.node.items.len(),
            Selection::FragmentSpread(spread) => {
                doc.fragments.get(&spread.node.fragment_name.node).map_or(0, |f| f.node.selection_set.node.items.len())
            }
        })
        .sum()
}

#[async_trait::async_trait]
impl Extension for QueryLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > self.max_query_bytes {
            let msg = format!("the query is {} bytes; at most {} are allowed", query.len(), self.max_query_bytes);
            return Err(limit_error(msg, "QUERY_TOO_LARGE"));
        }
        let doc = next.run(ctx, query, variables).await?;
        let aliases: usize =
            doc.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
                + doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
        if aliases > self.max_aliases {
            let msg = format!("the query has {aliases} aliases; at most {} are allowed", self.max_aliases);
            return Err(limit_error(msg, "QUERY_TOO_COMPLEX"));
        }
        for (_, op) in doc.operations.iter() {
            let deepest = depth(&op.node.selection_set.node, &doc, &mut Vec::new());
            if deepest > self.max_depth {
                let msg = format!("the query is nested {deepest} levels deep; at most {} are allowed", self.max_depth);
                return Err(limit_error(msg, "QUERY_TOO_DEEP"));
            }
            let roots = count_root_fields(&op.node.selection_set.node, &doc);
            if roots > self.max_root_fields {
                let msg = format!("an operation has {roots} root fields; at most {} are allowed", self.max_root_fields);
                return Err(limit_error(msg, "QUERY_TOO_COMPLEX"));
            }
        }
        Ok(doc)
    }
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    build().finish().sdl()
}

/// Gives every error an `extensions.code`.
///
/// Resolver errors carry theirs already. Parse failures become `GRAPHQL_PARSE_FAILED`,
/// validation failures `GRAPHQL_VALIDATION_FAILED` (or `BAD_USER_INPUT` for bad argument values,
/// and `QUERY_TOO_COMPLEX`/`QUERY_TOO_DEEP` for the cost limits), and anything left
/// `INTERNAL_SERVER_ERROR`.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

fn with_code(mut err: ServerError, code: &str) -> ServerError {
    let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has_code {
        err.extensions.get_or_insert_with(Default::default).set("code", code);
    }
    err
}

/// The code for a validation (or argument-coercion) failure, judged by its message.
fn validation_code(message: &str) -> &'static str {
    if message.contains("nested too deep") {
        "QUERY_TOO_DEEP"
    } else if message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else if message.starts_with("Invalid value")
        || message.starts_with("Failed to parse")
        || message.contains("Variable")
        || message.contains("variable")
        || message.contains("enum")
        || message.contains("expected type")
    {
        "BAD_USER_INPUT"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
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
            let code = if is_input_error(&err.message) { "BAD_USER_INPUT" } else { "INTERNAL_SERVER_ERROR" };
            with_code(err, code)
        })
        .collect();
    response
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        finish(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(finish).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))
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
