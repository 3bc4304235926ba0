//! GraphQL resolvers of alerts: everyone reads rules and notifications and hears them fire;
//! OPERATOR marks them read; ADMIN manages rules and webhooks.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, ResultExt, Subscription};
use futures_util::Stream;

use super::Alerts;
use super::notify;
use super::rules::{self, RuleSpec};
use super::types::{AlertRule, CURSOR_TAG, CreatedWebhook, Notification, Webhook};
use super::webhooks::{self, WebhookSpec};
use crate::auth::{Role, viewer, writer};
use crate::db::Writer;
use crate::error::AppError;
use crate::events::{Event, EventBus};
use crate::pagination;
use crate::subscriptions::broadcast_stream;

/// The counts of `notifications`, counted only when asked for.
pub struct NotificationCounts {
    unread_only: bool,
}

#[Object]
impl NotificationCounts {
    /// How many notifications the filter matches.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let db = ctx.data::<Writer>()?.db();
        Ok(notify::count(db, self.unread_only).await.extend()? as i64)
    }

    /// How many notifications are unread, whatever the filter (a bell's badge).
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let db = ctx.data::<Writer>()?.db();
        Ok(notify::count(db, true).await.extend()? as i64)
    }
}

/// Alert queries.
#[derive(Default)]
pub struct AlertQuery;

#[Object]
impl AlertQuery {
    /// Every alert rule, oldest first.
    async fn alert_rules(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AlertRule>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<Writer>()?.db();
        Ok(rules::list(db).await.extend()?.into_iter().map(AlertRule).collect())
    }

    /// Notifications, newest first.
    #[graphql(complexity = "crate::pagination::cost(first, child_complexity)")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        unread_only: Option<bool>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Notification, NotificationCounts>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<Writer>()?.db();
        let first = pagination::page_size(first).extend()?;
        let before = after.as_deref().map(|c| pagination::decode_seq(c, CURSOR_TAG)).transpose().extend()?;
        let unread_only = unread_only.unwrap_or(false);
        let (rows, has_next) = notify::list(db, unread_only, first, before).await.extend()?;
        let mut connection =
            Connection::with_additional_fields(after.is_some(), has_next, NotificationCounts { unread_only });
        connection.edges.extend(
            rows.into_iter().map(|row| Edge::new(pagination::seq_cursor(CURSOR_TAG, row.id), Notification(row))),
        );
        Ok(connection)
    }

    /// Every webhook, oldest first (ADMIN).
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        viewer(ctx).extend()?.require(Role::Admin).extend()?;
        let db = ctx.data::<Writer>()?.db();
        Ok(webhooks::list(db).await.extend()?.into_iter().map(Webhook).collect())
    }
}

/// An ADMIN caller, with what rule and webhook changes go through.
fn admin<'a>(ctx: &Context<'a>) -> async_graphql::Result<(crate::auth::Actor, &'a Writer, &'a Arc<Alerts>)> {
    let who = viewer(ctx).extend()?;
    who.require(Role::Admin).extend()?;
    Ok((who.actor(), ctx.data::<Writer>()?, ctx.data::<Arc<Alerts>>()?))
}

/// Alert mutations.
#[derive(Default)]
pub struct AlertMutation;

#[Object]
impl AlertMutation {
    async fn create_alert_rule(&self, ctx: &Context<'_>, input: RuleSpec) -> async_graphql::Result<AlertRule> {
        let (actor, writer, alerts) = admin(ctx)?;
        Ok(AlertRule(rules::create(writer, alerts, &actor, input).await.extend()?))
    }

    async fn update_alert_rule(&self, ctx: &Context<'_>, id: ID, input: RuleSpec) -> async_graphql::Result<AlertRule> {
        let (actor, writer, alerts) = admin(ctx)?;
        Ok(AlertRule(rules::update(writer, alerts, &actor, &id, input).await.extend()?))
    }

    async fn delete_alert_rule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (actor, writer, alerts) = admin(ctx)?;
        rules::delete(writer, alerts, &actor, &id).await.extend()?;
        Ok(id)
    }

    /// Marks notifications read (all unread ones when `ids` is not given); returns how many
    /// changed.
    async fn mark_notifications_read(&self, ctx: &Context<'_>, ids: Option<Vec<ID>>) -> async_graphql::Result<i32> {
        writer(ctx).extend()?;
        let ids = ids
            .map(|ids| {
                ids.iter()
                    .map(|id| {
                        id.parse::<i64>().map_err(|_| {
                            AppError::invalid("ids", format!("{:?} is not a notification id", id.as_str()))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .extend()?;
        if ids.as_ref().is_some_and(|ids| ids.len() > 1000) {
            return Err(AppError::invalid("ids", "at most 1000 at once; omit ids to mark all")).extend();
        }
        let changed = notify::mark_read(ctx.data::<Writer>()?, ids).await.extend()?;
        Ok(changed as i32)
    }

    /// Creates a webhook; its signing secret is in the answer, and nowhere else later.
    async fn create_webhook(&self, ctx: &Context<'_>, input: WebhookSpec) -> async_graphql::Result<CreatedWebhook> {
        let (actor, writer, alerts) = admin(ctx)?;
        let row = webhooks::create(writer, alerts, &actor, input).await.extend()?;
        Ok(CreatedWebhook { secret: row.secret.clone(), webhook: Webhook(row) })
    }

    async fn update_webhook(&self, ctx: &Context<'_>, id: ID, input: WebhookSpec) -> async_graphql::Result<Webhook> {
        let (actor, writer, alerts) = admin(ctx)?;
        Ok(Webhook(webhooks::update(writer, alerts, &actor, &id, input).await.extend()?))
    }

    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (actor, writer, alerts) = admin(ctx)?;
        webhooks::delete(writer, alerts, &actor, &id).await.extend()?;
        Ok(id)
    }
}

/// Alert subscriptions.
#[derive(Default)]
pub struct AlertSubscription;

#[Subscription]
impl AlertSubscription {
    /// Every notification as it fires. (They are stored: a subscriber that falls behind is
    /// ended with `SUBSCRIPTION_LAGGED`, and refetches `notifications`.)
    async fn notification(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Notification>> + use<>> {
        viewer(ctx).extend()?;
        let rx = ctx.data::<EventBus>()?.subscribe();
        Ok(broadcast_stream(rx, "notification", |event| match event {
            Event::Notification(row) => Some(Notification(row.as_ref().clone())),
            _ => None,
        }))
    }
}
