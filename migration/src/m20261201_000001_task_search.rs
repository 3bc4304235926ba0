//! An index for `tasks(filter: {search})`: a case-insensitive substring match that no longer
//! scans every task.
//!
//! `task_search` holds one row a task: its title and description folded to lower case by
//! [`search_text`] (Unicode folding, the same on both databases, so `É` finds `é`). On
//! PostgreSQL a trigram GIN index (`pg_trgm`) answers `LIKE '%…%'` from it; on SQLite an FTS5
//! table with the trigram tokenizer, kept in step by triggers, answers phrase matches.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The text a task is searched by: title and description, folded to lower case.
pub fn search_text(title: &str, description: Option<&str>) -> String {
    let mut text = title.to_lowercase();
    if let Some(description) = description {
        text.push('\n');
        text.push_str(&description.to_lowercase());
    }
    text
}

const SQLITE_UP: [&str; 5] = [
    "CREATE TABLE task_search (task_id TEXT NOT NULL PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE, text TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE task_search_fts USING fts5(text, content='task_search', content_rowid='rowid', tokenize='trigram case_sensitive 1')",
    "CREATE TRIGGER task_search_ai AFTER INSERT ON task_search BEGIN INSERT INTO task_search_fts(rowid, text) VALUES (new.rowid, new.text); END",
    "CREATE TRIGGER task_search_ad AFTER DELETE ON task_search BEGIN INSERT INTO task_search_fts(task_search_fts, rowid, text) VALUES ('delete', old.rowid, old.text); END",
    "CREATE TRIGGER task_search_au AFTER UPDATE ON task_search BEGIN INSERT INTO task_search_fts(task_search_fts, rowid, text) VALUES ('delete', old.rowid, old.text); INSERT INTO task_search_fts(rowid, text) VALUES (new.rowid, new.text); END",
];

const POSTGRES_UP: [&str; 3] = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE task_search (task_id TEXT NOT NULL PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE, text TEXT NOT NULL)",
    "CREATE INDEX task_search_trgm ON task_search USING gin (text gin_trgm_ops)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let statements: &[&str] = match backend {
            DatabaseBackend::Sqlite => &SQLITE_UP,
            _ => &POSTGRES_UP,
        };
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        // Existing tasks, folded here rather than by SQL `lower()` (ASCII-only on SQLite).
        let rows =
            db.query_all_raw(Statement::from_string(backend, "SELECT id, title, description FROM tasks")).await?;
        for row in rows {
            let id: String = row.try_get("", "id")?;
            let title: String = row.try_get("", "title")?;
            let description: Option<String> = row.try_get("", "description")?;
            let insert = Query::insert()
                .into_table(Alias::new("task_search"))
                .columns([Alias::new("task_id"), Alias::new("text")])
                .values_panic([id.into(), search_text(&title, description.as_deref()).into()])
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            db.execute_unprepared("DROP TABLE IF EXISTS task_search_fts").await?;
        }
        db.execute_unprepared("DROP TABLE IF EXISTS task_search").await?;
        Ok(())
    }
}
