//! Durability: a change is acknowledged only once committed, so killing the server with
//! SIGKILL under write load loses no acknowledged change (and leaves no half-made one).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn kill_9_under_write_load_loses_no_acknowledged_task() {
    let workdir = std::env::temp_dir().join(format!("mc-kill-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let env = [("DATABASE_URL", fresh_database_url().await), ("MC_AGENT_RUNTIME", "none".to_owned())];
    let mut server = start(&env, &workdir).await;
    let client = reqwest::Client::new();
    let token = login_at(&client, &server.url(), PASSWORD).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..16 {
        let (client, url, token, acknowledged) =
            (client.clone(), server.url(), token.clone(), Arc::clone(&acknowledged));
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let query = "mutation($t: String!) { createTask(input: {title: $t, tags: [\"kill\"]}) { id } }";
                let request = client
                    .post(format!("{url}/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({ "query": query, "variables": { "t": format!("w{w}-{i}") } }));
                let Ok(response) = request.send().await else { return };
                let Ok(body) = response.json::<serde_json::Value>().await else { return };
                if let Some(id) = body["data"]["createTask"]["id"].as_str() {
                    acknowledged.lock().unwrap().push(id.to_owned());
                }
            }
        }));
    }
    // Kill once a good number of writes went through.
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().await.unwrap(); // SIGKILL
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let server = start(&env, &workdir).await;
    let token = login_at(&client, &server.url(), PASSWORD).await;
    let mut stored = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let query = "query($a: String) { tasks(first: 100, after: $a) { pageInfo { hasNextPage endCursor } edges { node { id } } } }";
        let (_, body) = post_graphql(&client, &server.url(), Some(&token), query, json!({ "a": after })).await;
        let page = &body["data"]["tasks"];
        stored.extend(node_strings(page, "id"));
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged tasks lost: {lost:?}", lost.len(), acknowledged.len());
    // Every stored task is whole: it has its activity row (one per task).
    let feed = "{ feed(filter: {type: TASK}) { totalCount } }";
    let (_, body) = post_graphql(&client, &server.url(), Some(&token), feed, json!({})).await;
    assert_eq!(body["data"]["feed"]["totalCount"], stored.len(), "a task without its activity row, or the reverse");
    let _ = std::fs::remove_dir_all(&workdir);
}
