//! Tasks and their comments: the kanban board.

pub mod loaders;
pub mod resolvers;
pub mod service;
pub mod types;
