//! The `notifications` table: what alert rules fired.

use sea_orm::entity::prelude::*;

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub rule_id: Option<String>,
    /// What occurred, unique per rule (`agent:<id>:failed:<time>`, `budget:<window start>`):
    /// an occurrence fires once.
    pub occurrence: String,
    /// `AlertKind`.
    pub kind: String,
    /// `Severity`.
    pub severity: String,
    pub title: String,
    pub body: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
