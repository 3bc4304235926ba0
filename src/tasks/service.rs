//! Task and comment logic on a database connection, usable without GraphQL.
//!
//! Every mutation runs in a [`UnitOfWork`]: the change and its activity row commit together,
//! and the events go out only after the commit.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, LikeExpr, Query, SelectStatement, UnionType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set,
};

use async_graphql::MaybeUndefined;

use super::types::{
    CreateTaskInput, OrderDirection, TaskFilter, TaskOrder, TaskOrderField, TaskStatus, UpdateTaskInput,
};
use crate::db::UnitOfWork;
use crate::entity::{comment, task, task_tag};
use crate::error::{AppError, AppResult};
use crate::events::{Event, TaskChange, TaskEventKind};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::pagination;
use crate::time::now_millis;
use crate::validate;

/// Longest title.
pub const MAX_TITLE: usize = 200;
/// Longest description or comment.
pub const MAX_CONTENT: usize = 10_000;

/// One page of tasks.
pub struct TaskPage {
    pub rows: Vec<task::Model>,
    pub has_next: bool,
}

/// The sort key column and a row's value of it.
fn order_column(field: TaskOrderField) -> task::Column {
    match field {
        TaskOrderField::CreatedAt => task::Column::CreatedAt,
        TaskOrderField::UpdatedAt => task::Column::UpdatedAt,
        TaskOrderField::DueDate => task::Column::DueSort,
        TaskOrderField::Priority => task::Column::Priority,
    }
}

fn order_key(field: TaskOrderField, row: &task::Model) -> i64 {
    match field {
        TaskOrderField::CreatedAt => row.created_at,
        TaskOrderField::UpdatedAt => row.updated_at,
        TaskOrderField::DueDate => row.due_sort,
        TaskOrderField::Priority => i64::from(row.priority),
    }
}

/// The cursor of `row` in a list ordered by `order`.
pub fn cursor(order: TaskOrder, row: &task::Model) -> String {
    pagination::encode(&["t", order.field.as_str(), &order_key(order.field, row).to_string(), &row.id])
}

fn decode_cursor(order: TaskOrder, cursor: &str) -> AppResult<(i64, String)> {
    let parts = pagination::decode(cursor, "t", 4)?;
    if parts[1] != order.field.as_str() {
        return Err(AppError::invalid("after", "cursor belongs to a different orderBy"));
    }
    let key = parts[2].parse().map_err(|_| AppError::invalid("after", "malformed cursor"))?;
    Ok((key, parts[3].clone()))
}

/// The filtered (unordered, unpaged) selection.
pub fn filtered(filter: &TaskFilter) -> AppResult<Select<task::Entity>> {
    let mut select = task::Entity::find();
    if let Some(statuses) = filter.status.as_ref().filter(|s| !s.is_empty()) {
        select = select.filter(task::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(priorities) = filter.priority.as_ref().filter(|p| !p.is_empty()) {
        select = select.filter(task::Column::Priority.is_in(priorities.iter().map(|p| p.rank())));
    }
    if let Some(agent) = &filter.assigned_agent {
        validate::max_len("filter.assignedAgent", agent, validate::MAX_NAME)?;
        select = select.filter(task::Column::AssignedAgent.eq(agent.as_str()));
    }
    if let Some(tag) = &filter.tag {
        validate::max_len("filter.tag", tag, validate::MAX_TAG)?;
        select = select.filter(
            task::Column::Id.in_subquery(
                Query::select()
                    .column(task_tag::Column::TaskId)
                    .from(task_tag::Entity)
                    .and_where(task_tag::Column::Tag.eq(tag.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        validate::max_len("filter.search", search, MAX_TITLE)?;
        let escaped = search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let like = |col: task::Column| {
            Expr::expr(Func::lower(Expr::col(col))).like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        select = select.filter(Condition::any().add(like(task::Column::Title)).add(like(task::Column::Description)));
    }
    Ok(select)
}

/// Number of tasks matching `filter`.
pub async fn count(db: &impl ConnectionTrait, filter: &TaskFilter) -> AppResult<u64> {
    Ok(filtered(filter)?.count(db).await?)
}

/// One page of tasks matching `filter`, in `order`, after `after`.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &TaskFilter,
    order: TaskOrder,
    first: u64,
    after: Option<&str>,
) -> AppResult<TaskPage> {
    let mut rows = match distinct_statuses(filter) {
        Some(statuses) if statuses.len() > 1 => {
            let statement = merged_query(filter, &statuses, order, first, after)?;
            task::Model::find_by_statement(db.get_database_backend().build(&statement)).all(db).await?
        }
        _ => list_query(filter, order, first, after)?.all(db).await?,
    };
    let has_next = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok(TaskPage { rows, has_next })
}

/// The statuses of a filter, without repeats.
fn distinct_statuses(filter: &TaskFilter) -> Option<Vec<TaskStatus>> {
    let mut statuses = filter.status.clone()?;
    statuses.sort_by_key(|s| s.as_str());
    statuses.dedup();
    Some(statuses)
}

/// Several statuses: the first page of each status, read from its own index range, then
/// merged. Sorting every task of those statuses (what `status IN (...) ORDER BY` does) grows
/// with the board; this reads at most `first + 1` rows per status.
pub fn merged_query(
    filter: &TaskFilter,
    statuses: &[TaskStatus],
    order: TaskOrder,
    first: u64,
    after: Option<&str>,
) -> AppResult<SelectStatement> {
    let mut branches = statuses.iter().enumerate().map(|(i, status)| {
        let one = TaskFilter { status: Some(vec![*status]), ..filter.clone() };
        list_query(&one, order, first, after).map(|select| {
            Query::select().column(Asterisk).from_subquery(select.into_query(), Alias::new(format!("s{i}"))).to_owned()
        })
    });
    let mut union = branches.next().ok_or_else(|| AppError::Internal("merged query without statuses".into()))??;
    for branch in branches {
        union.union(UnionType::All, branch?);
    }
    let dir = match order.direction {
        OrderDirection::Asc => Order::Asc,
        OrderDirection::Desc => Order::Desc,
    };
    Ok(Query::select()
        .column(Asterisk)
        .from_subquery(union, Alias::new("merged"))
        .order_by(order_column(order.field), dir.clone())
        .order_by(task::Column::Id, dir)
        .limit(first + 1)
        .to_owned())
}

/// The query behind [`list`]: one row more than `first`, to tell whether a next page exists.
/// Public so a test can check that the database answers it from an index.
pub fn list_query(
    filter: &TaskFilter,
    order: TaskOrder,
    first: u64,
    after: Option<&str>,
) -> AppResult<Select<task::Entity>> {
    let column = order_column(order.field);
    let (dir, before_or_after): (Order, fn(Expr, i64) -> sea_orm::sea_query::SimpleExpr) = match order.direction {
        OrderDirection::Asc => (Order::Asc, |e, v| e.gt(v)),
        OrderDirection::Desc => (Order::Desc, |e, v| e.lt(v)),
    };
    let mut select = filtered(filter)?;
    if let Some(cursor) = after {
        let (key, id) = decode_cursor(order, cursor)?;
        let id_past = match order.direction {
            OrderDirection::Asc => task::Column::Id.gt(id),
            OrderDirection::Desc => task::Column::Id.lt(id),
        };
        select = select.filter(
            Condition::any()
                .add(before_or_after(Expr::col(column), key))
                .add(Condition::all().add(column.eq(key)).add(id_past)),
        );
    }
    Ok(select.order_by(column, dir.clone()).order_by(task::Column::Id, dir).limit(first + 1))
}

/// The task with `id`, if any. A malformed id is `BAD_USER_INPUT`.
pub async fn get(db: &impl ConnectionTrait, id: &str) -> AppResult<Option<task::Model>> {
    validate::uuid("id", id)?;
    Ok(task::Entity::find_by_id(id).one(db).await?)
}

async fn get_existing(db: &impl ConnectionTrait, field: &str, id: &str) -> AppResult<task::Model> {
    validate::uuid(field, id)?;
    task::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::NotFound(format!("task {id} not found")))
}

/// Comments of each of `task_ids`, oldest first, in one query. Tasks without comments have
/// no entry.
pub async fn comments_of(
    db: &impl ConnectionTrait,
    task_ids: &[String],
) -> AppResult<HashMap<String, Vec<comment::Model>>> {
    let rows = comment::Entity::find()
        .filter(comment::Column::TaskId.is_in(task_ids.iter().map(String::as_str)))
        .order_by_asc(comment::Column::CreatedAt)
        .order_by_asc(comment::Column::Id)
        .all(db)
        .await?;
    let mut by_task: HashMap<String, Vec<comment::Model>> = HashMap::new();
    for row in rows {
        by_task.entry(row.task_id.clone()).or_default().push(row);
    }
    Ok(by_task)
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
    let mut unique: Vec<&String> = tags.iter().collect();
    unique.sort();
    unique.dedup();
    if !unique.is_empty() {
        task_tag::Entity::insert_many(
            unique
                .into_iter()
                .map(|tag| task_tag::ActiveModel { task_id: Set(task_id.to_owned()), tag: Set(tag.clone()) }),
        )
        .exec(db)
        .await?;
    }
    Ok(())
}

fn publish_task(uow: &mut UnitOfWork, kind: TaskEventKind, task_id: &str, task: Option<task::Model>) {
    uow.publish_after_commit(Event::Task(Arc::new(TaskChange { kind, task_id: task_id.to_owned(), task })));
}

/// Creates a task; `actor` is logged as its creator.
pub async fn create(uow: &mut UnitOfWork, actor: &str, input: CreateTaskInput) -> AppResult<task::Model> {
    let title = validate_title(&input.title)?;
    if let Some(d) = &input.description {
        validate::max_len("description", d, MAX_CONTENT)?;
    }
    if let Some(a) = &input.assigned_agent {
        validate::max_len("assignedAgent", a, validate::MAX_NAME)?;
    }
    let due = input.due_date.map(|d| validate::date("dueDate", d)).transpose()?;
    let tags = input.tags.unwrap_or_default();
    let tags_text = tags_json(&tags)?;
    let metadata = input.metadata.map(|m| validate::metadata("metadata", &m.0)).transpose()?;

    let now = now_millis();
    let id = uuid::Uuid::now_v7().to_string();
    let row = task::ActiveModel {
        id: Set(id.clone()),
        title: Set(title.clone()),
        description: Set(input.description),
        status: Set(input.status.unwrap_or(TaskStatus::Todo).as_str().to_owned()),
        priority: Set(input.priority.unwrap_or(super::types::TaskPriority::Medium).rank()),
        assigned_agent: Set(input.assigned_agent),
        created_at: Set(now),
        updated_at: Set(now),
        due_date: Set(due),
        due_sort: Set(due.unwrap_or(i64::MAX)),
        tags: Set(tags_text),
        metadata: Set(metadata),
        comment_count: Set(0),
    }
    .insert(uow.txn())
    .await?;
    replace_tags(uow.txn(), &id, &tags).await?;
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Task, actor, "created")
            .target("task", &id)
            .metadata(serde_json::json!({ "title": title })),
    )
    .await?;
    publish_task(uow, TaskEventKind::Created, &id, Some(row.clone()));
    Ok(row)
}

/// A nullable field of an update: `None` when absent, `Some(None)` to clear it, `Some(Some(v))`
/// to set `v` once `check` accepts the value given.
fn given<T, V>(input: MaybeUndefined<T>, check: impl FnOnce(T) -> AppResult<V>) -> AppResult<Option<Option<V>>> {
    Option::<Option<T>>::from(input).map(|value| value.map(check).transpose()).transpose()
}

/// Applies the given fields of `input` to task `id`; `updatedAt` always moves forward.
pub async fn update(uow: &mut UnitOfWork, actor: &str, id: &str, input: UpdateTaskInput) -> AppResult<task::Model> {
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
    if let Some(metadata) = given(input.metadata, |m| validate::metadata("metadata", &m.0))? {
        row.metadata = Set(metadata);
        changed.push("metadata");
    }
    row.updated_at = Set(Ord::max(now_millis(), current.updated_at + 1));
    let updated = row.update(uow.txn()).await?;

    let mut meta = serde_json::json!({ "fields": changed, "title": updated.title });
    if input.status.is_some() && updated.status != current.status {
        meta["from"] = current.status.clone().into();
        meta["to"] = updated.status.clone().into();
    }
    log_activity(uow, NewActivity::new(ActivityKind::Task, actor, "updated").target("task", id).metadata(meta)).await?;
    publish_task(uow, TaskEventKind::Updated, id, Some(updated.clone()));
    Ok(updated)
}

/// Deletes task `id` with its comments and tags.
pub async fn delete(uow: &mut UnitOfWork, actor: &str, id: &str) -> AppResult<()> {
    let current = get_existing(uow.txn(), "id", id).await?;
    // Explicit deletes keep this independent of the backend's foreign-key enforcement.
    comment::Entity::delete_many().filter(comment::Column::TaskId.eq(id)).exec(uow.txn()).await?;
    task_tag::Entity::delete_many().filter(task_tag::Column::TaskId.eq(id)).exec(uow.txn()).await?;
    task::Entity::delete_by_id(id).exec(uow.txn()).await?;
    log_activity(
        uow,
        NewActivity::new(ActivityKind::Task, actor, "deleted")
            .target("task", id)
            .metadata(serde_json::json!({ "title": current.title })),
    )
    .await?;
    publish_task(uow, TaskEventKind::Deleted, id, None);
    Ok(())
}

/// Adds a comment to task `task_id` by `author`.
pub async fn add_comment(
    uow: &mut UnitOfWork,
    actor: &str,
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
        NewActivity::new(ActivityKind::Comment, actor, "commented")
            .target("task", task_id)
            .metadata(serde_json::json!({ "commentId": row.id, "author": author })),
    )
    .await?;
    publish_task(uow, TaskEventKind::Updated, task_id, Some(parent));
    Ok(row)
}
