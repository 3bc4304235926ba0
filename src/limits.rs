//! Rate limits (login attempts per client address and per username, WebSocket connections
//! per client address, requests per token), counted by the `governor` crate, and the client address behind a request.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// One keyed limit: `n` events per minute per key, as a burst of `n` refilled evenly.
struct Limit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    /// `per_minute` events per key per minute (0 is treated as 1).
    fn per_minute(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Limit { limiter: RateLimiter::keyed(Quota::per_minute(n)) }
    }

    /// `Ok` when `key` may go on; otherwise how long until it may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets keys whose limits have fully refilled (bounds memory).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Every rate limit of the server. With Redis the counters are shared by the fleet (a fixed
/// window per minute); the instance's own counters stand in whenever Redis does not answer.
pub struct RateLimits {
    login: Limit<IpAddr>,
    /// Login attempts per username, whatever the address (a botnet guessing one password).
    login_name: Limit<String>,
    requests: Limit<u64>,
    websockets: Limit<IpAddr>,
    per_minute: [u32; 3],
    trust_proxy: bool,
    redis: Option<crate::redis_bus::Redis>,
}

impl RateLimits {
    /// Limits per minute: login attempts and sockets per address, requests per token.
    pub fn new(login: u32, requests: u32, websockets: u32, trust_proxy: bool) -> Self {
        RateLimits {
            login: Limit::per_minute(login),
            login_name: Limit::per_minute(login),
            requests: Limit::per_minute(requests),
            websockets: Limit::per_minute(websockets),
            per_minute: [login, requests, websockets],
            trust_proxy,
            redis: None,
        }
    }

    /// Shares the counters through `redis`.
    pub fn shared(mut self, redis: crate::redis_bus::Redis) -> Self {
        self.redis = Some(redis);
        self
    }

    async fn shared_or<K>(&self, name: &str, key: &K, limit: &Limit<K>, max: u32) -> Result<(), Duration>
    where
        K: Hash + Eq + Clone + std::fmt::Display,
    {
        if let Some(redis) = &self.redis
            && let Some(result) = crate::redis_bus::shared_count(redis, &format!("{name}:{key}"), max).await
        {
            return result;
        }
        limit.check(key)
    }

    /// A login attempt from `ip`.
    pub async fn check_login(&self, ip: IpAddr) -> Result<(), Duration> {
        self.shared_or("login", &ip, &self.login, self.per_minute[0]).await
    }

    /// A login attempt for `username` (folded to lower case by the caller).
    pub async fn check_login_name(&self, username: &str) -> Result<(), Duration> {
        self.shared_or("loginname", &username.to_owned(), &self.login_name, self.per_minute[0]).await
    }

    /// A GraphQL request with `token`.
    pub async fn check_request(&self, token: &str) -> Result<(), Duration> {
        self.shared_or("req", &Self::token_key(token), &self.requests, self.per_minute[1]).await
    }

    /// A WebSocket connection from `ip`.
    pub async fn check_websocket(&self, ip: IpAddr) -> Result<(), Duration> {
        self.shared_or("ws", &ip, &self.websockets, self.per_minute[2]).await
    }

    /// The client address: the peer, or with `--trust-proxy` the last `X-Forwarded-For`
    /// entry, the one the trusted proxy appended (the entries before it are whatever the client
    /// sent, so trusting the first would let anyone pick a fresh address per request).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust_proxy
            && let Some(ip) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
        peer.ip()
    }

    /// The key of a token for the per-token limit (a hash: tokens are not kept).
    fn token_key(token: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        token.hash(&mut hasher);
        hasher.finish()
    }

    /// Forgets idle keys of every limit.
    pub fn shrink(&self) {
        self.login.shrink();
        self.login_name.shrink();
        self.requests.shrink();
        self.websockets.shrink();
    }
}

/// Whole seconds to wait, at least 1 (for `Retry-After`).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_attempt_in_a_minute_is_refused_per_key() {
        let limit: Limit<u8> = Limit::per_minute(5);
        for _ in 0..5 {
            assert!(limit.check(&1).is_ok());
        }
        let wait = limit.check(&1).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(12), "{wait:?}");
        assert!(limit.check(&2).is_ok(), "other keys are unaffected");
        assert_eq!(retry_after_secs(Duration::from_millis(11_200)), 12);
    }

    #[test]
    fn forwarded_for_is_trusted_only_when_asked() {
        let mut headers = HeaderMap::new();
        // The client forged the first entry; the proxy appended the real address.
        headers.insert("x-forwarded-for", "203.0.113.7, 198.51.100.9".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(RateLimits::new(1, 1, 1, false).client_ip(peer, &headers), peer.ip());
        assert_eq!(RateLimits::new(1, 1, 1, true).client_ip(peer, &headers), "198.51.100.9".parse::<IpAddr>().unwrap());
    }
}
