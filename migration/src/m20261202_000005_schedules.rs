//! Schedules (a cron expression in a zone, and what to do) and their runs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Schedules {
    Table,
    Id,
    Name,
    Cron,
    Timezone,
    Action,
    Input,
    Enabled,
    NextRunAt,
    LastRunAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduleRuns {
    Table,
    Id,
    ScheduleId,
    ScheduledFor,
    StartedAt,
    Status,
    AgentId,
    TaskId,
    Error,
    Manual,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .col(string(Schedules::Id).primary_key())
                    .col(string(Schedules::Name))
                    .col(string(Schedules::Cron))
                    .col(string(Schedules::Timezone))
                    .col(string(Schedules::Action))
                    .col(text(Schedules::Input))
                    .col(boolean(Schedules::Enabled))
                    .col(big_integer_null(Schedules::NextRunAt))
                    .col(big_integer_null(Schedules::LastRunAt))
                    .col(string(Schedules::CreatedBy))
                    .col(big_integer(Schedules::CreatedAt))
                    .col(big_integer(Schedules::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScheduleRuns::Table)
                    .col(string(ScheduleRuns::Id).primary_key())
                    .col(string(ScheduleRuns::ScheduleId))
                    .col(big_integer(ScheduleRuns::ScheduledFor))
                    .col(big_integer(ScheduleRuns::StartedAt))
                    .col(string(ScheduleRuns::Status))
                    .col(string_null(ScheduleRuns::AgentId))
                    .col(string_null(ScheduleRuns::TaskId))
                    .col(text_null(ScheduleRuns::Error))
                    .col(boolean(ScheduleRuns::Manual))
                    .to_owned(),
            )
            .await?;
        use crate::m20261124_000001_init::index;
        // The scheduler's question every tick: which enabled schedules are due.
        manager
            .create_index(index("idx_schedules_due", Schedules::Table, &[Schedules::Enabled, Schedules::NextRunAt]))
            .await?;
        manager
            .create_index(index(
                "idx_schedule_runs_schedule",
                ScheduleRuns::Table,
                &[ScheduleRuns::ScheduleId, ScheduleRuns::StartedAt],
            ))
            .await?;
        // A second guard behind the claim: one run per scheduled time (manual runs apart).
        let mut once = index(
            "idx_schedule_runs_once",
            ScheduleRuns::Table,
            &[ScheduleRuns::ScheduleId, ScheduleRuns::ScheduledFor, ScheduleRuns::Manual],
        );
        manager.create_index(once.unique().to_owned()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ScheduleRuns::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Schedules::Table).to_owned()).await
    }
}
