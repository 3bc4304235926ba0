//! The initial schema: tasks, their tags and comments, the activity feed and agent metrics,
//! with an index for every filter and order the API offers.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Id,
    Title,
    Description,
    Status,
    Priority,
    AssignedAgent,
    CreatedAt,
    UpdatedAt,
    DueDate,
    DueSort,
    Tags,
    Metadata,
    CommentCount,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskTags {
    Table,
    TaskId,
    Tag,
}

#[derive(DeriveIden, Clone, Copy)]
enum Comments {
    Table,
    Id,
    TaskId,
    Author,
    Content,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Activities {
    Table,
    Id,
    Kind,
    Actor,
    Action,
    TargetType,
    TargetId,
    Metadata,
    Timestamp,
}

#[derive(DeriveIden, Clone, Copy)]
enum AgentMetrics {
    Table,
    Id,
    AgentId,
    SessionId,
    Tokens,
    Cost,
    RuntimeSeconds,
    TasksCompleted,
    Timestamp,
}

/// `CREATE INDEX name ON table (cols...)` (later migrations use it too).
pub(crate) fn index<T: IntoIden + Copy + 'static>(name: &str, table: T, cols: &[T]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table).if_not_exists();
    for &col in cols {
        stmt.col(col);
    }
    stmt.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .if_not_exists()
                    .col(string(Tasks::Id).primary_key())
                    .col(string(Tasks::Title))
                    .col(text_null(Tasks::Description))
                    .col(string(Tasks::Status))
                    .col(small_integer(Tasks::Priority))
                    .col(string_null(Tasks::AssignedAgent))
                    .col(big_integer(Tasks::CreatedAt))
                    .col(big_integer(Tasks::UpdatedAt))
                    .col(big_integer_null(Tasks::DueDate))
                    .col(big_integer(Tasks::DueSort))
                    .col(text(Tasks::Tags))
                    .col(text_null(Tasks::Metadata))
                    .col(integer(Tasks::CommentCount).default(0))
                    .take(),
            )
            .await?;
        // Keyset pagination sorts by (key, id); a status or agent filter leads the index.
        use Tasks as T;
        for (name, cols) in [
            ("idx_tasks_created", vec![T::CreatedAt, T::Id]),
            ("idx_tasks_updated", vec![T::UpdatedAt, T::Id]),
            ("idx_tasks_due", vec![T::DueSort, T::Id]),
            ("idx_tasks_priority", vec![T::Priority, T::Id]),
            ("idx_tasks_status_created", vec![T::Status, T::CreatedAt, T::Id]),
            ("idx_tasks_status_updated", vec![T::Status, T::UpdatedAt, T::Id]),
            ("idx_tasks_status_due", vec![T::Status, T::DueSort, T::Id]),
            ("idx_tasks_status_priority", vec![T::Status, T::Priority, T::Id]),
            ("idx_tasks_priority_created", vec![T::Priority, T::CreatedAt, T::Id]),
            ("idx_tasks_agent_created", vec![T::AssignedAgent, T::CreatedAt, T::Id]),
        ] {
            manager.create_index(index(name, T::Table, &cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(TaskTags::Table)
                    .if_not_exists()
                    .col(string(TaskTags::TaskId))
                    .col(string(TaskTags::Tag))
                    .primary_key(Index::create().col(TaskTags::TaskId).col(TaskTags::Tag))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskTags::Table, TaskTags::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager.create_index(index("idx_task_tags_tag", TaskTags::Table, &[TaskTags::Tag, TaskTags::TaskId])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Comments::Table)
                    .if_not_exists()
                    .col(string(Comments::Id).primary_key())
                    .col(string(Comments::TaskId))
                    .col(string(Comments::Author))
                    .col(text(Comments::Content))
                    .col(big_integer(Comments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Comments::Table, Comments::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_comments_task",
                Comments::Table,
                &[Comments::TaskId, Comments::CreatedAt, Comments::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Activities::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Activities::Id))
                    .col(string(Activities::Kind))
                    .col(string(Activities::Actor))
                    .col(string(Activities::Action))
                    .col(string_null(Activities::TargetType))
                    .col(string_null(Activities::TargetId))
                    .col(text_null(Activities::Metadata))
                    .col(big_integer(Activities::Timestamp))
                    .take(),
            )
            .await?;
        use Activities as A;
        for (name, cols) in [
            ("idx_activities_kind", vec![A::Kind, A::Id]),
            ("idx_activities_actor", vec![A::Actor, A::Id]),
            ("idx_activities_target", vec![A::TargetId, A::Id]),
            ("idx_activities_timestamp", vec![A::Timestamp]),
        ] {
            manager.create_index(index(name, A::Table, &cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AgentMetrics::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AgentMetrics::Id))
                    .col(string(AgentMetrics::AgentId))
                    .col(string_null(AgentMetrics::SessionId))
                    .col(big_integer(AgentMetrics::Tokens))
                    .col(double(AgentMetrics::Cost))
                    .col(big_integer(AgentMetrics::RuntimeSeconds))
                    .col(big_integer(AgentMetrics::TasksCompleted))
                    .col(big_integer(AgentMetrics::Timestamp))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_agent_metrics_agent",
                AgentMetrics::Table,
                &[AgentMetrics::AgentId, AgentMetrics::Id],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AgentMetrics::Table.into_iden(),
            Activities::Table.into_iden(),
            Comments::Table.into_iden(),
            TaskTags::Table.into_iden(),
            Tasks::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().take()).await?;
        }
        Ok(())
    }
}
