//! The `usage_samples` table: spend as it was seen, by agent and model, with its time.

use sea_orm::entity::prelude::*;

/// Tokens and cost an agent spent, seen at `at`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_samples")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub agent_id: String,
    pub model: Option<String>,
    /// `TRANSCRIPT` (growth of the transcript's totals) or `METRICS` (`recordAgentMetrics`).
    pub source: String,
    pub at: i64,
    /// The store's input and output token counts (recorded metrics have none).
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// All tokens, as the transcript counts them (cache reads and writes included).
    pub tokens: i64,
    pub cost: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
