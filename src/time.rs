//! Time helpers: the database stores epoch milliseconds.

use chrono::{DateTime, TimeZone, Utc};

/// Now, in epoch milliseconds.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Epoch milliseconds as a UTC date-time (clamped to the representable range).
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}
