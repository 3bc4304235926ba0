//! The activity feed and its stats: one row per committed mutation.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn every_mutation_writes_exactly_one_activity() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "one" })).await;
    app.ok("mutation($id: ID!) { updateTask(id: $id, input: {status: REVIEW}) { id } }", json!({ "id": id })).await;
    app.ok("mutation($id: ID!) { addComment(taskId: $id, content: \"looks good\") { id } }", json!({ "id": id })).await;
    app.ok("mutation { recordAgentMetrics(agentId: \"agent:x\", input: {tokens: 10, cost: 0.5}) { id } }", json!({}))
        .await;
    app.ok("mutation($id: ID!) { deleteTask(id: $id) }", json!({ "id": id })).await;

    let feed = app
        .ok("{ feed { totalCount edges { node { type actor action targetType targetId metadata } } } }", json!({}))
        .await;
    assert_eq!(feed["feed"]["totalCount"], 5);
    let actions: Vec<(String, String)> = feed["feed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["node"]["type"].as_str().unwrap().to_owned(), e["node"]["action"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("TASK", "deleted"),
        ("AGENT", "metrics_recorded"),
        ("COMMENT", "commented"),
        ("TASK", "updated"),
        ("TASK", "created"),
    ];
    assert_eq!(actions, expected.map(|(t, a)| (t.to_owned(), a.to_owned())), "newest first");
    let update = &feed["feed"]["edges"][3]["node"];
    assert_eq!(update["actor"], "admin");
    assert_eq!(update["targetType"], "task");
    assert_eq!(update["targetId"], id.as_str());
    assert_eq!(update["metadata"]["from"], "TODO");
    assert_eq!(update["metadata"]["to"], "REVIEW");
}

#[tokio::test]
async fn feed_filters_and_pages() {
    let app = spawn_app().await;
    let a = app.create_task(json!({ "title": "a" })).await;
    let b = app.create_task(json!({ "title": "b" })).await;
    app.ok("mutation($id: ID!) { addComment(taskId: $id, content: \"hi\") { id } }", json!({ "id": a })).await;
    let q = "query($f: FeedFilter, $n: Int, $a: String) { feed(filter: $f, first: $n, after: $a) { totalCount edges { cursor node { id type targetId } } pageInfo { hasNextPage endCursor } } }";
    let count = |v: &Value| v["feed"]["totalCount"].as_i64().unwrap();
    assert_eq!(count(&app.ok(q, json!({ "f": { "type": "COMMENT" } })).await), 1);
    assert_eq!(count(&app.ok(q, json!({ "f": { "targetId": a } })).await), 2);
    assert_eq!(count(&app.ok(q, json!({ "f": { "actor": "admin" } })).await), 3);
    assert_eq!(count(&app.ok(q, json!({ "f": { "actor": "nobody" } })).await), 0);
    assert_eq!(count(&app.ok(q, json!({ "f": { "since": "2000-01-01T00:00:00Z" } })).await), 3);
    assert_eq!(count(&app.ok(q, json!({ "f": { "since": "2999-01-01T00:00:00Z" } })).await), 0);

    let first = app.ok(q, json!({ "n": 2 })).await;
    assert_eq!(first["feed"]["pageInfo"]["hasNextPage"], true);
    let second = app.ok(q, json!({ "n": 2, "a": first["feed"]["pageInfo"]["endCursor"] })).await;
    assert_eq!(second["feed"]["pageInfo"]["hasNextPage"], false);
    let ids: Vec<&Value> = first["feed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["feed"]["edges"].as_array().unwrap())
        .map(|e| &e["node"]["targetId"])
        .collect();
    assert_eq!(ids, [&json!(a), &json!(b), &json!(a)], "newest first, no overlap");
}

#[tokio::test]
async fn feed_stats_count_activities_tasks_and_metrics() {
    let app = spawn_app().await;
    let a = app.create_task(json!({ "title": "a", "status": "DONE" })).await;
    app.create_task(json!({ "title": "b" })).await;
    app.create_task(json!({ "title": "c" })).await;
    app.ok("mutation($id: ID!) { addComment(taskId: $id, content: \"hi\") { id } }", json!({ "id": a })).await;
    app.ok(
        "mutation { recordAgentMetrics(agentId: \"agent:x\", input: {tokens: 1500, cost: 0.25}) { id } }",
        json!({}),
    )
    .await;
    app.ok("mutation { recordAgentMetrics(agentId: \"agent:y\", input: {tokens: 500, cost: 0.5}) { id } }", json!({}))
        .await;
    let stats = app.ok("{ feedStats { totalActivities recent24h byType { key count } byActor { key count } tasksByStatus { key count } activeAgents totalTokens totalCost } }", json!({})).await["feedStats"].clone();
    assert_eq!(stats["totalActivities"], 6);
    assert_eq!(stats["recent24h"], 6);
    assert_eq!(
        stats["byType"],
        json!([{ "key": "TASK", "count": 3 }, { "key": "AGENT", "count": 2 }, { "key": "COMMENT", "count": 1 }])
    );
    assert_eq!(stats["byActor"], json!([{ "key": "admin", "count": 6 }]));
    assert_eq!(stats["tasksByStatus"], json!([{ "key": "TODO", "count": 2 }, { "key": "DONE", "count": 1 }]));
    assert_eq!(stats["activeAgents"], 0);
    assert_eq!(stats["totalTokens"], 2000);
    assert_eq!(stats["totalCost"], 0.75);
}
