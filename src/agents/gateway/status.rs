//! Deriving an agent's status, which Clawdbot's store does not record.
//!
//! The signals, strongest first:
//! 1. a run this server started (spawn, send) and has not yet seen finish through `wait`:
//!    RUNNING;
//! 2. the last thing this server did or saw for the session, a kill (KILLED) or a run outcome
//!    from `wait` (DONE or FAILED), unless the store shows activity after it;
//! 3. `abortedLastRun` in the store: FAILED;
//! 4. `updatedAt` within the running window of now (someone else, e.g. a chat channel, is
//!    driving the session): RUNNING;
//! 5. otherwise IDLE.
//!
//! "Activity after" needs a margin: finishing or aborting a run itself bumps `updatedAt` a
//! moment after the gateway reports it, and that bump must not count as new activity.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::AgentState;
use super::store::SessionEntry;

/// How long after an event this server recorded a store update is still attributed to it.
const SETTLE: TimeDelta = TimeDelta::seconds(5);

/// What this server knows about sessions beyond the store.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    sessions: HashMap<String, Tracked>,
    /// Session key of every run in flight, so `wait(run_id)` can find its session.
    run_owner: HashMap<String, String>,
    /// Runs known only from the gateway's events (another client started them): nobody waits
    /// on them, so they are forgotten when events may have been missed.
    learned: HashSet<String>,
}

#[derive(Debug, Default)]
struct Tracked {
    in_flight: HashSet<String>,
    /// The latest kill or recorded run outcome, and when it was recorded.
    last_event: Option<(AgentState, DateTime<Utc>)>,
}

impl Tracker {
    /// A run was accepted for `key`: the session is running until `wait` sees it finish.
    /// A new run also ends a KILLED state.
    pub fn run_started(&mut self, key: &str, run_id: &str) {
        let tracked = self.sessions.entry(key.to_string()).or_default();
        tracked.in_flight.insert(run_id.to_string());
        if matches!(tracked.last_event, Some((AgentState::Killed, _))) {
            tracked.last_event = None;
        }
        self.run_owner.insert(run_id.to_string(), key.to_string());
    }

    /// The gateway said `run_id` started. A run this server did not start is tracked as
    /// learned from events.
    pub fn run_seen(&mut self, key: &str, run_id: &str) {
        if !self.run_owner.contains_key(run_id) {
            self.run_started(key, run_id);
            self.learned.insert(run_id.to_string());
        }
    }

    /// Events may have been missed: runs known only from them may have ended unseen. They are
    /// forgotten, so the store's status (or its timestamps) decides again.
    pub fn forget_learned(&mut self) {
        for run in std::mem::take(&mut self.learned) {
            self.run_abandoned(&run);
        }
    }

    /// `wait` saw `run_id` finish. Runs this server did not start, and runs of a session
    /// killed since, change nothing (the kill is the newer fact).
    pub fn run_finished(&mut self, run_id: &str, ok: bool, now: DateTime<Utc>) {
        self.learned.remove(run_id);
        let Some(key) = self.run_owner.remove(run_id) else {
            return;
        };
        if let Some(tracked) = self.sessions.get_mut(&key)
            && tracked.in_flight.remove(run_id)
        {
            let state = if ok { AgentState::Done } else { AgentState::Failed };
            tracked.last_event = Some((state, now));
        }
    }

    /// Nobody can follow `run_id` any more (the gateway kept failing): forget it, so the
    /// session's status falls back to what the store says instead of RUNNING forever.
    pub fn run_abandoned(&mut self, run_id: &str) {
        self.learned.remove(run_id);
        if let Some(key) = self.run_owner.remove(run_id)
            && let Some(tracked) = self.sessions.get_mut(&key)
        {
            tracked.in_flight.remove(run_id);
        }
    }

    /// This server aborted the session's runs.
    pub fn killed(&mut self, key: &str, now: DateTime<Utc>) {
        let tracked = self.sessions.entry(key.to_string()).or_default();
        for run in tracked.in_flight.drain() {
            self.run_owner.remove(&run);
        }
        tracked.last_event = Some((AgentState::Killed, now));
    }

    /// Drops what is known about sessions that are gone from the store and have nothing in
    /// flight (a just-spawned session may not be in the store yet).
    pub fn retain_sessions(&mut self, listed: &HashSet<&str>) {
        self.sessions.retain(|key, t| !t.in_flight.is_empty() || listed.contains(key.as_str()));
    }

    /// The derived status of `key` at `now`; see the module docs for the rules.
    #[cfg(test)]
    pub fn status(&self, key: &str, entry: &SessionEntry, now: DateTime<Utc>, running_window: Duration) -> AgentState {
        self.status_with(key, entry, now, running_window, None)
    }

    /// Like [`Tracker::status`], where the store records a status of its own (OpenClaw): what
    /// this server saw happen comes first, then the store's word, then the derivation.
    pub fn status_with(
        &self,
        key: &str,
        entry: &SessionEntry,
        now: DateTime<Utc>,
        running_window: Duration,
        stored: Option<AgentState>,
    ) -> AgentState {
        let updated = entry.updated_at();
        if let Some(tracked) = self.sessions.get(key) {
            if !tracked.in_flight.is_empty() {
                return AgentState::Running;
            }
            if let Some((state, at)) = tracked.last_event {
                let activity_since = updated.is_some_and(|u| u > at + SETTLE);
                if !activity_since {
                    return state;
                }
            }
        }
        if let Some(state) = stored {
            return state;
        }
        if entry.aborted_last_run == Some(true) {
            return AgentState::Failed;
        }
        let window = TimeDelta::from_std(running_window).unwrap_or(TimeDelta::MAX);
        match updated {
            // A timestamp ahead of our clock (skew) is as recent as it gets.
            Some(u) if now.signed_duration_since(u) <= window => AgentState::Running,
            _ => AgentState::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_469_000 + secs, 0).unwrap()
    }

    fn entry(updated_secs: i64, aborted: Option<bool>) -> SessionEntry {
        SessionEntry {
            updated_at: Some(at(updated_secs).timestamp_millis()),
            aborted_last_run: aborted,
            ..Default::default()
        }
    }

    #[test]
    fn recency_without_tracking() {
        let t = Tracker::default();
        assert_eq!(t.status("k", &entry(0, None), at(10), WINDOW), AgentState::Running);
        assert_eq!(t.status("k", &entry(0, None), at(60), WINDOW), AgentState::Running);
        assert_eq!(t.status("k", &entry(0, None), at(61), WINDOW), AgentState::Idle);
        assert_eq!(t.status("k", &entry(100, None), at(0), WINDOW), AgentState::Running);
        assert_eq!(t.status("k", &SessionEntry::default(), at(0), WINDOW), AgentState::Idle);
        assert_eq!(t.status("k", &entry(0, Some(false)), at(600), WINDOW), AgentState::Idle);
    }

    #[test]
    fn aborted_last_run_is_failed() {
        let t = Tracker::default();
        assert_eq!(t.status("k", &entry(0, Some(true)), at(600), WINDOW), AgentState::Failed);
        // Even when recent: the last run is known to have been aborted.
        assert_eq!(t.status("k", &entry(0, Some(true)), at(1), WINDOW), AgentState::Failed);
    }

    #[test]
    fn in_flight_then_outcome() {
        let mut t = Tracker::default();
        t.run_started("k", "r1");
        // In flight beats an old updatedAt and abortedLastRun.
        assert_eq!(t.status("k", &entry(0, Some(true)), at(900), WINDOW), AgentState::Running);
        t.run_finished("r1", true, at(1000));
        // Done at once, although the run's own store update is recent.
        assert_eq!(t.status("k", &entry(1002, None), at(1003), WINDOW), AgentState::Done);
        assert_eq!(t.status("k", &entry(1002, None), at(5000), WINDOW), AgentState::Done);
        // Someone else used the session later: recency counts again.
        assert_eq!(t.status("k", &entry(1100, None), at(1110), WINDOW), AgentState::Running);
        assert_eq!(t.status("k", &entry(1100, None), at(1200), WINDOW), AgentState::Idle);

        t.run_started("k", "r2");
        t.run_finished("r2", false, at(2000));
        assert_eq!(t.status("k", &entry(2000, None), at(2001), WINDOW), AgentState::Failed);
    }

    #[test]
    fn two_runs_in_flight_need_two_waits() {
        let mut t = Tracker::default();
        t.run_started("k", "r1");
        t.run_started("k", "r2");
        t.run_finished("r1", true, at(10));
        assert_eq!(t.status("k", &entry(0, None), at(500), WINDOW), AgentState::Running);
        t.run_finished("r2", true, at(20));
        assert_eq!(t.status("k", &entry(0, None), at(500), WINDOW), AgentState::Done);
        // Unknown runs and repeated waits change nothing.
        t.run_finished("r2", false, at(30));
        t.run_finished("other", false, at(30));
        assert_eq!(t.status("k", &entry(0, None), at(500), WINDOW), AgentState::Done);
    }

    #[test]
    fn kill_wins_until_new_activity() {
        let mut t = Tracker::default();
        t.run_started("k", "r1");
        t.killed("k", at(100));
        // The abort itself sets abortedLastRun and bumps updatedAt.
        assert_eq!(t.status("k", &entry(101, Some(true)), at(102), WINDOW), AgentState::Killed);
        // A wait on the aborted run does not turn KILLED into DONE or FAILED.
        t.run_finished("r1", false, at(103));
        assert_eq!(t.status("k", &entry(101, Some(true)), at(900), WINDOW), AgentState::Killed);
        // A new run through this server ends KILLED.
        t.run_started("k", "r2");
        assert_eq!(t.status("k", &entry(101, Some(true)), at(900), WINDOW), AgentState::Running);
        t.run_finished("r2", true, at(1000));
        assert_eq!(t.status("k", &entry(1000, Some(false)), at(1001), WINDOW), AgentState::Done);
    }

    #[test]
    fn kill_of_an_untracked_session() {
        let mut t = Tracker::default();
        t.killed("k", at(100));
        assert_eq!(t.status("k", &entry(50, None), at(101), WINDOW), AgentState::Killed);
        assert_eq!(t.status("other", &entry(50, None), at(101), WINDOW), AgentState::Running);
    }

    #[test]
    fn runs_learned_from_events_are_forgotten_after_a_gap() {
        let mut t = Tracker::default();
        let e = entry(0, None);
        let now = at(10_000);
        t.run_started("ours", "r1");
        t.run_seen("ours", "r1");
        t.run_seen("theirs", "r2");
        assert_eq!(t.status("theirs", &e, now, WINDOW), AgentState::Running);
        t.forget_learned();
        assert_eq!(t.status("theirs", &e, now, WINDOW), AgentState::Idle, "the store decides again");
        assert_eq!(t.status("ours", &e, now, WINDOW), AgentState::Running, "a run we follow stays");
    }

    #[test]
    fn retain_keeps_in_flight_sessions() {
        let mut t = Tracker::default();
        t.run_started("new", "r1");
        t.killed("gone", at(1));
        t.killed("kept", at(1));
        t.retain_sessions(&HashSet::from(["kept"]));
        let e = entry(0, None);
        assert_eq!(t.status("new", &e, at(900), WINDOW), AgentState::Running);
        assert_eq!(t.status("gone", &e, at(900), WINDOW), AgentState::Idle);
        assert_eq!(t.status("kept", &e, at(900), WINDOW), AgentState::Killed);
    }
}
