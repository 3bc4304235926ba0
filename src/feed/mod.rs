//! The activity feed: one row per committed change, with stats and live streaming.

pub mod resolvers;
pub mod service;
pub mod stream;
pub mod types;
