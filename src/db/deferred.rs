//! Rows a write transaction inserts together, just before it commits.
//!
//! Every statement is a round trip to SQLite's worker thread (two thread wake-ups), and under
//! write load those wake-ups, not SQLite's work, were most of a change's cost. So the rows
//! that nothing reads inside a write are kept here and written with one multi-row `INSERT`
//! per table for the whole batch of changes (on SQLite all in one query, see [`Script`]):
//!
//! - activity rows and audit entries (append-only: no change reads, updates or deletes one);
//! - a task made by `createTask`, with its tags and search text: its id is new, and no other
//!   change can name it before it is answered, which is after the commit.
//!
//! They are written in the transaction of their change, before the work that runs before
//! commit (which sees their ids), so they commit with it or not at all, as before.

use std::sync::Arc;

use sea_orm::{
    ActiveValue, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryResult, QueryTrait, Statement,
};

use crate::entity::{activity, audit_entry, task, task_search, task_tag};
use crate::error::AppResult;
use crate::events::Event;

/// Most rows in one `INSERT` (both databases bound the parameters of a statement; 16 columns
/// times this stays far below SQLite's 32,766).
const CHUNK: usize = 256;

/// The rows waiting for the commit of a unit of work.
#[derive(Default)]
pub(crate) struct Deferred {
    tasks: Vec<task::ActiveModel>,
    tags: Vec<task_tag::ActiveModel>,
    search: Vec<task_search::ActiveModel>,
    /// The index among the unit's events of each activity's event: the event carries the row,
    /// whose id is known only once it is inserted.
    activities: Vec<usize>,
    audits: Vec<audit_entry::ActiveModel>,
}

/// How much a [`Deferred`] held at one moment, to undo what was added after.
#[derive(Clone, Copy)]
pub(crate) struct Mark([usize; 5]);

impl Deferred {
    pub(crate) fn task(
        &mut self,
        row: task::Model,
        tags: Vec<task_tag::ActiveModel>,
        search: task_search::ActiveModel,
    ) {
        self.tasks.push(row.into_active_model());
        self.tags.extend(tags);
        self.search.push(search);
    }

    pub(crate) fn activity(&mut self, event_index: usize) {
        self.activities.push(event_index);
    }

    pub(crate) fn audit(&mut self, row: audit_entry::ActiveModel) {
        self.audits.push(row);
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark([self.tasks.len(), self.tags.len(), self.search.len(), self.activities.len(), self.audits.len()])
    }

    /// Drops what was added since `mark`.
    pub(crate) fn truncate(&mut self, Mark([tasks, tags, search, activities, audits]): Mark) {
        self.tasks.truncate(tasks);
        self.tags.truncate(tags);
        self.search.truncate(search);
        self.activities.truncate(activities);
        self.audits.truncate(audits);
    }

    /// Takes over `other`'s rows, whose events now start at `event_offset` of this unit's.
    pub(crate) fn append(&mut self, other: Deferred, event_offset: usize) {
        self.tasks.extend(other.tasks);
        self.tags.extend(other.tags);
        self.search.extend(other.search);
        self.activities.extend(other.activities.into_iter().map(|i| i + event_offset));
        self.audits.extend(other.audits);
    }

    /// Writes every waiting row in `txn` and puts the activities' ids into their `events`.
    pub(crate) async fn flush(&mut self, txn: &impl ConnectionTrait, events: &mut [Event]) -> AppResult<()> {
        let (script, activities) = self.script(txn.get_database_backend(), events);
        let rows = script.run(txn).await?;
        put_ids(rows, activities, events)
    }

    /// Like [`Deferred::flush`], then commits, in the same query: SQLite only (see [`Script`]).
    /// The `COMMIT` is sent as SQL: the transaction object still counts itself open after it.
    /// Fails only if nothing was committed.
    pub(crate) async fn flush_and_commit(&mut self, txn: &impl ConnectionTrait, events: &mut [Event]) -> AppResult<()> {
        let (mut script, activities) = self.script(DbBackend::Sqlite, events);
        script.then(Statement::from_string(DbBackend::Sqlite, "COMMIT"), Rows::Ignored);
        let rows = script.run(txn).await?;
        // Committed: a fault now is only in what the events say.
        if let Err(e) = put_ids(rows, activities, events) {
            tracing::error!(error = %e, "the activities of a committed batch are published without their ids");
        }
        Ok(())
    }

    /// The statements writing every waiting row (on `backend`), and the activities among them
    /// (their event's index, their row) in the order their ids are handed out.
    fn script(&mut self, backend: DbBackend, events: &[Event]) -> (Script, Vec<(usize, activity::Model)>) {
        let activities: Vec<(usize, activity::Model)> = std::mem::take(&mut self.activities)
            .into_iter()
            .filter_map(|index| match &events[index] {
                Event::Activity(row) => Some((index, activity::Model::clone(row))),
                _ => None,
            })
            .collect();
        let mut script = Script::default();
        script.insert_all(backend, std::mem::take(&mut self.tasks));
        script.insert_all(backend, std::mem::take(&mut self.tags));
        script.insert_all(backend, std::mem::take(&mut self.search));
        if !activities.is_empty() && backend == DbBackend::Postgres {
            script.then(serialize_activity_ids(), Rows::Ignored);
        }
        for chunk in activities.chunks(CHUNK) {
            let rows = chunk.iter().map(|(_, row)| {
                let mut row = row.clone().into_active_model();
                row.id = ActiveValue::NotSet;
                row
            });
            let mut insert = activity::Entity::insert_many(rows);
            insert.query().returning_col(activity::Column::Id);
            script.then(insert.build(backend), Rows::Wanted);
        }
        script.insert_all(backend, std::mem::take(&mut self.audits));
        (script, activities)
    }
}

/// Puts the ids that the activities' inserts returned (`rows`) into their events.
fn put_ids(rows: Vec<QueryResult>, activities: Vec<(usize, activity::Model)>, events: &mut [Event]) -> AppResult<()> {
    let mut ids = rows.iter().map(|row| row.try_get_by_index::<i64>(0)).collect::<Result<Vec<_>, _>>()?;
    // Ids are handed out in the order of the rows, and each chunk's after the one before;
    // `RETURNING` may list a statement's in any order.
    ids.sort_unstable();
    if ids.len() != activities.len() {
        return Err(crate::error::AppError::Internal(format!(
            "{} activity ids for {} activities",
            ids.len(),
            activities.len()
        )));
    }
    for ((index, row), id) in activities.into_iter().zip(ids) {
        events[index] = Event::Activity(Arc::new(activity::Model { id, ..row }));
    }
    Ok(())
}

/// The statements of one flush. On SQLite they are sent together, as one query of several
/// statements (one round trip to its worker thread instead of one each); PostgreSQL's
/// extended protocol takes one statement per query, so there they are sent one by one.
#[derive(Default)]
struct Script {
    statements: Vec<(Statement, Rows)>,
}

/// Whether the rows a statement returns are wanted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    Wanted,
    /// It returns none, or none that matter (PostgreSQL's advisory lock returns one).
    Ignored,
}

impl Script {
    fn then(&mut self, statement: Statement, rows: Rows) {
        self.statements.push((statement, rows));
    }

    /// Adds the inserts of `rows`, as few as [`CHUNK`] allows.
    fn insert_all<A>(&mut self, backend: DbBackend, rows: Vec<A>)
    where
        A: sea_orm::ActiveModelTrait,
    {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let insert = <A::Entity as EntityTrait>::insert_many(rows.by_ref().take(CHUNK));
            self.then(insert.build(backend), Rows::Ignored);
        }
    }

    /// Runs the statements in order; the rows of those whose rows are wanted, in order.
    async fn run(self, txn: &impl ConnectionTrait) -> AppResult<Vec<QueryResult>> {
        if self.statements.is_empty() {
            return Ok(Vec::new());
        }
        if txn.get_database_backend() != DbBackend::Sqlite {
            let mut rows = Vec::new();
            for (statement, wanted) in self.statements {
                match wanted {
                    Rows::Wanted => rows.extend(txn.query_all_raw(statement).await?),
                    Rows::Ignored => {
                        txn.execute_raw(statement).await?;
                    }
                }
            }
            return Ok(rows);
        }
        // SQLite's `?` placeholders are numbered across the statements of one query, so the
        // statements' values simply follow one another. Only the activities' `RETURNING`
        // returns rows here.
        let mut sql = String::new();
        let mut values = Vec::new();
        for (statement, _) in self.statements {
            sql.push_str(&statement.sql);
            sql.push_str(";\n");
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        Ok(txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?)
    }
}

/// Makes activity ids follow commit order.
///
/// Subscribers resume from "the last activity id I saw", which is only gap-free if a smaller
/// id can never commit after a larger one. SQLite serialises writers already; on PostgreSQL a
/// transaction-scoped advisory lock, taken before the activity insert and held to commit,
/// gives the same guarantee.
fn serialize_activity_ids() -> Statement {
    Statement::from_string(DbBackend::Postgres, "SELECT pg_advisory_xact_lock(7236711)")
}
