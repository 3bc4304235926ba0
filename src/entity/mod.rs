//! sea-orm entities, one file per table. Timestamps are epoch milliseconds (`i64`) so that
//! ordering and keyset cursors behave the same on SQLite and PostgreSQL; JSON is stored as text.

pub mod activity;
pub mod agent_metric;
pub mod comment;
pub mod task;
pub mod task_tag;
