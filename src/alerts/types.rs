//! GraphQL types of alerts: rules, notifications, webhooks and their deliveries.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::rules::{AlertKind, BudgetWindow, Severity};
use super::webhooks::{self, DeliveryStatus, WebhookFormat};
use crate::entity::{alert_rule, notification, webhook, webhook_delivery};
use crate::pagination;
use crate::time::from_millis;

/// The cursor tag of notification pages.
pub const CURSOR_TAG: &str = "notification";

/// An alert rule.
pub struct AlertRule(pub alert_rule::Model);

#[Object]
impl AlertRule {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> AlertKind {
        AlertKind::parse(&self.0.kind).unwrap_or(AlertKind::AgentFailed)
    }
    #[graphql(name = "agentId")]
    async fn agent_id(&self) -> Option<ID> {
        self.0.agent_id.clone().map(ID)
    }
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn threshold_usd(&self) -> Option<f64> {
        self.0.threshold_usd
    }
    async fn window(&self) -> Option<BudgetWindow> {
        self.0.window.as_deref().and_then(BudgetWindow::parse)
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    async fn last_fired_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_fired_at.map(from_millis)
    }
}

/// What an alert rule fired.
pub struct Notification(pub notification::Model);

#[Object]
impl Notification {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> AlertKind {
        AlertKind::parse(&self.0.kind).unwrap_or(AlertKind::AgentFailed)
    }
    async fn severity(&self) -> Severity {
        Severity::parse(&self.0.severity).unwrap_or(Severity::Info)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn rule_id(&self) -> Option<ID> {
        self.0.rule_id.clone().map(ID)
    }
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    async fn target_id(&self) -> Option<&str> {
        self.0.target_id.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at.map(from_millis)
    }
    /// Where to resume paging (`notifications(after:)`).
    async fn cursor(&self) -> String {
        pagination::seq_cursor(CURSOR_TAG, self.0.id)
    }
}

/// A URL that receives signed events.
pub struct Webhook(pub webhook::Model);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn events(&self) -> Vec<String> {
        webhooks::events_of(&self.0)
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn format(&self) -> WebhookFormat {
        WebhookFormat::parse(&self.0.format).unwrap_or_default()
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why the server disabled it (its receiver answered `410 Gone`), when it did.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    /// Its deliveries, newest first (default 20, at most 100).
    #[graphql(complexity = "crate::pagination::cost(first, child_complexity)")]
    async fn deliveries(&self, ctx: &Context<'_>, first: Option<i32>) -> async_graphql::Result<Vec<WebhookDelivery>> {
        use async_graphql::ResultExt;
        let db = ctx.data::<crate::db::Writer>()?.db();
        let first = pagination::page_size(first).extend()?;
        Ok(webhooks::deliveries(db, &self.0.id, first).await.extend()?.into_iter().map(WebhookDelivery).collect())
    }
}

/// A new webhook and its signing secret, shown this once.
#[derive(SimpleObject)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: String,
}

/// One event sent (or being sent) to one webhook.
pub struct WebhookDelivery(pub webhook_delivery::Model);

#[Object]
impl WebhookDelivery {
    /// The `X-MC-Delivery` id, the same on every attempt.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn event(&self) -> &str {
        &self.0.event
    }
    async fn status(&self) -> DeliveryStatus {
        DeliveryStatus::parse(&self.0.status).unwrap_or(DeliveryStatus::Pending)
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The HTTP status of the last answer.
    async fn response_status(&self) -> Option<i32> {
        self.0.response_status
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at.map(from_millis)
    }
    /// When it is attempted next (PENDING only).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == DeliveryStatus::Pending.as_str()).then(|| from_millis(self.0.next_attempt_at))
    }
}
