//! API keys (stored as hashes) and the append-only audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Role,
    Prefix,
    KeyHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    Actor,
    ActorKind,
    Action,
    TargetType,
    TargetId,
    Before,
    After,
    ClientAddress,
    Timestamp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string(ApiKeys::Id).primary_key())
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Role))
                    .col(string(ApiKeys::Prefix))
                    .col(string(ApiKeys::KeyHash).unique_key())
                    .col(string(ApiKeys::CreatedBy))
                    .col(big_integer(ApiKeys::CreatedAt))
                    .col(big_integer_null(ApiKeys::ExpiresAt))
                    .col(big_integer_null(ApiKeys::RevokedAt))
                    .col(big_integer_null(ApiKeys::LastUsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::ActorKind))
                    .col(string(AuditLog::Action))
                    .col(string_null(AuditLog::TargetType))
                    .col(string_null(AuditLog::TargetId))
                    .col(text_null(AuditLog::Before))
                    .col(text_null(AuditLog::After))
                    .col(string_null(AuditLog::ClientAddress))
                    .col(big_integer(AuditLog::Timestamp))
                    .to_owned(),
            )
            .await?;
        // Newest first, filtered by one of these: each index ends with the id it pages by.
        for (name, cols) in [
            ("idx_audit_actor", vec![AuditLog::Actor, AuditLog::Id]),
            ("idx_audit_action", vec![AuditLog::Action, AuditLog::Id]),
            ("idx_audit_target", vec![AuditLog::TargetId, AuditLog::Id]),
            ("idx_audit_timestamp", vec![AuditLog::Timestamp]),
        ] {
            manager.create_index(crate::m20261124_000001_init::index(name, AuditLog::Table, &cols)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await
    }
}
