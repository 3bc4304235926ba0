//! Task changes: create, update, delete, comment. Each command takes plain values, opens its
//! [`UnitOfWork`] through the [`Writer`] (the change, its activity row and its audit entry
//! commit together, and the events go out only after the commit) and returns the stored row.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

use super::types::{TaskPriority, TaskStatus};
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::{UnitOfWork, Writer};
use crate::entity::{comment, task, task_run, task_search, task_tag};
use crate::error::{AppError, AppResult};
use crate::events::{Event, TaskChange, TaskEventKind};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::time::{from_millis, now_millis};
use crate::validate;

/// Longest title.
pub const MAX_TITLE: usize = 200;
/// Longest description or comment.
pub const MAX_CONTENT: usize = 10_000;

/// A new task, as plain values (stored as JSON, under the API's names, by schedules that
/// create tasks).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<TaskPriority>,
    pub assigned_agent: Option<String>,
    pub due_date: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub metadata: Option<serde_json::Value>,
}

/// The fields of a task to change. For a nullable field `None` leaves it, `Some(None)` clears
/// it and `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<TaskStatus>,
    pub priority: Option<TaskPriority>,
    pub assigned_agent: Option<Option<String>>,
    pub due_date: Option<Option<DateTime<Utc>>>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Option<serde_json::Value>>,
}

/// Task `id` (named `field` in errors), or `NOT_FOUND`.
pub async fn get_existing(db: &impl ConnectionTrait, field: &str, id: &str) -> AppResult<task::Model> {
    validate::uuid(field, id)?;
    task::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::NotFound(format!("task {id} not found")))
}

fn validate_title(title: &str) -> AppResult<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(AppError::invalid("title", "must not be empty"));
    }
    validate::max_len("title", title, MAX_TITLE)?;
    Ok(title.to_owned())
}

fn tags_json(tags: &[String]) -> AppResult<String> {
    validate::tags(tags)?;
    serde_json::to_string(tags).map_err(|e| AppError::Internal(format!("encoding tags: {e}")))
}

async fn replace_tags(db: &impl ConnectionTrait, task_id: &str, tags: &[String]) -> AppResult<()> {
    task_tag::Entity::delete_many().filter(task_tag::Column::TaskId.eq(task_id)).exec(db).await?;
    insert_tags(db, task_id, tags).await
}

/// The tag rows of task `task_id`: one per distinct tag.
fn tag_rows(task_id: &str, tags: &[String]) -> Vec<task_tag::ActiveModel> {
    let mut unique: Vec<&String> = tags.iter().collect();
    unique.sort();
    unique.dedup();
    unique
        .into_iter()
        .map(|tag| task_tag::ActiveModel { task_id: Set(task_id.to_owned()), tag: Set(tag.clone()) })
        .collect()
}

/// Writes the tag rows of a task that has none.
async fn insert_tags(db: &impl ConnectionTrait, task_id: &str, tags: &[String]) -> AppResult<()> {
    let rows = tag_rows(task_id, tags);
    if !rows.is_empty() {
        task_tag::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// The task's entry in the search index: its title and description, folded.
fn search_entry(row: &task::Model) -> task_search::ActiveModel {
    let text = migration::search_text(&row.title, row.description.as_deref());
    task_search::ActiveModel { task_id: Set(row.id.clone()), text: Set(text) }
}

/// Writes (or rewrites) the task's entry in the search index.
async fn index_for_search(db: &impl ConnectionTrait, row: &task::Model) -> AppResult<()> {
    task_search::Entity::insert(search_entry(row))
        .on_conflict(
            OnConflict::column(task_search::Column::TaskId).update_column(task_search::Column::Text).to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// A task as the audit log shows it: its fields under their API names.
fn audited(row: &task::Model) -> serde_json::Value {
    serde_json::json!({
        "title": row.title,
        "description": row.description,
        "status": row.status,
        "priority": TaskPriority::from_rank(row.priority).map(TaskPriority::as_str),
        "assignedAgent": row.assigned_agent,
        "dueDate": row.due_date.map(from_millis),
        "tags": serde_json::from_str::<serde_json::Value>(&row.tags).unwrap_or_default(),
        "metadata": row.metadata.as_deref().and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok()),
    })
}

fn publish_task(uow: &mut UnitOfWork, kind: TaskEventKind, task_id: &str, task: Option<task::Model>) {
    uow.publish_after_commit(Event::Task(Arc::new(TaskChange { kind, task_id: task_id.to_owned(), task })));
}

/// Queues the `taskUpdated` event of `row` for after the unit commits.
pub fn publish_updated(uow: &mut UnitOfWork, row: task::Model) {
    let id = row.id.clone();
    publish_task(uow, TaskEventKind::Updated, &id, Some(row));
}

/// Creates a task; `actor` is logged as its creator.
pub async fn create(writer: &Writer, actor: &Actor, input: NewTask) -> AppResult<task::Model> {
    let actor = actor.clone();
    // Everything is checked before the first write: no savepoint needed.
    writer
        .run_checked(move |uow| Box::pin(async move { insert_task(uow, &actor, input, Insert::AtCommit).await }))
        .await
}

/// When a new task's rows are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Insert {
    /// Now: the change goes on to write rows that refer to it.
    Now,
    /// With the other rows of the batch, just before the commit: nothing can refer to a task
    /// whose id nobody has been told yet.
    AtCommit,
}

/// The stored forms of a new task's checked fields.
struct Checked {
    title: String,
    due: Option<i64>,
    tags_text: String,
    metadata: Option<String>,
}

fn check(input: &NewTask) -> AppResult<Checked> {
    let title = validate_title(&input.title)?;
    if let Some(d) = &input.description {
        validate::max_len("description", d, MAX_CONTENT)?;
    }
    if let Some(a) = &input.assigned_agent {
        validate::max_len("assignedAgent", a, validate::MAX_NAME)?;
    }
    let due = input.due_date.map(|d| validate::date("dueDate", d)).transpose()?;
    let tags_text = tags_json(&input.tags)?;
    let metadata = input.metadata.as_ref().map(|m| validate::metadata("metadata", m)).transpose()?;
    Ok(Checked { title, due, tags_text, metadata })
}

/// Fails as `createTask` would on `input`, without writing anything.
pub fn check_new(input: &NewTask) -> AppResult<()> {
    check(input).map(|_| ())
}

/// Creates a task inside `uow` (for changes that create one as part of something larger).
pub async fn create_in(uow: &mut UnitOfWork, actor: &Actor, input: NewTask) -> AppResult<task::Model> {
    insert_task(uow, actor, input, Insert::Now).await
}

/// Checks every input before its first write (it runs without a savepoint of its own).
async fn insert_task(uow: &mut UnitOfWork, actor: &Actor, input: NewTask, when: Insert) -> AppResult<task::Model> {
    let Checked { title, due, tags_text, metadata } = check(&input)?;
    let now = now_millis();
    let id = uuid::Uuid::now_v7().to_string();
    let row = task::Model {
        id: id.clone(),
        title: title.clone(),
        description: input.description,
        status: input.status.unwrap_or(TaskStatus::Todo).as_str().to_owned(),
        priority: input.priority.unwrap_or(TaskPriority::Medium).rank(),
        assigned_agent: input.assigned_agent,
        created_at: now,
        updated_at: now,
        due_date: due,
        due_sort: due.unwrap_or(i64::MAX),
        tags: tags_text,
        metadata,
        comment_count: 0,
        claimed_by: None,
        claim_holder: None,
        lease_seconds: None,
        lease_expires_at: None,
    };
    match when {
        Insert::Now => {
            task::Entity::insert(row.clone().into_active_model()).exec_without_returning(uow.txn()).await?;
            insert_tags(uow.txn(), &id, &input.tags).await?;
            index_for_search(uow.txn(), &row).await?;
        }
        Insert::AtCommit => {
            uow.insert_new_task_at_commit(row.clone(), tag_rows(&id, &input.tags), search_entry(&row));
        }
    }
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Task, &actor.name, "created")
            .target("task", &id)
            .metadata(serde_json::json!({ "title": title })),
    );
    audit::record(uow, actor, Change::new("task.create").target("task", &id).after(audited(&row)));
    publish_task(uow, TaskEventKind::Created, &id, Some(row.clone()));
    Ok(row)
}

/// A nullable field of an update: `None` when absent, `Some(None)` to clear it, `Some(Some(v))`
/// to set `v` once `check` accepts the value given.
fn given<T, V>(input: Option<Option<T>>, check: impl FnOnce(T) -> AppResult<V>) -> AppResult<Option<Option<V>>> {
    input.map(|value| value.map(check).transpose()).transpose()
}

/// Applies `changes` to task `id`; `updatedAt` always moves forward.
pub async fn update(writer: &Writer, actor: &Actor, id: &str, changes: TaskChanges) -> AppResult<task::Model> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer.run(move |uow| Box::pin(async move { update_task(uow, &actor, &id, changes).await })).await
}

async fn update_task(uow: &mut UnitOfWork, actor: &Actor, id: &str, input: TaskChanges) -> AppResult<task::Model> {
    let current = get_existing(uow.txn(), "id", id).await?;
    let mut changed: Vec<&str> = Vec::new();
    let mut row: task::ActiveModel = current.clone().into();

    if let Some(title) = &input.title {
        row.title = Set(validate_title(title)?);
        changed.push("title");
    }
    if let Some(description) =
        given(input.description, |d| validate::max_len("description", &d, MAX_CONTENT).map(|()| d))?
    {
        row.description = Set(description);
        changed.push("description");
    }
    if let Some(status) = input.status {
        row.status = Set(status.as_str().to_owned());
        changed.push("status");
    }
    if let Some(priority) = input.priority {
        row.priority = Set(priority.rank());
        changed.push("priority");
    }
    if let Some(agent) =
        given(input.assigned_agent, |a| validate::max_len("assignedAgent", &a, validate::MAX_NAME).map(|()| a))?
    {
        row.assigned_agent = Set(agent);
        changed.push("assignedAgent");
    }
    if let Some(due) = given(input.due_date, |d| validate::date("dueDate", d))? {
        row.due_date = Set(due);
        row.due_sort = Set(due.unwrap_or(i64::MAX));
        changed.push("dueDate");
    }
    if let Some(tags) = &input.tags {
        row.tags = Set(tags_json(tags)?);
        replace_tags(uow.txn(), id, tags).await?;
        changed.push("tags");
    }
    if let Some(metadata) = given(input.metadata, |m| validate::metadata("metadata", &m))? {
        row.metadata = Set(metadata);
        changed.push("metadata");
    }
    row.updated_at = Set(Ord::max(now_millis(), current.updated_at + 1));
    let updated = row.update(uow.txn()).await?;
    if updated.title != current.title || updated.description != current.description {
        index_for_search(uow.txn(), &updated).await?;
    }

    let mut meta = serde_json::json!({ "fields": changed, "title": updated.title });
    if input.status.is_some() && updated.status != current.status {
        meta["from"] = current.status.clone().into();
        meta["to"] = updated.status.clone().into();
    }
    log_activity(uow, NewActivity::new(ActivityKind::Task, &actor.name, "updated").target("task", id).metadata(meta));
    let change = Change::new("task.update").target("task", id).diff(audited(&current), audited(&updated));
    audit::record(uow, actor, change);
    publish_task(uow, TaskEventKind::Updated, id, Some(updated.clone()));
    Ok(updated)
}

/// Deletes task `id` with its comments and tags.
pub async fn delete(writer: &Writer, actor: &Actor, id: &str) -> AppResult<()> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer.run(move |uow| Box::pin(async move { delete_task(uow, &actor, &id).await })).await
}

async fn delete_task(uow: &mut UnitOfWork, actor: &Actor, id: &str) -> AppResult<()> {
    let current = get_existing(uow.txn(), "id", id).await?;
    // Explicit deletes keep this independent of the backend's foreign-key enforcement.
    comment::Entity::delete_many().filter(comment::Column::TaskId.eq(id)).exec(uow.txn()).await?;
    task_tag::Entity::delete_many().filter(task_tag::Column::TaskId.eq(id)).exec(uow.txn()).await?;
    task_search::Entity::delete_by_id(id).exec(uow.txn()).await?;
    task_run::Entity::delete_many().filter(task_run::Column::TaskId.eq(id)).exec(uow.txn()).await?;
    task::Entity::delete_by_id(id).exec(uow.txn()).await?;
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Task, &actor.name, "deleted")
            .target("task", id)
            .metadata(serde_json::json!({ "title": current.title })),
    );
    audit::record(uow, actor, Change::new("task.delete").target("task", id).before(audited(&current)));
    publish_task(uow, TaskEventKind::Deleted, id, None);
    Ok(())
}

/// Adds a comment to task `task_id` by `author`.
pub async fn add_comment(
    writer: &Writer,
    actor: &Actor,
    task_id: &str,
    author: &str,
    content: &str,
) -> AppResult<comment::Model> {
    let (actor, task_id, author, content) = (actor.clone(), task_id.to_owned(), author.to_owned(), content.to_owned());
    writer.run(move |uow| Box::pin(async move { comment_in(uow, &actor, &task_id, &author, &content).await })).await
}

/// Adds a comment inside `uow` (with its activity and audit entry), for changes that comment
/// as part of something larger.
pub async fn comment_in(
    uow: &mut UnitOfWork,
    actor: &Actor,
    task_id: &str,
    author: &str,
    content: &str,
) -> AppResult<comment::Model> {
    if content.trim().is_empty() {
        return Err(AppError::invalid("content", "must not be empty"));
    }
    validate::max_len("content", content, MAX_CONTENT)?;
    let author = author.trim();
    if author.is_empty() {
        return Err(AppError::invalid("author", "must not be empty"));
    }
    validate::max_len("author", author, validate::MAX_NAME)?;
    let current = get_existing(uow.txn(), "taskId", task_id).await?;

    let now = now_millis();
    let row = comment::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        task_id: Set(task_id.to_owned()),
        author: Set(author.to_owned()),
        content: Set(content.to_owned()),
        created_at: Set(now),
    }
    .insert(uow.txn())
    .await?;
    // Counted in SQL, not from the row read above: concurrent comments must all count.
    task::Entity::update_many()
        .col_expr(task::Column::CommentCount, Expr::col(task::Column::CommentCount).add(1))
        .col_expr(task::Column::UpdatedAt, Expr::value(Ord::max(now, current.updated_at + 1)))
        .filter(task::Column::Id.eq(task_id))
        .exec(uow.txn())
        .await?;
    let parent = get_existing(uow.txn(), "taskId", task_id).await?;

    log_activity(
        uow,
        NewActivity::new(ActivityKind::Comment, &actor.name, "commented")
            .target("task", task_id)
            .metadata(serde_json::json!({ "commentId": row.id, "author": author })),
    );
    let after = serde_json::json!({ "id": row.id, "author": row.author, "content": row.content });
    audit::record(uow, actor, Change::new("comment.create").target("task", task_id).after(after));
    publish_task(uow, TaskEventKind::Updated, task_id, Some(parent));
    Ok(row)
}
