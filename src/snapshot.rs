//! What the event bus carries about agents: each agent as a runtime saw it at one poll.
//! Kept below the domains so the bus can carry it without depending on the agents module.

use chrono::{DateTime, Utc};

/// Derived status of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "AgentStatus")]
pub enum AgentState {
    Running,
    Idle,
    Done,
    Failed,
    Killed,
    Unknown,
}

crate::entity::stored_enum!(AgentState {
    Running => "RUNNING", Idle => "IDLE", Done => "DONE", Failed => "FAILED", Killed => "KILLED", Unknown => "UNKNOWN"
});

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
    /// The runtime's own word for the state (OpenClaw's store `status`), when it gives one.
    #[serde(default)]
    pub runtime_status: Option<String>,
}

/// Token use and cost summed over a transcript.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub tokens: i64,
    pub cost: f64,
}

/// What an item of live output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "AgentOutputKind")]
pub enum OutputKind {
    Text,
    ToolCall,
    ToolResult,
    Status,
    Final,
    Error,
}

/// One item of what an agent writes while it writes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentOutputItem {
    pub agent_id: String,
    pub run_id: Option<String>,
    pub kind: OutputKind,
    /// `TEXT`: the new text only (a delta). `STATUS`: the phase. `FINAL`: the whole reply.
    pub text: Option<String>,
    pub tool_name: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "ApprovalStatus")]
pub enum ApprovalState {
    Pending,
    Allowed,
    Denied,
    Expired,
}

/// A decision on an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "ApprovalDecision")]
pub enum Decision {
    AllowOnce,
    AllowAlways,
    Deny,
}

impl Decision {
    /// The gateway's word for it.
    pub fn wire(self) -> &'static str {
        match self {
            Decision::AllowOnce => "allow-once",
            Decision::AllowAlways => "allow-always",
            Decision::Deny => "deny",
        }
    }

    pub fn from_wire(word: &str) -> Option<Self> {
        match word {
            "allow-once" => Some(Decision::AllowOnce),
            "allow-always" => Some(Decision::AllowAlways),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }

    /// The state a decision leaves an approval in.
    pub fn state(self) -> ApprovalState {
        match self {
            Decision::AllowOnce | Decision::AllowAlways => ApprovalState::Allowed,
            Decision::Deny => ApprovalState::Denied,
        }
    }
}

/// A command an agent asks to run, waiting for (or past) a human decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    pub id: String,
    pub command: String,
    pub cwd: Option<String>,
    /// The agent (session key) that asks, when the gateway says.
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub status: ApprovalState,
    pub decision: Option<Decision>,
    pub decided_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
