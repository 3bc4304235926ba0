//! The `mission-control` binary: parse config, init tracing, build the app, serve until a signal.

use std::process::ExitCode;

use mission_control::config::{Command, Config};
use mission_control::startup::App;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::load();
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // A command's output is on stdout; its log goes to stderr.
    if config.command.is_some() {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    if let Some(Command::User(command)) = &config.command {
        let (mut input, mut out) = (std::io::stdin().lock(), std::io::stdout().lock());
        return match mission_control::auth::cli::run(&config.database_url, command, &mut input, &mut out).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("mission-control: {err}");
                ExitCode::FAILURE
            }
        };
    }

    if let Some(command @ (Command::Backup { .. } | Command::Restore { .. })) = &config.command {
        return copy(&config.database_url, command).await;
    }

    let app = match App::build(config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!("cannot start: {err}");
            eprintln!("mission-control: {err}");
            return ExitCode::FAILURE;
        }
    };
    let port = app.port();
    tracing::info!(
        "listening on port {port}: GraphiQL at http://127.0.0.1:{port}/graphql (log in at POST /api/auth/login)"
    );
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `backup FILE` and `restore FILE [--force]`.
async fn copy(database_url: &str, command: &Command) -> ExitCode {
    let db = match mission_control::db::connect(database_url, 2).await {
        Ok(db) => db,
        Err(err) => {
            eprintln!("mission-control: cannot open the database: {err}");
            return ExitCode::FAILURE;
        }
    };
    let done = match command {
        Command::Backup { file } => mission_control::backup::backup(&db, file)
            .await
            .map(|s| println!("backed up {} rows of {} tables to {}", s.rows, s.tables, file.display())),
        Command::Restore { file, force } => mission_control::backup::restore(&db, file, *force)
            .await
            .map(|s| println!("restored {} rows of {} tables from {}", s.rows, s.tables, file.display())),
        Command::User(_) => Ok(()),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mission-control: {err}");
            ExitCode::FAILURE
        }
    }
}
