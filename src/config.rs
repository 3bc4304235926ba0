//! Runtime configuration: one `Config` parsed by clap from flags, the environment and `.env`.
//!
//! Every flag has an environment variable (see `README.md`); names are part of the API contract.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};

/// The development default password. Production mode refuses to start with it.
const DEFAULT_PASSWORD: &str = "admin123";
/// Shortest JWT secret production mode accepts (HS256 wants at least 256 bits).
const MIN_SECRET_BYTES: usize = 32;
/// Least entropy production mode accepts in a JWT secret, estimated from its characters.
const MIN_SECRET_BITS: f64 = 96.0;
/// Shortest plain password production mode accepts.
const MIN_PASSWORD_CHARS: usize = 12;

pub use crate::agents::RuntimeKind;

/// Mission Control server configuration.
/// (No `Debug`: it would print the secrets.)
#[derive(Clone, Parser)]
#[command(name = "mission-control", version, about)]
pub struct Config {
    /// Without a command the server runs; `user` manages accounts in the configured database,
    /// `backup` and `restore` copy it.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MC_BIND", default_value = "127.0.0.1:3001")]
    pub bind: SocketAddr,

    /// Database URL: `sqlite://FILE?mode=rwc` (default) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://mission-control.db?mode=rwc")]
    pub database_url: String,

    /// Largest number of pooled database connections.
    #[arg(long, env = "MC_DB_POOL", default_value_t = 10)]
    pub db_pool: u32,

    /// Admin password, plain or an argon2 PHC hash (`$argon2id$...`). `DASHBOARD_PASSWORD` is read too.
    #[arg(long, env = "MC_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Optional read-only password: logging in with it gives the `viewer` role.
    #[arg(long, env = "MC_VIEWER_PASSWORD", hide_env_values = true)]
    pub viewer_password: Option<String>,

    /// Secret for signing tokens (HS256). Random per start when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// How long an issued token is valid, e.g. `24h`, `90m`.
    #[arg(long, env = "MC_TOKEN_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,

    /// Production mode: refuses weak secrets, turns off introspection and GraphiQL.
    #[arg(long, env = "MC_PRODUCTION", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub production: bool,

    /// Which agent runtime to use.
    #[arg(long, env = "MC_AGENT_RUNTIME", value_enum, default_value = "auto")]
    pub agent_runtime: RuntimeKind,

    /// OpenClaw's state folder (holds `openclaw.json` and `agents/*/agent/openclaw-agent.sqlite`).
    /// Default `~/.openclaw`, else the Clawdbot folder.
    #[arg(long, env = "OPENCLAW_STATE_DIR")]
    pub openclaw_state_dir: Option<PathBuf>,

    /// The OpenClaw CLI, used only while the gateway's WebSocket cannot be had.
    #[arg(long, env = "OPENCLAW_BIN")]
    pub openclaw_bin: Option<PathBuf>,

    /// The gateway's WebSocket. Default: `ws://127.0.0.1:<gateway.port of the config>`, else
    /// `ws://127.0.0.1:18789`.
    #[arg(long, env = "OPENCLAW_GATEWAY_URL")]
    pub gateway_url: Option<String>,

    /// Gateway token (else `CLAWDBOT_GATEWAY_TOKEN`, else the config's `gateway.auth.token`).
    #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
    pub gateway_token: Option<String>,

    /// Clawdbot state folder (holds `agents/*/sessions/sessions.json`); the older name of the
    /// OpenClaw state folder. Default `~/.clawdbot` when `~/.openclaw` is missing.
    #[arg(long, env = "CLAWDBOT_STATE_DIR")]
    pub clawdbot_state_dir: Option<PathBuf>,

    /// The Clawdbot CLI binary (default `clawdbot` for a Clawdbot store, else `openclaw`).
    #[arg(long, env = "CLAWDBOT_BIN")]
    pub clawdbot_bin: Option<PathBuf>,

    /// Gateway token, passed to the CLI in its environment, never on its command line.
    #[arg(long, env = "CLAWDBOT_GATEWAY_TOKEN", hide_env_values = true)]
    pub clawdbot_gateway_token: Option<String>,

    /// Timeout for one Clawdbot CLI call.
    #[arg(long, env = "MC_AGENT_CALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub agent_call_timeout: Duration,

    /// How often the agent poller reads the runtime.
    #[arg(long, env = "MC_AGENT_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub agent_poll_interval: Duration,

    /// Redis URL: events, the agent-poller leader lock and rate limits are shared by every
    /// instance using it. Without it everything stays in-process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel (several fleets can share one Redis).
    #[arg(long, env = "MC_REDIS_PREFIX", default_value = "mission-control")]
    pub redis_prefix: String,

    /// Start with the simulated runtime and sample tasks.
    #[arg(long, env = "MC_DEMO", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub demo: bool,

    /// Log filter (`tracing` env-filter syntax).
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// Largest number of concurrent subscriptions on one WebSocket.
    #[arg(long, env = "MC_WS_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub ws_max_subscriptions: usize,

    /// Interval of the WebSocket keep-alive ping.
    #[arg(long, env = "MC_WS_KEEPALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ws_keepalive: Duration,

    /// How long a WebSocket may wait before sending `connection_init`.
    #[arg(long, env = "MC_WS_INIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ws_init_timeout: Duration,

    /// Login attempts allowed per client address per minute, and per username.
    #[arg(long, env = "MC_LOGIN_RATE_LIMIT", default_value_t = 5)]
    pub login_rate_limit: u32,

    /// Bearer token `GET /metrics` asks for; without it the metrics are open (bind to a
    /// private address, or set this).
    #[arg(long, env = "MC_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Where a dispatched task goes when its agent's run is DONE: `review` (a person looks
    /// at the receipt first) or `done`.
    #[arg(long, env = "MC_DISPATCH_DONE_STATUS", default_value = "review", value_enum, ignore_case = true)]
    pub dispatch_done_status: DispatchDone,

    /// Let webhooks point at loopback and private addresses (link-local ones, such as cloud
    /// metadata at 169.254.169.254, stay refused).
    #[arg(long, env = "MC_WEBHOOK_ALLOW_PRIVATE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub webhook_allow_private: bool,

    /// Most webhooks one server keeps.
    #[arg(long, env = "MC_MAX_WEBHOOKS", default_value_t = 50)]
    pub max_webhooks: u64,

    /// Most alert rules one server keeps.
    #[arg(long, env = "MC_MAX_ALERT_RULES", default_value_t = 200)]
    pub max_alert_rules: u64,

    /// Delay before a failed webhook delivery's first retry; each later one waits four times
    /// longer (with jitter), up to an hour.
    #[arg(long, env = "MC_WEBHOOK_RETRY_FIRST", default_value = "2s", value_parser = humantime::parse_duration)]
    pub webhook_retry_first: Duration,

    /// Attempts of a webhook delivery before it is FAILED.
    #[arg(long, env = "MC_WEBHOOK_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub webhook_attempts: u32,

    /// Take a backup this often while serving (e.g. `6h`) into `--backup-dir`.
    #[arg(long, env = "MC_BACKUP_EVERY", value_parser = at_least_a_minute, requires = "backup_dir")]
    pub backup_every: Option<Duration>,

    /// Where `--backup-every` writes its backups.
    #[arg(long, env = "MC_BACKUP_DIR")]
    pub backup_dir: Option<std::path::PathBuf>,

    /// How many scheduled backups are kept (the oldest go).
    #[arg(long, env = "MC_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,

    /// How long shutdown waits for requests in flight (and sockets closing) before it exits
    /// anyway.
    #[arg(long, env = "MC_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long audit entries are kept (e.g. `365d`); by default, forever.
    #[arg(long, env = "MC_AUDIT_RETENTION", value_parser = humantime::parse_duration)]
    pub audit_retention: Option<Duration>,

    /// GraphQL requests allowed per token per minute.
    #[arg(long, env = "MC_REQUEST_RATE_LIMIT", default_value_t = 1200)]
    pub request_rate_limit: u32,

    /// WebSocket connections allowed per client address per minute.
    #[arg(long, env = "MC_WS_RATE_LIMIT", default_value_t = 120)]
    pub ws_rate_limit: u32,

    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[arg(long, env = "MC_TRUST_PROXY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub trust_proxy: bool,

    /// Allowed CORS origin, repeatable (comma-separated in the environment).
    /// Default: any `http://localhost:*` and `http://127.0.0.1:*`.
    #[arg(long = "cors-origin", env = "MC_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Deepest query allowed.
    #[arg(long, env = "MC_MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_query_depth: usize,

    /// Highest query complexity allowed (list fields cost their page size times their children).
    #[arg(long, env = "MC_MAX_QUERY_COMPLEXITY", default_value_t = 5000)]
    pub max_query_complexity: usize,

    /// Most aliased fields in one document.
    #[arg(long, env = "MC_MAX_ALIASES", default_value_t = 100)]
    pub max_aliases: usize,

    /// Most root fields in one operation.
    #[arg(long, env = "MC_MAX_ROOT_FIELDS", default_value_t = 50)]
    pub max_root_fields: usize,

    /// Largest query document, in bytes.
    #[arg(long, env = "MC_MAX_QUERY_BYTES", default_value_t = 100_000)]
    pub max_query_bytes: usize,

    /// Most lexical tokens in one query document.
    #[arg(long, env = "MC_MAX_QUERY_TOKENS", default_value_t = 10_000)]
    pub max_query_tokens: usize,

    /// Deepest nesting of `{`, `[` and `(` in a query document (checked before parsing).
    #[arg(long, env = "MC_MAX_QUERY_NESTING", default_value_t = 64)]
    pub max_query_nesting: usize,

    /// Most fields one operation may reach once its fragments are expanded.
    #[arg(long, env = "MC_MAX_QUERY_FIELDS", default_value_t = 2_000)]
    pub max_query_fields: usize,

    /// Most directives on one field, fragment spread or inline fragment.
    #[arg(long, env = "MC_MAX_DIRECTIVES", default_value_t = 10)]
    pub max_directives: usize,

    /// Largest WebSocket message, in bytes, once `connection_init` is acknowledged.
    #[arg(long, env = "MC_WS_MAX_MESSAGE", default_value_t = 1024 * 1024)]
    pub ws_max_message: usize,

    /// Largest WebSocket message, in bytes, before `connection_init` is acknowledged.
    #[arg(long, env = "MC_WS_MAX_INIT_MESSAGE", default_value_t = 256 * 1024)]
    pub ws_max_init_message: usize,

    /// Time a client has to send a request's headers (slow clients are dropped).
    #[arg(long, env = "MC_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Most operations in one batched request (0 turns batching off).
    #[arg(long, env = "MC_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,

    /// Time allowed to execute one request.
    #[arg(long, env = "MC_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Keep introspection on in production mode.
    #[arg(long, env = "MC_INTROSPECTION", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub introspection: bool,

    /// Keep GraphiQL on in production mode.
    #[arg(long, env = "MC_GRAPHIQL", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub graphiql: bool,

    /// Serve the page at `/` from this directory (a `web/dist` built by `npm run build`)
    /// instead of the files built into the binary.
    #[arg(long, env = "MC_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("production mode needs a password of your own: set MC_PASSWORD (or --password), ideally an argon2 hash")]
    DefaultPassword,
    #[error(
        "production mode needs JWT_SECRET (or --jwt-secret) of at least {MIN_SECRET_BYTES} bytes, e.g. `openssl rand -base64 48`"
    )]
    WeakSecret,
    #[error(
        "JWT_SECRET (or --jwt-secret) has about {0:.0} bits of entropy; production mode needs {MIN_SECRET_BITS:.0}: use random bytes, e.g. `openssl rand -base64 48`"
    )]
    LowEntropySecret(f64),
    #[error(
        "{0} is shorter than {MIN_PASSWORD_CHARS} characters; production mode needs a longer one (or an argon2 hash)"
    )]
    ShortPassword(&'static str),
}

/// What the binary does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Accounts: `user add NAME --role ROLE` (the password is read from standard input),
    /// `user list`.
    #[command(subcommand)]
    User(crate::auth::cli::UserCommand),
    /// Writes a consistent copy of the configured database to FILE (while the server runs).
    Backup {
        /// Where the backup goes (JSON Lines).
        file: std::path::PathBuf,
    },
    /// Restores FILE (a backup) into the configured database; stop the server first.
    Restore {
        /// The backup to restore.
        file: std::path::PathBuf,
        /// Replace what a non-empty database holds.
        #[arg(long)]
        force: bool,
    },
}

impl Config {
    /// Reads `.env` (when present), then flags and the environment.
    pub fn load() -> Self {
        // A missing .env is the normal case, not an error.
        let _ = dotenvy::dotenv();
        let mut config = Config::parse();
        config.apply_env_fallbacks();
        config
    }

    /// A configuration for tests and embedding: the defaults, on 127.0.0.1:0.
    ///
    /// clap still reads the environment, so every setting that changes behaviour is put back
    /// to its default here: a developer's `REDIS_URL` or `MC_DEMO` must not leak into tests.
    pub fn for_tests(database_url: &str) -> Self {
        let mut config = Config::parse_from(["mission-control"]);
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.database_url = database_url.to_owned();
        config.agent_runtime = RuntimeKind::None;
        config.password = None;
        config.viewer_password = None;
        config.jwt_secret = None;
        config.production = false;
        config.demo = false;
        config.redis_url = None;
        config.trust_proxy = false;
        config.cors_origins = Vec::new();
        config.introspection = false;
        config.graphiql = false;
        config.clawdbot_state_dir = None;
        config.clawdbot_gateway_token = None;
        config.clawdbot_bin = None;
        config.openclaw_state_dir = None;
        config.openclaw_bin = None;
        config.gateway_url = None;
        config.gateway_token = None;
        config.webhook_allow_private = false;
        config.max_webhooks = 50;
        config.max_alert_rules = 200;
        config.webhook_retry_first = Duration::from_secs(2);
        config.webhook_attempts = 8;
        config.backup_every = None;
        config.shutdown_timeout = Duration::from_secs(30);
        config.backup_dir = None;
        config
    }

    fn apply_env_fallbacks(&mut self) {
        if std::env::var_os("MC_ENV").is_some_and(|v| v == "production") {
            self.production = true;
        }
        if self.password.is_none() {
            self.password = std::env::var("DASHBOARD_PASSWORD").ok();
        }
    }

    /// The admin password in effect (the development default when none is set).
    pub fn effective_password(&self) -> &str {
        self.password.as_deref().unwrap_or(DEFAULT_PASSWORD)
    }

    /// Refuses settings that are unsafe in production.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.production {
            return Ok(());
        }
        if self.effective_password() == DEFAULT_PASSWORD {
            return Err(ConfigError::DefaultPassword);
        }
        let short = |p: &str| !p.starts_with("$argon2") && p.chars().count() < MIN_PASSWORD_CHARS;
        if short(self.effective_password()) {
            return Err(ConfigError::ShortPassword("MC_PASSWORD (--password)"));
        }
        if self.viewer_password.as_deref().is_some_and(short) {
            return Err(ConfigError::ShortPassword("MC_VIEWER_PASSWORD (--viewer-password)"));
        }
        match &self.jwt_secret {
            Some(secret) if secret.len() >= MIN_SECRET_BYTES => {
                let bits = entropy_bits(secret);
                if bits < MIN_SECRET_BITS { Err(ConfigError::LowEntropySecret(bits)) } else { Ok(()) }
            }
            _ => Err(ConfigError::WeakSecret),
        }
    }

    /// Where to look for the gateway: the flags and their environment variables.
    pub fn gateway_hints(&self) -> crate::agents::gateway::discovery::Hints {
        crate::agents::gateway::discovery::Hints {
            openclaw_state_dir: self.openclaw_state_dir.clone(),
            clawdbot_state_dir: self.clawdbot_state_dir.clone(),
            config_path: None,
            gateway_url: self.gateway_url.clone(),
            openclaw_token: self.gateway_token.clone(),
            clawdbot_token: self.clawdbot_gateway_token.clone(),
            home: None,
        }
        .from_env()
    }
}

/// An estimate of the entropy of `secret`: its length times the Shannon entropy of its bytes.
/// Random text scores near its real entropy; repeats and short alphabets score low.
fn entropy_bits(secret: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in secret.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = secret.len() as f64;
    let per_byte: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum();
    per_byte * n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod(password: Option<&str>, secret: Option<&str>) -> Config {
        let mut config = Config::for_tests("sqlite::memory:");
        config.production = true;
        config.password = password.map(str::to_owned);
        config.jwt_secret = secret.map(str::to_owned);
        config
    }

    #[test]
    fn production_refuses_default_password_and_short_secret() {
        let long = "Zq8vR2nXw4Lk9TfB3mYc7HdJ1sGp6EaU";
        assert!(matches!(prod(None, Some(long)).validate(), Err(ConfigError::DefaultPassword)));
        assert!(matches!(prod(Some("admin123"), Some(long)).validate(), Err(ConfigError::DefaultPassword)));
        assert!(matches!(prod(Some("s3cret!-s3cret!"), Some("short")).validate(), Err(ConfigError::WeakSecret)));
        assert!(matches!(prod(Some("s3cret!-s3cret!"), None).validate(), Err(ConfigError::WeakSecret)));
        assert!(prod(Some("s3cret!-s3cret!"), Some(long)).validate().is_ok());
    }

    #[test]
    fn production_refuses_short_passwords_and_secrets_without_entropy() {
        let good = "Zq8vR2nXw4Lk9TfB3mYc7HdJ1sGp6EaU";
        let err = prod(Some("x"), Some(good)).validate().unwrap_err();
        assert!(matches!(err, ConfigError::ShortPassword(_)));
        assert!(err.to_string().contains("MC_PASSWORD"), "{err}");
        let mut viewer = prod(Some("s3cret!-s3cret!"), Some(good));
        viewer.viewer_password = Some("view".into());
        assert!(viewer.validate().unwrap_err().to_string().contains("MC_VIEWER_PASSWORD"));
        // An argon2 hash is long by nature and accepted whatever the password behind it.
        assert!(prod(Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"), Some(good)).validate().is_ok());
        for weak in ["a".repeat(32), "ab".repeat(16), "abcd".repeat(8)] {
            let err = prod(Some("s3cret!-s3cret!"), Some(&weak)).validate().unwrap_err();
            assert!(matches!(err, ConfigError::LowEntropySecret(_)), "{weak}");
            assert!(err.to_string().contains("JWT_SECRET"), "{err}");
        }
        // 32 random hex digits (128 bits) pass.
        assert!(prod(Some("s3cret!-s3cret!"), Some("9f86d081884c7d659a2feaa0c55ad015")).validate().is_ok());
    }

    #[test]
    fn development_accepts_defaults() {
        assert!(Config::for_tests("sqlite::memory:").validate().is_ok());
    }
}

/// Where a dispatched task goes when its run is DONE (`--dispatch-done-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DispatchDone {
    Review,
    Done,
}

impl DispatchDone {
    /// The task status it names.
    pub fn status(self) -> crate::tasks::types::TaskStatus {
        match self {
            DispatchDone::Review => crate::tasks::types::TaskStatus::Review,
            DispatchDone::Done => crate::tasks::types::TaskStatus::Done,
        }
    }
}

/// A duration of a minute or more (`--backup-every`).
fn at_least_a_minute(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if every < Duration::from_secs(60) {
        return Err(format!("{text} is too often; at least 1m"));
    }
    Ok(every)
}
