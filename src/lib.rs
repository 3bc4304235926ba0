//! Mission Control: a GraphQL server to watch and steer AI agents and the work they do.
//!
//! # Layout
//!
//! - [`config`]: flags and environment (clap), production checks.
//! - [`startup`]: `App::build(config)` wires everything and binds; `run_until_stopped()` serves.
//! - [`http`]: the axum router: `/graphql` (POST, GET, GraphiQL), `/api/auth/*`, `/health`, `/ready`.
//! - [`mcp`]: `/mcp`, the board as MCP tools for agents (dispatch and claims of [`work`]).
//! - [`ws`]: `/graphql/ws`, GraphQL subscriptions over both WebSocket subprotocols, with auth.
//! - [`schema`]: merged query/mutation/subscription roots and the error-code extension.
//! - [`error`]: `AppError`, mapped to `extensions.code` and HTTP status.
//! - [`events`]: the event bus (task changes, activities, agent snapshots).
//! - [`db`]: connection, migrations, and the unit of work that publishes after commit.
//! - [`entity`]: sea-orm entities, one per table.
//! - [`auth`]: login, tokens, the caller identity.
//! - [`tasks`], [`feed`], [`agents`]: one folder per domain (`types`, `service`, `resolvers`).
//! - [`work`]: the board driving the agents: dispatch, claims with leases, and task runs.
//! - [`alerts`]: alert rules, notifications, and signed webhooks queued with each change.
//! - [`usage`]: tokens and cost over time, from samples the leader stores.
//! - [`schedules`]: agents spawned and tasks created on a cron, exactly once across a fleet.
//! - [`metrics`]: the Prometheus series behind `GET /metrics`.
//! - [`loaders`]: batch loaders (one query per list, not per row); [`limits`]: rate limits; [`redis_bus`]: Redis transport, leader lease, shared counters.
//! - [`pagination`], [`validate`], [`time`], [`subscriptions`], [`shutdown`]: small shared helpers.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod config;
pub mod db;
pub mod entity;
pub mod error;
pub mod events;
pub mod feed;
pub mod graphiql;
pub mod http;
pub mod limits;
pub mod loaders;
pub mod mcp;
pub mod metrics;
pub mod page;
pub mod pagination;
pub mod query_limits;
pub mod read_cache;
pub mod redis_bus;
pub mod schedules;
pub mod schema;
pub mod serve;
pub mod shutdown;
pub mod snapshot;
pub mod startup;
pub mod subscriptions;
pub mod tasks;
pub mod time;
pub mod usage;
pub mod validate;
pub mod work;
pub mod ws;
