//! Usage over time: tokens and cost per hour or day, overall, per agent or per model.
//!
//! It is answered from stored samples, not by re-reading transcripts: the leader records a
//! sample each time an agent's totals grow ([`record_growth`], called by the alerts watcher),
//! so history outlives transcript pruning, and a range is one grouped query over an index.
//! Recorded metrics (`recordAgentMetrics`) count too, from their own table.
//!
//! A sample is dated when the growth was seen (within a poll of the messages that caused it).
//! The spend an agent had before this server first saw it is dated message by message from its
//! transcript (what the transcript does not account for, at the agent's last activity).

pub mod resolvers;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Set};

use crate::agents::runtime::TranscriptEntry;
use crate::db::UnitOfWork;
use crate::entity::stored_enum;
use crate::entity::{agent_metric, usage_sample, usage_total};
use crate::error::{AppError, AppResult};
use crate::snapshot::AgentInfo;
use crate::time::{from_millis, now_millis};

/// The width of a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum UsageBucket {
    Hour,
    Day,
}

impl UsageBucket {
    fn millis(self) -> i64 {
        match self {
            UsageBucket::Hour => 3_600_000,
            UsageBucket::Day => 86_400_000,
        }
    }

    /// The most points one range may ask for.
    fn max_range_days(self) -> i64 {
        match self {
            UsageBucket::Hour => 400,
            UsageBucket::Day => 4000,
        }
    }
}

/// What points are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, async_graphql::Enum)]
pub enum UsageGroup {
    #[default]
    None,
    Agent,
    Model,
}
stored_enum!(UsageGroup { None => "NONE", Agent => "AGENT", Model => "MODEL" });

/// One bucket of one key.
#[derive(Debug, Clone, Default, PartialEq, async_graphql::SimpleObject)]
pub struct UsagePoint {
    pub bucket_start: DateTime<Utc>,
    /// The agent id or model name (null when not grouped, or for spend of no known model).
    pub key: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tokens: i64,
    pub cost: f64,
}

/// An agent's totals as the runtime reports them now.
fn totals_of(agent: &AgentInfo) -> (i64, i64, i64, f64) {
    (agent.input_tokens.unwrap_or(0), agent.output_tokens.unwrap_or(0), agent.usage.tokens, agent.usage.cost)
}

/// One sample to store.
struct Sample {
    at: i64,
    model: Option<String>,
    input: i64,
    output: i64,
    tokens: i64,
    cost: f64,
}

/// Records the growth of `agent`'s totals since they were last sampled; returns whether they
/// grew. Totals that shrank (a pruned or reset transcript) are taken as the new base.
///
/// The first time an agent is seen, `history` (its transcript, when the caller could read it)
/// dates each message's spend at the message's own time; what the messages do not account for
/// (store totals, a transcript read only in part) is dated at the agent's last activity.
pub async fn record_growth(
    uow: &mut UnitOfWork,
    agent: &AgentInfo,
    history: Option<&[TranscriptEntry]>,
) -> AppResult<bool> {
    let last = usage_total::Entity::find_by_id(&agent.id).one(uow.txn()).await?;
    let now = now_millis();
    let (input, output, tokens, cost) = totals_of(agent);
    let (d_input, d_output, d_tokens, d_cost) = match &last {
        Some(l) => (input - l.input_tokens, output - l.output_tokens, tokens - l.tokens, cost - l.cost),
        None => (input, output, tokens, cost),
    };
    let total = usage_total::ActiveModel {
        agent_id: Set(agent.id.clone()),
        input_tokens: Set(input),
        output_tokens: Set(output),
        tokens: Set(tokens),
        cost: Set(cost),
        updated_at: Set(now),
    };
    let upsert = OnConflict::column(usage_total::Column::AgentId)
        .update_columns([
            usage_total::Column::InputTokens,
            usage_total::Column::OutputTokens,
            usage_total::Column::Tokens,
            usage_total::Column::Cost,
            usage_total::Column::UpdatedAt,
        ])
        .to_owned();
    usage_total::Entity::insert(total).on_conflict(upsert).exec_without_returning(uow.txn()).await?;
    let grew = d_tokens > 0 || d_cost > 0.0 || d_input > 0 || d_output > 0;
    if !grew || d_tokens < 0 || d_cost < 0.0 {
        return Ok(false);
    }
    let last_active = agent.updated_at.map(|t| t.timestamp_millis()).map_or(now, |t| Ord::min(t, now));
    let mut samples = Vec::new();
    let (mut rest_tokens, mut rest_cost) = (d_tokens, d_cost);
    if last.is_none() {
        for entry in history.unwrap_or_default() {
            let (t, c) = (entry.tokens.unwrap_or(0), entry.cost.unwrap_or(0.0));
            if (t <= 0 && c <= 0.0) || t > rest_tokens || c > rest_cost + 1e-12 {
                continue;
            }
            let at = entry.timestamp.map(|t| t.timestamp_millis()).map_or(last_active, |t| Ord::min(t, now));
            let model = entry.model.clone().or_else(|| agent.model.clone());
            samples.push(Sample { at, model, input: 0, output: 0, tokens: t, cost: c });
            rest_tokens -= t;
            rest_cost -= c;
        }
    }
    let at = if last.is_none() { last_active } else { now };
    let rest_cost = if rest_cost.abs() < 1e-12 { 0.0 } else { rest_cost };
    if rest_tokens > 0 || rest_cost > 0.0 || d_input > 0 || d_output > 0 {
        samples.push(Sample {
            at,
            model: agent.model.clone(),
            input: Ord::max(d_input, 0),
            output: Ord::max(d_output, 0),
            tokens: rest_tokens,
            cost: rest_cost,
        });
    }
    if samples.is_empty() {
        return Ok(true);
    }
    let rows = samples.into_iter().map(|s| usage_sample::ActiveModel {
        agent_id: Set(agent.id.clone()),
        model: Set(s.model),
        source: Set("TRANSCRIPT".into()),
        at: Set(s.at),
        input_tokens: Set(s.input),
        output_tokens: Set(s.output),
        tokens: Set(s.tokens),
        cost: Set(s.cost),
        ..Default::default()
    });
    usage_sample::Entity::insert_many(rows).exec_without_returning(uow.txn()).await?;
    Ok(true)
}

/// A grouped row of samples.
#[derive(Debug, FromQueryResult)]
struct SampleRow {
    bucket: i64,
    key: Option<String>,
    input: i64,
    output: i64,
    tokens: i64,
    cost: f64,
}

/// A grouped row of recorded metrics (always by agent).
#[derive(Debug, FromQueryResult)]
struct MetricRow {
    bucket: i64,
    agent_id: String,
    tokens: i64,
    cost: f64,
}

/// Grouping by the `bucket` output column (PostgreSQL would not match the expression again:
/// its bucket width is a fresh parameter each time it is written).
fn by_bucket() -> Expr {
    Expr::col(Alias::new("bucket"))
}

/// Checks a range: `to` after `from`, and not too many points.
fn check_range(from: DateTime<Utc>, to: DateTime<Utc>, bucket: UsageBucket) -> AppResult<()> {
    if to <= from {
        return Err(AppError::invalid("to", "must be after from"));
    }
    let days = (to - from).num_days();
    if days > bucket.max_range_days() {
        return Err(AppError::invalid(
            "to",
            format!("{days} days of {bucket:?} buckets is too many points; at most {} days", bucket.max_range_days()),
        ));
    }
    Ok(())
}

/// Usage in `[from, to)` by `bucket`, split by `group`; `model_of` gives an agent's model
/// (recorded metrics carry none). Points are ordered by time, then key; empty buckets are left
/// out.
pub async fn query(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: UsageBucket,
    group: UsageGroup,
    model_of: impl Fn(&str) -> Option<String>,
) -> AppResult<Vec<UsagePoint>> {
    check_range(from, to, bucket)?;
    let (start, end, size) = (from.timestamp_millis(), to.timestamp_millis(), bucket.millis());
    let slot = |col: Expr| col.div(size).mul(size);
    let sum = |col: usage_sample::Column| Expr::col(col).sum().cast_as("BIGINT");
    let mut samples = usage_sample::Entity::find()
        .select_only()
        .column_as(slot(Expr::col(usage_sample::Column::At)), "bucket")
        .column_as(sum(usage_sample::Column::InputTokens), "input")
        .column_as(sum(usage_sample::Column::OutputTokens), "output")
        .column_as(sum(usage_sample::Column::Tokens), "tokens")
        .column_as(Expr::col(usage_sample::Column::Cost).sum(), "cost")
        .filter(usage_sample::Column::At.gte(start))
        .filter(usage_sample::Column::At.lt(end))
        .group_by(by_bucket());
    samples = match group {
        UsageGroup::None => samples.column_as(Expr::val(Option::<String>::None), "key"),
        UsageGroup::Agent => {
            samples.column_as(Expr::col(usage_sample::Column::AgentId), "key").group_by(usage_sample::Column::AgentId)
        }
        UsageGroup::Model => {
            samples.column_as(Expr::col(usage_sample::Column::Model), "key").group_by(usage_sample::Column::Model)
        }
    };
    let samples: Vec<SampleRow> = samples.into_model().all(db).await?;
    let metrics: Vec<MetricRow> = agent_metric::Entity::find()
        .select_only()
        .column_as(slot(Expr::col(agent_metric::Column::Timestamp)), "bucket")
        .column(agent_metric::Column::AgentId)
        .column_as(Expr::col(agent_metric::Column::Tokens).sum().cast_as("BIGINT"), "tokens")
        .column_as(Expr::col(agent_metric::Column::Cost).sum(), "cost")
        .filter(agent_metric::Column::Timestamp.gte(start))
        .filter(agent_metric::Column::Timestamp.lt(end))
        .group_by(by_bucket())
        .group_by(agent_metric::Column::AgentId)
        .into_model()
        .all(db)
        .await?;
    let mut points: BTreeMap<(i64, Option<String>), UsagePoint> = BTreeMap::new();
    let mut add = |bucket: i64, key: Option<String>, input: i64, output: i64, tokens: i64, cost: f64| {
        let point = points.entry((bucket, key.clone())).or_insert_with(|| UsagePoint {
            bucket_start: from_millis(bucket),
            key,
            ..Default::default()
        });
        point.input_tokens += input;
        point.output_tokens += output;
        point.tokens += tokens;
        point.cost += cost;
    };
    for row in samples {
        add(row.bucket, row.key, row.input, row.output, row.tokens, row.cost);
    }
    for row in metrics {
        let key = match group {
            UsageGroup::None => None,
            UsageGroup::Agent => Some(row.agent_id.clone()),
            UsageGroup::Model => model_of(&row.agent_id),
        };
        add(row.bucket, key, 0, 0, row.tokens, row.cost);
    }
    Ok(points.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_must_go_forward_and_stay_within_its_points() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(
            check_range(at("2026-01-02T00:00:00Z"), at("2026-01-01T00:00:00Z"), UsageBucket::Day)
                .unwrap_err()
                .to_string()
                .starts_with("to:")
        );
        assert!(check_range(at("2025-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"), UsageBucket::Hour).is_err());
        assert!(check_range(at("2025-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"), UsageBucket::Day).is_ok());
    }
}
