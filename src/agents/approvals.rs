//! Exec approvals: what the gateway asks a human before an agent runs a command.
//!
//! The registry keeps the latest state of each approval seen (requested on the gateway,
//! resolved here or elsewhere, expired), newest last, bounded. Every instance of a fleet keeps
//! its own, fed by the bus: the leader publishes what its gateway connection pushes, and the
//! instance where a user decides publishes the decision.

use std::collections::VecDeque;
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use crate::snapshot::{Approval, ApprovalState};

/// Approvals kept (older ones are forgotten first).
const KEPT: usize = 1000;

#[derive(Default)]
pub struct Approvals {
    items: RwLock<VecDeque<Approval>>,
}

impl Approvals {
    /// Merges `update` into what is known and returns the merged approval.
    ///
    /// A decision is final: a late "requested" for a decided approval changes nothing, and a
    /// decision keeps the first known decider (a user of this server, rather than the gateway
    /// connection that carried it).
    pub fn apply(&self, update: &Approval) -> Approval {
        let Ok(mut items) = self.items.write() else { return update.clone() };
        if let Some(known) = items.iter_mut().find(|a| a.id == update.id) {
            if known.status == ApprovalState::Pending {
                // A resolution event carries no deadline of its own: the request's times stay.
                let decided_by = update.decided_by.clone().or(known.decided_by.take());
                *known = Approval {
                    decided_by,
                    created_at: known.created_at,
                    expires_at: known.expires_at,
                    ..update.clone()
                };
            } else if update.status != ApprovalState::Pending && known.decided_by.is_none() {
                known.decided_by.clone_from(&update.decided_by);
            }
            return known.clone();
        }
        if items.len() == KEPT {
            items.pop_front();
        }
        items.push_back(update.clone());
        update.clone()
    }

    pub fn get(&self, id: &str) -> Option<Approval> {
        self.items.read().ok()?.iter().find(|a| a.id == id).cloned()
    }

    /// Newest first, optionally only those with `status`.
    pub fn list(&self, status: Option<ApprovalState>) -> Vec<Approval> {
        let Ok(items) = self.items.read() else { return Vec::new() };
        items.iter().rev().filter(|a| status.is_none_or(|s| a.status == s)).cloned().collect()
    }

    /// Pending approvals past their deadline as of `now`, marked EXPIRED (returned so they can
    /// be published).
    pub fn expire(&self, now: DateTime<Utc>) -> Vec<Approval> {
        let Ok(mut items) = self.items.write() else { return Vec::new() };
        items
            .iter_mut()
            .filter(|a| a.status == ApprovalState::Pending && a.expires_at <= now)
            .map(|a| {
                a.status = ApprovalState::Expired;
                a.clone()
            })
            .collect()
    }

    /// When the next pending approval expires.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        let items = self.items.read().ok()?;
        items.iter().filter(|a| a.status == ApprovalState::Pending).map(|a| a.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Decision;

    fn asked(id: &str, expires_in: i64) -> Approval {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Approval {
            id: id.into(),
            command: "rm -rf ./build".into(),
            cwd: None,
            agent_id: None,
            session_key: None,
            status: ApprovalState::Pending,
            decision: None,
            decided_by: None,
            created_at: now,
            expires_at: now + chrono::TimeDelta::seconds(expires_in),
        }
    }

    #[test]
    fn decisions_are_final_and_keep_the_user_who_decided() {
        let approvals = Approvals::default();
        approvals.apply(&asked("a", 10));
        let by_user = Approval {
            status: ApprovalState::Denied,
            decision: Some(Decision::Deny),
            decided_by: Some("alice".into()),
            ..asked("a", 10)
        };
        assert_eq!(approvals.apply(&by_user).decided_by.as_deref(), Some("alice"));
        // The gateway's echo of the same decision, then a stale "requested", change nothing.
        let echo = Approval { decided_by: Some("gateway-conn".into()), ..by_user.clone() };
        assert_eq!(approvals.apply(&echo), by_user);
        assert_eq!(approvals.apply(&asked("a", 10)), by_user);
        // The echo first, then the user: the user is recorded only if nobody was.
        approvals.apply(&asked("b", 10));
        let echo_without_decider = Approval { id: "b".into(), decided_by: None, ..by_user.clone() };
        approvals.apply(&echo_without_decider);
        let user = Approval { id: "b".into(), ..by_user.clone() };
        assert_eq!(approvals.apply(&user).decided_by.as_deref(), Some("alice"));
        assert_eq!(approvals.list(None).iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
    }

    #[test]
    fn pending_approvals_expire_at_their_deadline() {
        let approvals = Approvals::default();
        let soon = asked("soon", 5);
        approvals.apply(&soon);
        approvals.apply(&asked("later", 60));
        assert_eq!(approvals.next_expiry(), Some(soon.expires_at));
        assert!(approvals.expire(soon.created_at).is_empty());
        let expired = approvals.expire(soon.expires_at);
        assert_eq!(expired.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["soon"]);
        assert_eq!(approvals.get("soon").unwrap().status, ApprovalState::Expired);
        assert_eq!(approvals.list(Some(ApprovalState::Pending)).len(), 1);
    }
}
