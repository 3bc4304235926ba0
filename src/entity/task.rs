//! The `tasks` table: the kanban board.

use sea_orm::entity::prelude::*;

/// One task row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    /// UUID v7 (time-ordered), as text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// `TaskStatus` in SCREAMING_SNAKE_CASE.
    pub status: String,
    /// `TaskPriority` as its rank (0 = LOW .. 3 = URGENT), so ordering by priority is numeric.
    pub priority: i16,
    pub assigned_agent: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub due_date: Option<i64>,
    /// `due_date`, or `i64::MAX` when there is none: a non-null key for keyset pagination.
    pub due_sort: i64,
    /// JSON array of strings, in the order the client gave.
    pub tags: String,
    /// JSON value, or null.
    pub metadata: Option<String>,
    /// Denormalised number of comments, kept in the same transaction as comment inserts.
    pub comment_count: i32,
    /// The name of whoever holds the task's claim (`claimTask`), while one is held.
    pub claimed_by: Option<String>,
    /// The holder's identity (`USER:<name>`, `API_KEY:<name>`, or `dispatch:<uuid>` while a
    /// dispatch is being sent): only it may renew, complete or release the claim.
    pub claim_holder: Option<String>,
    /// The lease length the claim was taken with; each heartbeat renews it by as much.
    pub lease_seconds: Option<i32>,
    /// When the claim lapses unless renewed (epoch ms).
    pub lease_expires_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::comment::Entity")]
    Comment,
}

impl Related<super::comment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Comment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
