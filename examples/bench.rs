//! Benchmark: the task board at 100,000 tasks, measured through the real server over HTTP.
//!
//! `cargo run --release --example bench [-- TASKS [DATABASE_URL]]` seeds a fresh database
//! (SQLite temp file by default), starts the server on 127.0.0.1:0 and reports latency
//! percentiles per query. Numbers only: nothing here asserts a speed.

use std::time::{Duration, Instant};

use mission_control::config::Config;
use mission_control::entity::{task, task_search, task_tag};
use mission_control::startup::App;
use sea_orm::{EntityTrait, Set, TransactionTrait};
use serde_json::{Value, json};

const STATUSES: [&str; 5] = ["TODO", "IN_PROGRESS", "REVIEW", "DONE", "BLOCKED"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let url = args.next().unwrap_or_else(|| {
        let path = std::env::temp_dir().join(format!("mc-bench-{}.db", uuid::Uuid::new_v4()));
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let mut config = Config::for_tests(&url);
    config.jwt_secret = Some("bench-secret-bench-secret-bench-secret".into());
    config.request_rate_limit = u32::MAX;
    let app = App::build(config).await?;
    let port = app.port();
    let db = app.state().db.clone();

    let seeded = Instant::now();
    let base = chrono::Utc::now().timestamp_millis() - n as i64 * 1000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let txn = db.begin().await?;
        let mut tags = Vec::new();
        let mut search = Vec::new();
        let rows: Vec<task::ActiveModel> = chunk
            .iter()
            .map(|&i| {
                let id = uuid::Uuid::now_v7().to_string();
                let tag = format!("tag{}", i % 50);
                tags.push(task_tag::ActiveModel { task_id: Set(id.clone()), tag: Set(tag.clone()) });
                let due = (i % 3 == 0).then_some(base + i as i64 * 5000);
                let title = format!("Task {i} {}", if i % 997 == 0 { "Nëedle" } else { "hay" });
                let description = format!("Description of task {i}");
                let text = migration::search_text(&title, Some(&description));
                search.push(task_search::ActiveModel { task_id: Set(id.clone()), text: Set(text) });
                task::ActiveModel {
                    id: Set(id),
                    title: Set(title),
                    description: Set(Some(description)),
                    status: Set(STATUSES[i % 5].to_owned()),
                    priority: Set((i % 4) as i16),
                    assigned_agent: Set(Some(format!("agent:main:subagent:{}", i % 20))),
                    created_at: Set(base + i as i64 * 1000),
                    updated_at: Set(base + i as i64 * 1000),
                    due_date: Set(due),
                    due_sort: Set(due.unwrap_or(i64::MAX)),
                    tags: Set(format!("[\"tag{}\"]", i % 50)),
                    metadata: Set(None),
                    comment_count: Set(0),
                    ..Default::default()
                }
            })
            .collect();
        task::Entity::insert_many(rows).exec(&txn).await?;
        task_tag::Entity::insert_many(tags).exec(&txn).await?;
        task_search::Entity::insert_many(search).exec(&txn).await?;
        txn.commit().await?;
    }
    println!("seeded {n} tasks in {:.1} s ({url})", seeded.elapsed().as_secs_f64());

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let base_url = format!("http://127.0.0.1:{port}");
    let login: Value = client
        .post(format!("{base_url}/api/auth/login"))
        .json(&json!({ "password": "admin123" }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().ok_or("no token")?.to_owned();

    let run = |query: String, variables: Value| {
        let (client, token, url) = (client.clone(), token.clone(), format!("{base_url}/graphql"));
        async move {
            let response: Value = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            assert!(response.get("errors").is_none(), "{response}");
            response
        }
    };
    // A cursor 100 pages deep, for keyset paging cost.
    let mut cursor = Value::Null;
    for _ in 0..100 {
        let page = run(
            "query($a: String) { tasks(first: 100, after: $a) { pageInfo { endCursor } } }".into(),
            json!({ "a": cursor }),
        )
        .await;
        cursor = page["data"]["tasks"]["pageInfo"]["endCursor"].clone();
    }

    let cases: Vec<(&str, String, Value)> = vec![
        ("first page (50, newest first)", "{ tasks { edges { node { id title status } } } }".into(), json!({})),
        ("first page with comments + agents", "{ tasks { edges { node { id comments { id } agent { id } } } } }".into(), json!({})),
        ("status filter + created order", "{ tasks(filter: {status: [TODO]}) { edges { node { id } } } }".into(), json!({})),
        ("status filter + priority order", "{ tasks(filter: {status: [BLOCKED]}, orderBy: {field: PRIORITY, direction: DESC}) { edges { node { id } } } }".into(), json!({})),
        ("two statuses + due date order", "{ tasks(filter: {status: [TODO, REVIEW]}, orderBy: {field: DUE_DATE, direction: ASC}) { edges { node { id } } } }".into(), json!({})),
        ("agent filter", "{ tasks(filter: {assignedAgent: \"agent:main:subagent:7\"}) { edges { node { id } } } }".into(), json!({})),
        ("tag filter", "{ tasks(filter: {tag: \"tag7\"}) { edges { node { id } } } }".into(), json!({})),
        ("text search (trigram index)", "{ tasks(filter: {search: \"NËEDLE\"}) { edges { node { id } } } }".into(), json!({})),
        ("text search, 2 letters (scans)", "{ tasks(filter: {search: \"ëe\"}) { edges { node { id } } } }".into(), json!({})),
        ("page 101 by keyset cursor", "query($a: String) { tasks(first: 50, after: $a) { edges { node { id } } } }".into(), json!({ "a": cursor })),
        ("totalCount with status filter", "{ tasks(filter: {status: [DONE]}) { totalCount } }".into(), json!({})),
        ("createTask (with activity row)", "mutation { createTask(input: {title: \"bench\", tags: [\"x\"]}) { id } }".into(), json!({})),
        ("feedStats", "{ feedStats { totalActivities tasksByStatus { key count } } }".into(), json!({})),
    ];
    println!("\n{:<34} {:>9} {:>9} {:>9}", "query (through HTTP)", "p50 ms", "p95 ms", "max ms");
    for (name, query, variables) in cases {
        let mut samples: Vec<Duration> = Vec::new();
        for i in 0..60 {
            let started = Instant::now();
            run(query.clone(), variables.clone()).await;
            if i >= 10 {
                samples.push(started.elapsed());
            }
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let p = |q: f64| ms(samples[((samples.len() - 1) as f64 * q) as usize]);
        println!("{name:<34} {:>9.2} {:>9.2} {:>9.2}", p(0.5), p(0.95), ms(samples[samples.len() - 1]));
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
