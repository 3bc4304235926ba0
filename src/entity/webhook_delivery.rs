//! The `webhook_deliveries` table: the outbox. A row is written in the transaction of the
//! change it reports, then delivered (and retried) by the deliverer.

use sea_orm::entity::prelude::*;

/// One delivery of one event to one webhook.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// The `X-MC-Delivery` id (UUID v7), the same on every attempt.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    /// For events found by a poller rather than a mutation: what makes them one occurrence.
    pub dedupe_key: Option<String>,
    /// The exact body sent (and signed) on every attempt.
    pub body: String,
    /// `DeliveryStatus`: PENDING, DELIVERED or FAILED.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    /// An instance attempting it holds it until then.
    pub lease_until: Option<i64>,
    pub response_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
