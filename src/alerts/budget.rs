//! Cost budgets: the spend of an agent, a model or everything over a UTC window, from the
//! usage samples of transcripts and the recorded metrics; a rule fires once per window, when
//! that spend first reaches its threshold.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::Active;
use super::notify::{self, Firing};
use super::rules::{AlertKind, BudgetWindow};
use crate::agents::AgentHub;
use crate::db::UnitOfWork;
use crate::entity::{agent_metric, alert_rule, usage_sample};
use crate::error::AppResult;

/// When the window holding `now` began (epoch ms; 0 for TOTAL). Weeks begin on Monday.
pub fn window_start(window: BudgetWindow, now: DateTime<Utc>) -> i64 {
    let midnight = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    let today = now.date_naive();
    let start = match window {
        BudgetWindow::Total => return 0,
        BudgetWindow::Day => midnight(today),
        BudgetWindow::Week => midnight(today - Duration::days(i64::from(today.weekday().num_days_from_monday()))),
        BudgetWindow::Month => midnight(today.with_day(1).unwrap_or(today)),
    };
    start.timestamp_millis()
}

/// Which agents run on which model (recorded metrics carry no model of their own).
#[derive(Debug, Default)]
pub struct ModelAgents(Vec<(String, Option<String>)>);

impl ModelAgents {
    /// The agents of `hub`'s snapshot with their models.
    pub fn of(hub: Option<&AgentHub>) -> ModelAgents {
        ModelAgents(
            hub.map(|h| h.snapshot().iter().map(|a| (a.id.clone(), a.model.clone())).collect()).unwrap_or_default(),
        )
    }

    fn on(&self, model: &str) -> Vec<String> {
        self.0.iter().filter(|(_, m)| m.as_deref() == Some(model)).map(|(id, _)| id.clone()).collect()
    }
}

/// What `rule` counts since `start`: transcript samples and recorded metrics, in dollars.
pub async fn spend(
    db: &impl ConnectionTrait,
    rule: &alert_rule::Model,
    start: i64,
    models: &ModelAgents,
) -> AppResult<f64> {
    let mut samples = usage_sample::Entity::find()
        .select_only()
        .column_as(Expr::col(usage_sample::Column::Cost).sum(), "total")
        .filter(usage_sample::Column::At.gte(start));
    let mut metrics = agent_metric::Entity::find()
        .select_only()
        .column_as(Expr::col(agent_metric::Column::Cost).sum(), "total")
        .filter(agent_metric::Column::Timestamp.gte(start));
    if let Some(agent) = &rule.agent_id {
        samples = samples.filter(usage_sample::Column::AgentId.eq(agent));
        metrics = metrics.filter(agent_metric::Column::AgentId.eq(agent));
    }
    if let Some(model) = &rule.model {
        samples = samples.filter(usage_sample::Column::Model.eq(model));
        metrics = metrics.filter(agent_metric::Column::AgentId.is_in(models.on(model)));
    }
    let from_samples: Option<f64> = samples.into_tuple().one(db).await?.flatten();
    let from_metrics: Option<f64> = metrics.into_tuple().one(db).await?.flatten();
    Ok(from_samples.unwrap_or(0.0) + from_metrics.unwrap_or(0.0))
}

/// Whether `rule` counts the spend of `agent` (on `model`).
fn covers(rule: &alert_rule::Model, agent: &str, model: Option<&str>) -> bool {
    rule.agent_id.as_deref().is_none_or(|a| a == agent) && rule.model.as_deref().is_none_or(|m| Some(m) == model)
}

/// Checks the budget rules covering `agent` (all, when none is given) at `now`; fires those
/// whose window's spend reached their threshold and that did not fire in this window yet.
pub async fn check(
    uow: &mut UnitOfWork,
    active: &Active,
    agent: Option<(&str, Option<&str>)>,
    models: &ModelAgents,
    now: DateTime<Utc>,
) -> AppResult<()> {
    for rule in active.rules(AlertKind::CostBudget) {
        if agent.is_some_and(|(id, model)| !covers(rule, id, model)) {
            continue;
        }
        let (Some(window), Some(threshold)) =
            (rule.window.as_deref().and_then(BudgetWindow::parse), rule.threshold_usd)
        else {
            continue;
        };
        let start = window_start(window, now);
        let occurrence = format!("budget:{}:{start}", window.as_str());
        if notify::fired(uow.txn(), &rule.id, &occurrence).await? {
            continue;
        }
        let spent = spend(uow.txn(), rule, start, models).await?;
        if spent < threshold {
            continue;
        }
        let scope = match (&rule.agent_id, &rule.model) {
            (Some(agent), Some(model)) => format!("agent {agent} on {model}"),
            (Some(agent), None) => format!("agent {agent}"),
            (None, Some(model)) => format!("model {model}"),
            (None, None) => "all agents".to_owned(),
        };
        let since = if start == 0 {
            "in total".to_owned()
        } else {
            format!("since {}", crate::time::from_millis(start).to_rfc3339())
        };
        let firing = Firing {
            occurrence,
            title: format!("Budget \"{}\" reached: ${spent:.4} of ${threshold:.2}", rule.name),
            body: format!(
                "Spend of {scope} {since} is ${spent:.4}, over the {} budget of ${threshold:.2}.",
                window.as_str()
            ),
            target_type: "alert_rule",
            target_id: rule.id.clone(),
        };
        notify::fire(uow, rule, firing).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_begin_at_utc_midnight_monday_and_the_first() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 15, 30, 0).unwrap(); // a Wednesday
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp_millis();
        assert_eq!(window_start(BudgetWindow::Day, now), at(2026, 12, 2));
        assert_eq!(window_start(BudgetWindow::Week, now), at(2026, 11, 30));
        assert_eq!(window_start(BudgetWindow::Month, now), at(2026, 12, 1));
        assert_eq!(window_start(BudgetWindow::Total, now), 0);
    }
}
