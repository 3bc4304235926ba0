//! The `audit_log` table: who changed what, append-only. The id is a sequence (newest first).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub actor: String,
    /// `ActorKind`: `USER`, `API_KEY` or `SYSTEM`.
    pub actor_kind: String,
    /// `<domain>.<verb>`, e.g. `task.update`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// JSON text of what the change replaced, or null.
    pub before: Option<String>,
    /// JSON text of what the change left, or null.
    pub after: Option<String>,
    pub client_address: Option<String>,
    pub timestamp: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
