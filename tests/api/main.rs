//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP and WebSocket.

mod agents;
mod alerts;
mod attacks;
mod audit;
mod auth;
mod backup;
mod durability;
mod fake_gateway;
mod feed;
mod fuzz;
mod hardening;
mod helpers;
mod layers;
mod mcp;
mod openclaw;
mod operations;
mod page;
mod scale;
mod schedules;
mod schema;
mod subscriptions;
mod tasks;
pub mod work;
