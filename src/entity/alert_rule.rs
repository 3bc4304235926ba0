//! The `alert_rules` table: what should be noticed, and how.

use sea_orm::entity::prelude::*;

/// One alert rule.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// `AlertKind`.
    pub kind: String,
    /// Only this agent (a session key), when set.
    pub agent_id: Option<String>,
    /// Only agents on this model, when set.
    pub model: Option<String>,
    /// `COST_BUDGET` only: the spend that fires it.
    pub threshold_usd: Option<f64>,
    /// `COST_BUDGET` only: `BudgetWindow`.
    pub window: Option<String>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_fired_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
