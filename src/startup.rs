//! Wiring: `App::build(config)` connects the database, chooses the agent runtime, builds the
//! schema and binds the listener (port 0 allowed); `run_until_stopped()` serves until a signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::agents::runtime::AgentRuntime;
use crate::agents::{AgentHub, RuntimeChoice, RuntimeKind};
pub use crate::auth::AuthState;
use crate::auth::keys::KeyRing;
use crate::auth::users::Directory;
use crate::auth::{PasswordCheck, TokenService};
use crate::config::Config;
use crate::db::Writer;
use crate::events::EventBus;
use crate::limits::RateLimits;
use crate::loaders::DbLoader;
use crate::schema::{self, AppSchema};
use crate::shutdown::{self, Trigger};
use async_graphql::dataloader::DataLoader;

impl axum::extract::FromRef<AppState> for Arc<AuthState> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.auth)
    }
}

impl axum::extract::FromRef<AppState> for DatabaseConnection {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl axum::extract::FromRef<AppState> for Writer {
    fn from_ref(state: &AppState) -> Self {
        state.writer.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<RateLimits> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.rate)
    }
}

/// Limits applied by the HTTP and WebSocket layers.
#[derive(Debug, Clone)]
pub struct Limits {
    pub execution_timeout: Duration,
    pub graphiql: bool,
    pub production: bool,
    pub max_batch: usize,
    pub cors_origins: Vec<String>,
    pub ws_max_subscriptions: usize,
    pub ws_keepalive: Duration,
    pub ws_init_timeout: Duration,
    /// Largest WebSocket message once `connection_init` is acknowledged.
    pub ws_max_message: usize,
    /// Largest WebSocket message before that.
    pub ws_max_init_message: usize,
}

/// What every handler shares. Cloning it (every extractor and middleware does, per request)
/// copies one pointer.
#[derive(Clone)]
pub struct AppState(Arc<AppFields>);

impl std::ops::Deref for AppState {
    type Target = AppFields;

    fn deref(&self) -> &AppFields {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct AppFields {
    pub schema: AppSchema,
    pub db: DatabaseConnection,
    /// Every change goes through it.
    pub writer: Writer,
    /// Answers to board reads, kept until the next change (single instances only).
    pub read_cache: Option<Arc<crate::read_cache::ReadCache>>,
    pub bus: EventBus,
    pub hub: Arc<AgentHub>,
    /// Dispatch and claims (GraphQL and MCP share it).
    pub work: Arc<crate::work::Work>,
    /// Runs due schedules (every instance ticks; a claim picks one per time).
    pub scheduler: Arc<crate::schedules::Scheduler>,
    /// Alert rules and webhooks (the writer's hook).
    pub alerts: Arc<crate::alerts::Alerts>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The bearer token `/metrics` asks for, when set.
    pub metrics_token: Option<String>,
    pub auth: Arc<AuthState>,
    pub rate: Arc<RateLimits>,
    pub limits: Limits,
    pub started: Instant,
    /// This process's id in a fleet (the leader lease names it).
    pub instance: String,
    /// Fires when shutdown begins (sockets close with `1001`).
    pub stopping: shutdown::Signal,
    /// Open WebSockets, which shutdown lets close.
    pub sockets: shutdown::Tasks,
    /// The files of the page at `/`.
    pub page: crate::page::Page,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid password setting: {0}")]
    Password(String),
    #[error("cannot open the database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Runtime(String),
    #[error("cannot reach Redis at the configured REDIS_URL: {0}")]
    Redis(String),
}

/// A built, bound, not yet serving server.
pub struct App {
    listener: TcpListener,
    state: AppState,
    poll_interval: Duration,
    header_timeout: Duration,
    shutdown_timeout: Duration,
    demo: bool,
    stop: (Trigger, shutdown::Signal),
}

/// The password checks and the token service (a random secret when none is set).
fn auth_state(config: &Config) -> Result<AuthState, StartupError> {
    let admin_password = PasswordCheck::from_config(config.effective_password()).map_err(StartupError::Password)?;
    let viewer_password = config
        .viewer_password
        .as_deref()
        .map(PasswordCheck::from_config)
        .transpose()
        .map_err(StartupError::Password)?;
    let secret = match &config.jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            tracing::warn!("no JWT_SECRET set: using a random secret; tokens will not survive a restart");
            let mut bytes = vec![0u8; 48];
            rand::rng().fill_bytes(&mut bytes);
            bytes
        }
    };
    Ok(AuthState {
        admin_password,
        viewer_password,
        tokens: TokenService::new(&secret, config.token_ttl),
        directory: Arc::default(),
    })
}

/// How often accounts are re-read, so changes made on another instance apply here too.
const ACCOUNTS_REFRESH: Duration = Duration::from_secs(2);

/// How often the API keys' last uses are written (in one batch) and expired revocations go.
const KEY_USES_FLUSH: Duration = Duration::from_secs(10);

/// Keeps the account directory in step with the database until shutdown; every few seconds
/// and at shutdown, writes when the API keys were last used and drops expired revocations.
async fn refresh_accounts(directory: Arc<Directory>, changes: Writer, mut stop: shutdown::Signal) {
    let mut tick = tokio::time::interval(ACCOUNTS_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(KEY_USES_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let flush_uses = async || {
        let uses = directory.keys.take_uses();
        let pending = uses.clone();
        let written = changes
            .run(move |uow| {
                Box::pin(async move {
                    Directory::prune_revoked(uow.txn()).await?;
                    KeyRing::write_uses(uow.txn(), &pending).await
                })
            })
            .await;
        if let Err(e) = written {
            // Not committed (this write, or its batch): the uses wait for the next flush.
            directory.keys.restore_uses(uses);
            tracing::warn!(error = %e, "cannot write when API keys were last used; retrying later");
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = directory.refresh(changes.db()).await {
                    tracing::warn!(error = %e, "cannot re-read accounts; keeping the last ones");
                }
            }
            _ = flush.tick() => flush_uses().await,
            _ = stop.wait() => {
                flush_uses().await;
                return;
            }
        }
    }
}

/// Redis, when the fleet uses it (it must answer at start-up).
async fn redis(config: &Config) -> Result<Option<crate::redis_bus::Redis>, StartupError> {
    match &config.redis_url {
        Some(url) => crate::redis_bus::Redis::connect(url, &config.redis_prefix)
            .await
            .map(Some)
            .map_err(|e| StartupError::Redis(e.to_string())),
        None => Ok(None),
    }
}

/// The event bus: in-process, or shared through Redis.
fn event_bus(redis: Option<&crate::redis_bus::Redis>, stop: &shutdown::Signal) -> EventBus {
    match redis {
        Some(redis) => {
            let local = EventBus::channel(crate::events::DEFAULT_CAPACITY);
            let transport = crate::redis_bus::RedisTransport::start(redis.clone(), local.clone(), stop.clone());
            EventBus::with_transport(local, Arc::new(transport))
        }
        None => EventBus::default(),
    }
}

/// The agent hub over the chosen runtime, led by a Redis lease in a fleet, polled once, and
/// seeded in demo mode.
async fn agent_hub(
    config: &Config,
    runtime: Option<Arc<dyn AgentRuntime>>,
    redis: Option<&crate::redis_bus::Redis>,
    instance: &str,
    writer: &Writer,
    bus: &EventBus,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Result<Arc<AgentHub>, StartupError> {
    let runtime = match runtime {
        Some(runtime) => runtime,
        None => crate::agents::choose_runtime(runtime_choice(config)).map_err(StartupError::Runtime)?,
    };
    let runtime: Arc<dyn AgentRuntime> =
        Arc::new(crate::agents::instrumented::Instrumented::new(runtime, Arc::clone(metrics)));
    tracing::info!(runtime = runtime.name(), "agent runtime");
    let leadership = match redis {
        Some(redis) => crate::agents::Leadership::Lease(Box::new(crate::redis_bus::LeaderLock::new(
            redis.clone(),
            instance.to_owned(),
            Duration::from_secs(10),
        ))),
        None => crate::agents::Leadership::Always,
    };
    let hub = Arc::new(AgentHub::new(runtime, bus.clone(), writer.clone()).with_leadership(leadership));
    hub.poll_once().await;
    if config.demo {
        crate::agents::demo::seed(&hub, bus).await.map_err(|e| StartupError::Runtime(e.to_string()))?;
    }
    Ok(hub)
}

/// What the resolvers share, put in the schema's data.
struct Shared<'a> {
    writer: &'a Writer,
    bus: &'a EventBus,
    hub: &'a Arc<AgentHub>,
    work: &'a Arc<crate::work::Work>,
    scheduler: &'a Arc<crate::schedules::Scheduler>,
    directory: &'a Arc<Directory>,
    metrics: &'a Arc<crate::metrics::Metrics>,
    alerts: &'a Arc<crate::alerts::Alerts>,
}

/// The schema with its limits and the data resolvers share.
fn schema(config: &Config, shared: Shared<'_>) -> AppSchema {
    let Shared { writer, bus, hub, work, scheduler, directory, metrics, alerts } = shared;
    let limits = schema::QueryLimits {
        max_aliases: config.max_aliases,
        max_root_fields: config.max_root_fields,
        max_query_bytes: config.max_query_bytes,
        max_depth: config.max_query_depth,
        max_tokens: config.max_query_tokens,
        max_nesting: config.max_query_nesting,
        max_fields: config.max_query_fields,
        max_directives: config.max_directives,
    };
    let mut builder = schema::build_observed(limits, Some(Arc::clone(metrics)))
        .data(writer.db().clone())
        .data(writer.clone())
        .data(DataLoader::new(DbLoader { db: writer.db().clone() }, tokio::spawn))
        .data(bus.clone())
        .data(Arc::clone(hub))
        .data(Arc::clone(hub) as Arc<dyn crate::feed::LiveAgents>)
        .data(Arc::clone(directory))
        .data(Arc::clone(work))
        .data(Arc::clone(scheduler))
        .data(Arc::clone(alerts))
        .limit_complexity(config.max_query_complexity)
        .limit_recursive_depth(32);
    if config.production {
        builder = builder.disable_suggestions();
        if !config.introspection {
            builder = builder.disable_introspection();
        }
    }
    builder.finish()
}

/// The rate limits, shared by the fleet through Redis when there is one.
fn rate_limits(config: &Config, redis: Option<crate::redis_bus::Redis>) -> RateLimits {
    let limits =
        RateLimits::new(config.login_rate_limit, config.request_rate_limit, config.ws_rate_limit, config.trust_proxy);
    match redis {
        Some(redis) => limits.shared(redis),
        None => limits,
    }
}

/// The limits the HTTP and WebSocket layers apply.
fn limits(config: &Config) -> Limits {
    Limits {
        execution_timeout: config.request_timeout,
        graphiql: !config.production || config.graphiql,
        production: config.production,
        max_batch: config.max_batch,
        cors_origins: config.cors_origins.clone(),
        ws_max_subscriptions: config.ws_max_subscriptions,
        ws_keepalive: config.ws_keepalive,
        ws_init_timeout: config.ws_init_timeout,
        ws_max_message: config.ws_max_message,
        ws_max_init_message: config.ws_max_init_message.min(config.ws_max_message),
    }
}

/// The runtime choice the configuration makes (`--demo` means the simulation).
fn runtime_choice(config: &Config) -> RuntimeChoice {
    RuntimeChoice {
        kind: if config.demo { RuntimeKind::Simulated } else { config.agent_runtime },
        hints: config.gateway_hints(),
        openclaw_bin: config.openclaw_bin.clone(),
        clawdbot_bin: config.clawdbot_bin.clone(),
        call_timeout: config.agent_call_timeout,
    }
}

impl App {
    /// Connects, migrates, wires the schema and binds `config.bind`.
    pub async fn build(config: Config) -> Result<App, StartupError> {
        Self::build_with_runtime(config, None).await
    }

    /// Like [`App::build`], with an agent runtime chosen by the caller (tests, embedding).
    pub async fn build_with_runtime(
        config: Config,
        runtime: Option<Arc<dyn AgentRuntime>>,
    ) -> Result<App, StartupError> {
        config.validate()?;
        let auth = auth_state(&config)?;
        let db = crate::db::connect(&config.database_url, config.db_pool).await?;
        let instance = uuid::Uuid::new_v4().to_string();
        let stop = shutdown::channel();
        auth.directory.refresh(&db).await.map_err(|e| StartupError::Runtime(format!("reading accounts: {e}")))?;
        let redis = redis(&config).await?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let bus = event_bus(redis.as_ref(), &stop.1).counted_by(crate::events::BusCounters {
            published: metrics.events_published.clone(),
            lagged: metrics.events_lagged.clone(),
        });
        tracing::info!(event_bus = bus.transport_name(), instance = %instance, "event bus");
        let alerts = crate::alerts::Alerts::new(alert_settings(&config));
        alerts.try_reload(&db).await.map_err(|e| StartupError::Runtime(format!("reading alert rules: {e}")))?;
        let hook: Arc<dyn crate::db::BeforeCommit> = Arc::clone(&alerts) as _;
        let writes = crate::db::connect_writer(&config.database_url).await?;
        let writer = Writer::start_hooked(db.clone(), writes, bus.clone(), metrics.db_write_wait.clone(), Some(hook));
        tokio::spawn(refresh_accounts(Arc::clone(&auth.directory), writer.clone(), stop.1.clone()));
        if let (Some(every), Some(dir)) = (config.backup_every, &config.backup_dir) {
            tokio::spawn(crate::backup::every(db.clone(), dir.clone(), every, config.backup_keep, stop.1.clone()));
        }
        if let Some(keep) = config.audit_retention {
            tokio::spawn(crate::audit::prune_forever(writer.clone(), keep, stop.1.clone()));
        }
        let hub = agent_hub(&config, runtime, redis.as_ref(), &instance, &writer, &bus, &metrics).await?;
        alerts.attach_hub(&hub);
        let work = crate::work::Work::start(
            writer.clone(),
            Arc::clone(&hub),
            bus.clone(),
            config.dispatch_done_status.status(),
        );
        let scheduler = Arc::new(crate::schedules::Scheduler {
            writer: writer.clone(),
            hub: Arc::clone(&hub),
            bus: bus.clone(),
            work: Arc::clone(&work),
        });
        let shared = Shared {
            writer: &writer,
            bus: &bus,
            hub: &hub,
            work: &work,
            scheduler: &scheduler,
            directory: &auth.directory,
            metrics: &metrics,
            alerts: &alerts,
        };
        let schema = schema(&config, shared);
        let listener =
            TcpListener::bind(config.bind).await.map_err(|source| StartupError::Bind { addr: config.bind, source })?;
        let state = AppState(Arc::new(AppFields {
            schema,
            db,
            writer,
            bus,
            hub,
            work,
            scheduler,
            alerts,
            metrics,
            metrics_token: config.metrics_token.clone(),
            auth: Arc::new(auth),
            // With Redis another instance may commit a change this one hears of late.
            read_cache: redis.is_none().then(Arc::default),
            rate: Arc::new(rate_limits(&config, redis)),
            limits: limits(&config),
            started: Instant::now(),
            instance,
            stopping: stop.1.clone(),
            sockets: shutdown::Tasks::default(),
            page: crate::page::Page::new(config.web_dir.clone()),
        }));
        Ok(App {
            listener,
            state,
            poll_interval: config.agent_poll_interval,
            header_timeout: config.header_timeout,
            shutdown_timeout: config.shutdown_timeout,
            demo: config.demo,
            stop,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests reach the token service and the hub through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM.
    /// A second signal during shutdown exits at once (status 130).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(async {
            shutdown_signal().await;
            tokio::spawn(async {
                shutdown_signal().await;
                tracing::warn!("second signal: exiting now, without waiting for open requests");
                std::process::exit(130);
            });
        })
        .await
    }

    /// Serves until `stop` resolves, then shuts down gracefully: stops accepting, tells every
    /// background task and socket at once (sockets close with `1001`, the fleet lease is
    /// released so another instance takes over), lets in-flight requests finish and sockets
    /// close (up to [`SOCKETS_CLOSE`]), and returns.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (trigger, signal) = self.stop;
        let trigger = Arc::new(trigger);
        let fire = Arc::clone(&trigger);
        // One deadline for the whole stop, from the signal on.
        let stopped_at: Arc<std::sync::OnceLock<tokio::time::Instant>> = Arc::default();
        let mark = Arc::clone(&stopped_at);
        let stop = async move {
            stop.await;
            let _ = mark.set(tokio::time::Instant::now());
            fire.fire();
        };
        let sockets = self.state.sockets.clone();
        let poller = tokio::spawn(Arc::clone(&self.state.hub).run_until_stopped(self.poll_interval, signal.clone()));
        let sweeper = tokio::spawn(Arc::clone(&self.state.work).run_until_stopped(signal.clone()));
        let scheduler = tokio::spawn(Arc::clone(&self.state.scheduler).run_until_stopped(signal.clone()));
        let alerting = alerting(&self.state, signal.clone())?;
        if self.demo {
            let s = &self.state;
            tokio::spawn(crate::agents::demo::keep_alive(
                Arc::clone(&s.hub),
                s.bus.clone(),
                Duration::from_secs(15),
                signal.clone(),
            ));
        }
        let rate = Arc::clone(&self.state.rate);
        let mut janitor_stop = signal;
        let janitor = tokio::spawn(async move {
            // Idle rate-limit keys are forgotten so the maps stay small.
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => rate.shrink(),
                    _ = janitor_stop.wait() => break,
                }
            }
        });
        let router = crate::http::router(self.state);
        let served = crate::serve::serve(self.listener, router, self.header_timeout, self.shutdown_timeout, stop).await;
        trigger.fire();
        let deadline = *stopped_at.get_or_init(tokio::time::Instant::now) + self.shutdown_timeout;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        if !sockets.drained(SOCKETS_CLOSE.min(left())).await {
            tracing::warn!(open = sockets.running(), "some WebSockets did not close in time");
        }
        // The background tasks stop at the signal; one stuck in a call is not waited for long.
        let background = async {
            let _ = poller.await;
            let _ = sweeper.await;
            let _ = scheduler.await;
            for task in alerting {
                let _ = task.await;
            }
            let _ = janitor.await;
        };
        if tokio::time::timeout(BACKGROUND_STOP.min(left()), background).await.is_err() {
            tracing::warn!("background tasks did not stop in time; exiting without them");
        }
        served
    }
}

/// How long shutdown waits for the background tasks (poller, sweeper, deliverer, ...) to stop.
const BACKGROUND_STOP: Duration = Duration::from_secs(2);

/// How long shutdown waits for WebSockets to finish their closing handshake.
const SOCKETS_CLOSE: Duration = Duration::from_secs(5);

/// Starts what alerts need besides the writer's hook: re-reading rules and webhooks, the
/// leader's watcher of agents, and the deliverer.
fn alerting(s: &AppState, signal: shutdown::Signal) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let deliverer = crate::alerts::deliver::Deliverer::new(
        s.writer.clone(),
        Arc::clone(&s.alerts),
        s.bus.clone(),
        Some(Arc::clone(&s.metrics)),
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let watcher = crate::alerts::watch::Watcher {
        writer: s.writer.clone(),
        hub: Arc::clone(&s.hub),
        alerts: Arc::clone(&s.alerts),
        bus: s.bus.clone(),
    };
    Ok(vec![
        tokio::spawn(Arc::clone(&s.alerts).refresh_until_stopped(s.db.clone(), s.bus.clone(), signal.clone())),
        tokio::spawn(watcher.run_until_stopped(signal.clone())),
        tokio::spawn(deliverer.run_until_stopped(signal)),
    ])
}

/// The alert settings of `config`.
fn alert_settings(config: &Config) -> crate::alerts::Settings {
    crate::alerts::Settings {
        allow_private: config.webhook_allow_private,
        max_webhooks: config.max_webhooks,
        max_rules: config.max_alert_rules,
        retry_first: config.webhook_retry_first,
        attempts: config.webhook_attempts,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
