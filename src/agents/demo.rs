//! `--demo`: sample tasks and simulated agents, so a newcomer sees a live board at once.

use std::sync::Arc;

use super::AgentHub;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::events::EventBus;
use crate::tasks::commands::{self as tasks, NewTask};
use crate::tasks::types::{TaskPriority, TaskStatus};

/// Spawns three simulated agents and creates a few tasks assigned to them.
pub async fn seed(hub: &Arc<AgentHub>, bus: &EventBus) -> AppResult<()> {
    let demo = Actor::system();
    let samples = [
        ("researcher", "Survey vector databases for the memory feature", TaskStatus::InProgress, TaskPriority::High),
        ("reviewer", "Review the login rate limiter pull request", TaskStatus::Review, TaskPriority::Medium),
        ("writer", "Draft release notes for 0.1", TaskStatus::Todo, TaskPriority::Low),
    ];
    for (label, title, status, priority) in samples {
        let agent = super::service::spawn(hub, bus, &demo, label, title).await?;
        tasks::create(
            hub.writer(),
            &demo,
            NewTask {
                title: title.to_owned(),
                description: Some(format!("Sample task worked on by the simulated agent '{label}'.")),
                status: Some(status),
                priority: Some(priority),
                assigned_agent: Some(agent.id),
                due_date: None,
                tags: vec!["demo".to_owned()],
                metadata: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// Sends one sample agent a new message, so the demo board keeps changing.
pub async fn nudge_once(hub: &Arc<AgentHub>, bus: &EventBus, round: usize) -> AppResult<()> {
    let agents = hub.snapshot();
    let Some(agent) = agents.get(round % agents.len().max(1)) else { return Ok(()) };
    let message = ["Any progress?", "Please double-check the numbers.", "Summarise what you found."][round % 3];
    super::service::send(hub, bus, &Actor::system(), &agent.id, message).await
}

/// `--demo`: nudges an agent every `every` until `shutdown`.
pub async fn keep_alive(
    hub: Arc<AgentHub>,
    bus: EventBus,
    every: std::time::Duration,
    mut shutdown: crate::shutdown::Signal,
) {
    let mut round = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => return,
        }
        if let Err(err) = nudge_once(&hub, &bus, round).await {
            tracing::warn!(error = %err, "demo nudge failed");
        }
        round += 1;
    }
}
