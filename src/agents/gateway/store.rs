//! Reading Clawdbot's session stores, `<state>/agents/<agent>/sessions/sessions.json`.
//!
//! Clawdbot writes each store atomically (write to a temporary file, then rename), so reading
//! it directly costs a few milliseconds, where `clawdbot sessions --json` costs seconds and
//! hundreds of megabytes. The store has no status field: see `status.rs` for how one is derived.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The fields of one store entry that Mission Control uses. Every field is optional and
/// omitted when unset; unknown fields (there are many, and new ones appear) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionEntry {
    pub session_id: Option<String>,
    /// Epoch milliseconds of the last change to the session.
    pub updated_at: Option<i64>,
    pub label: Option<String>,
    pub spawned_by: Option<String>,
    pub aborted_last_run: Option<bool>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub model: Option<String>,
    pub model_provider: Option<String>,
    /// Absolute transcript path as the gateway saw it; only its file name is used.
    pub session_file: Option<String>,
}

impl SessionEntry {
    /// `updatedAt` as a time, when present and representable.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at.and_then(DateTime::from_timestamp_millis)
    }
}

/// One session as any reader lists it (Clawdbot's files, OpenClaw's SQLite, the gateway).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedSession {
    pub key: String,
    pub entry: SessionEntry,
    /// Token use and cost summed from the transcript.
    pub usage: super::Usage,
    /// The store's own status word (OpenClaw only): running, done, failed, killed or timeout.
    pub status: Option<String>,
}

/// One session found in one agent's store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredSession {
    /// The session key, e.g. `agent:main:subagent:<uuid>`.
    pub key: String,
    /// The folder holding the agent's `sessions.json` and transcripts.
    pub sessions_dir: PathBuf,
    pub entry: SessionEntry,
}

impl StoredSession {
    /// Where the session's transcript lives, if the entry names one safely.
    ///
    /// `sessionFile` is absolute and may point at another machine's home (the store can be
    /// copied or the state folder mounted elsewhere), so only its file name is kept and joined
    /// to the folder the store was read from. Without it, the transcript is `<sessionId>.jsonl`.
    /// Either way the result stays inside `sessions_dir`.
    pub fn transcript_path(&self) -> Option<PathBuf> {
        let from_file = self
            .entry
            .session_file
            .as_deref()
            .and_then(|f| Path::new(f).file_name())
            .map(|name| self.sessions_dir.join(name));
        from_file.or_else(|| {
            let id = self.entry.session_id.as_deref()?;
            is_plain_name(id).then(|| self.sessions_dir.join(format!("{id}.jsonl")))
        })
    }
}

/// True for a non-empty name that cannot escape its folder when joined to it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Reads every agent's store under `state_dir`, sorted by session key.
///
/// A missing state folder, `agents` folder or per-agent `sessions.json` means "no sessions".
/// A store that exists but cannot be read or parsed (half-written by a non-atomic writer, or
/// corrupt) is an error, so that the caller keeps its last good snapshot instead of believing
/// every session vanished.
pub(crate) fn load_sessions(state_dir: &Path) -> Result<Vec<StoredSession>, String> {
    let agents_dir = state_dir.join("agents");
    let mut agent_dirs = match std::fs::read_dir(&agents_dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect::<Vec<_>>(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", agents_dir.display())),
    };
    agent_dirs.sort();

    let mut by_key: BTreeMap<String, StoredSession> = BTreeMap::new();
    for agent_dir in agent_dirs {
        let sessions_dir = agent_dir.join("sessions");
        let Some(entries) = read_store(&sessions_dir.join("sessions.json"))? else {
            continue;
        };
        for (key, entry) in entries {
            if by_key.contains_key(&key) {
                tracing::warn!(%key, dir = %sessions_dir.display(), "session key in two stores; keeping the first");
                continue;
            }
            let session = StoredSession { key: key.clone(), sessions_dir: sessions_dir.clone(), entry };
            by_key.insert(key, session);
        }
    }
    Ok(by_key.into_values().collect())
}

/// Parses one `sessions.json`; `Ok(None)` when it does not exist.
fn read_store(path: &Path) -> Result<Option<Vec<(String, SessionEntry)>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse_store(&text).map(Some).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// Parses the text of a `sessions.json`: an object keyed by session key.
///
/// The file as a whole must be a JSON object. A single entry whose known fields have an
/// unexpected type is kept with no fields rather than failing the whole store, so one odd
/// entry cannot hide every other session.
pub(crate) fn parse_store(text: &str) -> Result<Vec<(String, SessionEntry)>, serde_json::Error> {
    let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)?;
    Ok(raw
        .into_iter()
        .map(|(key, value)| {
            let entry = SessionEntry::deserialize(value).unwrap_or_else(|e| {
                tracing::warn!(%key, error = %e, "unreadable session entry; listing it without details");
                SessionEntry::default()
            });
            (key, entry)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TempDir, fixture};
    use super::*;

    #[test]
    fn fixture_store_parses_every_session() {
        let sessions = load_sessions(&fixture("clawdbot/store")).unwrap();
        let keys: Vec<_> = sessions.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent:main:main",
                "agent:main:subagent:9f0c2d7e-0000-4000-8000-000000000001",
                "agent:main:subagent:mock-1",
                "agent:main:subagent:mock-2",
                "agent:main:subagent:test-1",
                "agent:main:subagent:test-3",
            ]
        );
        let research = &sessions[1].entry;
        assert_eq!(research.label.as_deref(), Some("research-bot"));
        assert_eq!(research.spawned_by.as_deref(), Some("agent:main:main"));
        assert_eq!(research.aborted_last_run, Some(true));
        assert_eq!((research.input_tokens, research.output_tokens), (Some(500), Some(120)));
        assert_eq!(research.model, None);

        let mock1 = &sessions[2].entry;
        assert_eq!(mock1.model.as_deref(), Some("mock-1"));
        assert_eq!(mock1.model_provider.as_deref(), Some("mock"));
        assert_eq!(mock1.updated_at, Some(1_795_469_472_135));
        assert_eq!(mock1.updated_at().unwrap().to_rfc3339(), "2026-11-23T21:31:12.135+00:00");
        assert_eq!(
            sessions[2].transcript_path().unwrap(),
            fixture("clawdbot/store/agents/main/sessions/3207e4b5-9db2-4f0f-aa04-c966250a1400.jsonl")
        );
    }

    #[test]
    fn session_file_keeps_only_its_name() {
        let sessions = load_sessions(&fixture("clawdbot/store")).unwrap();
        let test1 = sessions.iter().find(|s| s.key == "agent:main:subagent:test-1").unwrap();
        // The store says /home/operator/.clawdbot/...; the fixture lives elsewhere.
        assert_eq!(
            test1.transcript_path().unwrap(),
            test1.sessions_dir.join("e6fbbb8d-7c4a-4c90-9c9c-a1140933fe6d.jsonl")
        );
    }

    #[test]
    fn unsafe_session_ids_give_no_path() {
        for id in ["", "..", "../../etc/passwd", "a/b", "a\\b"] {
            let s = StoredSession {
                key: "k".into(),
                sessions_dir: PathBuf::from("/x"),
                entry: SessionEntry { session_id: Some(id.into()), ..Default::default() },
            };
            assert_eq!(s.transcript_path(), None, "{id:?}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_odd_entries_kept() {
        let text = r#"{
            "a": {"sessionId": "s1", "brandNewField": {"x": [1, 2]}, "updatedAt": 5, "label": "L"},
            "b": {"updatedAt": "not a number"},
            "c": {}
        }"#;
        let parsed = parse_store(text).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].1.session_id.as_deref(), Some("s1"));
        assert_eq!(parsed[0].1.label.as_deref(), Some("L"));
        assert_eq!(parsed[1], ("b".to_string(), SessionEntry::default()));
    }

    #[test]
    fn missing_dirs_are_empty_but_corrupt_store_is_an_error() {
        let tmp = TempDir::new();
        assert_eq!(load_sessions(&tmp.path().join("nope")).unwrap(), vec![]);
        assert_eq!(load_sessions(tmp.path()).unwrap(), vec![]);

        let dir = tmp.path().join("agents/main/sessions");
        std::fs::create_dir_all(&dir).unwrap();
        // An agent folder without a store yet is fine.
        assert_eq!(load_sessions(tmp.path()).unwrap(), vec![]);

        // Half-written: the first part of a real store.
        let good = std::fs::read_to_string(fixture("clawdbot/store/agents/main/sessions/sessions.json")).unwrap();
        std::fs::write(dir.join("sessions.json"), &good[..good.len() / 2]).unwrap();
        let err = load_sessions(tmp.path()).unwrap_err();
        assert!(err.contains("cannot parse") && err.contains("sessions.json"), "{err}");

        std::fs::write(dir.join("sessions.json"), "").unwrap();
        assert!(load_sessions(tmp.path()).is_err());
        std::fs::write(dir.join("sessions.json"), "[1, 2]").unwrap();
        assert!(load_sessions(tmp.path()).is_err());
    }
}
