//! Reading OpenClaw's session store: `<state>/agents/<agent>/agent/openclaw-agent.sqlite`.
//!
//! OpenClaw 2026.9 keeps what Clawdbot kept in `sessions.json` and `<sessionId>.jsonl` in one
//! SQLite database per agent, in WAL mode, written by the gateway while we read. Its schema is
//! OpenClaw's own, not a published interface, so this reader:
//! - opens it read-only and names only the columns it needs (`session_nodes`: key, session
//!   id, `status`, `label`, `updated_at`, and a few fields of `entry_json`;
//!   `transcript_events`: `session_id`, `seq`, `event_json` / `event_zstd`), so new columns
//!   change nothing;
//! - reads transcripts incrementally: per session it keeps the last `seq` summed and asks only
//!   for rows after it, and only for sessions whose `updated_at` moved (or that the caller
//!   marks as just finished);
//! - decodes `event_zstd` rows (zstd, at most `event_utf8_bytes` long) like `event_json` ones.
//!   Each row is one line of the old JSONL transcript, so the Clawdbot parsers apply as they are.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sea_orm::sqlx::{self, Row};

use super::lock;
use super::store::{ListedSession, SessionEntry};
use super::transcript::{line_entry, line_usage};
use super::{TranscriptEntry, Usage};

/// The store's file name inside `<state>/agents/<agent>/agent/`.
pub(crate) const STORE_FILE: &str = "openclaw-agent.sqlite";
/// The largest transcript row OpenClaw writes (its own CHECK constraint).
const MAX_ROW_BYTES: u64 = 4 << 20;
/// Rows read per query while paging a transcript backwards.
const PAGE: i64 = 200;

/// Where reading a session's transcript got to.
#[derive(Debug, Clone, Default)]
struct Cursor {
    /// The last row summed; `None` before the first read.
    last_seq: Option<i64>,
    usage: Usage,
    /// `session_nodes.updated_at` when the rows were last read.
    read_at_update: Option<i64>,
}

/// One open store and its cursors.
struct OpenStore {
    pool: SqlitePool,
    /// By session id.
    cursors: HashMap<String, Cursor>,
}

/// What the next scan must read beyond what moved; set from the gateway's events without
/// waiting for a scan in progress.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// Sessions whose transcript must be read even if `updated_at` did not move (a run just
    /// ended).
    dirty: HashSet<String>,
    /// Every transcript must be read again from its first row (events were missed).
    reread: bool,
}

impl Marks {
    pub fn mark_dirty(&mut self, session_id: &str) {
        self.dirty.insert(session_id.to_owned());
    }

    pub fn reread_all(&mut self) {
        self.reread = true;
    }
}

/// Every OpenClaw store under a state folder, opened once and read incrementally.
#[derive(Default)]
pub(crate) struct SqliteStores {
    open: HashMap<PathBuf, OpenStore>,
    marks: Arc<Mutex<Marks>>,
}

/// The store files under `state_dir`, one per agent folder that has one.
pub(crate) fn store_files(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(agents) = std::fs::read_dir(state_dir.join("agents")) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        agents.flatten().map(|a| a.path().join("agent").join(STORE_FILE)).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// A transcript row's text: `event_json`, or `event_zstd` decompressed.
fn row_text(json: Option<String>, zstd: Option<Vec<u8>>, declared: Option<i64>) -> Result<Vec<u8>, String> {
    if let Some(json) = json {
        return Ok(json.into_bytes());
    }
    let Some(compressed) = zstd else { return Ok(Vec::new()) };
    let limit = declared.and_then(|n| u64::try_from(n).ok()).unwrap_or(MAX_ROW_BYTES).min(MAX_ROW_BYTES);
    let mut slice = compressed.as_slice();
    let decoder = ruzstd::decoding::StreamingDecoder::new(&mut slice).map_err(|e| format!("bad zstd row: {e}"))?;
    let mut out = Vec::new();
    decoder.take(limit).read_to_end(&mut out).map_err(|e| format!("bad zstd row: {e}"))?;
    Ok(out)
}

impl SqliteStores {
    /// Where to say what the next scan must read (shared, never held across a scan).
    pub fn marks(&self) -> Arc<Mutex<Marks>> {
        Arc::clone(&self.marks)
    }

    async fn pool(&mut self, file: &Path) -> Result<&mut OpenStore, String> {
        if !self.open.contains_key(file) {
            let options = SqliteConnectOptions::new()
                .filename(file)
                .read_only(true)
                .busy_timeout(std::time::Duration::from_secs(2));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .connect_with(options)
                .await
                .map_err(|e| format!("cannot open the OpenClaw store {}: {e}", file.display()))?;
            self.open.insert(file.to_path_buf(), OpenStore { pool, cursors: HashMap::new() });
        }
        Ok(self.open.get_mut(file).expect("just inserted"))
    }

    /// Every session of every store, with its transcript usage brought up to date; `None` when
    /// the state folder holds no OpenClaw store.
    pub async fn scan(&mut self, state_dir: &Path) -> Result<Option<Vec<ListedSession>>, String> {
        let files = store_files(state_dir);
        self.open.retain(|path, _| files.contains(path));
        if files.is_empty() {
            return Ok(None);
        }
        let marks = std::mem::take(&mut *lock(&self.marks));
        if marks.reread {
            for store in self.open.values_mut() {
                store.cursors.clear();
            }
        }
        let result = self.scan_files(files, &marks.dirty).await;
        if result.is_err() {
            // Nothing read is lost: the next scan tries the same again.
            let mut pending = lock(&self.marks);
            pending.dirty.extend(marks.dirty);
            pending.reread |= marks.reread;
        }
        result.map(Some)
    }

    async fn scan_files(&mut self, files: Vec<PathBuf>, dirty: &HashSet<String>) -> Result<Vec<ListedSession>, String> {
        let mut sessions = Vec::new();
        for file in files {
            let store = self.pool(&file).await?;
            let rows = read_nodes(&store.pool).await.map_err(|e| format!("{}: {e}", file.display()))?;
            let mut live = HashSet::new();
            for (key, mut entry, status) in rows {
                let usage = match entry.session_id.clone() {
                    Some(id) => {
                        live.insert(id.clone());
                        let cursor = store.cursors.entry(id.clone()).or_default();
                        if cursor.read_at_update != entry.updated_at || dirty.contains(&id) {
                            read_usage_since(&store.pool, &id, cursor)
                                .await
                                .map_err(|e| format!("{}: {e}", file.display()))?;
                            cursor.read_at_update = entry.updated_at;
                        }
                        cursor.usage
                    }
                    None => Usage::default(),
                };
                entry.session_file = None;
                sessions.push(ListedSession { key, entry, usage, status });
            }
            store.cursors.retain(|id, _| live.contains(id));
        }
        Ok(sessions)
    }

    /// The last `limit` messages of `key`, oldest first; `None` when no store holds it.
    pub async fn transcript(
        &mut self,
        state_dir: &Path,
        key: &str,
        limit: usize,
    ) -> Result<Option<Vec<TranscriptEntry>>, String> {
        for file in store_files(state_dir) {
            let store = self.pool(&file).await?;
            let session_id: Option<String> =
                sqlx::query_scalar("SELECT current_session_id FROM session_nodes WHERE session_key = ?")
                    .bind(key)
                    .fetch_optional(&store.pool)
                    .await
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            let Some(session_id) = session_id else { continue };
            return read_messages(&store.pool, &session_id, limit)
                .await
                .map(Some)
                .map_err(|e| format!("{}: {e}", file.display()));
        }
        Ok(None)
    }
}

/// `session_nodes` as (key, entry, status).
async fn read_nodes(pool: &SqlitePool) -> Result<Vec<(String, SessionEntry, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT session_key, current_session_id, status, label, updated_at, spawned_by, \
         json_extract(entry_json, '$.model') AS model, \
         json_extract(entry_json, '$.modelProvider') AS model_provider, \
         json_extract(entry_json, '$.inputTokens') AS input_tokens, \
         json_extract(entry_json, '$.outputTokens') AS output_tokens, \
         json_extract(entry_json, '$.abortedLastRun') AS aborted \
         FROM session_nodes ORDER BY session_key",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let entry = SessionEntry {
                session_id: row.try_get("current_session_id")?,
                updated_at: row.try_get("updated_at")?,
                label: row.try_get("label")?,
                spawned_by: row.try_get("spawned_by")?,
                aborted_last_run: row.try_get::<Option<i64>, _>("aborted")?.map(|n| n != 0),
                input_tokens: row.try_get("input_tokens").ok().flatten(),
                output_tokens: row.try_get("output_tokens").ok().flatten(),
                model: row.try_get("model").ok().flatten(),
                model_provider: row.try_get("model_provider").ok().flatten(),
                session_file: None,
            };
            Ok((row.try_get("session_key")?, entry, row.try_get("status")?))
        })
        .collect()
}

/// Adds the usage of the rows after `cursor.last_seq` to the cursor.
async fn read_usage_since(pool: &SqlitePool, session_id: &str, cursor: &mut Cursor) -> Result<(), String> {
    let rows = sqlx::query(
        "SELECT seq, event_json, event_zstd, event_utf8_bytes FROM transcript_events \
         WHERE session_id = ? AND seq > ? ORDER BY seq",
    )
    .bind(session_id)
    .bind(cursor.last_seq.unwrap_or(-1))
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?;
    for row in rows {
        let seq: i64 = row.try_get("seq").map_err(|e| e.to_string())?;
        let text = row_text(
            row.try_get("event_json").map_err(|e| e.to_string())?,
            row.try_get("event_zstd").map_err(|e| e.to_string())?,
            row.try_get("event_utf8_bytes").ok().flatten(),
        );
        match text {
            Ok(text) => {
                if let Some(u) = line_usage(&text) {
                    cursor.usage.tokens = cursor.usage.tokens.saturating_add(u.tokens);
                    cursor.usage.cost += u.cost;
                }
            }
            Err(e) => tracing::warn!(session = session_id, seq, error = %e, "skipping an unreadable transcript row"),
        }
        cursor.last_seq = Some(seq);
    }
    Ok(())
}

/// The last `limit` conversation messages of a session, oldest first, paging backwards.
async fn read_messages(pool: &SqlitePool, session_id: &str, limit: usize) -> Result<Vec<TranscriptEntry>, String> {
    let mut newest_first = Vec::new();
    let mut before = i64::MAX;
    while newest_first.len() < limit {
        let rows = sqlx::query(
            "SELECT seq, event_json, event_zstd, event_utf8_bytes FROM transcript_events \
             WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(session_id)
        .bind(before)
        .bind(PAGE)
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            before = row.try_get("seq").map_err(|e| e.to_string())?;
            let text = row_text(
                row.try_get("event_json").map_err(|e| e.to_string())?,
                row.try_get("event_zstd").map_err(|e| e.to_string())?,
                row.try_get("event_utf8_bytes").ok().flatten(),
            );
            if let Some(entry) = text.ok().and_then(|t| line_entry(&t)) {
                newest_first.push(entry);
                if newest_first.len() == limit {
                    break;
                }
            }
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openclaw/store");

    /// A writable copy of the fixture state folder.
    fn state_copy() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mc-openclaw-store-{}", uuid::Uuid::new_v4()));
        let agent = dir.join("agents/main/agent");
        std::fs::create_dir_all(&agent).unwrap();
        std::fs::copy(format!("{FIXTURE}/agents/main/agent/{STORE_FILE}"), agent.join(STORE_FILE)).unwrap();
        let mut perms = std::fs::metadata(agent.join(STORE_FILE)).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(agent.join(STORE_FILE), perms).unwrap();
        dir
    }

    async fn writer(state: &Path) -> SqlitePool {
        let options = SqliteConnectOptions::new().filename(state.join("agents/main/agent").join(STORE_FILE));
        SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap()
    }

    /// The fixture's transcript sums, computed from its JSONL export by hand: every assistant
    /// message of the mock costs 0.004542 and uses 1,290 tokens.
    #[tokio::test]
    async fn the_fixture_store_lists_every_session_with_its_transcript_totals() {
        let state = state_copy();
        let mut stores = SqliteStores::default();
        let sessions = stores.scan(&state).await.unwrap().unwrap();
        assert_eq!(sessions.len(), 3);
        let capture = sessions.iter().find(|s| s.key == "agent:main:subagent:capture-1796152060105").unwrap();
        assert_eq!(capture.status.as_deref(), Some("killed"));
        assert_eq!(capture.entry.label.as_deref(), Some("capture"));
        assert_eq!(capture.entry.model.as_deref(), Some("mock-1"));
        assert_eq!(capture.entry.session_id.as_deref(), Some("fc1c2aa7-5cd5-478c-97e9-b091598fb6ec"));
        // Two assistant replies in each session (the third run was aborted before replying).
        for s in &sessions {
            assert_eq!(s.usage.tokens, 2 * 1290, "{}", s.key);
            assert!((s.usage.cost - 2.0 * 0.004542).abs() < 1e-9, "{}: {}", s.key, s.usage.cost);
        }
        std::fs::remove_dir_all(state).ok();
    }

    #[tokio::test]
    async fn new_rows_are_read_incrementally_including_zstd_ones() {
        let state = state_copy();
        let mut stores = SqliteStores::default();
        let key = "agent:main:subagent:e22a95c5-e67d-44fe-a957-d935ff0b7703";
        let session = "1ce88aed-eef9-46f8-84ee-af7794da4556";
        let before = stores.scan(&state).await.unwrap().unwrap().into_iter().find(|s| s.key == key).unwrap();

        // The gateway appends a compressed assistant reply and touches the session.
        let line = r#"{"type":"message","id":"z1","timestamp":"2026-12-01T19:10:50.000Z","message":{"role":"assistant","content":[{"type":"text","text":"Compressed reply"}],"model":"mock-1","usage":{"input":1000,"output":10,"totalTokens":1010,"cost":{"total":0.5}},"timestamp":1796152250000}}"#;
        let compressed =
            ruzstd::encoding::compress_to_vec(line.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest);
        let db = writer(&state).await;
        sqlx::query(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) \
             VALUES (?, 9, NULL, 1796152250000, ?, ?, ?)",
        )
        .bind(session)
        .bind(compressed)
        .bind(line.len() as i64)
        .bind(r#"{"version":1,"report":{"kind":"canonical"},"navigation":{},"reset":{},"model":{},"modelBytes":0,"modelWithoutCheckpointBytes":0,"withoutCustomDataBytes":0}"#)
        .execute(&db)
        .await
        .unwrap();
        sqlx::query("UPDATE session_nodes SET updated_at = updated_at + 1 WHERE session_key = ?")
            .bind(key)
            .execute(&db)
            .await
            .unwrap();

        let after = stores.scan(&state).await.unwrap().unwrap().into_iter().find(|s| s.key == key).unwrap();
        assert_eq!(after.usage.tokens, before.usage.tokens + 1010);
        assert!((after.usage.cost - before.usage.cost - 0.5).abs() < 1e-9);
        // Read again without a change: nothing is added twice.
        let again = stores.scan(&state).await.unwrap().unwrap().into_iter().find(|s| s.key == key).unwrap();
        assert_eq!(again.usage, after.usage);

        let transcript = stores.transcript(&state, key, 2).await.unwrap().unwrap();
        assert_eq!(transcript.len(), 2);
        assert_eq!(transcript[1].text, "Compressed reply");
        assert_eq!(transcript[1].cost, Some(0.5));
        assert_eq!(transcript[0].role, "user");
        assert_eq!(stores.transcript(&state, "agent:main:nope", 5).await.unwrap(), None);
        std::fs::remove_dir_all(state).ok();
    }

    #[tokio::test]
    async fn an_unreadable_store_is_an_error_not_an_empty_list() {
        let state = std::env::temp_dir().join(format!("mc-openclaw-bad-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(state.join("agents/main/agent")).unwrap();
        std::fs::write(state.join("agents/main/agent").join(STORE_FILE), b"not a database at all, sorry").unwrap();
        let err = SqliteStores::default().scan(&state).await.unwrap_err();
        assert!(err.contains(STORE_FILE), "{err}");
        std::fs::remove_dir_all(state).ok();
    }
}
