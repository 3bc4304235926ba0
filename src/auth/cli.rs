//! `mission-control user add|list`: account management from the command line, for first setup
//! and scripts, on the database the server would use.

use std::io::{BufRead, Write};

use sea_orm::TransactionTrait;

use super::{Actor, Role, users};
use crate::audit::{self, Change};
use crate::error::AppResult;
use crate::time::from_millis;

/// `mission-control user …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Creates an account; the password (at least 12 characters) is read from standard input.
    Add {
        username: String,
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
    },
    /// Lists the accounts.
    List,
}

/// Runs `command` against `database_url`, writing what it did to `out`; the password of
/// `add` is the first line of `input`.
pub async fn run(
    database_url: &str,
    command: &UserCommand,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<(), String> {
    let db = crate::db::connect(database_url, 1).await.map_err(|e| format!("cannot open the database: {e}"))?;
    match command {
        UserCommand::Add { username, role } => {
            let role = Role::parse(role).ok_or("the role is admin, operator or viewer")?;
            let mut password = String::new();
            input.read_line(&mut password).map_err(|e| format!("cannot read the password: {e}"))?;
            let password = password.trim_end_matches(['\n', '\r']);
            // The server's own change, audited in the same transaction.
            let created = async {
                let hash = users::new_password(password).await?;
                let txn = db.begin().await?;
                let row = users::create(&txn, username, hash, role).await?;
                let change = Change::new("user.create").target("user", &row.id).after(users::audited(&row));
                audit::record_now(&txn, &Actor::system(), change).await?;
                txn.commit().await?;
                AppResult::Ok(row)
            };
            let row = created.await.map_err(|e| e.public_message())?;
            writeln!(out, "created {} ({}), id {}", row.username, row.role, row.id).map_err(|e| e.to_string())?;
        }
        UserCommand::List => {
            for row in users::list(&db).await.map_err(|e| e.public_message())? {
                let state = if row.disabled { "disabled" } else { "enabled" };
                let last = row.last_login_at.map_or_else(|| "never".to_owned(), |t| from_millis(t).to_rfc3339());
                writeln!(out, "{}\t{}\t{}\tlast login {}", row.username, row.role, state, last)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::EntityTrait;

    #[tokio::test]
    async fn user_add_creates_an_audited_account_that_user_list_shows() {
        let dir = std::env::temp_dir().join(format!("mc-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("mc.db").display());
        let add = UserCommand::Add { username: "ops-erin".into(), role: "operator".into() };
        let mut out = Vec::new();
        run(&url, &add, &mut "a long enough password\n".as_bytes(), &mut out).await.unwrap();
        assert!(String::from_utf8_lossy(&out).starts_with("created ops-erin (operator)"));
        let short = run(
            &url,
            &UserCommand::Add { username: "x".into(), role: "viewer".into() },
            &mut "short\n".as_bytes(),
            &mut Vec::new(),
        )
        .await;
        assert!(short.unwrap_err().contains("password"));
        let mut listed = Vec::new();
        run(&url, &UserCommand::List, &mut "".as_bytes(), &mut listed).await.unwrap();
        let listed = String::from_utf8(listed).unwrap();
        assert!(listed.starts_with("ops-erin\toperator\tenabled\tlast login never"), "{listed}");
        assert_eq!(listed.lines().count(), 1, "the refused account is not there");

        let db = crate::db::connect(&url, 1).await.unwrap();
        let entries = crate::entity::audit_entry::Entity::find().all(&db).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].actor.as_str(), entries[0].action.as_str()), ("system", "user.create"));
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }
}
