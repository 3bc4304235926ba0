//! Backups: a consistent, portable copy of every table, taken while the server runs, and its
//! restore into the configured database (SQLite or PostgreSQL, either way round).
//!
//! A backup is JSON Lines: a header (format, version, the migrations it was made at, row
//! counts), then for each table a line naming its columns and a line per row (a JSON array of
//! values), then an end line with the total, so a truncated file is told from a whole one. It
//! is read in one snapshot: a read transaction (SQLite, WAL) or a read-only repeatable-read
//! one (PostgreSQL) sees every table as of one moment while writers go on.
//!
//! The tables and their column types come from the entities ([`tables`]); a test checks that
//! they are every table the migrations make.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use sea_orm::sea_query::{Alias, Iden, Query};
use sea_orm::{
    AccessMode, ColumnTrait, ColumnType, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IsolationLevel,
    Iterable, QueryResult, Statement, TransactionTrait, Value,
};
use serde_json::Value as Json;

use crate::entity::*;

/// What the first line of a backup says it is.
const FORMAT: &str = "mission-control-backup";
const VERSION: u64 = 1;
/// Rows inserted per statement on restore.
const INSERT_BATCH: usize = 200;

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not a Mission Control backup: {1}")]
    NotABackup(PathBuf, String),
    #[error(
        "the database is not empty ({0} rows); restoring would mix two histories. Restore into an empty database, or pass --force to replace what is there"
    )]
    NotEmpty(u64),
}

/// One table: its name and its columns with their types.
pub struct Table {
    pub name: &'static str,
    columns: Vec<(String, ColumnType)>,
}

fn table<E: EntityTrait + Default>() -> Table
where
    E::Column: Iterable,
{
    let name = E::default().table_name();
    let columns = E::Column::iter().map(|c| (c.to_string(), c.def().get_column_type().clone())).collect();
    Table { name, columns }
}

/// Every table a backup holds, parents before children (restore inserts in this order).
pub fn tables() -> Vec<Table> {
    vec![
        table::<user::Entity>(),
        table::<api_key::Entity>(),
        table::<revoked_token::Entity>(),
        table::<task::Entity>(),
        table::<task_tag::Entity>(),
        table::<task_search::Entity>(),
        table::<comment::Entity>(),
        table::<task_run::Entity>(),
        table::<activity::Entity>(),
        table::<agent_metric::Entity>(),
        table::<audit_entry::Entity>(),
        table::<schedule::Entity>(),
        table::<schedule_run::Entity>(),
        table::<alert_rule::Entity>(),
        table::<notification::Entity>(),
        table::<webhook::Entity>(),
        table::<webhook_delivery::Entity>(),
        table::<usage_sample::Entity>(),
        table::<usage_total::Entity>(),
    ]
}

fn read_value(row: &QueryResult, name: &str, ty: &ColumnType) -> Result<Json, sea_orm::DbErr> {
    Ok(match ty {
        ColumnType::Integer => row.try_get::<Option<i32>>("", name)?.map(Json::from).unwrap_or(Json::Null),
        ColumnType::BigInteger => row.try_get::<Option<i64>>("", name)?.map(Json::from).unwrap_or(Json::Null),
        ColumnType::SmallInteger => row.try_get::<Option<i16>>("", name)?.map(Json::from).unwrap_or(Json::Null),
        ColumnType::Double => row.try_get::<Option<f64>>("", name)?.map(Json::from).unwrap_or(Json::Null),
        ColumnType::Float => row.try_get::<Option<f32>>("", name)?.map(Json::from).unwrap_or(Json::Null),
        ColumnType::Boolean => row.try_get::<Option<bool>>("", name)?.map(Json::from).unwrap_or(Json::Null),
        _ => row.try_get::<Option<String>>("", name)?.map(Json::from).unwrap_or(Json::Null),
    })
}

fn to_value(json: &Json, ty: &ColumnType) -> Result<Value, String> {
    if json.is_null() {
        return Ok(null_of(ty));
    }
    let value: Option<Value> = match ty {
        ColumnType::Integer => json.as_i64().and_then(|n| i32::try_from(n).ok()).map(|n| Some(n).into()),
        ColumnType::BigInteger => json.as_i64().map(|n| Some(n).into()),
        ColumnType::SmallInteger => json.as_i64().and_then(|n| i16::try_from(n).ok()).map(|n| Some(n).into()),
        ColumnType::Double => json.as_f64().map(|f| Some(f).into()),
        ColumnType::Float => json.as_f64().map(|f| Some(f as f32).into()),
        ColumnType::Boolean => json.as_bool().map(|b| Some(b).into()),
        _ => json.as_str().map(|t| Some(t.to_owned()).into()),
    };
    value.ok_or_else(|| format!("{json} is not a value of a {ty:?} column"))
}

/// The null of a column of type `ty`.
fn null_of(ty: &ColumnType) -> Value {
    match ty {
        ColumnType::Integer => Option::<i32>::None.into(),
        ColumnType::BigInteger => Option::<i64>::None.into(),
        ColumnType::SmallInteger => Option::<i16>::None.into(),
        ColumnType::Double => Option::<f64>::None.into(),
        ColumnType::Float => Option::<f32>::None.into(),
        ColumnType::Boolean => Option::<bool>::None.into(),
        _ => Option::<String>::None.into(),
    }
}

/// The migrations applied to `db`, in order.
async fn migrations(db: &impl ConnectionTrait) -> Result<Vec<String>, sea_orm::DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<String>("", "version")).collect()
}

/// `name` as an SQL identifier (both databases take double quotes).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// What a backup held.
#[derive(Debug, Default)]
pub struct Summary {
    pub tables: usize,
    pub rows: u64,
}

/// Writes a backup of `db` to `file` (through `file.partial`, renamed when complete).
pub async fn backup(db: &DatabaseConnection, file: &Path) -> Result<Summary, BackupError> {
    let partial = file.with_extension("partial");
    let txn = match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?
        }
        _ => db.begin().await?,
    };
    let backend = db.get_database_backend();
    let applied = migrations(&txn).await?;
    let tables = tables();
    // Read first (one snapshot), then write.
    let mut contents = Vec::with_capacity(tables.len());
    for table in &tables {
        let columns: Vec<String> = table.columns.iter().map(|(c, _)| quoted(c)).collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), quoted(table.name));
        let rows = txn.query_all_raw(Statement::from_string(backend, sql)).await?;
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let line: Vec<Json> =
                table.columns.iter().map(|(c, ty)| read_value(row, c, ty)).collect::<Result<_, _>>()?;
            values.push(line);
        }
        contents.push(values);
    }
    txn.commit().await?;
    let header = serde_json::json!({
        "format": FORMAT,
        "version": VERSION,
        "createdAt": chrono::Utc::now(),
        "source": format!("{backend:?}").to_lowercase(),
        "migrations": applied,
        "rows": tables.iter().zip(&contents).map(|(t, rows)| (t.name.to_owned(), Json::from(rows.len()))).collect::<serde_json::Map<_, _>>(),
    });
    let file = file.to_owned();
    // Files are written on a blocking thread, not on the runtime's few workers.
    tokio::task::spawn_blocking(move || {
        let written = write_file(&partial, header, &tables, contents).and_then(|summary| {
            std::fs::rename(&partial, &file).map_err(|e| BackupError::Io(file.clone(), e))?;
            Ok(summary)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    })
    .await
    .map_err(|e| BackupError::Io(PathBuf::from("backup"), std::io::Error::other(e.to_string())))?
}

/// Writes a backup's lines to `path`, readable by its owner only (it holds password hashes and
/// webhook secrets), and syncs it.
fn write_file(
    path: &Path,
    header: Json,
    tables: &[Table],
    contents: Vec<Vec<Vec<Json>>>,
) -> Result<Summary, BackupError> {
    let io = |e| BackupError::Io(path.to_owned(), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = BufWriter::new(options.open(path).map_err(io)?);
    writeln!(out, "{header}").map_err(io)?;
    let mut summary = Summary::default();
    for (table, rows) in tables.iter().zip(contents) {
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| c.as_str()).collect();
        writeln!(out, "{}", serde_json::json!({ "table": table.name, "columns": columns })).map_err(io)?;
        for row in rows {
            writeln!(out, "{}", Json::Array(row)).map_err(io)?;
            summary.rows += 1;
        }
        summary.tables += 1;
    }
    writeln!(out, "{}", serde_json::json!({ "end": true, "rows": summary.rows })).map_err(io)?;
    out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    Ok(summary)
}

/// A backup read back: its migrations and, per table, its columns and rows.
struct Parsed {
    migrations: Vec<String>,
    tables: Vec<(String, Vec<String>, Vec<Vec<Json>>)>,
    rows: u64,
}

/// Reads and checks `file` as a whole backup.
fn parse(file: &Path) -> Result<Parsed, BackupError> {
    let not = |why: String| BackupError::NotABackup(file.to_owned(), why);
    let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(|e| BackupError::Io(file.to_owned(), e))?);
    let mut lines = reader.lines();
    let mut next = || -> Result<Option<Json>, BackupError> {
        match lines.next() {
            None => Ok(None),
            Some(Err(e)) => Err(not(format!("unreadable ({e})"))),
            Some(Ok(line)) => {
                serde_json::from_str(&line).map(Some).map_err(|e| not(format!("a line is not JSON ({e})")))
            }
        }
    };
    let header = next()?.ok_or_else(|| not("it is empty".into()))?;
    if header["format"] != FORMAT {
        return Err(not("its first line does not say it is one".into()));
    }
    if header["version"].as_u64() != Some(VERSION) {
        return Err(not(format!("its version {} is not {VERSION}", header["version"])));
    }
    let migrations = header["migrations"]
        .as_array()
        .map(|m| m.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut tables: Vec<(String, Vec<String>, Vec<Vec<Json>>)> = Vec::new();
    let mut rows = 0;
    loop {
        let Some(line) = next()? else { return Err(not("it is cut short (no end line)".into())) };
        match line {
            Json::Array(values) => {
                let Some((_, columns, table_rows)) = tables.last_mut() else {
                    return Err(not("a row comes before any table".into()));
                };
                if values.len() != columns.len() {
                    return Err(not(format!("a row has {} values for {} columns", values.len(), columns.len())));
                }
                table_rows.push(values);
                rows += 1;
            }
            Json::Object(ref o) if o.contains_key("table") => {
                let name = line["table"].as_str().unwrap_or_default().to_owned();
                let columns = line["columns"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                tables.push((name, columns, Vec::new()));
            }
            Json::Object(ref o) if o.contains_key("end") => {
                if line["rows"].as_u64() != Some(rows) {
                    return Err(not(format!("it ends saying {} rows but holds {rows}", line["rows"])));
                }
                return Ok(Parsed { migrations, tables, rows });
            }
            _ => return Err(not("a line is neither a table, a row nor the end".into())),
        }
    }
}

/// How many rows `db` holds in the backed-up tables.
async fn rows_in(db: &impl ConnectionTrait) -> Result<u64, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let mut total = 0u64;
    for table in tables() {
        let sql = format!("SELECT COUNT(*) AS n FROM {}", quoted(table.name));
        if let Some(row) = db.query_one_raw(Statement::from_string(backend, sql)).await? {
            total += row.try_get::<i64>("", "n")? as u64;
        }
    }
    Ok(total)
}

/// Restores `file` into `db` (migrated to this version already), in one transaction: all of it
/// or, on any error, nothing. A database with rows is refused unless `force`, which replaces
/// them.
pub async fn restore(db: &DatabaseConnection, file: &Path, force: bool) -> Result<Summary, BackupError> {
    let parsed = parse(file)?;
    let known = migrations(db).await?;
    if let Some(newer) = parsed.migrations.iter().find(|m| !known.contains(m)) {
        return Err(BackupError::NotABackup(
            file.to_owned(),
            format!("it was made by a newer version (migration {newer}); restore it with that version"),
        ));
    }
    let ours = tables();
    for (name, columns, _) in &parsed.tables {
        let Some(table) = ours.iter().find(|t| t.name == name) else {
            return Err(BackupError::NotABackup(
                file.to_owned(),
                format!("it has a table {name:?} this version does not"),
            ));
        };
        if let Some(column) = columns.iter().find(|c| !table.columns.iter().any(|(ours, _)| ours == *c)) {
            return Err(BackupError::NotABackup(
                file.to_owned(),
                format!("its table {name} has a column {column:?} this version does not"),
            ));
        }
    }
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let present = rows_in(&txn).await?;
    if present > 0 && !force {
        return Err(BackupError::NotEmpty(present));
    }
    if present > 0 {
        for table in ours.iter().rev() {
            txn.execute_raw(Statement::from_string(backend, format!("DELETE FROM {}", quoted(table.name)))).await?;
        }
    }
    let mut summary = Summary::default();
    for table in &ours {
        let Some((_, columns, rows)) = parsed.tables.iter().find(|(n, _, _)| n == table.name) else { continue };
        let types: Vec<&ColumnType> = columns
            .iter()
            .map(|c| table.columns.iter().find(|(ours, _)| ours == c).map(|(_, ty)| ty).expect("checked above"))
            .collect();
        for chunk in rows.chunks(INSERT_BATCH) {
            let mut insert = Query::insert();
            insert.into_table(Alias::new(table.name)).columns(columns.iter().map(Alias::new));
            for row in chunk {
                let values = row
                    .iter()
                    .zip(&types)
                    .map(|(v, ty)| to_value(v, ty).map(Into::into))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|why| {
                        BackupError::NotABackup(file.to_owned(), format!("in table {}: {why}", table.name))
                    })?;
                insert.values_panic(values);
            }
            txn.execute(&insert).await?;
        }
        summary.rows += rows.len() as u64;
        summary.tables += 1;
        // Serial ids go on after the restored ones.
        if backend == DbBackend::Postgres
            && table.columns.iter().any(|(c, ty)| c == "id" && *ty == ColumnType::BigInteger)
        {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM \"{0}\" WHERE pg_get_serial_sequence('{0}', 'id') IS NOT NULL",
                table.name
            );
            txn.query_all_raw(Statement::from_string(backend, sql)).await?;
        }
    }
    debug_assert_eq!(summary.rows, parsed.rows);
    txn.commit().await?;
    Ok(summary)
}

/// Takes a backup into `dir` every `every` until `shutdown`, keeping the newest `keep`.
pub async fn every(
    db: DatabaseConnection,
    dir: PathBuf,
    every: std::time::Duration,
    keep: usize,
    mut shutdown: crate::shutdown::Signal,
) {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot make the backup folder");
    }
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let name = format!("mission-control-{}.jsonl", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
        match backup(&db, &dir.join(&name)).await {
            Ok(summary) => tracing::info!(file = %name, rows = summary.rows, "backup written"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
        prune(&dir, keep);
    }
}

/// Deletes all but the newest `keep` scheduled backups in `dir`.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut names: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mission-control-") && n.ends_with(".jsonl"))
        })
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1));
    for old in names.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(file = %old.display(), error = %e, "cannot delete an old backup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_each_table_once() {
        let names: Vec<&str> = tables().iter().map(|t| t.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn values_go_back_to_their_columns_types() {
        assert_eq!(to_value(&Json::from(7), &ColumnType::BigInteger).unwrap(), Value::from(Some(7i64)));
        assert_eq!(to_value(&Json::Null, &ColumnType::Text).unwrap(), Option::<String>::None.into());
        assert!(to_value(&Json::from("x"), &ColumnType::BigInteger).is_err(), "a string is no number");
        assert!(to_value(&Json::from(1i64 << 40), &ColumnType::Integer).is_err(), "out of range");
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("mc-prune-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for day in 1..=5 {
            std::fs::write(dir.join(format!("mission-control-2026120{day}T000000Z.jsonl")), "x").unwrap();
        }
        std::fs::write(dir.join("other.txt"), "x").unwrap();
        prune(&dir, 2);
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(
            left,
            ["mission-control-20261204T000000Z.jsonl", "mission-control-20261205T000000Z.jsonl", "other.txt"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
