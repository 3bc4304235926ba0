//! sea-orm entities, one file per table. Timestamps are epoch milliseconds (`i64`) so that
//! ordering and keyset cursors behave the same on SQLite and PostgreSQL; JSON is stored as text.

pub mod activity;
pub mod agent_metric;
pub mod alert_rule;
pub mod api_key;
pub mod audit_entry;
pub mod comment;
pub mod notification;
pub mod revoked_token;
pub mod schedule;
pub mod schedule_run;
pub mod task;
pub mod task_run;
pub mod task_search;
pub mod task_tag;
pub mod usage_sample;
pub mod usage_total;
pub mod user;
pub mod webhook;
pub mod webhook_delivery;

/// A JSON column's text as a GraphQL `JSON` value (none for null or unreadable text).
pub fn stored_json(text: Option<&str>) -> Option<async_graphql::Json<serde_json::Value>> {
    text.and_then(|t| serde_json::from_str(t).ok()).map(async_graphql::Json)
}

/// Implements `as_str`/`parse` between a GraphQL enum and its stored string.
macro_rules! stored_enum {
    ($ty:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// The stored (and GraphQL) name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$variant),)* _ => None }
            }
        }
    };
}
pub(crate) use stored_enum;
