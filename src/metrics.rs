//! What the server counts, for `GET /metrics` (Prometheus text, from `prometheus-client`).
//!
//! One [`Metrics`] value per server, no global registry: each part holds clones of the
//! counters it moves (a `prometheus-client` metric is a shared handle), and the gauges that
//! mirror a state elsewhere (the database pool, the poller) are read when scraped.
//!
//! Label sets are bounded: routes are the router's own paths, GraphQL operation names fold
//! into `other` once [`MAX_OPERATION_NAMES`] distinct ones have been seen, codes are
//! [`crate::error::ErrorCode`]s, runtime methods are the trait's.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Distinct GraphQL operation names kept as labels; later ones count as `other`.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels of a route alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Labels of a GraphQL operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// `query`, `mutation` or `subscription`.
    pub r#type: String,
    pub name: String,
}

/// Labels of an error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

/// Labels of an agent runtime call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// Labels of a webhook delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// Labels of a runtime method alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

fn seconds() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every series the server exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub graphql_operations: Family<OperationLabels, Counter>,
    pub graphql_errors: Family<CodeLabels, Counter>,
    pub ws_connections: Gauge,
    pub subscriptions_active: Gauge,
    pub events_published: Counter,
    pub events_lagged: Counter,
    pub db_pool_connections: Gauge,
    pub db_pool_idle: Gauge,
    /// How long a change waited for the writer before its transaction began.
    pub db_write_wait: Histogram,
    pub agent_runtime_calls: Family<CallLabels, Counter>,
    pub agent_runtime_duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Unix seconds of the poller's last good read of the runtime.
    pub poller_last_success: Gauge,
    /// Webhook delivery attempts by outcome (`delivered`, `retry`, `failed`).
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
    operation_names: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of series, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mc");
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds as fn() -> Histogram),
            graphql_operations: Family::default(),
            graphql_errors: Family::default(),
            ws_connections: Gauge::default(),
            subscriptions_active: Gauge::default(),
            events_published: Counter::default(),
            events_lagged: Counter::default(),
            db_pool_connections: Gauge::default(),
            db_pool_idle: Gauge::default(),
            db_write_wait: seconds(),
            agent_runtime_calls: Family::default(),
            agent_runtime_duration: Family::new_with_constructor(seconds as fn() -> Histogram),
            poller_last_success: Gauge::default(),
            webhook_deliveries: Family::default(),
            operation_names: Mutex::new(HashSet::new()),
        };
        registry.register("http_requests", "HTTP requests by route, method and status", m.http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", m.http_duration.clone());
        registry.register("graphql_operations", "GraphQL operations by type and name", m.graphql_operations.clone());
        registry.register("graphql_errors", "GraphQL errors by code", m.graphql_errors.clone());
        registry.register("ws_connections", "Open GraphQL WebSockets", m.ws_connections.clone());
        registry.register("subscriptions_active", "Running GraphQL subscriptions", m.subscriptions_active.clone());
        registry.register("events_published", "Events published on the bus", m.events_published.clone());
        registry.register("events_lagged", "Events a slow subscriber missed", m.events_lagged.clone());
        registry.register("db_pool_connections", "Database connections open", m.db_pool_connections.clone());
        registry.register("db_pool_idle", "Database connections idle", m.db_pool_idle.clone());
        registry.register("db_write_wait_seconds", "Time a change waited for the writer", m.db_write_wait.clone());
        registry.register(
            "agent_runtime_calls",
            "Agent runtime calls by method and outcome",
            m.agent_runtime_calls.clone(),
        );
        registry.register(
            "agent_runtime_call_duration_seconds",
            "Agent runtime call latency by method",
            m.agent_runtime_duration.clone(),
        );
        registry.register(
            "agent_poller_last_success_timestamp_seconds",
            "When the agent poller last read the runtime",
            m.poller_last_success.clone(),
        );
        registry.register("webhook_deliveries", "Webhook delivery attempts by outcome", m.webhook_deliveries.clone());
        Metrics { registry, ..m }
    }

    /// Counts a GraphQL operation (`name` folds into `anonymous` or `other`).
    pub fn count_operation(&self, ty: &str, name: Option<&str>) {
        let name = match name {
            None | Some("") => "anonymous".to_owned(),
            Some(name) => {
                let mut known = self.operation_names.lock().unwrap_or_else(|e| e.into_inner());
                if known.contains(name) || (known.len() < MAX_OPERATION_NAMES && known.insert(name.to_owned())) {
                    name.to_owned()
                } else {
                    "other".to_owned()
                }
            }
        };
        self.graphql_operations.get_or_create(&OperationLabels { r#type: ty.to_owned(), name }).inc();
    }

    /// Counts an error by its code.
    pub fn count_error(&self, code: &str) {
        self.graphql_errors.get_or_create(&CodeLabels { code: code.to_owned() }).inc();
    }

    /// Counts one runtime call.
    pub fn count_runtime_call(&self, method: &str, ok: bool, took: std::time::Duration) {
        let outcome = if ok { "ok" } else { "error" }.to_owned();
        self.agent_runtime_calls.get_or_create(&CallLabels { method: method.to_owned(), outcome }).inc();
        self.agent_runtime_duration
            .get_or_create(&MethodLabels { method: method.to_owned() })
            .observe(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded_and_series_render() {
        let metrics = Metrics::new();
        for i in 0..MAX_OPERATION_NAMES + 5 {
            metrics.count_operation("query", Some(&format!("Op{i}")));
        }
        metrics.count_operation("query", None);
        metrics.count_operation("query", Some("Op0"));
        let text = metrics.render();
        assert!(text.contains(r#"mc_graphql_operations_total{type="query",name="Op0"} 2"#), "{text}");
        assert!(text.contains(r#"mc_graphql_operations_total{type="query",name="other"} 5"#));
        assert!(text.contains(r#"mc_graphql_operations_total{type="query",name="anonymous"} 1"#));
        assert!(text.contains("# TYPE mc_ws_connections gauge"));
    }
}
