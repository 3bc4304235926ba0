//! Batch loaders: a field that every row of a list asks for (a task's comments, an agent's
//! recorded totals) is read with one query for the whole list, not one query per row.
//!
//! Only batching, no cache: the loader lives in the schema data, shared by all requests, so
//! a cache would serve stale rows.

//!
//! The loader itself lives here, below the domains; each domain implements `Loader<Key>` for
//! the keys of its own fields (`tasks::loaders`, `agents::loaders`).

use sea_orm::DatabaseConnection;

/// Reads batched fields from the database.
pub struct DbLoader {
    pub db: DatabaseConnection,
}
