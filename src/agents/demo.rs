//! `--demo`: sample tasks and simulated agents, so a newcomer sees a live board at once.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::AgentHub;
use crate::db::UnitOfWork;
use crate::error::AppResult;
use crate::events::EventBus;
use crate::tasks::service as tasks;
use crate::tasks::types::{CreateTaskInput, TaskPriority, TaskStatus};

/// Spawns three simulated agents and creates a few tasks assigned to them.
pub async fn seed(hub: &Arc<AgentHub>, db: &DatabaseConnection, bus: &EventBus) -> AppResult<()> {
    let samples = [
        ("researcher", "Survey vector databases for the memory feature", TaskStatus::InProgress, TaskPriority::High),
        ("reviewer", "Review the login rate limiter pull request", TaskStatus::Review, TaskPriority::Medium),
        ("writer", "Draft release notes for 0.1", TaskStatus::Todo, TaskPriority::Low),
    ];
    for (label, title, status, priority) in samples {
        let agent = super::service::spawn(hub, db, bus, "demo", label, title).await?;
        let mut uow = UnitOfWork::begin(db).await?;
        tasks::create(
            &mut uow,
            "demo",
            CreateTaskInput {
                title: title.to_owned(),
                description: Some(format!("Sample task worked on by the simulated agent '{label}'.")),
                status: Some(status),
                priority: Some(priority),
                assigned_agent: Some(agent.id),
                due_date: None,
                tags: Some(vec!["demo".to_owned()]),
                metadata: None,
            },
        )
        .await?;
        uow.commit(bus).await?;
    }
    Ok(())
}
