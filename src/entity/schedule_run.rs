//! The `schedule_runs` table: what each run of a schedule did.

use sea_orm::entity::prelude::*;

/// One run of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub schedule_id: String,
    /// The time it ran for (epoch ms): the cron time, or when `runScheduleNow` asked.
    pub scheduled_for: i64,
    pub started_at: i64,
    /// `RunStatus`: OK or FAILED.
    pub status: String,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
    /// Asked for with `runScheduleNow` (not a cron time).
    pub manual: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
