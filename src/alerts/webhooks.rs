//! Webhooks: create / change / delete, and queueing a delivery (the outbox row written in the
//! transaction of the change it reports).

use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};

use super::Alerts;
use super::address;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::{UnitOfWork, Writer};
use crate::entity::stored_enum;
use crate::entity::{webhook, webhook_delivery};
use crate::error::{AppError, AppResult};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::time::{from_millis, now_millis};
use crate::validate;

/// Every event a webhook can receive.
pub const EVENTS: [&str; 6] =
    ["task.created", "task.updated", "task.deleted", "comment.created", "agent.status_changed", "alert.fired"];

/// What a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, async_graphql::Enum)]
pub enum WebhookFormat {
    /// The signed envelope `{"id", "event", "timestamp", "data"}`.
    #[default]
    Json,
    /// A Slack-compatible incoming-webhook body, `{"text": ...}`, for `alert.fired` only.
    Slack,
}
stored_enum!(WebhookFormat { Json => "JSON", Slack => "SLACK" });

/// How a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}
stored_enum!(DeliveryStatus { Pending => "PENDING", Delivered => "DELIVERED", Failed => "FAILED" });

/// A webhook as given to `createWebhook` / `updateWebhook`.
#[derive(Debug, Clone, async_graphql::InputObject)]
#[graphql(name = "WebhookInput")]
pub struct WebhookSpec {
    pub url: String,
    /// Event names (`task.created`, ..., `alert.fired`), or `*` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default JSON; SLACK posts `{"text": ...}` for `alert.fired` only.
    pub format: Option<WebhookFormat>,
}

/// The stored event names of `row`.
pub fn events_of(row: &webhook::Model) -> Vec<String> {
    serde_json::from_str(&row.events).unwrap_or_default()
}

/// Whether `row` takes `event`.
pub fn wants(row: &webhook::Model, events: &[String], event: &str) -> bool {
    let format = WebhookFormat::parse(&row.format).unwrap_or_default();
    (format == WebhookFormat::Json || event == "alert.fired") && events.iter().any(|e| e == "*" || e == event)
}

/// The checked event names: known ones, each once, in the order given.
fn check_events(events: &[String]) -> AppResult<Vec<String>> {
    if events.is_empty() {
        return Err(AppError::invalid("events", "name at least one event (or \"*\")"));
    }
    let mut checked: Vec<String> = Vec::new();
    for event in events {
        let event = event.trim();
        if event != "*" && !EVENTS.contains(&event) {
            return Err(AppError::invalid(
                "events",
                format!("unknown event {event:?}; known: {}, or *", EVENTS.join(", ")),
            ));
        }
        if !checked.iter().any(|e| e == event) {
            checked.push(event.to_owned());
        }
    }
    Ok(checked)
}

/// A new signing secret.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("whsec_{hex}")
}

struct Checked {
    url: String,
    events: String,
    description: Option<String>,
    format: WebhookFormat,
}

async fn check(spec: &WebhookSpec, allow_private: bool) -> AppResult<Checked> {
    let events = check_events(&spec.events)?;
    let description = spec.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    if let Some(d) = description {
        validate::max_len("description", d, 500)?;
    }
    // Last: it may ask DNS.
    let url = address::check_url("url", &spec.url, allow_private).await?;
    Ok(Checked {
        url: url.to_string(),
        events: serde_json::to_string(&events).map_err(|e| AppError::Internal(e.to_string()))?,
        description: description.map(str::to_owned),
        format: spec.format.unwrap_or_default(),
    })
}

fn audited(row: &webhook::Model) -> serde_json::Value {
    serde_json::json!({
        "url": row.url,
        "events": events_of(row),
        "description": row.description,
        "format": row.format,
        "enabled": row.enabled,
    })
}

/// Every webhook, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<webhook::Model>> {
    Ok(webhook::Entity::find().order_by_asc(webhook::Column::CreatedAt).all(db).await?)
}

async fn existing(db: &impl ConnectionTrait, id: &str) -> AppResult<webhook::Model> {
    webhook::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::NotFound(format!("webhook {id}")))
}

/// Creates a webhook; returns it with its secret (the only time the secret is shown).
pub async fn create(writer: &Writer, alerts: &Alerts, actor: &Actor, spec: WebhookSpec) -> AppResult<webhook::Model> {
    let checked = check(&spec, alerts.settings.allow_private).await?;
    let (actor, max) = (actor.clone(), alerts.settings.max_webhooks);
    let row = writer
        .run(move |uow| {
            Box::pin(async move {
                let kept = webhook::Entity::find().count(uow.txn()).await?;
                validate::room_for_one_more(kept, max, "webhooks")?;
                let now = now_millis();
                let row = webhook::ActiveModel {
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    url: Set(checked.url),
                    events: Set(checked.events),
                    description: Set(checked.description),
                    format: Set(checked.format.as_str().to_owned()),
                    secret: Set(new_secret()),
                    enabled: Set(spec.enabled.unwrap_or(true)),
                    disabled_reason: Set(None),
                    created_by: Set(actor.name.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(uow.txn())
                .await?;
                log_change(uow, &actor, "webhook_created", &row);
                let change = Change::new("webhook.create").target("webhook", &row.id).after(audited(&row));
                audit::record(uow, &actor, change);
                Ok(row)
            })
        })
        .await?;
    alerts.reload(writer.db()).await;
    Ok(row)
}

/// Replaces webhook `id` (its secret stays; enabling it again clears why it was disabled).
pub async fn update(
    writer: &Writer,
    alerts: &Alerts,
    actor: &Actor,
    id: &str,
    spec: WebhookSpec,
) -> AppResult<webhook::Model> {
    let checked = check(&spec, alerts.settings.allow_private).await?;
    let (actor, id) = (actor.clone(), id.to_owned());
    let row = writer
        .run(move |uow| {
            Box::pin(async move {
                let current = existing(uow.txn(), &id).await?;
                let enabled = spec.enabled.unwrap_or(true);
                let mut row: webhook::ActiveModel = current.clone().into();
                row.url = Set(checked.url);
                row.events = Set(checked.events);
                row.description = Set(checked.description);
                row.format = Set(checked.format.as_str().to_owned());
                row.enabled = Set(enabled);
                if enabled {
                    row.disabled_reason = Set(None);
                }
                row.updated_at = Set(now_millis());
                let row = row.update(uow.txn()).await?;
                log_change(uow, &actor, "webhook_updated", &row);
                let change =
                    Change::new("webhook.update").target("webhook", &id).diff(audited(&current), audited(&row));
                audit::record(uow, &actor, change);
                Ok(row)
            })
        })
        .await?;
    alerts.reload(writer.db()).await;
    Ok(row)
}

/// Deletes webhook `id` and its deliveries (queued ones are not sent).
pub async fn delete(writer: &Writer, alerts: &Alerts, actor: &Actor, id: &str) -> AppResult<()> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let current = existing(uow.txn(), &id).await?;
                webhook_delivery::Entity::delete_many()
                    .filter(webhook_delivery::Column::WebhookId.eq(&id))
                    .exec(uow.txn())
                    .await?;
                webhook::Entity::delete_by_id(&id).exec(uow.txn()).await?;
                log_change(uow, &actor, "webhook_deleted", &current);
                let change = Change::new("webhook.delete").target("webhook", &id).before(audited(&current));
                audit::record(uow, &actor, change);
                Ok(())
            })
        })
        .await?;
    alerts.reload(writer.db()).await;
    Ok(())
}

fn log_change(uow: &mut UnitOfWork, actor: &Actor, action: &str, row: &webhook::Model) {
    // The feed is for everyone; a URL may carry a token. Its host only (the audit log, for
    // admins, has the whole URL).
    let host = reqwest::Url::parse(&row.url).ok().and_then(|u| u.host_str().map(str::to_owned));
    let meta = serde_json::json!({ "host": host, "events": events_of(row), "enabled": row.enabled });
    let activity =
        NewActivity::new(ActivityKind::System, &actor.name, action).target("webhook", &row.id).metadata(meta);
    log_activity(uow, activity);
}

/// The newest `first` deliveries of webhook `id`.
pub async fn deliveries(db: &impl ConnectionTrait, id: &str, first: u64) -> AppResult<Vec<webhook_delivery::Model>> {
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WebhookId.eq(id))
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}

/// An event to queue for every webhook that takes it.
pub struct Outgoing<'a> {
    pub event: &'a str,
    pub data: serde_json::Value,
    /// For events found by a poller: what makes them one occurrence (queued once per webhook).
    pub dedupe_key: Option<String>,
}

/// The body sent for `event`: the signed envelope, or Slack's `{"text": ...}`.
fn body(format: WebhookFormat, id: &str, event: &str, data: &serde_json::Value, now: i64) -> String {
    let value = match format {
        WebhookFormat::Json => serde_json::json!({
            "id": id,
            "event": event,
            "timestamp": from_millis(now),
            "data": data,
        }),
        WebhookFormat::Slack => {
            let title = data.get("title").and_then(|t| t.as_str()).unwrap_or(event);
            let body = data.get("body").and_then(|t| t.as_str()).unwrap_or("");
            let severity = data.get("severity").and_then(|t| t.as_str()).unwrap_or("INFO");
            serde_json::json!({ "text": format!("[{severity}] {title}\n{body}") })
        }
    };
    value.to_string()
}

/// Queues `outgoing` for every one of `targets` (enabled webhooks with their event names)
/// that takes it, in `uow`.
pub async fn enqueue(
    uow: &UnitOfWork,
    targets: &[(webhook::Model, Vec<String>)],
    outgoing: &Outgoing<'_>,
) -> AppResult<()> {
    let now = now_millis();
    let rows: Vec<webhook_delivery::ActiveModel> = targets
        .iter()
        .filter(|(hook, events)| wants(hook, events, outgoing.event))
        .map(|(hook, _)| {
            let id = uuid::Uuid::now_v7().to_string();
            let format = WebhookFormat::parse(&hook.format).unwrap_or_default();
            webhook_delivery::ActiveModel {
                body: Set(body(format, &id, outgoing.event, &outgoing.data, now)),
                id: Set(id),
                webhook_id: Set(hook.id.clone()),
                event: Set(outgoing.event.to_owned()),
                dedupe_key: Set(outgoing.dedupe_key.clone()),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                lease_until: Set(None),
                response_status: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                delivered_at: Set(None),
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let insert = webhook_delivery::Entity::insert_many(rows);
    if outgoing.dedupe_key.is_some() {
        let conflict = OnConflict::columns([webhook_delivery::Column::WebhookId, webhook_delivery::Column::DedupeKey])
            .do_nothing()
            .to_owned();
        insert.on_conflict(conflict).exec_without_returning(uow.txn()).await?;
    } else {
        insert.exec_without_returning(uow.txn()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_known_ones_or_the_wildcard() {
        assert_eq!(
            check_events(&["task.created".into(), "*".into(), "task.created".into()]).unwrap(),
            ["task.created", "*"]
        );
        assert!(check_events(&[]).unwrap_err().to_string().contains("events"));
        let unknown = check_events(&["task.exploded".into()]).unwrap_err().to_string();
        assert!(unknown.contains("events") && unknown.contains("task.exploded"), "{unknown}");
    }

    #[test]
    fn a_slack_webhook_takes_only_fired_alerts_as_text() {
        let hook = webhook::Model {
            id: "w".into(),
            url: "https://hooks.example/x".into(),
            events: "[\"*\"]".into(),
            description: None,
            format: "SLACK".into(),
            secret: new_secret(),
            enabled: true,
            disabled_reason: None,
            created_by: "admin".into(),
            created_at: 0,
            updated_at: 0,
        };
        let events = events_of(&hook);
        assert!(wants(&hook, &events, "alert.fired"));
        assert!(!wants(&hook, &events, "task.created"));
        let data = serde_json::json!({ "title": "Agent a failed", "body": "details", "severity": "CRITICAL" });
        let sent: serde_json::Value =
            serde_json::from_str(&body(WebhookFormat::Slack, "d", "alert.fired", &data, 0)).unwrap();
        assert_eq!(sent, serde_json::json!({ "text": "[CRITICAL] Agent a failed\ndetails" }));
        assert!(hook.secret.starts_with("whsec_") && hook.secret.len() == 70);
    }
}
