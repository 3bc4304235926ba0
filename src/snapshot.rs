//! What the event bus carries about agents: each agent as a runtime saw it at one poll.
//! Kept below the domains so the bus can carry it without depending on the agents module.

use chrono::{DateTime, Utc};

/// Status of an agent as derived by a runtime. Mirrors the GraphQL `AgentStatus` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentState {
    Running,
    Idle,
    Done,
    Failed,
    Killed,
    Unknown,
}

/// One agent (a runtime session) as seen at one poll.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentInfo {
    /// The runtime's session key, e.g. `agent:main:subagent:<uuid>`.
    pub id: String,
    pub label: Option<String>,
    pub status: AgentState,
    pub model: Option<String>,
    pub session_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// Token use and dollar cost summed from the session transcript, when known.
    pub usage: Usage,
}

/// Token use and cost summed over a transcript.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub tokens: i64,
    pub cost: f64,
}
