//! Alert rules: what kinds there are, what each needs, and create / change / delete.

use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, QueryOrder, Set};

use super::Alerts;
use crate::audit::{self, Change};
use crate::auth::Actor;
use crate::db::Writer;
use crate::entity::alert_rule;
use crate::entity::stored_enum;
use crate::error::{AppError, AppResult};
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::time::now_millis;
use crate::validate;

/// What a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum AlertKind {
    AgentFailed,
    AgentKilled,
    CostBudget,
    TaskOverdue,
    TaskAssigned,
}
stored_enum!(AlertKind {
    AgentFailed => "AGENT_FAILED", AgentKilled => "AGENT_KILLED", CostBudget => "COST_BUDGET",
    TaskOverdue => "TASK_OVERDUE", TaskAssigned => "TASK_ASSIGNED"
});

impl AlertKind {
    /// How loud a notification of this kind is.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::AgentFailed => Severity::Critical,
            AlertKind::AgentKilled | AlertKind::CostBudget | AlertKind::TaskOverdue => Severity::Warning,
            AlertKind::TaskAssigned => Severity::Info,
        }
    }
}

/// The window a budget is counted over (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum BudgetWindow {
    Day,
    Week,
    Month,
    Total,
}
stored_enum!(BudgetWindow { Day => "DAY", Week => "WEEK", Month => "MONTH", Total => "TOTAL" });

/// How loud a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}
stored_enum!(Severity { Info => "INFO", Warning => "WARNING", Critical => "CRITICAL" });

/// A rule as given to `createAlertRule` / `updateAlertRule`.
#[derive(Debug, Clone, async_graphql::InputObject)]
#[graphql(name = "AlertRuleInput")]
pub struct RuleSpec {
    pub name: String,
    pub kind: AlertKind,
    /// Only this agent (its id).
    #[graphql(name = "agentId")]
    pub agent_id: Option<async_graphql::ID>,
    /// Only agents on this model (agent and budget rules).
    pub model: Option<String>,
    /// `COST_BUDGET`: the spend in dollars that fires it.
    pub threshold_usd: Option<f64>,
    /// `COST_BUDGET`: the window spend is counted over.
    pub window: Option<BudgetWindow>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A checked rule, ready to store.
struct Checked {
    name: String,
    agent_id: Option<String>,
    model: Option<String>,
    threshold_usd: Option<f64>,
    window: Option<BudgetWindow>,
}

fn trimmed(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    let Some(value) = value.map(str::trim) else { return Ok(None) };
    if value.is_empty() {
        return Err(AppError::invalid(field, "must not be empty when given"));
    }
    validate::max_len(field, value, validate::MAX_NAME)?;
    Ok(Some(value.to_owned()))
}

/// Checks `spec` against what its kind needs and allows.
fn check(spec: &RuleSpec) -> AppResult<Checked> {
    let name = validate::name("name", &spec.name)?;
    let agent_id = trimmed("agentId", spec.agent_id.as_ref().map(|id| id.as_str()))?;
    let model = trimmed("model", spec.model.as_deref())?;
    let budget = spec.kind == AlertKind::CostBudget;
    match (budget, spec.threshold_usd) {
        (true, None) => return Err(AppError::invalid("thresholdUsd", "a COST_BUDGET rule needs one")),
        (true, Some(t)) if !t.is_finite() || t <= 0.0 => {
            return Err(AppError::invalid("thresholdUsd", "must be a positive, finite amount of dollars"));
        }
        (false, Some(_)) => return Err(AppError::invalid("thresholdUsd", "only COST_BUDGET rules take one")),
        _ => {}
    }
    match (budget, spec.window) {
        (true, None) => {
            return Err(AppError::invalid("window", "a COST_BUDGET rule needs one (DAY, WEEK, MONTH or TOTAL)"));
        }
        (false, Some(_)) => return Err(AppError::invalid("window", "only COST_BUDGET rules take one")),
        _ => {}
    }
    if model.is_some() && matches!(spec.kind, AlertKind::TaskOverdue | AlertKind::TaskAssigned) {
        return Err(AppError::invalid("model", "task rules cannot be limited to a model; use agentId"));
    }
    Ok(Checked { name: name.to_owned(), agent_id, model, threshold_usd: spec.threshold_usd, window: spec.window })
}

fn audited(row: &alert_rule::Model) -> serde_json::Value {
    serde_json::json!({
        "name": row.name,
        "kind": row.kind,
        "agentId": row.agent_id,
        "model": row.model,
        "thresholdUsd": row.threshold_usd,
        "window": row.window,
        "enabled": row.enabled,
    })
}

/// Every rule, oldest first.
pub async fn list(db: &impl sea_orm::ConnectionTrait) -> AppResult<Vec<alert_rule::Model>> {
    Ok(alert_rule::Entity::find().order_by_asc(alert_rule::Column::CreatedAt).all(db).await?)
}

async fn existing(db: &impl sea_orm::ConnectionTrait, id: &str) -> AppResult<alert_rule::Model> {
    alert_rule::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::NotFound(format!("alert rule {id}")))
}

/// Creates a rule.
pub async fn create(writer: &Writer, alerts: &Alerts, actor: &Actor, spec: RuleSpec) -> AppResult<alert_rule::Model> {
    let checked = check(&spec)?;
    let (actor, max) = (actor.clone(), alerts.settings.max_rules);
    let row = writer
        .run(move |uow| {
            Box::pin(async move {
                let kept = alert_rule::Entity::find().count(uow.txn()).await?;
                validate::room_for_one_more(kept, max, "alert rules")?;
                let now = now_millis();
                let row = alert_rule::ActiveModel {
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    name: Set(checked.name),
                    kind: Set(spec.kind.as_str().to_owned()),
                    agent_id: Set(checked.agent_id),
                    model: Set(checked.model),
                    threshold_usd: Set(checked.threshold_usd),
                    window: Set(checked.window.map(|w| w.as_str().to_owned())),
                    enabled: Set(spec.enabled.unwrap_or(true)),
                    created_by: Set(actor.name.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    last_fired_at: Set(None),
                }
                .insert(uow.txn())
                .await?;
                log_change(uow, &actor, "alert_rule_created", &row);
                let change = Change::new("alert_rule.create").target("alert_rule", &row.id).after(audited(&row));
                audit::record(uow, &actor, change);
                Ok(row)
            })
        })
        .await?;
    alerts.reload(writer.db()).await;
    Ok(row)
}

/// Replaces rule `id`.
pub async fn update(
    writer: &Writer,
    alerts: &Alerts,
    actor: &Actor,
    id: &str,
    spec: RuleSpec,
) -> AppResult<alert_rule::Model> {
    let checked = check(&spec)?;
    let (actor, id) = (actor.clone(), id.to_owned());
    let row = writer
        .run(move |uow| {
            Box::pin(async move {
                let current = existing(uow.txn(), &id).await?;
                let mut row: alert_rule::ActiveModel = current.clone().into();
                row.name = Set(checked.name);
                row.kind = Set(spec.kind.as_str().to_owned());
                row.agent_id = Set(checked.agent_id);
                row.model = Set(checked.model);
                row.threshold_usd = Set(checked.threshold_usd);
                row.window = Set(checked.window.map(|w| w.as_str().to_owned()));
                row.enabled = Set(spec.enabled.unwrap_or(true));
                row.updated_at = Set(now_millis());
                let row = row.update(uow.txn()).await?;
                log_change(uow, &actor, "alert_rule_updated", &row);
                let change =
                    Change::new("alert_rule.update").target("alert_rule", &id).diff(audited(&current), audited(&row));
                audit::record(uow, &actor, change);
                Ok(row)
            })
        })
        .await?;
    alerts.reload(writer.db()).await;
    Ok(row)
}

/// Deletes rule `id` (its notifications stay).
pub async fn delete(writer: &Writer, alerts: &Alerts, actor: &Actor, id: &str) -> AppResult<()> {
    let (actor, id) = (actor.clone(), id.to_owned());
    writer
        .run(move |uow| {
            Box::pin(async move {
                let current = existing(uow.txn(), &id).await?;
                alert_rule::Entity::delete_by_id(&id).exec(uow.txn()).await?;
                log_change(uow, &actor, "alert_rule_deleted", &current);
                let change = Change::new("alert_rule.delete").target("alert_rule", &id).before(audited(&current));
                audit::record(uow, &actor, change);
                Ok(())
            })
        })
        .await?;
    alerts.reload(writer.db()).await;
    Ok(())
}

fn log_change(uow: &mut crate::db::UnitOfWork, actor: &Actor, action: &str, row: &alert_rule::Model) {
    let meta = serde_json::json!({ "name": row.name, "kind": row.kind, "enabled": row.enabled });
    let activity =
        NewActivity::new(ActivityKind::System, &actor.name, action).target("alert_rule", &row.id).metadata(meta);
    log_activity(uow, activity);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: AlertKind) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            kind,
            agent_id: None,
            model: None,
            threshold_usd: None,
            window: None,
            enabled: None,
        }
    }

    fn field_of(err: AppError) -> String {
        err.to_string()
    }

    #[test]
    fn each_kind_takes_what_it_needs_and_nothing_else() {
        assert!(check(&spec(AlertKind::AgentFailed)).is_ok());
        let missing = field_of(check(&spec(AlertKind::CostBudget)).err().unwrap());
        assert!(missing.contains("thresholdUsd"), "{missing}");
        let budget = RuleSpec { threshold_usd: Some(5.0), ..spec(AlertKind::CostBudget) };
        assert!(field_of(check(&budget).err().unwrap()).contains("window"));
        assert!(check(&RuleSpec { window: Some(BudgetWindow::Day), ..budget.clone() }).is_ok());
        for bad in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
            let rule = RuleSpec { threshold_usd: Some(bad), window: Some(BudgetWindow::Day), ..budget.clone() };
            assert!(field_of(check(&rule).err().unwrap()).contains("thresholdUsd"), "{bad}");
        }
        let stray = RuleSpec { threshold_usd: Some(1.0), ..spec(AlertKind::AgentKilled) };
        assert!(field_of(check(&stray).err().unwrap()).contains("thresholdUsd"));
        let model = RuleSpec { model: Some("m".into()), ..spec(AlertKind::TaskOverdue) };
        assert!(field_of(check(&model).err().unwrap()).contains("model"));
        let blank = RuleSpec { name: "  ".into(), ..spec(AlertKind::TaskAssigned) };
        assert!(field_of(check(&blank).err().unwrap()).contains("name"));
    }
}
