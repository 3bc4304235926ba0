//! Nothing goes unnoticed: alert rules and the notifications they fire, and webhooks that
//! receive signed events.
//!
//! - What a mutation causes (a task assigned or overdue, recorded spend over a budget, every
//!   webhook event of a change) is handled by [`Alerts`] as the writer's
//!   [`BeforeCommit`](crate::db::BeforeCommit) hook ([`outbox`]): in the same transaction as
//!   the change, so a change and its notifications and deliveries commit or vanish together.
//! - What the agent poller finds (an agent FAILED or KILLED, transcript spend) is handled by
//!   the leader's [`watch::Watcher`], idempotently by a key per occurrence.
//! - Queued deliveries are sent by every instance's [`deliver::Deliverer`], each row under a
//!   short lease, retried with growing delays.

pub mod address;
pub mod budget;
pub mod deliver;
pub mod notify;
pub mod outbox;
pub mod resolvers;
pub mod rules;
pub mod types;
pub mod watch;
pub mod webhooks;

use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::agents::AgentHub;
use crate::entity::{alert_rule, webhook};
use crate::error::AppResult;

/// How often the enabled rules and webhooks are re-read (changes made on another instance).
pub const REFRESH: Duration = Duration::from_secs(2);

/// What an operator configures.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Webhooks may point at loopback and private addresses.
    pub allow_private: bool,
    pub max_webhooks: u64,
    pub max_rules: u64,
    /// Delay before a delivery's first retry (each later one waits four times longer).
    pub retry_first: Duration,
    /// Attempts before a delivery is FAILED.
    pub attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            max_webhooks: 50,
            max_rules: 200,
            retry_first: Duration::from_secs(2),
            attempts: 8,
        }
    }
}

/// Whether an activity `action` is a change to a rule or a webhook.
fn changes_alerting(action: &str) -> bool {
    action.starts_with("alert_rule_") || action.starts_with("webhook_")
}

/// The enabled rules and webhooks, as last read.
#[derive(Debug, Default)]
pub struct Active {
    pub rules: Vec<alert_rule::Model>,
    /// Each webhook with its event names.
    pub webhooks: Vec<(webhook::Model, Vec<String>)>,
}

impl Active {
    /// The enabled rules of `kind`.
    pub fn rules(&self, kind: rules::AlertKind) -> impl Iterator<Item = &alert_rule::Model> {
        self.rules.iter().filter(move |r| r.kind == kind.as_str())
    }

    fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.webhooks.is_empty()
    }
}

/// The alerting state every instance shares: settings, and the enabled rules and webhooks
/// (kept in memory so that a write with nothing to notify costs one read lock).
///
/// It holds no writer (the writer holds it, as its hook) and the hub only weakly.
pub struct Alerts {
    pub settings: Settings,
    /// The enabled rules and webhooks, with the number of the reload that read them.
    active: RwLock<(u64, Arc<Active>)>,
    /// Reloads started so far: a reload that started earlier (and so read older rows) never
    /// replaces what a later one installed.
    reloads: std::sync::atomic::AtomicU64,
    hub: OnceLock<Weak<AgentHub>>,
}

impl Alerts {
    /// Alerts with `settings` and nothing enabled yet (see [`Alerts::reload`]).
    pub fn new(settings: Settings) -> Arc<Alerts> {
        Arc::new(Alerts {
            settings,
            active: RwLock::default(),
            reloads: std::sync::atomic::AtomicU64::new(0),
            hub: OnceLock::new(),
        })
    }

    /// Lets budgets by model see which agents run on a model.
    pub fn attach_hub(&self, hub: &Arc<AgentHub>) {
        let _ = self.hub.set(Arc::downgrade(hub));
    }

    pub(crate) fn hub(&self) -> Option<Arc<AgentHub>> {
        self.hub.get().and_then(Weak::upgrade)
    }

    /// The enabled rules and webhooks.
    pub fn active(&self) -> Arc<Active> {
        Arc::clone(&self.active.read().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// Reads the enabled rules and webhooks again.
    pub async fn try_reload(&self, db: &impl ConnectionTrait) -> AppResult<()> {
        let started = self.reloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let rules = alert_rule::Entity::find()
            .filter(alert_rule::Column::Enabled.eq(true))
            .order_by_asc(alert_rule::Column::CreatedAt)
            .all(db)
            .await?;
        let webhooks = webhook::Entity::find()
            .filter(webhook::Column::Enabled.eq(true))
            .order_by_asc(webhook::Column::CreatedAt)
            .all(db)
            .await?
            .into_iter()
            .map(|row| {
                let events = webhooks::events_of(&row);
                (row, events)
            })
            .collect();
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        if started >= active.0 {
            *active = (started, Arc::new(Active { rules, webhooks }));
        }
        drop(active);
        Ok(())
    }

    /// Like [`Alerts::try_reload`]; a failure keeps the last ones and is logged.
    pub async fn reload(&self, db: &impl ConnectionTrait) {
        if let Err(e) = self.try_reload(db).await {
            tracing::warn!(error = %e, "cannot re-read alert rules and webhooks; keeping the last ones");
        }
    }

    /// Re-reads the enabled rules and webhooks when one changes anywhere in the fleet (their
    /// changes are activities, which every instance hears of) and every [`REFRESH`] besides,
    /// until `shutdown`.
    pub async fn refresh_until_stopped(
        self: Arc<Self>,
        db: sea_orm::DatabaseConnection,
        bus: crate::events::EventBus,
        mut shutdown: crate::shutdown::Signal,
    ) {
        let mut events = bus.subscribe();
        let mut every = tokio::time::interval(REFRESH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.reload(&db).await,
                event = events.recv() => match event {
                    Ok(crate::events::Event::Activity(row)) if changes_alerting(&row.action) => self.reload(&db).await,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    _ => {}
                },
                _ = shutdown.wait() => break,
            }
        }
    }
}
