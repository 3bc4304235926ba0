//! The `webhooks` table: URLs that receive signed events.

use sea_orm::entity::prelude::*;

/// One webhook.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub url: String,
    /// The event names it receives, a JSON array (`*` = all).
    pub events: String,
    pub description: Option<String>,
    /// `WebhookFormat`: `JSON` (signed envelope) or `SLACK` (`{"text": ...}`).
    pub format: String,
    /// The HMAC-SHA256 signing secret (shown once, at creation).
    pub secret: String,
    pub enabled: bool,
    /// Why the server disabled it (`410 Gone`), when it did.
    pub disabled_reason: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
