//! The deliverer: sends queued webhook deliveries, signed, and retries them with growing
//! delays until they are delivered or FAILED.
//!
//! Every instance runs one. A delivery is taken with a conditional update that leases it for
//! [`LEASE`]: while one instance attempts it, no other does. An instance that dies mid-attempt
//! leaves the lease to lapse, and the delivery is attempted again with the same
//! `X-MC-Delivery` id (receivers deduplicate by it). Nothing here runs inside a mutation: a
//! slow receiver never slows one.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use sha2::Sha256;

use super::Alerts;
use super::address::{self, GuardedResolver};
use super::webhooks::DeliveryStatus;
use crate::db::Writer;
use crate::entity::{webhook, webhook_delivery};
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventBus};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::time::now_millis;

/// How long an instance holds a delivery it attempts (more than [`TIMEOUT`]).
pub const LEASE: Duration = Duration::from_secs(30);
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often due deliveries are looked for when nothing wakes the deliverer.
const TICK: Duration = Duration::from_millis(500);
/// Deliveries attempted at once.
const BATCH: u64 = 16;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Delivered(u16),
    /// `410 Gone`: the receiver asks to be forgotten; the webhook is disabled.
    Gone,
    /// Anything else: tried again later, unless it was the last attempt.
    Retry {
        status: Option<u16>,
        error: String,
    },
    /// The webhook is gone or disabled: not tried again.
    Dropped(String),
}

/// The `X-MC-Signature` of `body` sent at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={:x}", mac.finalize().into_bytes())
}

/// The wait before the attempt after `attempts` failed ones: `first`, then four times
/// longer each time, at most an hour, give or take a fifth.
pub fn retry_delay(first: Duration, attempts: u32) -> Duration {
    let factor = 4u32.saturating_pow(attempts.saturating_sub(1));
    let base = first.saturating_mul(factor).min(MAX_DELAY);
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// Sends what is queued (see the module docs).
pub struct Deliverer {
    writer: Writer,
    alerts: Arc<Alerts>,
    bus: EventBus,
    client: reqwest::Client,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Deliverer {
    /// A deliverer whose client resolves names through the address policy, follows no
    /// redirect to another host, and waits [`TIMEOUT`] for an answer.
    pub fn new(
        writer: Writer,
        alerts: Arc<Alerts>,
        bus: EventBus,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> AppResult<Deliverer> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt.previous().first().map(|first| first.host_str()) == Some(attempt.url().host_str());
            if same_host && attempt.previous().len() < 3 { attempt.follow() } else { attempt.stop() }
        });
        let client = reqwest::Client::builder()
            // A proxy would resolve the webhook's host itself, past the address policy.
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver { allow_private: alerts.settings.allow_private }))
            .user_agent(concat!("mission-control-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AppError::Internal(format!("building the webhook client: {e}")))?;
        Ok(Deliverer { writer, alerts, bus, client, metrics })
    }

    /// Delivers until `shutdown`; queued deliveries stay queued in the database.
    pub async fn run_until_stopped(self, mut shutdown: crate::shutdown::Signal) {
        let mut events = self.bus.subscribe();
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                event = events.recv() => match event {
                    // A commit that may have queued deliveries (published after it committed):
                    // only when a webhook is enabled. The tick finds any other due delivery.
                    Ok(Event::Task(_) | Event::Activity(_) | Event::Notification(_))
                        if !self.alerts.active().webhooks.is_empty() => {}
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = shutdown.wait() => break,
            }
            // One look at the outbox answers every event already waiting.
            while !matches!(
                events.try_recv(),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty
                    | tokio::sync::broadcast::error::TryRecvError::Closed)
            ) {}
            // Shutdown does not wait for a slow receiver: an attempt cut short keeps its lease,
            // which lapses, and is made again (with the same delivery id).
            tokio::select! {
                done = self.run_due() => if let Err(e) = done {
                    tracing::warn!(error = %e, "cannot deliver webhooks; retrying shortly");
                },
                _ = shutdown.wait() => break,
            }
        }
    }

    /// Attempts every delivery due now; returns how many were attempted.
    pub async fn run_due(&self) -> AppResult<usize> {
        let mut attempted = 0;
        loop {
            let claimed = self.claim_due().await?;
            let n = claimed.len();
            futures_util::future::join_all(claimed.into_iter().map(|row| self.attempt(row))).await;
            attempted += n;
            if (n as u64) < BATCH {
                return Ok(attempted);
            }
        }
    }

    /// Leases up to [`BATCH`] due deliveries to this instance.
    async fn claim_due(&self) -> AppResult<Vec<webhook_delivery::Model>> {
        let now = now_millis();
        let due = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(is_due(now))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .limit(BATCH)
            .into_tuple::<String>()
            .all(self.writer.db())
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .run(move |uow| {
                Box::pin(async move {
                    let now = now_millis();
                    let mut claimed = Vec::with_capacity(due.len());
                    for id in due {
                        let taken = webhook_delivery::Entity::update_many()
                            .col_expr(webhook_delivery::Column::LeaseUntil, Expr::value(now + LEASE.as_millis() as i64))
                            .filter(webhook_delivery::Column::Id.eq(&id))
                            .filter(is_due(now))
                            .exec(uow.txn())
                            .await?;
                        if taken.rows_affected == 1
                            && let Some(row) = webhook_delivery::Entity::find_by_id(&id).one(uow.txn()).await?
                        {
                            claimed.push(row);
                        }
                    }
                    Ok(claimed)
                })
            })
            .await
    }

    /// Attempts `row` once and records how it went.
    async fn attempt(&self, row: webhook_delivery::Model) {
        let hook = webhook::Entity::find_by_id(&row.webhook_id).one(self.writer.db()).await;
        let outcome = match hook {
            Err(e) => Outcome::Retry { status: None, error: format!("reading the webhook: {e}") },
            Ok(None) => Outcome::Dropped("the webhook was deleted".into()),
            Ok(Some(hook)) if !hook.enabled => Outcome::Dropped("the webhook is disabled".into()),
            Ok(Some(hook)) => self.send(&hook, &row).await,
        };
        let label = match &outcome {
            Outcome::Delivered(_) => "delivered",
            Outcome::Retry { .. } if row.attempts + 1 < self.alerts.settings.attempts as i32 => "retry",
            _ => "failed",
        };
        if let Some(metrics) = &self.metrics {
            metrics.webhook_deliveries.get_or_create(&crate::metrics::OutcomeLabels { outcome: label.into() }).inc();
        }
        let disabled = outcome == Outcome::Gone;
        if let Err(e) = self.record(row, outcome).await {
            tracing::warn!(error = %e, "cannot record a webhook delivery; its lease lapses and it is tried again");
        }
        if disabled {
            self.alerts.reload(self.writer.db()).await;
        }
    }

    async fn send(&self, hook: &webhook::Model, row: &webhook_delivery::Model) -> Outcome {
        let url = match reqwest::Url::parse(&hook.url) {
            Ok(url) => url,
            Err(e) => return Outcome::Retry { status: None, error: format!("bad URL: {e}") },
        };
        if let Err(why) = address::check_literal_host(&url, self.alerts.settings.allow_private) {
            return Outcome::Retry { status: None, error: format!("refused address {why}") };
        }
        let timestamp = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-MC-Event", &row.event)
            .header("X-MC-Delivery", &row.id)
            .header("X-MC-Timestamp", timestamp.to_string())
            .header("X-MC-Signature", signature(&hook.secret, timestamp, &row.body))
            .body(row.body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => Outcome::Delivered(answer.status().as_u16()),
            Ok(answer) if answer.status() == reqwest::StatusCode::GONE => Outcome::Gone,
            Ok(answer) => {
                let status = answer.status();
                Outcome::Retry { status: Some(status.as_u16()), error: format!("the receiver answered {status}") }
            }
            Err(e) => Outcome::Retry { status: None, error: error_chain(&e) },
        }
    }

    /// Stores the outcome of an attempt of `row`.
    async fn record(&self, row: webhook_delivery::Model, outcome: Outcome) -> AppResult<()> {
        let settings = self.alerts.settings.clone();
        self.writer
            .run(move |uow| {
                Box::pin(async move {
                    let now = now_millis();
                    let attempts = row.attempts + 1;
                    let mut update: webhook_delivery::ActiveModel = row.clone().into();
                    update.attempts = Set(attempts);
                    update.lease_until = Set(None);
                    match &outcome {
                        Outcome::Delivered(status) => {
                            update.status = Set(DeliveryStatus::Delivered.as_str().into());
                            update.response_status = Set(Some(i32::from(*status)));
                            update.last_error = Set(None);
                            update.delivered_at = Set(Some(now));
                        }
                        Outcome::Gone => {
                            update.status = Set(DeliveryStatus::Failed.as_str().into());
                            update.response_status = Set(Some(410));
                            update.last_error = Set(Some("410 Gone: the webhook was disabled".into()));
                            disable(uow, &row.webhook_id).await?;
                        }
                        Outcome::Dropped(why) => {
                            update.status = Set(DeliveryStatus::Failed.as_str().into());
                            update.last_error = Set(Some(why.clone()));
                        }
                        Outcome::Retry { status, error } => {
                            update.response_status = Set(status.map(i32::from));
                            update.last_error = Set(Some(error.chars().take(500).collect()));
                            if attempts >= settings.attempts as i32 {
                                update.status = Set(DeliveryStatus::Failed.as_str().into());
                            } else {
                                let wait = retry_delay(settings.retry_first, attempts as u32);
                                update.next_attempt_at = Set(now + wait.as_millis() as i64);
                            }
                        }
                    }
                    // Only a delivery still pending is written (a deleted webhook took it along).
                    // Only while this attempt still holds the row: a lease that lapsed mid-attempt
                    // belongs to whoever took the row since (a deleted webhook took it along).
                    let held = match row.lease_until {
                        Some(lease) => webhook_delivery::Column::LeaseUntil.eq(lease),
                        None => webhook_delivery::Column::LeaseUntil.is_null(),
                    };
                    let written = webhook_delivery::Entity::update_many()
                        .set(update)
                        .filter(webhook_delivery::Column::Id.eq(&row.id))
                        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                        .filter(held)
                        .exec(uow.txn())
                        .await?;
                    if written.rows_affected == 0 {
                        tracing::info!(delivery = %row.id, "a delivery's lease lapsed during its attempt; another instance has it");
                    }
                    Ok(())
                })
            })
            .await
    }
}

/// Due and not held by anyone: pending, its time come, its lease (if any) lapsed.
fn is_due(now: i64) -> Condition {
    Condition::all()
        .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .add(webhook_delivery::Column::NextAttemptAt.lte(now))
        .add(
            Condition::any()
                .add(webhook_delivery::Column::LeaseUntil.is_null())
                .add(webhook_delivery::Column::LeaseUntil.lt(now)),
        )
}

/// Disables webhook `id` after its receiver answered `410 Gone`.
async fn disable(uow: &mut crate::db::UnitOfWork, id: &str) -> AppResult<()> {
    webhook::Entity::update_many()
        .col_expr(webhook::Column::Enabled, Expr::value(false))
        .col_expr(webhook::Column::DisabledReason, Expr::value("the receiver answered 410 Gone"))
        .col_expr(webhook::Column::UpdatedAt, Expr::value(now_millis()))
        .filter(webhook::Column::Id.eq(id))
        .exec(uow.txn())
        .await?;
    let activity = NewActivity::new(ActivityKind::System, "system", "webhook_disabled")
        .target("webhook", id)
        .metadata(serde_json::json!({ "reason": "410 Gone" }));
    log_activity(uow, activity);
    Ok(())
}

/// An error with its causes, as one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature("whsec_test", 1_700_000_000, "{\"a\":1}"),
            "sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn retries_wait_longer_each_time_and_at_most_an_hour() {
        let first = Duration::from_secs(2);
        let one = retry_delay(first, 1);
        assert!(one >= Duration::from_millis(1600) && one <= Duration::from_millis(2400), "{one:?}");
        let three = retry_delay(first, 3);
        assert!(three >= Duration::from_millis(25_600) && three <= Duration::from_millis(38_400), "{three:?}");
        assert!(retry_delay(first, 19) <= MAX_DELAY.mul_f64(1.2));
    }
}
