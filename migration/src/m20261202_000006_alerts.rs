//! Alert rules, the notifications they fire, webhooks and their delivery queue (an outbox
//! written in the same transaction as the change), and the usage samples that budgets and
//! `usage` add up.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AlertRules {
    Table,
    Id,
    Name,
    Kind,
    AgentId,
    Model,
    ThresholdUsd,
    Window,
    Enabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    LastFiredAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    Id,
    RuleId,
    Occurrence,
    Kind,
    Severity,
    Title,
    Body,
    TargetType,
    TargetId,
    CreatedAt,
    ReadAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Webhooks {
    Table,
    Id,
    Url,
    Events,
    Description,
    Format,
    Secret,
    Enabled,
    DisabledReason,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    Event,
    DedupeKey,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    ResponseStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum UsageSamples {
    Table,
    Id,
    AgentId,
    Model,
    Source,
    At,
    InputTokens,
    OutputTokens,
    Tokens,
    Cost,
}

#[derive(DeriveIden, Clone, Copy)]
enum AgentMetrics {
    Table,
    Timestamp,
}

#[derive(DeriveIden, Clone, Copy)]
enum UsageTotals {
    Table,
    AgentId,
    InputTokens,
    OutputTokens,
    Tokens,
    Cost,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use crate::m20261124_000001_init::index;
        manager
            .create_table(
                Table::create()
                    .table(AlertRules::Table)
                    .col(string(AlertRules::Id).primary_key())
                    .col(string(AlertRules::Name))
                    .col(string(AlertRules::Kind))
                    .col(string_null(AlertRules::AgentId))
                    .col(string_null(AlertRules::Model))
                    .col(double_null(AlertRules::ThresholdUsd))
                    .col(string_null(AlertRules::Window))
                    .col(boolean(AlertRules::Enabled))
                    .col(string(AlertRules::CreatedBy))
                    .col(big_integer(AlertRules::CreatedAt))
                    .col(big_integer(AlertRules::UpdatedAt))
                    .col(big_integer_null(AlertRules::LastFiredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(big_integer(Notifications::Id).primary_key().auto_increment())
                    .col(string_null(Notifications::RuleId))
                    .col(string(Notifications::Occurrence))
                    .col(string(Notifications::Kind))
                    .col(string(Notifications::Severity))
                    .col(string(Notifications::Title))
                    .col(text(Notifications::Body))
                    .col(string_null(Notifications::TargetType))
                    .col(string_null(Notifications::TargetId))
                    .col(big_integer(Notifications::CreatedAt))
                    .col(big_integer_null(Notifications::ReadAt))
                    .to_owned(),
            )
            .await?;
        // Each occurrence of a rule fires once, whichever instance sees it first.
        let mut once =
            index("idx_notifications_once", Notifications::Table, &[Notifications::RuleId, Notifications::Occurrence]);
        manager.create_index(once.unique().to_owned()).await?;
        manager.create_index(index("idx_notifications_unread", Notifications::Table, &[Notifications::ReadAt])).await?;
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(string(Webhooks::Id).primary_key())
                    .col(string(Webhooks::Url))
                    .col(text(Webhooks::Events))
                    .col(text_null(Webhooks::Description))
                    .col(string(Webhooks::Format))
                    .col(string(Webhooks::Secret))
                    .col(boolean(Webhooks::Enabled))
                    .col(string_null(Webhooks::DisabledReason))
                    .col(string(Webhooks::CreatedBy))
                    .col(big_integer(Webhooks::CreatedAt))
                    .col(big_integer(Webhooks::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string(WebhookDeliveries::Id).primary_key())
                    .col(string(WebhookDeliveries::WebhookId))
                    .col(string(WebhookDeliveries::Event))
                    .col(string_null(WebhookDeliveries::DedupeKey))
                    .col(text(WebhookDeliveries::Body))
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(big_integer(WebhookDeliveries::NextAttemptAt))
                    .col(big_integer_null(WebhookDeliveries::LeaseUntil))
                    .col(integer_null(WebhookDeliveries::ResponseStatus))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(big_integer(WebhookDeliveries::CreatedAt))
                    .col(big_integer_null(WebhookDeliveries::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        // The deliverer's question: what is due.
        manager
            .create_index(index(
                "idx_webhook_deliveries_due",
                WebhookDeliveries::Table,
                &[WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_webhook_deliveries_webhook",
                WebhookDeliveries::Table,
                &[WebhookDeliveries::WebhookId, WebhookDeliveries::CreatedAt],
            ))
            .await?;
        // Events found by the leader (agent status) are queued once, across leader changes.
        let mut dedupe = index(
            "idx_webhook_deliveries_dedupe",
            WebhookDeliveries::Table,
            &[WebhookDeliveries::WebhookId, WebhookDeliveries::DedupeKey],
        );
        manager.create_index(dedupe.unique().to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageSamples::Table)
                    .col(big_integer(UsageSamples::Id).primary_key().auto_increment())
                    .col(string(UsageSamples::AgentId))
                    .col(string_null(UsageSamples::Model))
                    .col(string(UsageSamples::Source))
                    .col(big_integer(UsageSamples::At))
                    .col(big_integer(UsageSamples::InputTokens))
                    .col(big_integer(UsageSamples::OutputTokens))
                    .col(big_integer(UsageSamples::Tokens))
                    .col(double(UsageSamples::Cost))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_usage_samples_at", UsageSamples::Table, &[UsageSamples::At])).await?;
        // Budgets and `usage` sum recorded metrics over a time range.
        manager
            .create_index(index("idx_agent_metrics_timestamp", AgentMetrics::Table, &[AgentMetrics::Timestamp]))
            .await?;
        manager
            .create_index(index(
                "idx_usage_samples_agent",
                UsageSamples::Table,
                &[UsageSamples::AgentId, UsageSamples::At],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageTotals::Table)
                    .col(string(UsageTotals::AgentId).primary_key())
                    .col(big_integer(UsageTotals::InputTokens))
                    .col(big_integer(UsageTotals::OutputTokens))
                    .col(big_integer(UsageTotals::Tokens))
                    .col(double(UsageTotals::Cost))
                    .col(big_integer(UsageTotals::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_agent_metrics_timestamp").table(AgentMetrics::Table).to_owned())
            .await?;
        for table in [
            UsageTotals::Table.into_iden(),
            UsageSamples::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            Webhooks::Table.into_iden(),
            Notifications::Table.into_iden(),
            AlertRules::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
