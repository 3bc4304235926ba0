//! The `task_search` table: each task's title and description folded to lower case, the
//! text `tasks(filter: {search})` is matched against (indexed: see the migration).

use sea_orm::entity::prelude::*;

/// One task's search text.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "task_search")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: String,
    pub text: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
