//! Database migrations for Mission Control, run at server start (`Migrator::up`).
//!
//! One file per migration; never edit one that has shipped, add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_init;
mod m20261201_000001_task_search;
mod m20261202_000001_users;
mod m20261202_000002_revoked_tokens;
mod m20261202_000003_api_keys_audit;
mod m20261202_000004_task_runs;
mod m20261202_000005_schedules;
mod m20261202_000006_alerts;

pub use m20261201_000001_task_search::search_text;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_init::Migration),
            Box::new(m20261201_000001_task_search::Migration),
            Box::new(m20261202_000001_users::Migration),
            Box::new(m20261202_000002_revoked_tokens::Migration),
            Box::new(m20261202_000003_api_keys_audit::Migration),
            Box::new(m20261202_000004_task_runs::Migration),
            Box::new(m20261202_000005_schedules::Migration),
            Box::new(m20261202_000006_alerts::Migration),
        ]
    }
}
