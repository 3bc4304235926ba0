//! Rows a write transaction inserts together, just before it commits.
//!
//! Every statement is a round trip to SQLite's worker thread (two thread wake-ups), and under
//! write load those wake-ups, not SQLite's work, were most of a change's cost. So the rows
//! that nothing reads inside a write are kept here and written with one multi-row `INSERT`
//! per table for the whole batch of changes:
//!
//! - activity rows and audit entries (append-only: no change reads, updates or deletes one);
//! - a task made by `createTask`, with its tags and search text: its id is new, and no other
//!   change can name it before it is answered, which is after the commit.
//!
//! They are written in the transaction of their change, before the work that runs before
//! commit (which sees their ids), so they commit with it or not at all, as before.

use std::sync::Arc;

use sea_orm::{ActiveValue, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, Statement};

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
        insert_all(txn, std::mem::take(&mut self.tasks)).await?;
        insert_all(txn, std::mem::take(&mut self.tags)).await?;
        insert_all(txn, std::mem::take(&mut self.search)).await?;
        let activities: Vec<(usize, activity::Model)> = std::mem::take(&mut self.activities)
            .into_iter()
            .filter_map(|index| match &events[index] {
                Event::Activity(row) => Some((index, activity::Model::clone(row))),
                _ => None,
            })
            .collect();
        if !activities.is_empty() {
            serialize_activity_ids(txn).await?;
        }
        for chunk in activities.chunks(CHUNK) {
            let rows = chunk.iter().map(|(_, row)| {
                let mut row = row.clone().into_active_model();
                row.id = ActiveValue::NotSet;
                row
            });
            let mut ids = activity::Entity::insert_many(rows).exec_with_returning_keys(txn).await?;
            // Ids are handed out in the order of the rows; `RETURNING` may list them in any.
            ids.sort_unstable();
            for ((index, row), id) in chunk.iter().zip(ids) {
                events[*index] = Event::Activity(Arc::new(activity::Model { id, ..row.clone() }));
            }
        }
        insert_all(txn, std::mem::take(&mut self.audits)).await
    }
}

/// Inserts `rows` with as few statements as [`CHUNK`] allows.
async fn insert_all<A>(txn: &impl ConnectionTrait, rows: Vec<A>) -> AppResult<()>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        <A::Entity as EntityTrait>::insert_many(rows.by_ref().take(CHUNK)).exec_without_returning(txn).await?;
    }
    Ok(())
}

/// Makes activity ids follow commit order.
///
/// Subscribers resume from "the last activity id I saw", which is only gap-free if a smaller
/// id can never commit after a larger one. SQLite serialises writers already; on PostgreSQL a
/// transaction-scoped advisory lock, taken before the activity insert and held to commit,
/// gives the same guarantee.
async fn serialize_activity_ids(txn: &impl ConnectionTrait) -> AppResult<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_advisory_xact_lock(7236711)")).await?;
    }
    Ok(())
}
