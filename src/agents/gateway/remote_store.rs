//! The session list from the gateway itself, for when its store is not on this machine (the
//! gateway runs elsewhere, or its state folder is not mounted here).
//!
//! `sessions.list` gives each session's entry (OpenClaw adds its `status`); cost is the sum of
//! the assistant messages' `usage.cost.total` from `chat.history`, asked for a session only when
//! its `updatedAt` moved (a run ended), never `estimatedCostUsd`, which covers the last run only.
//! `chat.history` gives at most the last 1,000 messages: a longer session's cost counts only
//! those (a warning says so). A local store has no such limit.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::client::GatewayClient;
use super::store::{ListedSession, SessionEntry};
use super::transcript::history_usage;
use crate::agents::runtime::{RuntimeError, Usage};

/// Sessions asked for per `sessions.list` page, and pages read at most.
const PAGE: u64 = 500;
const MAX_PAGES: u64 = 20;
/// Messages asked for per `chat.history` (the gateway's own maximum).
const HISTORY: u64 = 1000;

/// The usage of each session, with the `updatedAt` it was read at.
#[derive(Default)]
pub(crate) struct RemoteStore {
    usage: HashMap<String, (Option<i64>, Usage)>,
}

fn entry_of(row: &Value) -> SessionEntry {
    let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_owned);
    let int = |k: &str| row.get(k).and_then(Value::as_i64);
    SessionEntry {
        session_id: text("sessionId"),
        updated_at: int("updatedAt"),
        label: text("label"),
        spawned_by: text("spawnedBy"),
        aborted_last_run: row.get("abortedLastRun").and_then(Value::as_bool),
        input_tokens: int("inputTokens"),
        output_tokens: int("outputTokens"),
        model: text("model"),
        model_provider: text("modelProvider"),
        session_file: None,
    }
}

impl RemoteStore {
    pub async fn scan(
        &mut self,
        client: &GatewayClient,
        timeout: Duration,
    ) -> Result<Vec<ListedSession>, RuntimeError> {
        let mut rows = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let page =
                client.request("sessions.list", json!({ "limit": PAGE, "offset": offset }), Some(timeout)).await?;
            let listed = page.get("sessions").and_then(Value::as_array).cloned().unwrap_or_default();
            offset += listed.len() as u64;
            rows.extend(listed);
            match page.get("nextOffset").and_then(Value::as_u64) {
                Some(next) if page.get("hasMore").and_then(Value::as_bool) == Some(true) && next >= offset => {
                    offset = next
                }
                _ => break,
            }
        }
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(key) = row.get("key").and_then(Value::as_str).map(str::to_owned) else { continue };
            let entry = entry_of(&row);
            let usage = match self.usage.get(&key) {
                Some((at, usage)) if *at == entry.updated_at => *usage,
                _ => {
                    let history = client
                        .request("chat.history", json!({ "sessionKey": key, "limit": HISTORY }), Some(timeout))
                        .await?;
                    let usage = history_usage(&history);
                    if history.get("messages").and_then(Value::as_array).is_some_and(|m| m.len() as u64 >= HISTORY) {
                        tracing::warn!(session = %key, "cost counts the last {HISTORY} messages only (the gateway's history limit)");
                    }
                    self.usage.insert(key.clone(), (entry.updated_at, usage));
                    usage
                }
            };
            let status = row.get("status").and_then(Value::as_str).map(str::to_owned);
            sessions.push(ListedSession { key, entry, usage, status });
        }
        self.usage.retain(|key, _| sessions.iter().any(|s| &s.key == key));
        Ok(sessions)
    }
}
