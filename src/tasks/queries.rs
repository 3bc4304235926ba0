//! Task reads: filters, orders, keyset pages, counts and comments, on any connection.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, LikeExpr, Query, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};

use super::commands::MAX_TITLE;
use super::types::{OrderDirection, TaskFilter, TaskOrder, TaskOrderField, TaskStatus};
use crate::entity::{comment, task, task_run, task_search, task_tag};
use crate::error::{AppError, AppResult};
use crate::pagination;
use crate::validate;

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
pub fn filtered(filter: &TaskFilter, backend: DbBackend) -> AppResult<Select<task::Entity>> {
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
        select = select.filter(task::Column::Id.in_subquery(search_query(search, backend)));
    }
    Ok(select)
}

/// The ids of tasks whose title or description contains `search`, ignoring case (Unicode),
/// answered from the search index: on SQLite an FTS5 trigram phrase match (which needs three
/// characters; shorter terms scan the folded text), on PostgreSQL a trigram-indexed `LIKE`.
fn search_query(search: &str, backend: DbBackend) -> SelectStatement {
    let folded = search.to_lowercase();
    if backend == DbBackend::Sqlite && folded.chars().count() >= 3 {
        let phrase = format!("\"{}\"", folded.replace('"', "\"\""));
        return Query::select()
            .column(task_search::Column::TaskId)
            .from(task_search::Entity)
            .and_where(Expr::cust_with_values(
                "rowid IN (SELECT rowid FROM task_search_fts WHERE task_search_fts MATCH ?)",
                [phrase],
            ))
            .to_owned();
    }
    let escaped = folded.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    Query::select()
        .column(task_search::Column::TaskId)
        .from(task_search::Entity)
        .and_where(Expr::col(task_search::Column::Text).like(LikeExpr::new(format!("%{escaped}%")).escape('\\')))
        .to_owned()
}

/// Number of tasks matching `filter`.
pub async fn count(db: &impl ConnectionTrait, filter: &TaskFilter) -> AppResult<u64> {
    Ok(filtered(filter, db.get_database_backend())?.count(db).await?)
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
            let statement = merged_query(filter, &statuses, order, first, after, db.get_database_backend())?;
            task::Model::find_by_statement(db.get_database_backend().build(&statement)).all(db).await?
        }
        _ => list_query(filter, order, first, after, db.get_database_backend())?.all(db).await?,
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
    backend: DbBackend,
) -> AppResult<SelectStatement> {
    let mut branches = statuses.iter().enumerate().map(|(i, status)| {
        let one = TaskFilter { status: Some(vec![*status]), ..filter.clone() };
        list_query(&one, order, first, after, backend).map(|select| {
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
    backend: DbBackend,
) -> AppResult<Select<task::Entity>> {
    let column = order_column(order.field);
    let (dir, before_or_after): (Order, fn(Expr, i64) -> sea_orm::sea_query::SimpleExpr) = match order.direction {
        OrderDirection::Asc => (Order::Asc, |e, v| e.gt(v)),
        OrderDirection::Desc => (Order::Desc, |e, v| e.lt(v)),
    };
    let mut select = filtered(filter, backend)?;
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

/// The runs of each of `task_ids`, oldest first, in one query.
pub async fn runs_of(
    db: &impl ConnectionTrait,
    task_ids: &[String],
) -> AppResult<HashMap<String, Vec<task_run::Model>>> {
    let rows = task_run::Entity::find()
        .filter(task_run::Column::TaskId.is_in(task_ids.iter().map(String::as_str)))
        .order_by_asc(task_run::Column::StartedAt)
        .order_by_asc(task_run::Column::Id)
        .all(db)
        .await?;
    let mut by_task: HashMap<String, Vec<task_run::Model>> = HashMap::new();
    for row in rows {
        by_task.entry(row.task_id.clone()).or_default().push(row);
    }
    Ok(by_task)
}
