//! GraphQL resolvers of tasks and comments: parse, check the role, call the service, map.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, ResultExt, Subscription};
use futures_util::Stream;
use sea_orm::DatabaseConnection;

use super::types::{Comment, CreateTaskInput, Task, TaskEvent, TaskFilter, TaskOrder, UpdateTaskInput};
use super::{commands, queries};
use crate::auth::{viewer, writer};
use crate::db::Writer;
use crate::events::{Event, EventBus};
use crate::pagination;
use crate::subscriptions::broadcast_stream;

/// `totalCount` of a task connection, counted only when asked for.
pub struct TaskCount {
    filter: TaskFilter,
}

#[Object]
impl TaskCount {
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(queries::count(db, &self.filter).await.extend()? as i64)
    }
}

/// Task queries.
#[derive(Default)]
pub struct TaskQuery;

#[Object]
impl TaskQuery {
    /// Tasks, newest first by default; `first` 1..100 (default 50).
    #[graphql(complexity = "crate::pagination::cost(first, child_complexity)")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<TaskFilter>,
        order_by: Option<TaskOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Task, TaskCount>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        let first = pagination::page_size(first).extend()?;
        let filter = filter.unwrap_or_default();
        let order = order_by.unwrap_or_default();
        let page = queries::list(db, &filter, order, first, after.as_deref()).await.extend()?;
        let mut connection = Connection::with_additional_fields(after.is_some(), page.has_next, TaskCount { filter });
        connection.edges.extend(page.rows.into_iter().map(|row| Edge::new(queries::cursor(order, &row), Task(row))));
        Ok(connection)
    }

    /// One task, or null when absent.
    async fn task(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Task>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(queries::get(db, &id).await.extend()?.map(Task))
    }
}

/// Task mutations.
#[derive(Default)]
pub struct TaskMutation;

#[Object]
impl TaskMutation {
    async fn create_task(&self, ctx: &Context<'_>, input: CreateTaskInput) -> async_graphql::Result<Task> {
        let who = writer(ctx).extend()?;
        let changes = ctx.data::<Writer>()?;
        Ok(Task(commands::create(changes, &who.actor(), input.into()).await.extend()?))
    }

    async fn update_task(&self, ctx: &Context<'_>, id: ID, input: UpdateTaskInput) -> async_graphql::Result<Task> {
        let who = writer(ctx).extend()?;
        let changes = ctx.data::<Writer>()?;
        Ok(Task(commands::update(changes, &who.actor(), &id, input.into()).await.extend()?))
    }

    async fn delete_task(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let who = writer(ctx).extend()?;
        let changes = ctx.data::<Writer>()?;
        commands::delete(changes, &who.actor(), &id).await.extend()?;
        Ok(id)
    }

    /// Adds a comment; `author` defaults to the caller.
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        task_id: ID,
        content: String,
        author: Option<String>,
    ) -> async_graphql::Result<Comment> {
        let who = writer(ctx).extend()?;
        let changes = ctx.data::<Writer>()?;
        let author = author.unwrap_or_else(|| who.subject.clone());
        let row = commands::add_comment(changes, &who.actor(), &task_id, &author, &content).await.extend()?;
        Ok(row.into())
    }
}

/// Task subscriptions.
#[derive(Default)]
pub struct TaskSubscription;

#[Subscription]
impl TaskSubscription {
    /// Every committed task change, or those of one task. A new comment is an UPDATED event.
    async fn task_updated(
        &self,
        ctx: &Context<'_>,
        task_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<TaskEvent>> + use<>> {
        viewer(ctx).extend()?;
        let bus = ctx.data::<EventBus>()?;
        let wanted = task_id.map(|id| id.to_string());
        Ok(broadcast_stream(bus.subscribe(), "taskUpdated", move |event| match event {
            Event::Task(change) if wanted.as_ref().is_none_or(|id| *id == change.task_id) => Some(TaskEvent(change)),
            _ => None,
        }))
    }
}
