//! `cargo run -p migration -- up|down|status`: run migrations by hand against `DATABASE_URL`.

use migration::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::Database;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://mission-control.db?mode=rwc".into());
    let db = Database::connect(&url).await?;
    match std::env::args().nth(1).as_deref() {
        Some("up") | None => Migrator::up(&db, None).await?,
        Some("down") => Migrator::down(&db, Some(1)).await?,
        Some("fresh") => Migrator::fresh(&db).await?,
        Some("status") => Migrator::status(&db).await?,
        Some(other) => return Err(format!("unknown command {other}; use up, down, fresh or status").into()),
    }
    Ok(())
}
