//! Tasks and comments: every query and mutation, validation, pagination and rollback.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

const TASK_FIELDS: &str = "id title description status priority assignedAgent createdAt updatedAt dueDate tags metadata commentCount comments { id taskId author content createdAt }";

#[tokio::test]
async fn create_then_read_round_trips_every_field() {
    let app = spawn_app().await;
    let metadata = json!({ "zeta": 1, "alpha": { "nested": [1, "two", null, true] }, "émoji": "🚀" });
    let data = app
        .ok(
            &format!("mutation($i: CreateTaskInput!) {{ createTask(input: $i) {{ {TASK_FIELDS} }} }}"),
            json!({ "i": {
                "title": "  Write the docs  ",
                "description": "All of them",
                "status": "IN_PROGRESS",
                "priority": "URGENT",
                "assignedAgent": "agent:main:main",
                "dueDate": "2030-01-02T03:04:05Z",
                "tags": ["docs", "q1", "docs-2"],
                "metadata": metadata,
            }}),
        )
        .await;
    let task = &data["createTask"];
    assert_eq!(task["title"], "Write the docs", "titles are trimmed");
    assert_eq!(task["status"], "IN_PROGRESS");
    assert_eq!(task["priority"], "URGENT");
    assert_eq!(task["assignedAgent"], "agent:main:main");
    assert_eq!(task["dueDate"], "2030-01-02T03:04:05+00:00");
    assert_eq!(task["tags"], json!(["docs", "q1", "docs-2"]));
    assert_eq!(task["metadata"], metadata);
    assert_eq!(
        serde_json::to_string(&task["metadata"]).unwrap(),
        serde_json::to_string(&metadata).unwrap(),
        "key order kept"
    );
    assert_eq!(task["commentCount"], 0);

    let id = task["id"].as_str().unwrap();
    let read = app.ok(&format!("query($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"), json!({ "id": id })).await;
    assert_eq!(read["task"], *task);
}

#[tokio::test]
async fn defaults_are_todo_medium_and_empty() {
    let app = spawn_app().await;
    let data = app.ok("mutation { createTask(input: {title: \"t\"}) { status priority tags metadata description dueDate agent { id } } }", json!({})).await;
    assert_eq!(
        data["createTask"],
        json!({ "status": "TODO", "priority": "MEDIUM", "tags": [], "metadata": null, "description": null, "dueDate": null, "agent": null })
    );
}

#[tokio::test]
async fn absent_task_is_null_and_malformed_id_is_bad_input() {
    let app = spawn_app().await;
    let data = app.ok("{ task(id: \"00000000-0000-7000-8000-000000000000\") { id } }", json!({})).await;
    assert!(data["task"].is_null());
    let body = app.graphql("{ task(id: \"not-an-id\") { id } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(error_message(&body).contains("id"));
}

#[tokio::test]
async fn update_changes_only_given_fields_and_moves_updated_at() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "a", "description": "keep me?", "tags": ["x"], "assignedAgent": "bot", "metadata": {"k": 1} })).await;
    let before = app.ok(&format!("query($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"), json!({ "id": id })).await
        ["task"]
        .clone();

    let after = app
        .ok(
            &format!(
                "mutation($id: ID!, $i: UpdateTaskInput!) {{ updateTask(id: $id, input: $i) {{ {TASK_FIELDS} }} }}"
            ),
            json!({ "id": id, "i": { "title": "b", "description": null, "status": "DONE" } }),
        )
        .await["updateTask"]
        .clone();
    assert_eq!(after["title"], "b");
    assert!(after["description"].is_null(), "null clears");
    assert_eq!(after["status"], "DONE");
    for unchanged in ["priority", "assignedAgent", "tags", "metadata", "createdAt", "dueDate"] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged} must not change");
    }
    assert!(after["updatedAt"].as_str().unwrap() > before["updatedAt"].as_str().unwrap());
}

#[tokio::test]
async fn update_and_delete_of_a_missing_task_are_not_found() {
    let app = spawn_app().await;
    let missing = "00000000-0000-7000-8000-000000000001";
    let body = app
        .graphql("mutation($id: ID!) { updateTask(id: $id, input: {title: \"x\"}) { id } }", json!({ "id": missing }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app.graphql("mutation($id: ID!) { deleteTask(id: $id) }", json!({ "id": missing })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .graphql("mutation($id: ID!) { addComment(taskId: $id, content: \"hi\") { id } }", json!({ "id": missing }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(app.ok("{ feed { totalCount } }", json!({})).await["feed"]["totalCount"], 0);
}

#[tokio::test]
async fn comments_are_oldest_first_and_counted_and_go_with_their_task() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "discuss" })).await;
    let q = "mutation($t: ID!, $c: String!, $a: String) { addComment(taskId: $t, content: $c, author: $a) { id taskId author content } }";
    let first = app.ok(q, json!({ "t": id, "c": "first" })).await["addComment"].clone();
    assert_eq!(first["author"], "admin", "author defaults to the caller");
    assert_eq!(first["taskId"], id.as_str());
    app.ok(q, json!({ "t": id, "c": "second", "a": "bob" })).await;
    app.ok(q, json!({ "t": id, "c": "third" })).await;
    let task = app
        .ok("query($id: ID!) { task(id: $id) { commentCount comments { content author } } }", json!({ "id": id }))
        .await;
    assert_eq!(task["task"]["commentCount"], 3);
    let contents: Vec<&str> =
        task["task"]["comments"].as_array().unwrap().iter().map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["first", "second", "third"]);
    assert_eq!(task["task"]["comments"][1]["author"], "bob");

    let deleted = app.ok("mutation($id: ID!) { deleteTask(id: $id) }", json!({ "id": id })).await;
    assert_eq!(deleted["deleteTask"], id.as_str());
    assert!(app.ok("query($id: ID!) { task(id: $id) { id } }", json!({ "id": id })).await["task"].is_null());
    use sea_orm::{EntityTrait, PaginatorTrait};
    let left = mission_control::entity::comment::Entity::find().count(&app.db).await.unwrap();
    assert_eq!(left, 0, "comments are deleted with their task");
}

#[tokio::test]
async fn validation_errors_name_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let create = "mutation($i: CreateTaskInput!) { createTask(input: $i) { id } }";
    let cases = [
        (json!({ "title": "" }), "title"),
        (json!({ "title": "   " }), "title"),
        (json!({ "title": "x".repeat(201) }), "title"),
        (json!({ "title": "ok", "description": "d".repeat(10_001) }), "description"),
        (json!({ "title": "ok", "tags": vec!["t"; 51] }), "tags"),
        (json!({ "title": "ok", "tags": ["x".repeat(51)] }), "tags"),
        (json!({ "title": "ok", "metadata": { "blob": "m".repeat(17 * 1024) } }), "metadata"),
        (json!({ "title": "ok", "dueDate": "0001-01-01T00:00:00Z" }), "dueDate"),
    ];
    for (input, field) in cases {
        let body = app.graphql(create, json!({ "i": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}");
        assert!(error_message(&body).contains(field), "message names {field}: {body}");
    }
    // Exactly 200 characters is fine.
    app.create_task(json!({ "title": "x".repeat(200) })).await;

    let body = app.graphql(create, json!({ "i": { "title": "ok", "status": "SOMEDAY" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "unknown enum: {body}");
    let body = app.graphql(create, json!({ "i": { "title": "ok", "dueDate": "next tuesday" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "bad date: {body}");
    let id = app.create_task(json!({ "title": "c" })).await;
    let body = app
        .graphql(
            "mutation($t: ID!, $c: String!) { addComment(taskId: $t, content: $c) { id } }",
            json!({ "t": id, "c": "c".repeat(10_001) }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    for first in [0, 101, -1] {
        let body = app.graphql("query($f: Int) { tasks(first: $f) { totalCount } }", json!({ "f": first })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert!(error_message(&body).contains("first"));
    }
    let body = app.graphql("{ tasks(after: \"bogus!\") { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(error_message(&body).contains("cursor"));

    let stats = app.ok("{ tasks { totalCount } feed { totalCount } }", json!({})).await;
    assert_eq!(stats["tasks"]["totalCount"], 2, "only the two valid creates landed");
    assert_eq!(stats["feed"]["totalCount"], 2);
}

#[tokio::test]
async fn a_failure_mid_update_rolls_back_every_write() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "keep", "tags": ["old"] })).await;
    // Tags are written inside the transaction before the metadata is refused.
    let body = app
        .graphql(
            "mutation($id: ID!, $i: UpdateTaskInput!) { updateTask(id: $id, input: $i) { id } }",
            json!({ "id": id, "i": { "title": "changed", "tags": ["new"], "metadata": { "x": "m".repeat(20_000) } } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let task = app.ok("query($id: ID!) { task(id: $id) { title tags } }", json!({ "id": id })).await;
    assert_eq!(task["task"], json!({ "title": "keep", "tags": ["old"] }));
    let by_tag = app.ok("{ tasks(filter: {tag: \"new\"}) { totalCount } }", json!({})).await;
    assert_eq!(by_tag["tasks"]["totalCount"], 0, "tag rows rolled back");
    assert_eq!(
        app.ok("{ feed { totalCount } }", json!({})).await["feed"]["totalCount"],
        1,
        "no activity for the failure"
    );
}

#[tokio::test]
async fn filters_match_status_priority_agent_tag_and_search() {
    let app = spawn_app().await;
    app.create_task(json!({ "title": "Fix LOGIN bug", "status": "TODO", "priority": "HIGH", "tags": ["auth"], "assignedAgent": "a1" })).await;
    app.create_task(json!({ "title": "Write docs", "description": "explain the login flow", "status": "DONE", "priority": "LOW", "tags": ["docs"] })).await;
    app.create_task(json!({ "title": "Refactor 100% of it_all", "status": "BLOCKED", "priority": "URGENT", "tags": ["auth", "tech-debt"], "assignedAgent": "a2" })).await;

    let titles = |data: &Value| -> HashSet<String> { node_strings(&data["tasks"], "title").into_iter().collect() };
    let q = "query($f: TaskFilter) { tasks(filter: $f) { totalCount edges { node { title } } } }";
    let run = |f: Value| {
        let app = &app;
        async move { app.ok(q, json!({ "f": f })).await }
    };
    let d = run(json!({ "status": ["TODO", "BLOCKED"] })).await;
    assert_eq!(titles(&d), HashSet::from(["Fix LOGIN bug".into(), "Refactor 100% of it_all".into()]));
    assert_eq!(d["tasks"]["totalCount"], 2);
    assert_eq!(titles(&run(json!({ "priority": ["LOW"] })).await), HashSet::from(["Write docs".into()]));
    assert_eq!(titles(&run(json!({ "assignedAgent": "a2" })).await), HashSet::from(["Refactor 100% of it_all".into()]));
    assert_eq!(run(json!({ "tag": "auth" })).await["tasks"]["totalCount"], 2);
    assert_eq!(run(json!({ "tag": "nope" })).await["tasks"]["totalCount"], 0);
    assert_eq!(
        titles(&run(json!({ "search": "login" })).await),
        HashSet::from(["Fix LOGIN bug".into(), "Write docs".into()]),
        "title or description, any case"
    );
    assert_eq!(titles(&run(json!({ "search": "100%" })).await), HashSet::from(["Refactor 100% of it_all".into()]));
    assert_eq!(run(json!({ "search": "%" })).await["tasks"]["totalCount"], 1, "% is literal");
    assert_eq!(run(json!({ "search": "t_a" })).await["tasks"]["totalCount"], 1, "_ is literal");
    assert_eq!(run(json!({ "tag": "auth", "status": ["TODO"] })).await["tasks"]["totalCount"], 1, "filters combine");
}

#[tokio::test]
async fn ordering_by_priority_and_due_date() {
    let app = spawn_app().await;
    app.create_task(json!({ "title": "low", "priority": "LOW", "dueDate": "2031-01-01T00:00:00Z" })).await;
    app.create_task(json!({ "title": "urgent", "priority": "URGENT" })).await;
    app.create_task(json!({ "title": "high", "priority": "HIGH", "dueDate": "2030-01-01T00:00:00Z" })).await;
    let q = "query($o: TaskOrder) { tasks(orderBy: $o) { edges { node { title } } } }";
    let order = |data: Value| node_strings(&data["tasks"], "title");
    assert_eq!(
        order(app.ok(q, json!({ "o": { "field": "PRIORITY", "direction": "DESC" } })).await),
        ["urgent", "high", "low"]
    );
    assert_eq!(
        order(app.ok(q, json!({ "o": { "field": "DUE_DATE", "direction": "ASC" } })).await),
        ["high", "low", "urgent"],
        "no due date sorts last"
    );
    assert_eq!(order(app.ok(q, json!({})).await), ["high", "urgent", "low"], "newest first by default");
    assert_eq!(
        order(app.ok(q, json!({ "o": { "field": "CREATED_AT", "direction": "ASC" } })).await),
        ["low", "urgent", "high"]
    );
}

#[tokio::test]
async fn pagination_walks_every_task_once_in_order() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..23 {
        // Few distinct priorities, so most rows tie on the sort key and the id breaks ties.
        let priority = ["LOW", "HIGH"][i % 2];
        created.push(app.create_task(json!({ "title": format!("t{i}"), "priority": priority })).await);
    }
    for (order, expected_total) in [
        (json!({ "field": "PRIORITY", "direction": "ASC" }), 23),
        (json!({ "field": "CREATED_AT", "direction": "DESC" }), 23),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = app
                .ok(
                    "query($o: TaskOrder, $a: String) { tasks(orderBy: $o, first: 5, after: $a) { totalCount edges { cursor node { id priority } } pageInfo { hasNextPage hasPreviousPage endCursor } } }",
                    json!({ "o": order, "a": after }),
                )
                .await;
            let tasks = &page["tasks"];
            assert_eq!(tasks["totalCount"], expected_total);
            assert_eq!(tasks["pageInfo"]["hasPreviousPage"], after.is_some());
            for edge in tasks["edges"].as_array().unwrap() {
                seen.push((
                    edge["node"]["priority"].as_str().unwrap().to_owned(),
                    edge["node"]["id"].as_str().unwrap().to_owned(),
                ));
            }
            if tasks["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = Some(tasks["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        }
        let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(seen.len(), 23, "no gaps");
        assert_eq!(unique.len(), 23, "no duplicates");
        if order["field"] == "PRIORITY" {
            assert!(seen[..12].iter().all(|(p, _)| p == "LOW") && seen[12..].iter().all(|(p, _)| p == "HIGH"));
        } else {
            let ids: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
            let mut newest_first = created.clone();
            newest_first.reverse();
            assert_eq!(ids, newest_first);
        }
    }
    // A cursor from one ordering is refused by another.
    let page = app.ok("{ tasks(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let cursor = page["tasks"]["pageInfo"]["endCursor"].as_str().unwrap();
    let body = app
        .graphql(
            "query($a: String) { tasks(orderBy: {field: PRIORITY, direction: ASC}, after: $a) { totalCount } }",
            json!({ "a": cursor }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn filtered_ordered_lists_are_answered_from_an_index_not_a_scan() {
    use mission_control::tasks::queries::list_query;
    use mission_control::tasks::types::{OrderDirection, TaskFilter, TaskOrder, TaskOrderField, TaskStatus};
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};

    let app = spawn_app().await;
    if app.db.get_database_backend() != DbBackend::Sqlite {
        return; // The plan check reads SQLite's EXPLAIN QUERY PLAN.
    }
    for i in 0..50 {
        let status = ["TODO", "DONE"][i % 2];
        app.create_task(json!({ "title": format!("t{i}"), "status": status, "assignedAgent": "a" })).await;
    }
    let page = app.ok("{ tasks(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let cursor = page["tasks"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let by = |field| TaskOrder { field, direction: OrderDirection::Desc };
    let todo = || TaskFilter { status: Some(vec![TaskStatus::Todo]), ..Default::default() };
    let cases = [
        (todo(), by(TaskOrderField::CreatedAt), None, "idx_tasks_status_created"),
        (todo(), by(TaskOrderField::CreatedAt), Some(cursor.as_str()), "idx_tasks_status_created"),
        (todo(), by(TaskOrderField::Priority), None, "idx_tasks_status_priority"),
        (todo(), by(TaskOrderField::DueDate), None, "idx_tasks_status_due"),
        (
            TaskFilter { assigned_agent: Some("a".into()), ..Default::default() },
            by(TaskOrderField::CreatedAt),
            None,
            "idx_tasks_agent_created",
        ),
        (TaskFilter::default(), by(TaskOrderField::UpdatedAt), None, "idx_tasks_updated"),
    ];
    for (filter, order, after, index) in cases {
        let sql =
            list_query(&filter, order, 50, after, DbBackend::Sqlite).unwrap().build(DbBackend::Sqlite).to_string();
        let plan = app
            .db
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, format!("EXPLAIN QUERY PLAN {sql}")))
            .await
            .unwrap();
        let steps: Vec<String> = plan.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect();
        assert!(steps.iter().any(|s| s.contains(index)), "{sql}\nexpected {index}: {steps:?}");
        assert!(!steps.iter().any(|s| s.starts_with("SCAN tasks") && !s.contains("INDEX")), "full scan: {steps:?}");
        assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "no sort step for one status: {steps:?}");
    }
}

#[tokio::test]
async fn concurrent_writes_to_one_task_all_land() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "busy" })).await;
    let writers = (0..20).map(|i| {
        let (client, base, token, id) = (app.client.clone(), app.address.clone(), app.token.clone(), id.clone());
        tokio::spawn(async move {
            let (query, variables) = if i % 2 == 0 {
                (
                    "mutation($t: ID!, $c: String!) { addComment(taskId: $t, content: $c) { id } }",
                    json!({ "t": id, "c": format!("c{i}") }),
                )
            } else {
                (
                    "mutation($t: ID!, $p: String!) { updateTask(id: $t, input: {description: $p}) { id } }",
                    json!({ "t": id, "p": format!("d{i}") }),
                )
            };
            let (_, body) = post_graphql(&client, &base, Some(&token), query, variables).await;
            assert!(body.get("errors").is_none(), "{body}");
        })
    });
    for writer in futures_util::future::join_all(writers).await {
        writer.unwrap();
    }
    let task = app.ok("query($id: ID!) { task(id: $id) { commentCount comments { id } } }", json!({ "id": id })).await;
    assert_eq!(task["task"]["commentCount"], 10, "every concurrent comment counted");
    assert_eq!(task["task"]["comments"].as_array().unwrap().len(), 10);
    assert_eq!(app.ok("{ feed { totalCount } }", json!({})).await["feed"]["totalCount"], 21);
}

#[tokio::test]
async fn several_statuses_page_in_order_from_their_own_index_ranges() {
    use mission_control::tasks::queries::merged_query;
    use mission_control::tasks::types::{OrderDirection, TaskFilter, TaskOrder, TaskOrderField, TaskStatus};
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let app = spawn_app().await;
    let mut wanted = Vec::new();
    for i in 0..30 {
        let (status, priority) = (["TODO", "DONE", "REVIEW"][i % 3], ["LOW", "HIGH"][i % 2]);
        let id = app.create_task(json!({ "title": format!("t{i}"), "status": status, "priority": priority })).await;
        if status != "DONE" {
            wanted.push(id);
        }
    }
    wanted.reverse(); // newest first
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .ok(
                "query($a: String) { tasks(filter: {status: [REVIEW, TODO, TODO]}, first: 4, after: $a) { totalCount edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                json!({ "a": after }),
            )
            .await;
        assert_eq!(page["tasks"]["totalCount"], 20);
        seen.extend(node_strings(&page["tasks"], "id"));
        if page["tasks"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["tasks"]["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, wanted, "every matching task once, newest first, across pages");

    // Also by priority, where many rows tie.
    let page = app.ok("{ tasks(filter: {status: [TODO, REVIEW]}, orderBy: {field: PRIORITY, direction: DESC}, first: 100) { edges { node { priority } } } }", json!({})).await;
    let priorities = node_strings(&page["tasks"], "priority");
    assert_eq!(priorities.len(), 20);
    assert!(priorities.windows(2).all(|w| !(w[0] == "LOW" && w[1] == "HIGH")), "{priorities:?}");

    if app.db.get_database_backend() == DbBackend::Sqlite {
        let filter = TaskFilter { status: Some(vec![TaskStatus::Todo, TaskStatus::Review]), ..Default::default() };
        let order = TaskOrder { field: TaskOrderField::CreatedAt, direction: OrderDirection::Desc };
        let statement =
            merged_query(&filter, &[TaskStatus::Todo, TaskStatus::Review], order, 50, None, DbBackend::Sqlite).unwrap();
        let sql = DbBackend::Sqlite.build(&statement).to_string();
        let plan = app
            .db
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, format!("EXPLAIN QUERY PLAN {sql}")))
            .await
            .unwrap();
        let steps: Vec<String> = plan.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect();
        let index_reads = steps.iter().filter(|s| s.contains("USING INDEX idx_tasks_status_created")).count();
        assert_eq!(index_reads, 2, "one index range per status: {steps:?}");
        assert!(!steps.iter().any(|s| s.starts_with("SCAN tasks")), "{steps:?}");
    }
}

#[tokio::test]
async fn a_page_of_tasks_gets_each_its_own_comments_in_one_request() {
    let app = spawn_app().await;
    let q = "mutation($t: ID!, $c: String!) { addComment(taskId: $t, content: $c) { id } }";
    let mut expected = Vec::new();
    for (i, comments) in [2, 0, 3].into_iter().enumerate() {
        let id = app.create_task(json!({ "title": format!("t{i}") })).await;
        let contents: Vec<String> = (0..comments).map(|c| format!("task {i} comment {c}")).collect();
        for content in &contents {
            app.ok(q, json!({ "t": id, "c": content })).await;
        }
        expected.push((id, contents));
    }
    expected.reverse(); // newest first, as the list comes back
    let page = app.ok("{ tasks { edges { node { id comments { taskId content } } } } }", json!({})).await;
    let edges = page["tasks"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    for (edge, (id, contents)) in edges.iter().zip(&expected) {
        assert_eq!(edge["node"]["id"], id.as_str());
        let comments = edge["node"]["comments"].as_array().unwrap();
        assert!(comments.iter().all(|c| c["taskId"] == id.as_str()), "only its own comments: {edge}");
        let got: Vec<&str> = comments.iter().map(|c| c["content"].as_str().unwrap()).collect();
        assert_eq!(got, *contents, "oldest first");
    }
}

#[tokio::test]
async fn search_folds_case_beyond_ascii_and_follows_edits_and_deletes() {
    let app = spawn_app().await;
    let cafe = app.create_task(json!({ "title": "Café order", "description": "ÉCLAIRS for the team" })).await;
    app.create_task(json!({ "title": "RÉSUMÉ review" })).await;
    app.create_task(json!({ "title": "Plain ascii" })).await;
    let q = "query($s: String) { tasks(filter: {search: $s}) { totalCount edges { node { id title } } } }";
    let count = |s: &'static str| {
        let app = &app;
        async move { app.ok(q, json!({ "s": s })).await["tasks"]["totalCount"].as_i64().unwrap() }
    };
    assert_eq!(count("é").await, 2, "short terms fold too: É and é are one letter");
    assert_eq!(count("éclairs").await, 1, "a lower-case term finds an upper-case description");
    assert_eq!(count("RÉSUMÉ").await, 1);
    assert_eq!(count("résumé").await, 1);
    assert_eq!(count("CAFÉ ORD").await, 1);
    assert_eq!(count("order\nécl").await, 1, "title then description");
    assert_eq!(count("zzz").await, 0);

    // The index follows an edit of the description, and a delete.
    let update = "mutation($id: ID!) { updateTask(id: $id, input: {title: \"Tea order\", description: null}) { id } }";
    app.ok(update, json!({ "id": cafe })).await;
    assert_eq!(count("éclairs").await, 0);
    assert_eq!(count("tea ord").await, 1);
    app.ok("mutation($id: ID!) { deleteTask(id: $id) }", json!({ "id": cafe })).await;
    assert_eq!(count("tea ord").await, 0);
    assert_eq!(count("ascii").await, 1);
}

#[tokio::test]
async fn search_is_answered_from_the_trigram_index_on_sqlite() {
    use mission_control::tasks::queries::list_query;
    use mission_control::tasks::types::{TaskFilter, TaskOrder};
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};
    let app = spawn_app().await;
    if app.db.get_database_backend() != DbBackend::Sqlite {
        eprintln!("skipped: the query plan check is for SQLite (PostgreSQL uses a pg_trgm GIN index)");
        return;
    }
    let filter = TaskFilter { search: Some("login".into()), ..Default::default() };
    let sql = list_query(&filter, TaskOrder::default(), 50, None, DbBackend::Sqlite)
        .unwrap()
        .build(DbBackend::Sqlite)
        .to_string();
    let plan = app
        .db
        .query_all_raw(Statement::from_string(DbBackend::Sqlite, format!("EXPLAIN QUERY PLAN {sql}")))
        .await
        .unwrap();
    let details: Vec<String> = plan.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect();
    assert!(details.iter().any(|d| d.contains("VIRTUAL TABLE INDEX")), "{details:?}");
    assert!(!details.iter().any(|d| d == "SCAN task_search" || d == "SCAN tasks"), "{details:?}");
}

#[tokio::test]
async fn tasks_written_before_the_search_index_are_searchable_after_the_migration() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Database, Statement};
    let path = std::env::temp_dir().join(format!("mc-migrate-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO tasks (id, title, description, status, priority, created_at, updated_at, due_sort, tags, comment_count) \
         VALUES ('0190c0de-0000-7000-8000-000000000001', 'ÜBER old task', 'Written before', 'TODO', 1, 1, 1, 9223372036854775807, '[]', 0)",
    )
    .await
    .unwrap();
    Migrator::up(&db, None).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT text FROM task_search"))
        .await
        .unwrap();
    let texts: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "text").unwrap()).collect();
    assert_eq!(texts, ["über old task\nwritten before"]);
    drop(db);
    let _ = std::fs::remove_file(&path);
}

/// Board reads may be answered from a cache; a read after an acknowledged change always
/// sees the change, and so does a read after the agents changed.
#[tokio::test]
async fn a_read_after_an_acknowledged_change_always_sees_it() {
    let app = spawn_app().await;
    let list = "{ tasks(first: 100) { totalCount edges { node { id title agent { id label } } } } }";
    let mut ids = Vec::new();
    for i in 0..15 {
        let first = app.ok(list, json!({})).await;
        assert_eq!(app.ok(list, json!({})).await, first, "nothing changed in between");
        let id =
            app.create_task(json!({ "title": format!("t{i}"), "assignedAgent": format!("agent:cache:{i}") })).await;
        ids.push(id.clone());
        let after = app.ok(list, json!({})).await;
        assert_eq!(after["tasks"]["totalCount"], ids.len(), "{after}");
        assert!(node_strings(&after["tasks"], "id").contains(&id));
        let rename = "mutation($id: ID!, $t: String!) { updateTask(id: $id, input: {title: $t}) { id } }";
        app.ok(rename, json!({ "id": id, "t": format!("renamed {i}") })).await;
        let renamed = app.ok(list, json!({})).await;
        assert!(node_strings(&renamed["tasks"], "title").contains(&format!("renamed {i}")), "{renamed}");
    }
    let one = "query($id: ID!) { task(id: $id) { agent { label } } }";
    assert!(app.ok(one, json!({ "id": ids[3] })).await["task"]["agent"].is_null());
    app.hub.add_pending(mission_control::snapshot::AgentInfo {
        id: "agent:cache:3".into(),
        label: Some("scout".into()),
        status: mission_control::snapshot::AgentState::Running,
        model: None,
        session_id: None,
        updated_at: None,
        input_tokens: None,
        output_tokens: None,
        usage: Default::default(),
        runtime_status: None,
    });
    assert_eq!(
        app.ok(one, json!({ "id": ids[3] })).await["task"]["agent"]["label"],
        "scout",
        "the agent shows at once"
    );
}
