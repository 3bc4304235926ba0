//! The `api_keys` table: keys for agents and scripts. Only a hash of each key is kept.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The actor name of the key's changes.
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// The key's first characters, shown to tell keys apart (and used to find one).
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    #[sea_orm(unique)]
    pub key_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
