//! Database connection, the unit of work every change runs in, and the one writer.
//!
//! A [`UnitOfWork`] is a transaction plus the events the change will publish. Events are
//! published only after the commit succeeds: a rolled-back change is never seen by a
//! subscriber. This is the one place where mutations publish.
//!
//! Every change goes through the [`Writer`]: one task that owns the write transaction and
//! commits the changes waiting at one moment together (group commit). Each change runs in a
//! savepoint of its own (its failure undoes only it), is answered only after the transaction
//! that holds it committed, and publishes its own events. Writers never queue on SQLite's
//! write lock (whose busy handler sleeps), and a batch writes its pages once. The rows nothing
//! reads inside a write wait in the unit of work and are inserted for the whole batch at once
//! ([`deferred`]); on SQLite, batches that follow one another chain on one kept connection
//! ([`Chain`]).

mod deferred;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::entity::{activity, audit_entry, task, task_search, task_tag};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventBus};
use deferred::Deferred;

/// Connects (SQLite: WAL, busy timeout, foreign keys) and runs pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let db = Database::connect(options(url, max_connections, Role::Reads)).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// The writer's own connection to the database at `url` (see [`connect`], which must have run
/// first): no read waits for it, and on SQLite its page cache stays valid from one batch to the
/// next (a connection that another one wrote behind rereads its pages). `None` for an
/// in-memory database, which is private to its pool: there the writer shares the reads' pool.
pub async fn connect_writer(url: &str) -> Result<Option<DatabaseConnection>, sea_orm::DbErr> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    Database::connect(options(url, 1, Role::Writes)).await.map(Some)
}

/// What a pool of connections is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Reads,
    /// The writer's one connection: it keeps more prepared statements (its multi-row inserts
    /// are one statement per number of rows, so a batch size seen before parses nothing).
    Writes,
}

fn options(url: &str, max_connections: u32, role: Role) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections.max(1))
        // A pooled SQLite connection is a file handle that cannot go stale: pinging it before
        // each use was a round trip to its worker thread (a server's connection can be dropped).
        .test_before_acquire(!url.starts_with("sqlite:"))
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            let o = match role {
                Role::Reads => o,
                Role::Writes => o.statement_cache_capacity(512),
            };
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // The savepoint of each change in a group commit keeps its journal in memory
                // (on disk, those writes were a third of a write's time).
                .pragma("temp_store", "memory")
        });
    options
}

/// True when the database answers a trivial query (for `/ready`).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// A transaction, the rows it inserts just before it commits, and the events its commit will
/// publish.
pub struct UnitOfWork {
    txn: DatabaseTransaction,
    events: Vec<Event>,
    deferred: Deferred,
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
        Ok(UnitOfWork::over(db.begin_with_options(options).await?))
    }

    fn over(txn: DatabaseTransaction) -> Self {
        UnitOfWork { txn, events: Vec::new(), deferred: Deferred::default() }
    }

    /// The transaction, for queries.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Queues an event to publish once the transaction commits.
    pub fn publish_after_commit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The events queued so far, in order.
    pub fn queued_events(&self) -> &[Event] {
        &self.events
    }

    /// Inserts the activity `row` (its id aside) when the transaction is about to commit, and
    /// publishes it, with its id, after the commit. No change may read it back before then.
    pub fn insert_activity_at_commit(&mut self, row: activity::Model) {
        // The event carries the row; it is given its id when the row is inserted.
        self.deferred.activity(self.events.len());
        self.events.push(Event::Activity(Arc::new(row)));
    }

    /// Inserts the audit entry `row` when the transaction is about to commit.
    pub fn insert_audit_at_commit(&mut self, row: audit_entry::ActiveModel) {
        self.deferred.audit(row);
    }

    /// Inserts a new task `row`, its `tags` rows and its `search` entry when the transaction
    /// is about to commit: only for a task no other change can know of before.
    pub fn insert_new_task_at_commit(
        &mut self,
        row: task::Model,
        tags: Vec<task_tag::ActiveModel>,
        search: task_search::ActiveModel,
    ) {
        self.deferred.task(row, tags, search);
    }

    /// Inserts the rows waiting for the commit.
    async fn flush(&mut self) -> AppResult<()> {
        self.deferred.flush(&self.txn, &mut self.events).await
    }

    /// Commits, then publishes the queued events in order.
    ///
    /// Both run in a task of their own: if the request is abandoned (a timeout, a dropped
    /// connection) while the commit is in flight, a committed change is still published.
    pub async fn commit(mut self, bus: &EventBus) -> AppResult<()> {
        let bus = bus.clone();
        tokio::spawn(async move {
            self.flush().await?;
            let UnitOfWork { txn, events, .. } = self;
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

/// Work done in every write transaction just before it commits, over the events its changes
/// queued: what has to be written with a change whatever the change was (the outbox of
/// webhook deliveries, the alerts a change fires). It may queue events of its own. Its
/// failure rolls the transaction back and fails every change in it.
pub trait BeforeCommit: Send + Sync + 'static {
    /// Runs inside `uow`'s transaction once every change of it ran.
    fn before_commit<'a>(&'a self, uow: &'a mut UnitOfWork) -> BoxFuture<'a, AppResult<()>>;

    /// False when [`BeforeCommit::before_commit`] would do nothing now, whatever the changes
    /// (the batch then skips it, and writes its waiting rows with its `COMMIT`).
    fn has_work(&self) -> bool {
        true
    }
}

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 64;
/// How long a chained transaction waits for a change before it ends (and frees SQLite's write
/// lock for other processes).
const CHAIN_IDLE: Duration = Duration::from_millis(2);
/// Changes that may wait for the writer before callers wait to hand theirs over.
const QUEUE: usize = 1024;

/// How a change ended, as the writer needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    /// Refused with a client error (validation, not found, ...).
    Refused,
    /// Failed otherwise (the database, a bug).
    Failed,
}

/// A change handed to the writer: run it in a unit of work, later hear whether it committed.
trait Job: Send {
    /// Runs the change.
    fn run<'a>(&'a mut self, uow: &'a mut UnitOfWork) -> BoxFuture<'a, Ran>;
    /// Whether it needs a savepoint of its own to undo a failure (see [`Writer::run_checked`]).
    fn isolated(&self) -> bool;
    /// Answers the caller once the transaction holding the change committed (or did not).
    fn finish(self: Box<Self>, committed: Result<(), String>);
    /// When the change was handed to the writer.
    fn queued_at(&self) -> std::time::Instant;
}

/// A change returning `T`, and where its answer goes.
struct Change<T, F> {
    work: Option<F>,
    outcome: Option<AppResult<T>>,
    reply: oneshot::Sender<AppResult<T>>,
    isolated: bool,
    queued_at: std::time::Instant,
}

impl<T, F> Job for Change<T, F>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut UnitOfWork) -> BoxFuture<'a, AppResult<T>> + Send + 'static,
{
    fn run<'a>(&'a mut self, uow: &'a mut UnitOfWork) -> BoxFuture<'a, Ran> {
        Box::pin(async move {
            let Some(work) = self.work.take() else { return Ran::Failed };
            let outcome = work(uow).await;
            let ran = match &outcome {
                Ok(_) => Ran::Ok,
                Err(AppError::Db(_) | AppError::Internal(_)) => Ran::Failed,
                Err(_) => Ran::Refused,
            };
            self.outcome = Some(outcome);
            ran
        })
    }

    fn isolated(&self) -> bool {
        self.isolated
    }

    fn queued_at(&self) -> std::time::Instant {
        self.queued_at
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (self.outcome, committed) {
            (Some(Ok(_)), Err(why)) => Err(AppError::Internal(format!("committing the change: {why}"))),
            (Some(outcome), _) => outcome,
            (None, _) => Err(AppError::Internal("the change stopped before it finished".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The one writer of the database (see the module docs). Cloning it is cheap.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    db: DatabaseConnection,
    /// Transactions committed so far (each holds one or more changes).
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer over `db`; events of committed changes go to `bus`. It stops once
    /// every clone is dropped, after the changes already handed over.
    pub fn start(db: DatabaseConnection, bus: EventBus) -> Writer {
        Self::start_timed(db, bus, Histogram::new([]))
    }

    /// Like [`Writer::start`], observing into `wait` how long each change waited for its
    /// transaction to begin.
    pub fn start_timed(db: DatabaseConnection, bus: EventBus, wait: Histogram) -> Writer {
        Self::start_hooked(db, None, bus, wait, None)
    }

    /// Like [`Writer::start_timed`], writing through `writes` (see [`connect_writer`]; `None`:
    /// through `db`) while [`Writer::db`] gives `db` for reads, and running `hook` in every
    /// transaction before it commits.
    pub fn start_hooked(
        db: DatabaseConnection,
        writes: Option<DatabaseConnection>,
        bus: EventBus,
        wait: Histogram,
        hook: Option<Arc<dyn BeforeCommit>>,
    ) -> Writer {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let commits = Arc::default();
        // Chaining keeps the connection from batch to batch: only one nobody else waits for.
        let chain = writes.as_ref().is_some_and(|w| w.get_database_backend() == DbBackend::Sqlite);
        let writes = writes.unwrap_or_else(|| db.clone());
        let looping = WriteLoop { db: writes, chain, bus, commits: Arc::clone(&commits), wait, hook };
        tokio::spawn(looping.run(queue));
        Writer { jobs, db, commits }
    }

    /// Write transactions committed so far (fewer than the changes, under load). It moves
    /// before any change of the transaction is answered, so it versions what reads may see.
    pub fn transactions(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// The database, for reads.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs `work` as one change and answers once it committed. `work` runs inside the
    /// writer's transaction: it must not wait on anything slow (hash a password before, not
    /// in it). If the caller goes away, a change already handed over still commits and
    /// publishes.
    pub async fn run<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut UnitOfWork) -> BoxFuture<'a, AppResult<T>> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// Like [`Writer::run`], for a change that checks everything before its first write, so
    /// that a client error (validation, not found) leaves nothing to undo. It runs without a
    /// savepoint of its own (cheaper: no sub-journal, no full-text index flush). If it fails
    /// otherwise (the database), the whole batch is rolled back and every change in it fails.
    pub async fn run_checked<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut UnitOfWork) -> BoxFuture<'a, AppResult<T>> + Send + 'static,
    {
        self.submit(work, false).await
    }

    async fn submit<T, F>(&self, work: F, isolated: bool) -> AppResult<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut UnitOfWork) -> BoxFuture<'a, AppResult<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> =
            Box::new(Change { work: Some(work), outcome: None, reply, isolated, queued_at: std::time::Instant::now() });
        self.jobs.send(job).await.map_err(|_| AppError::Internal("the database writer has stopped".into()))?;
        answer.await.map_err(|_| AppError::Internal("the database writer dropped the change".into()))?
    }
}

/// The writer's task: what it needs to commit batches.
struct WriteLoop {
    db: DatabaseConnection,
    /// Whether each batch begins the next one's transaction on the connection it keeps
    /// ([`Chain`]).
    chain: bool,
    bus: EventBus,
    commits: Arc<AtomicU64>,
    wait: Histogram,
    hook: Option<Arc<dyn BeforeCommit>>,
}

impl WriteLoop {
    async fn run(self, mut queue: mpsc::Receiver<Box<dyn Job>>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut begun: Option<Chain> = None;
        while next_batch(&mut queue, &mut batch, &mut begun).await > 0 {
            let now = std::time::Instant::now();
            for job in &batch {
                self.wait.observe(now.saturating_duration_since(job.queued_at()).as_secs_f64());
            }
            let jobs = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
            begun = self.commit_batch(jobs, begun.take()).await;
        }
        if let Some(chained) = begun {
            chained.end().await;
        }
    }

    /// Runs `jobs` in one transaction (`begun`, or a new one), each in a savepoint when there
    /// are several (see [`Writer::run_checked`] for the changes that need none); then
    /// [`Self::commit_and_answer`]. Gives back the next batch's transaction if it began it.
    async fn commit_batch(&self, mut jobs: Vec<Box<dyn Job>>, begun: Option<Chain>) -> Option<Chain> {
        let mut outer = match begun {
            Some(Chain(txn)) => UnitOfWork::over(txn),
            None => match UnitOfWork::begin(&self.db).await {
                Ok(uow) => uow,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the write transaction");
                    fail_all(jobs, &e.to_string());
                    return None;
                }
            },
        };
        if jobs.len() == 1 {
            // Alone, a change needs no savepoint: the transaction is its own.
            if run_guarded(jobs[0].as_mut(), &mut outer).await == Ran::Ok {
                return self.commit_and_answer(outer, jobs).await;
            }
            // Its own outcome (a refusal) is its answer; nothing was committed for it to wait on.
            let _ = outer.txn.rollback().await;
            jobs.into_iter().for_each(|job| job.finish(Ok(())));
            return None;
        }
        for job in &mut jobs {
            if !job.isolated() {
                let (queued, deferred) = (outer.events.len(), outer.deferred.mark());
                match run_guarded(job.as_mut(), &mut outer).await {
                    Ran::Ok => {}
                    // Refused before it wrote: nothing to undo but what it queued.
                    Ran::Refused => {
                        outer.events.truncate(queued);
                        outer.deferred.truncate(deferred);
                    }
                    Ran::Failed => {
                        tracing::error!("a change failed inside a batch; the batch is rolled back");
                        let _ = outer.txn.rollback().await;
                        fail_all(jobs, "another change of the same transaction failed");
                        return None;
                    }
                }
                continue;
            }
            let savepoint = match outer.txn.begin().await {
                Ok(txn) => txn,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a savepoint");
                    continue;
                }
            };
            let mut uow = UnitOfWork::over(savepoint);
            if run_guarded(job.as_mut(), &mut uow).await == Ran::Ok {
                let UnitOfWork { txn, events: made, deferred } = uow;
                match txn.commit().await {
                    Ok(()) => {
                        outer.deferred.append(deferred, outer.events.len());
                        outer.events.extend(made);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot release a savepoint"),
                }
            } else {
                let _ = uow.txn.rollback().await;
            }
        }
        self.commit_and_answer(outer, jobs).await
    }

    /// Inserts the waiting rows, runs the hook (and inserts what it left waiting), commits
    /// `outer`; counts the commit; publishes its events in order; answers every caller (last:
    /// whoever sees an answer sees the count and the events already).
    ///
    /// Where the writer has a SQLite connection of its own, it chains: the rows go in the same
    /// query as the `COMMIT`, and the next transaction begins while the callers are answered,
    /// on the connection it keeps (for [`CHAIN_IDLE`] if no change comes). Under load a batch
    /// is then one round trip to SQLite's worker thread (rows + `COMMIT`) and a `BEGIN` beside
    /// the answers, where taking the connection from its pool and giving it back cost three
    /// more (the pool pings a connection it is given back), each a thread wake-up.
    async fn commit_and_answer(&self, mut outer: UnitOfWork, jobs: Vec<Box<dyn Job>>) -> Option<Chain> {
        let chained = self.chain;
        // Chained without the hook's work, the rows go with the `COMMIT` (below).
        let rows_first = !chained || self.hook.as_ref().is_some_and(|hook| hook.has_work());
        if rows_first && let Err(why) = self.before_commit(&mut outer).await {
            tracing::error!(error = %why, "the work before commit failed; the batch is rolled back");
            let _ = outer.txn.rollback().await;
            fail_all(jobs, &why);
            return None;
        }
        if !chained {
            let UnitOfWork { txn, events, .. } = outer;
            let committed = txn.commit().await.map_err(|e| e.to_string());
            self.answer(committed, events, jobs);
            return None;
        }
        let UnitOfWork { txn, mut events, mut deferred } = outer;
        if let Err(e) = deferred.flush_and_commit(&txn, &mut events).await {
            Chain(txn).release().await;
            self.answer(Err(e.to_string()), events, jobs);
            return None;
        }
        // The next transaction begins on the worker thread while this batch is answered.
        let (next, ()) =
            futures_util::join!(Chain::begin_after_commit(txn), async { self.answer(Ok(()), events, jobs) });
        next
    }

    /// After the commit (or its failure): counts it, publishes, answers.
    fn answer(&self, committed: Result<(), String>, events: Vec<Event>, jobs: Vec<Box<dyn Job>>) {
        match &committed {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::SeqCst);
                events.into_iter().for_each(|event| self.bus.publish(event));
            }
            Err(why) => tracing::error!(error = %why, "cannot commit a batch of changes"),
        }
        for job in jobs {
            job.finish(committed.clone());
        }
    }

    /// What every batch does once its changes ran: their waiting rows, then the hook.
    async fn before_commit(&self, outer: &mut UnitOfWork) -> Result<(), String> {
        outer.flush().await.map_err(|e| e.to_string())?;
        let Some(hook) = &self.hook else { return Ok(()) };
        match std::panic::AssertUnwindSafe(hook.before_commit(outer)).catch_unwind().await {
            Ok(Ok(())) => outer.flush().await.map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the work before commit panicked".to_owned()),
        }
    }
}

/// A SQLite transaction the writer began for its next batch, on the connection it kept.
///
/// A chained batch commits with a `COMMIT` sent as SQL, which the transaction object does not
/// see: it still counts itself open, and is kept in step by beginning the next transaction the
/// same way. A chain ends with [`Chain::end`] (nothing was written since it began) or, after a
/// failure, [`Chain::release`]: either gives the connection back to its pool only with SQLite
/// and the object in step.
struct Chain(DatabaseTransaction);

impl Chain {
    /// Begins the next transaction on `txn`, whose `COMMIT` went as SQL.
    async fn begin_after_commit(txn: DatabaseTransaction) -> Option<Chain> {
        match txn.execute_unprepared("BEGIN IMMEDIATE").await {
            Ok(_) => Some(Chain(txn)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot begin the next write transaction at once");
                Chain(txn).release().await;
                None
            }
        }
    }

    /// Ends a chain no change has written in yet.
    async fn end(self) {
        if let Err(e) = self.0.commit().await {
            tracing::warn!(error = %e, "cannot end an unused write transaction");
        }
    }

    /// Ends whatever is open (nothing of it was acknowledged), then hands the connection back.
    async fn release(self) {
        let Chain(txn) = self;
        // An open transaction is rolled back (without one, this fails, and that is fine). Then
        // one is opened (deferred: it takes no lock, so it does not wait) for the object to end.
        let _ = txn.execute_unprepared("ROLLBACK").await;
        let _ = txn.execute_unprepared("BEGIN").await;
        let _ = txn.rollback().await;
    }
}

/// Waits for the next changes into `batch` and says how many (0 once every [`Writer`] is gone).
/// A chain `begun` that no change comes to within [`CHAIN_IDLE`] ends first.
async fn next_batch(
    queue: &mut mpsc::Receiver<Box<dyn Job>>,
    batch: &mut Vec<Box<dyn Job>>,
    begun: &mut Option<Chain>,
) -> usize {
    if begun.is_some() && queue.is_empty() {
        if let Ok(waiting) = tokio::time::timeout(CHAIN_IDLE, queue.recv_many(batch, MAX_BATCH)).await {
            return waiting;
        }
        if let Some(chained) = begun.take() {
            chained.end().await;
        }
    }
    queue.recv_many(batch, MAX_BATCH).await
}

/// Answers every change of a batch that did not commit.
fn fail_all(jobs: Vec<Box<dyn Job>>, why: &str) {
    for job in jobs {
        job.finish(Err(why.to_owned()));
    }
}

/// Runs one change; a panic in it fails that change (and, without a savepoint, its batch).
async fn run_guarded(job: &mut dyn Job, uow: &mut UnitOfWork) -> Ran {
    match std::panic::AssertUnwindSafe(job.run(uow)).catch_unwind().await {
        Ok(ran) => ran,
        Err(_) => {
            tracing::error!("a change panicked; it is rolled back");
            Ran::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::activity;
    use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};

    /// A change writing one activity row named `action` (and its event); fails after writing
    /// when `fail`.
    async fn change(writer: &Writer, action: String, fail: bool) -> AppResult<i64> {
        writer
            .run(move |uow| {
                Box::pin(async move {
                    let row = activity::ActiveModel {
                        kind: Set("SYSTEM".into()),
                        actor: Set("t".into()),
                        action: Set(action),
                        timestamp: Set(0),
                        ..Default::default()
                    }
                    .insert(uow.txn())
                    .await?;
                    uow.publish_after_commit(Event::Activity(Arc::new(row.clone())));
                    if fail {
                        return Err(AppError::invalid("x", "refused after writing"));
                    }
                    Ok(row.id)
                })
            })
            .await
    }

    #[tokio::test]
    async fn waiting_changes_commit_together_and_a_failed_one_leaves_nothing() {
        let db = connect("sqlite::memory:", 1).await.unwrap();
        let bus = EventBus::default();
        let mut events = bus.subscribe();
        let writer = Writer::start(db.clone(), bus);
        let changes = (0..50).map(|i| change(&writer, format!("a{i}"), i == 7));
        let answers = futures_util::future::join_all(changes).await;
        assert!(answers[7].as_ref().is_err_and(|e| e.to_string().contains("refused after writing")));
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 49);
        assert!(writer.transactions() < 50, "{} transactions for 50 changes", writer.transactions());
        assert_eq!(activity::Entity::find().count(&db).await.unwrap(), 49, "the failed change's row is gone");
        let mut published = 0;
        while let Ok(event) = events.try_recv() {
            if let Event::Activity(row) = event {
                assert_ne!(row.action, "a7", "no event for the failed change");
                published += 1;
            }
        }
        assert_eq!(published, 49);
        // Alone, a failing change is rolled back too.
        assert!(change(&writer, "alone".into(), true).await.is_err());
        assert_eq!(activity::Entity::find().count(&db).await.unwrap(), 49);
    }

    /// A checked change: refused before it writes when `refuse`; otherwise writes a row, then
    /// fails with a database error when `break_it`.
    async fn checked(writer: &Writer, refuse: bool, break_it: bool) -> AppResult<()> {
        writer
            .run_checked(move |uow| {
                Box::pin(async move {
                    if refuse {
                        return Err(AppError::invalid("x", "refused before writing"));
                    }
                    let row = activity::ActiveModel {
                        kind: Set("SYSTEM".into()),
                        actor: Set("t".into()),
                        action: Set("checked".into()),
                        timestamp: Set(0),
                        ..Default::default()
                    };
                    row.insert(uow.txn()).await?;
                    if break_it {
                        uow.txn().execute_unprepared("SELECT * FROM no_such_table").await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    #[tokio::test]
    async fn checked_changes_share_the_transaction_and_a_broken_one_fails_its_batch() {
        let db = connect("sqlite::memory:", 1).await.unwrap();
        let writer = Writer::start(db.clone(), EventBus::default());
        let answers = futures_util::future::join_all((0..10).map(|i| checked(&writer, i == 4, false))).await;
        assert!(answers[4].as_ref().is_err_and(|e| e.code() == crate::error::ErrorCode::BadUserInput));
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 9);
        assert_eq!(activity::Entity::find().count(&db).await.unwrap(), 9);

        let answers = futures_util::future::join_all((0..10).map(|i| checked(&writer, false, i == 6))).await;
        assert!(answers.iter().all(Result::is_err), "none of the batch is acknowledged: {answers:?}");
        assert_eq!(activity::Entity::find().count(&db).await.unwrap(), 9, "none of the batch is stored");
        assert!(checked(&writer, false, false).await.is_ok(), "the writer goes on");
    }

    /// A change queueing an audit entry (id `id`, or a new one) for the commit.
    async fn audited(writer: &Writer, id: Option<i64>) -> AppResult<()> {
        writer
            .run_checked(move |uow| {
                Box::pin(async move {
                    uow.insert_audit_at_commit(audit_entry::ActiveModel {
                        id: id.map_or(sea_orm::NotSet, Set),
                        actor: Set("t".into()),
                        actor_kind: Set("SYSTEM".into()),
                        action: Set("test.audit".into()),
                        timestamp: Set(0),
                        ..Default::default()
                    });
                    Ok(())
                })
            })
            .await
    }

    #[tokio::test]
    async fn a_writer_with_its_own_connection_chains_batches_survives_a_failed_commit_and_frees_the_lock_when_idle() {
        let dir = std::env::temp_dir().join(format!("mc-chain-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("mc.db").display());
        let db = connect(&url, 2).await.unwrap();
        let writes = connect_writer(&url).await.unwrap();
        assert!(writes.is_some(), "a file database gives the writer a connection of its own");
        let writer = Writer::start_hooked(db.clone(), writes, EventBus::default(), Histogram::new([]), None);

        // Waves of changes, some refused after writing (undone by their savepoint), commit in
        // batches, one after the other on the kept connection.
        let mut stored = 0;
        for wave in 0..6 {
            let answers =
                futures_util::future::join_all((0..40).map(|i| change(&writer, format!("w{wave}-{i}"), i % 9 == 4)))
                    .await;
            stored += answers.iter().filter(|a| a.is_ok()).count() as u64;
            assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 4);
            assert_eq!(activity::Entity::find().count(&db).await.unwrap(), stored, "wave {wave}");
        }
        assert!(writer.transactions() < 6 * 40, "{} transactions", writer.transactions());

        // Rows that cannot be written (the same id twice) fail their batch's commit: nothing of
        // it is stored or acknowledged, and the next batches commit as before.
        audited(&writer, None).await.unwrap();
        let answers = futures_util::future::join_all((0..20).map(|_| audited(&writer, Some(1)))).await;
        assert!(answers.iter().all(Result::is_err), "{answers:?}");
        assert_eq!(audit_entry::Entity::find().count(&db).await.unwrap(), 1);
        let answers = futures_util::future::join_all((0..20).map(|_| audited(&writer, None))).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(audit_entry::Entity::find().count(&db).await.unwrap(), 21);
        let answers =
            futures_util::future::join_all((0..20).map(|i| change(&writer, format!("after-{i}"), false))).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        // Alone and refused, a change leaves nothing either.
        assert!(change(&writer, "alone".into(), true).await.is_err());
        assert!(change(&writer, "last".into(), false).await.is_ok());
        assert_eq!(activity::Entity::find().count(&db).await.unwrap(), stored + 21);

        // Idle, the writer holds no write lock: another process's connection (here one that
        // waits at most a second for it) writes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = sea_orm::sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("mc.db"))
            .busy_timeout(Duration::from_secs(1));
        let mut other = sea_orm::sqlx::ConnectOptions::connect(&other).await.unwrap();
        sea_orm::sqlx::query(
            "INSERT INTO activities (kind, actor, action, timestamp) VALUES ('SYSTEM', 'cli', 'outside', 0)",
        )
        .execute(&mut other)
        .await
        .expect("the write lock is free");
        assert!(change(&writer, "after the other".into(), false).await.is_ok());
        assert_eq!(activity::Entity::find().count(&db).await.unwrap(), stored + 23);
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
