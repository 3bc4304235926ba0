//! The activity feed: one row per committed change, with stats and live streaming.

pub mod resolvers;
pub mod service;
pub mod stream;
pub mod types;

/// What the agents contribute to `feedStats` right now, as the agent side reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveAgentTotals {
    /// Agents running now.
    pub active: i64,
    /// Tokens and dollars read from the runtime's transcripts.
    pub tokens: i64,
    pub cost: f64,
}

/// The source of [`LiveAgentTotals`], put in the schema's data by the wiring.
pub trait LiveAgents: Send + Sync {
    fn totals(&self) -> LiveAgentTotals;
}
