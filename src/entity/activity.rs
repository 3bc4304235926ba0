//! The `activities` table: the activity feed. The id is a sequence: feed order and the
//! subscription resume cursor both follow it.

use sea_orm::entity::prelude::*;

/// One activity row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "activities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `ActivityType` in SCREAMING_SNAKE_CASE.
    pub kind: String,
    pub actor: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// JSON value, or null.
    pub metadata: Option<String>,
    pub timestamp: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
