//! The `usage_totals` table: each agent's transcript totals as last sampled, so that only
//! growth becomes a sample, across restarts and leader changes.

use sea_orm::entity::prelude::*;

/// An agent's sampled totals.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_totals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tokens: i64,
    pub cost: f64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
