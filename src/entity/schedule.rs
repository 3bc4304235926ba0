//! The `schedules` table: a cron expression in a time zone, and what to do when it fires.

use sea_orm::entity::prelude::*;

/// One schedule.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schedules")]
pub struct Model {
    /// UUID v7, as text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA zone name.
    pub timezone: String,
    /// `ScheduleAction`: SPAWN_AGENT or CREATE_TASK.
    pub action: String,
    /// The action's input as JSON (`{label, task}`, or a `CreateTaskInput`).
    pub input: String,
    pub enabled: bool,
    /// The next time it fires (epoch ms); a run claims it by moving it on.
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
