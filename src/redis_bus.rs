//! Redis for a fleet of instances: the pub/sub event transport, the leader lock for the agent
//! poller, and shared rate-limit counters.
//!
//! Redis going away never takes an instance down: events fall back to local delivery, the
//! subscriber reconnects with backoff and then emits [`Event::Resync`] so subscriptions catch
//! up from the database; the leader lock lapses and is retaken; rate limits fall back to the
//! instance's own counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{broadcast, mpsc};

use crate::events::{Event, EventTransport};
use crate::shutdown::Signal;

/// How long one Redis command may take before it counts as a failure.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A Redis connection shared by the bus, the leader lock and the rate limits.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManager,
    /// Key and channel prefix, so several fleets (or test runs) can share one Redis.
    pub prefix: String,
    /// Until when (epoch ms) request-path callers skip Redis after a failure, so an outage
    /// costs one timeout every few seconds instead of one per request.
    down_until: Arc<std::sync::atomic::AtomicI64>,
}

/// How long request-path callers leave Redis alone after it failed.
const BREAK_MS: i64 = 5_000;

impl Redis {
    /// Connects to `url`. Fails only when the URL is malformed or Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(MAX_BACKOFF);
        let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Redis { client, manager, prefix: prefix.to_owned(), down_until: Arc::default() })
    }

    /// False while the breaker is open (Redis failed in the last few seconds).
    fn available(&self) -> bool {
        chrono::Utc::now().timestamp_millis() >= self.down_until.load(Ordering::Relaxed)
    }

    /// Opens the breaker.
    fn failed(&self) {
        self.down_until.store(chrono::Utc::now().timestamp_millis() + BREAK_MS, Ordering::Relaxed);
    }

    /// A connection handle (cheap: the manager multiplexes and reconnects).
    pub fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    fn channel(&self) -> String {
        format!("{}:events", self.prefix)
    }
}

/// The Redis pub/sub transport.
pub struct RedisTransport {
    outbox: mpsc::UnboundedSender<Event>,
    healthy: Arc<AtomicBool>,
}

impl RedisTransport {
    /// Starts the publisher and subscriber tasks; received events go into `local`.
    pub fn start(redis: Redis, local: broadcast::Sender<Event>, shutdown: Signal) -> Self {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let healthy = Arc::new(AtomicBool::new(true));
        tokio::spawn(publish_loop(redis.clone(), inbox, local.clone(), Arc::clone(&healthy)));
        tokio::spawn(subscribe_loop(redis, local, Arc::clone(&healthy), shutdown));
        RedisTransport { outbox, healthy }
    }
}

impl EventTransport for RedisTransport {
    fn publish(&self, event: Event) {
        // The publisher task keeps commit order; it only stops with the runtime.
        let _ = self.outbox.send(event);
    }
    fn name(&self) -> &'static str {
        "redis"
    }
    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Publishes events in order; one that cannot be published is delivered locally instead.
async fn publish_loop(
    redis: Redis,
    mut inbox: mpsc::UnboundedReceiver<Event>,
    local: broadcast::Sender<Event>,
    healthy: Arc<AtomicBool>,
) {
    let channel = redis.channel();
    let mut conn = redis.conn();
    while let Some(event) = inbox.recv().await {
        // While Redis is known to be down, deliver at once rather than queue behind timeouts.
        if !redis.available() {
            let _ = local.send(event);
            continue;
        }
        let payload = match serde_json::to_string(&event) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode an event; delivering locally");
                let _ = local.send(event);
                continue;
            }
        };
        let sent: Result<redis::RedisResult<i64>, _> =
            tokio::time::timeout(COMMAND_TIMEOUT, conn.publish(&channel, payload)).await;
        if !matches!(sent, Ok(Ok(_))) {
            redis.failed();
            if healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!("cannot publish to Redis; events stay local until it is back");
            }
            let _ = local.send(event);
        }
    }
}

/// Receives every instance's events (this one's included) and delivers them locally,
/// reconnecting with backoff; after a reconnect, tells subscribers to catch up.
async fn subscribe_loop(redis: Redis, local: broadcast::Sender<Event>, healthy: Arc<AtomicBool>, mut shutdown: Signal) {
    let channel = redis.channel();
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let connected = async {
            let mut pubsub = redis.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let pubsub = tokio::select! {
            result = tokio::time::timeout(COMMAND_TIMEOUT, connected) => result,
            _ = shutdown.wait() => return,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(100);
                if !first {
                    tracing::info!("Redis event bus reconnected; subscribers catch up from the database");
                    let _ = local.send(Event::Resync);
                }
                first = false;
                healthy.store(true, Ordering::Relaxed);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = shutdown.wait() => return,
                    };
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                        Ok(event) => {
                            let _ = local.send(event);
                        }
                        Err(err) => tracing::warn!(error = %err, "ignoring a malformed event from Redis"),
                    }
                }
                if healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!("lost the Redis event bus; reconnecting");
                }
            }
            _ => {
                if healthy.swap(false, Ordering::Relaxed) || first {
                    tracing::warn!("cannot subscribe to the Redis event bus; retrying");
                }
                first = false;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A lease in Redis: whoever holds the key is the leader until it stops renewing.
pub struct LeaderLock {
    redis: Redis,
    instance: String,
    ttl: Duration,
}

/// Renews the key only if it is still ours.
const RENEW: &str =
    r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

impl LeaderLock {
    /// A lease named `<prefix>:leader` held for `ttl` at a time.
    pub fn new(redis: Redis, instance: String, ttl: Duration) -> Self {
        LeaderLock { redis, instance, ttl }
    }

    /// Takes or renews the lease; `true` while this instance holds it. Redis errors count as
    /// not holding it (the lease will lapse for everyone, and be retaken when Redis is back).
    pub async fn try_hold(&self) -> bool {
        let key = format!("{}:leader", self.redis.prefix);
        let ttl_ms = self.ttl.as_millis() as u64;
        let mut conn = self.redis.conn();
        let renewed: redis::RedisResult<i64> =
            redis::Script::new(RENEW).key(&key).arg(&self.instance).arg(ttl_ms).invoke_async(&mut conn).await;
        if matches!(renewed, Ok(1)) {
            return true;
        }
        let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&key)
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await;
        matches!(taken, Ok(Some(_)))
    }

    /// Gives the lease up (on shutdown), so another instance takes over at once.
    pub async fn release(&self) {
        let key = format!("{}:leader", self.redis.prefix);
        let script =
            r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
        let mut conn = self.redis.conn();
        let _: redis::RedisResult<i64> =
            redis::Script::new(script).key(&key).arg(&self.instance).invoke_async(&mut conn).await;
    }
}

/// A fixed-window counter shared by the fleet: `Ok` while `key` has made at most `limit` calls
/// in the current minute; otherwise the time left in the window. `None` when Redis failed
/// (the caller falls back to its own counters).
pub async fn shared_count(redis: &Redis, key: &str, limit: u32) -> Option<Result<(), Duration>> {
    if !redis.available() {
        return None;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let window = now / 60_000;
    let key = format!("{}:rl:{key}:{window}", redis.prefix);
    let mut conn = redis.conn();
    let counted: redis::RedisResult<(i64, i64)> = tokio::time::timeout(
        COMMAND_TIMEOUT,
        redis::pipe().atomic().incr(&key, 1).expire(&key, 61).query_async(&mut conn),
    )
    .await
    .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))));
    let Ok((count, _)) = counted else {
        redis.failed();
        return None;
    };
    if count <= i64::from(limit) {
        Some(Ok(()))
    } else {
        Some(Err(Duration::from_millis((60_000 - now % 60_000).max(1) as u64)))
    }
}
