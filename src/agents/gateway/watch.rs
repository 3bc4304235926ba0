//! Wakes the agent poller when the session store or a transcript changes on disk, so status
//! and cost show within moments instead of at the next poll tick.

use std::path::Path;
use std::sync::Arc;

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// A file watcher over the state folder; dropping it stops watching.
pub struct StoreWatcher {
    _watcher: RecommendedWatcher,
}

/// Whether an event concerns a store (`sessions.json`, OpenClaw's SQLite file and its WAL) or
/// a transcript (`*.jsonl`).
fn relevant(event: &Event) -> bool {
    event.paths.iter().any(|path| {
        path.file_name().and_then(|n| n.to_str()).is_some_and(|name| {
            name == "sessions.json"
                || name.ends_with(".jsonl")
                || name.ends_with(".sqlite")
                || name.ends_with(".sqlite-wal")
        })
    })
}

impl StoreWatcher {
    /// Watches `state_dir` recursively, pinging `changed`. `None` (polling only) when it
    /// cannot: the folder does not exist yet, or the platform refuses a watch.
    pub fn start(state_dir: &Path, changed: Arc<Notify>) -> Option<Self> {
        let signal = Arc::clone(&changed);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            if event.is_ok_and(|e| relevant(&e)) {
                // One stored permit: a burst of writes wakes the poller once.
                signal.notify_one();
            }
        })
        .map_err(|err| tracing::warn!(error = %err, "cannot create a file watcher; polling only"))
        .ok()?;
        if let Err(err) = watcher.watch(state_dir, RecursiveMode::Recursive) {
            tracing::warn!(dir = %state_dir.display(), error = %err, "cannot watch the gateway's state folder; polling only");
            return None;
        }
        Some(StoreWatcher { _watcher: watcher })
    }
}
