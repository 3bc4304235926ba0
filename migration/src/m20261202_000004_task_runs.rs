//! Work between the board and the agents: a task's claim (who holds it, until when) and its
//! runs (each dispatch to an agent, each claim), with what each run cost.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Status,
    Priority,
    CreatedAt,
    ClaimedBy,
    ClaimHolder,
    LeaseSeconds,
    LeaseExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskRuns {
    Table,
    Id,
    TaskId,
    Kind,
    AgentId,
    RunId,
    Status,
    StartedBy,
    StartedAt,
    EndedAt,
    BaseTokens,
    BaseCost,
    Tokens,
    Cost,
    Result,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite alters a table one change at a time.
        for column in [
            string_null(Tasks::ClaimedBy),
            string_null(Tasks::ClaimHolder),
            integer_null(Tasks::LeaseSeconds),
            big_integer_null(Tasks::LeaseExpiresAt),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Tasks::Table).add_column(&mut column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(TaskRuns::Table)
                    .col(string(TaskRuns::Id).primary_key())
                    .col(string(TaskRuns::TaskId))
                    .col(string(TaskRuns::Kind))
                    .col(string(TaskRuns::AgentId))
                    .col(string_null(TaskRuns::RunId))
                    .col(string(TaskRuns::Status))
                    .col(string(TaskRuns::StartedBy))
                    .col(big_integer(TaskRuns::StartedAt))
                    .col(big_integer_null(TaskRuns::EndedAt))
                    .col(big_integer(TaskRuns::BaseTokens))
                    .col(double(TaskRuns::BaseCost))
                    .col(big_integer(TaskRuns::Tokens))
                    .col(double(TaskRuns::Cost))
                    .col(text_null(TaskRuns::Result))
                    .to_owned(),
            )
            .await?;
        use crate::m20261124_000001_init::index;
        // The claim order (priority, then age) among unclaimed TODO tasks, and the lease sweep.
        manager
            .create_index(index(
                "idx_tasks_claimable",
                Tasks::Table,
                &[Tasks::Status, Tasks::ClaimHolder, Tasks::Priority, Tasks::CreatedAt],
            ))
            .await?;
        manager.create_index(index("idx_tasks_lease", Tasks::Table, &[Tasks::LeaseExpiresAt])).await?;
        for (name, cols) in [
            ("idx_task_runs_task", vec![TaskRuns::TaskId, TaskRuns::StartedAt]),
            ("idx_task_runs_run", vec![TaskRuns::RunId]),
            ("idx_task_runs_status", vec![TaskRuns::Status]),
            ("idx_task_runs_agent", vec![TaskRuns::AgentId, TaskRuns::Status]),
        ] {
            manager.create_index(index(name, TaskRuns::Table, &cols)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(TaskRuns::Table).to_owned()).await?;
        for name in ["idx_tasks_claimable", "idx_tasks_lease"] {
            manager.drop_index(Index::drop().name(name).table(Tasks::Table).to_owned()).await?;
        }
        for column in [Tasks::ClaimedBy, Tasks::ClaimHolder, Tasks::LeaseSeconds, Tasks::LeaseExpiresAt] {
            manager.alter_table(Table::alter().table(Tasks::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
