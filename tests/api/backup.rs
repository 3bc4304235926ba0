//! `mission-control backup` and `restore`, as an operator runs them: a backup taken while
//! writes go on holds every task acknowledged before it began, restores into a fresh database
//! that a server then runs on, and a file that is not a backup changes nothing.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::helpers::*;

/// Runs the binary with `args` on `database_url`; whether it succeeded, and its stdout + stderr.
async fn run(args: &[&str], database_url: &str) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mission-control"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .await
        .expect("run mission-control");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Every task id on `app`.
async fn task_ids(app: &TestApp) -> HashSet<String> {
    let query = "query($a: String) { tasks(first: 100, after: $a) { edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let mut ids = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.ok(query, json!({ "a": after })).await["tasks"].clone();
        ids.extend(node_strings(&page, "id"));
        if page["pageInfo"]["hasNextPage"] != true {
            return ids;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

fn backup_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mc-backup-{name}-{}.jsonl", uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn a_backup_under_write_load_restores_every_acknowledged_task_into_a_working_database() {
    let source = fresh_database_url().await;
    let app = spawn_app_on(&source, true, |_| {}, None).await;
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, address, token) = (app.client.clone(), app.address.clone(), app.token.clone());
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let q = "mutation($t: String!) { createTask(input: {title: $t, tags: [\"load\"]}) { id } }";
                let (_, body) =
                    post_graphql(&client, &address, Some(&token), q, json!({ "t": format!("load {w}-{i}") })).await;
                if let Some(id) = body["data"]["createTask"]["id"].as_str() {
                    acked.lock().unwrap().push((id.to_owned(), Instant::now()));
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let file = backup_file("load");
    let began = Instant::now();
    let (ok, out) = run(&["backup", file.to_str().unwrap()], &source).await;
    assert!(ok, "{out}");
    assert!(out.contains("backed up"), "{out}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before: HashSet<String> = acked.iter().filter(|(_, at)| *at < began).map(|(id, _)| id.clone()).collect();
    let all: HashSet<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    assert!(before.len() > 10, "the load was running: {} tasks before the backup", before.len());
    assert!(all.len() > before.len(), "and went on during it");

    let target = fresh_database_url().await;
    let (ok, out) = run(&["restore", file.to_str().unwrap()], &target).await;
    assert!(ok, "{out}");
    let restored = spawn_app_on(&target, true, |_| {}, None).await;
    let ids = task_ids(&restored).await;
    assert!(before.is_subset(&ids), "{} acknowledged before the backup are missing", before.difference(&ids).count());
    assert!(ids.is_subset(&all), "nothing that was never acknowledged");
    // The restored database works as any other: search, the feed, new writes after the old ids.
    let found = restored.ok("{ tasks(filter: {search: \"load\"}, first: 1) { totalCount } }", json!({})).await;
    assert_eq!(found["tasks"]["totalCount"], ids.len());
    let feed = feed_ids_oldest_first(&restored.client, &restored.address, &restored.token).await;
    assert!(feed.len() >= ids.len(), "each task's activity came along");
    let newest: i64 = feed.last().unwrap().parse().unwrap();
    restored.create_task(json!({ "title": "after the restore" })).await;
    let feed = feed_ids_oldest_first(&restored.client, &restored.address, &restored.token).await;
    assert!(feed.last().unwrap().parse::<i64>().unwrap() > newest, "ids go on after the restored ones");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn restore_refuses_a_non_empty_database_without_force_and_a_file_that_is_not_a_backup() {
    let source = fresh_database_url().await;
    let app = spawn_app_on(&source, true, |_| {}, None).await;
    app.create_task(json!({ "title": "kept" })).await;
    let file = backup_file("refuse");
    assert!(run(&["backup", file.to_str().unwrap()], &source).await.0);

    let target = fresh_database_url().await;
    let other = spawn_app_on(&target, false, |_| {}, None).await;
    let theirs = other.create_task(json!({ "title": "theirs" })).await;
    drop(other);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ok, out) = run(&["restore", file.to_str().unwrap()], &target).await;
    assert!(!ok && out.contains("not empty") && out.contains("--force"), "{out}");

    // Not backups: changes nothing.
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let (ok, out) = run(&["restore", readme.to_str().unwrap()], &target).await;
    assert!(!ok && out.contains("is not a Mission Control backup"), "{out}");
    let cut = backup_file("cut");
    let whole = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&cut, &whole[..whole.trim_end().rfind('\n').unwrap()]).unwrap();
    let (ok, out) = run(&["restore", "--force", cut.to_str().unwrap()], &target).await;
    assert!(!ok && out.contains("cut short"), "{out}");
    let check = spawn_app_on(&target, false, |_| {}, None).await;
    assert_eq!(task_ids(&check).await, HashSet::from([theirs]), "the refused restores changed nothing");
    drop(check);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (ok, out) = run(&["restore", "--force", file.to_str().unwrap()], &target).await;
    assert!(ok, "{out}");
    let replaced = spawn_app_on(&target, true, |_| {}, None).await;
    let titles = replaced.ok("{ tasks { edges { node { title } } } }", json!({})).await;
    assert_eq!(node_strings(&titles["tasks"], "title"), ["kept"], "--force replaces what was there");
    for f in [file, cut] {
        let _ = std::fs::remove_file(f);
    }
}

#[tokio::test]
async fn a_backup_holds_every_table_the_migrations_make() {
    let url = fresh_database_url().await;
    let db = mission_control::db::connect(&url, 1).await.unwrap();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    };
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.unwrap();
    let mut made: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect();
    // The migrations' own ledger, and SQLite's full-text index (rebuilt from task_search by triggers).
    made.retain(|t| t != "seaql_migrations" && !t.starts_with("task_search_fts"));
    made.sort();
    let mut held: Vec<String> = mission_control::backup::tables().iter().map(|t| t.name.to_owned()).collect();
    held.sort();
    assert_eq!(held, made);
}

#[tokio::test]
async fn scheduled_backups_are_written_and_only_the_newest_kept() {
    let dir = std::env::temp_dir().join(format!("mc-backups-{}", uuid::Uuid::new_v4()));
    let into = dir.clone();
    let app = spawn_app_with(
        move |c| {
            c.backup_every = Some(Duration::from_millis(1100));
            c.backup_dir = Some(into);
            c.backup_keep = 2;
        },
        None,
    )
    .await;
    app.create_task(json!({ "title": "in every backup" })).await;
    let files = || {
        let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while files().len() < 2 || Instant::now() < deadline - Duration::from_secs(6) {
        assert!(Instant::now() < deadline, "no backups in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopped, so that no newer backup prunes the one restored below.
    drop(app);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kept = files();
    assert_eq!(kept.len(), 2, "the newest two: {kept:?}");
    let newest = kept.last().unwrap();
    assert!(newest.file_name().unwrap().to_str().unwrap().starts_with("mission-control-"));
    let target = fresh_database_url().await;
    let (ok, out) = run(&["restore", newest.to_str().unwrap()], &target).await;
    assert!(ok, "{out}");
    let restored = spawn_app_on(&target, true, |_| {}, None).await;
    assert_eq!(task_ids(&restored).await.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
