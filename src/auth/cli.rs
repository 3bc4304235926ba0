//! `mission-control user add|list`: account management from the command line, for first setup
//! and scripts, on the database the server would use.

use std::io::{BufRead, Write};

use super::Role;
use super::users;
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
            let row = users::create(&db, username, password, role).await.map_err(|e| e.public_message())?;
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
