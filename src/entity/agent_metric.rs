//! The `agent_metrics` table: metrics agents (or operators) record for an agent.

use sea_orm::entity::prelude::*;

/// One recorded metrics sample.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_metrics")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub agent_id: String,
    pub session_id: Option<String>,
    pub tokens: i64,
    pub cost: f64,
    pub runtime_seconds: i64,
    pub tasks_completed: i64,
    pub timestamp: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
