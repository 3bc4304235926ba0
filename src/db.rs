//! Database connection and the unit of work every mutation runs in.
//!
//! A [`UnitOfWork`] is a transaction plus the events the change will publish. Events are
//! published only after the commit succeeds: a rolled-back change is never seen by a
//! subscriber. This is the one place where mutations publish.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::error::AppResult;
use crate::events::{Event, EventBus};

/// Connects (SQLite: WAL, busy timeout, foreign keys) and runs pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections.max(1))
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let db = Database::connect(options).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// True when the database answers a trivial query (for `/ready`).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// A transaction and the events its commit will publish.
pub struct UnitOfWork {
    txn: DatabaseTransaction,
    events: Vec<Event>,
    activity_lock_taken: bool,
}

impl UnitOfWork {
    /// Opens a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// mutations read before they write, and a deferred transaction could not upgrade to a
    /// writer while another one commits (`SQLITE_BUSY` that no busy timeout waits out).
    pub async fn begin(db: &DatabaseConnection) -> AppResult<Self> {
        let options = TransactionOptions {
            isolation_level: None,
            access_mode: None,
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        };
        Ok(UnitOfWork { txn: db.begin_with_options(options).await?, events: Vec::new(), activity_lock_taken: false })
    }

    /// The transaction, for queries.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Queues an event to publish once the transaction commits.
    pub fn publish_after_commit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Makes activity ids follow commit order.
    ///
    /// Subscribers resume from "the last activity id I saw", which is only gap-free if a
    /// smaller id can never commit after a larger one. SQLite serialises writers already; on
    /// PostgreSQL a transaction-scoped advisory lock, taken before the activity insert and held
    /// to commit, gives the same guarantee.
    pub async fn serialize_activity_ids(&mut self) -> AppResult<()> {
        if self.activity_lock_taken || self.txn.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        self.txn
            .execute_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_advisory_xact_lock(7236711)"))
            .await?;
        self.activity_lock_taken = true;
        Ok(())
    }

    /// Commits, then publishes the queued events in order.
    ///
    /// Both run in a task of their own: if the request is abandoned (a timeout, a dropped
    /// connection) while the commit is in flight, a committed change is still published.
    pub async fn commit(self, bus: &EventBus) -> AppResult<()> {
        let bus = bus.clone();
        let UnitOfWork { txn, events, .. } = self;
        tokio::spawn(async move {
            txn.commit().await?;
            for event in events {
                bus.publish(event);
            }
            AppResult::Ok(())
        })
        .await
        .map_err(|e| crate::error::AppError::Internal(format!("commit task failed: {e}")))?
    }
}
