//! Tasks and their comments: the kanban board.

pub mod commands;
pub mod json;
pub mod loaders;
pub mod queries;
pub mod resolvers;
pub mod types;
