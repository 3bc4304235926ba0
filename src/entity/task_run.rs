//! The `task_runs` table: each time a task was worked on, by a dispatched agent or a claimer.

use sea_orm::entity::prelude::*;

/// One run of a task.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "task_runs")]
pub struct Model {
    /// UUID v7, as text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub task_id: String,
    /// `DISPATCH` (sent to an agent of the runtime) or `CLAIM` (taken with `claimTask`).
    pub kind: String,
    /// The agent's session key (dispatch) or the claimer's name (claim).
    pub agent_id: String,
    /// The runtime's run id (dispatch only).
    pub run_id: Option<String>,
    /// `AgentStatus`: RUNNING until the run ends, then DONE, FAILED or KILLED.
    pub status: String,
    /// Who dispatched or claimed.
    pub started_by: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// The agent's usage when the run started; the run's own usage is measured from it.
    pub base_tokens: i64,
    pub base_cost: f64,
    pub tokens: i64,
    pub cost: f64,
    /// The agent's final reply, the claimer's result, or why the run failed.
    pub result: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
