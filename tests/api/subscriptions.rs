//! GraphQL subscriptions over WebSocket: auth, events, filters, resume, rollback, fan-out.

use std::time::Duration;

use chrono::Utc;
use mission_control::auth::Role;
use serde_json::{Value, json};

use crate::helpers::*;

const TASKS: &str =
    "subscription($id: ID) { taskUpdated(taskId: $id) { kind taskId task { id title status commentCount } } }";
const ACTIVITY: &str =
    "subscription($t: ActivityType, $a: String) { activity(type: $t, after: $a) { id type action targetId cursor } }";

#[tokio::test]
async fn init_without_a_valid_token_is_closed_with_4401() {
    let app = spawn_app().await;
    let now = Utc::now().timestamp();
    let expired = app.sign("admin", Role::Admin, now - 100, now - 10);
    for payload in [
        json!({}),
        json!({ "authorization": "Bearer garbage" }),
        json!({ "token": expired }),
        json!({ "authorization": "Basic YWRtaW4=" }),
    ] {
        let mut ws = app.ws("graphql-transport-ws").await;
        ws.send(json!({ "type": "connection_init", "payload": payload })).await;
        assert_eq!(ws.closed_with().await, Some(4401), "payload {payload}");
    }
    // Subscribing without init is refused the same way, and nothing runs.
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.subscribe("1", TASKS, json!({})).await;
    assert_eq!(ws.closed_with().await, Some(4401));

    // Legacy protocol: a connection_error, then the socket closes.
    let mut ws = app.ws("graphql-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer nope" } })).await;
    let message = ws.next_json().await.expect("connection_error");
    assert_eq!(message["type"], "connection_error");
    assert_eq!(ws.closed_with().await, Some(4401));
}

#[tokio::test]
async fn a_socket_that_never_inits_is_closed_with_4408() {
    let app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_millis(300), None).await;
    let mut ws = app.ws("graphql-transport-ws").await;
    assert_eq!(ws.closed_with().await, Some(4408));
}

#[tokio::test]
async fn a_socket_is_closed_with_4401_when_its_token_expires() {
    let app = spawn_app().await;
    let now = Utc::now().timestamp();
    let short = app.sign("admin", Role::Admin, now, now + 2);
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": short } })).await;
    assert_eq!(ws.next_json().await.unwrap()["type"], "connection_ack");
    ws.subscribe("1", TASKS, json!({})).await;
    assert_eq!(ws.closed_with().await, Some(4401));
}

#[tokio::test]
async fn task_updated_reports_create_update_comment_delete_with_payloads() {
    let app = spawn_app().await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("all", TASKS, json!({})).await;
    // The subscription is live once a first event arrives; prime it with a throwaway task.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = app.create_task(json!({ "title": "watch me" })).await;
    let created = ws.next_data("all").await;
    assert_eq!(
        created["taskUpdated"],
        json!({ "kind": "CREATED", "taskId": id, "task": { "id": id, "title": "watch me", "status": "TODO", "commentCount": 0 } })
    );

    app.ok("mutation($id: ID!) { updateTask(id: $id, input: {status: DONE}) { id } }", json!({ "id": id })).await;
    let updated = ws.next_data("all").await;
    assert_eq!(updated["taskUpdated"]["kind"], "UPDATED");
    assert_eq!(updated["taskUpdated"]["task"]["status"], "DONE");

    app.ok("mutation($id: ID!) { addComment(taskId: $id, content: \"hi\") { id } }", json!({ "id": id })).await;
    let commented = ws.next_data("all").await;
    assert_eq!(commented["taskUpdated"]["kind"], "UPDATED");
    assert_eq!(commented["taskUpdated"]["task"]["commentCount"], 1);

    app.ok("mutation($id: ID!) { deleteTask(id: $id) }", json!({ "id": id })).await;
    let deleted = ws.next_data("all").await;
    assert_eq!(deleted["taskUpdated"], json!({ "kind": "DELETED", "taskId": id, "task": null }));
}

#[tokio::test]
async fn filters_by_task_id_and_activity_type() {
    let app = spawn_app().await;
    let watched = app.create_task(json!({ "title": "watched" })).await;
    let other = app.create_task(json!({ "title": "other" })).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("one", TASKS, json!({ "id": watched })).await;
    ws.subscribe("comments", ACTIVITY, json!({ "t": "COMMENT" })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.ok("mutation($id: ID!) { updateTask(id: $id, input: {title: \"x\"}) { id } }", json!({ "id": other })).await;
    app.ok("mutation($id: ID!) { addComment(taskId: $id, content: \"c\") { id } }", json!({ "id": other })).await;
    app.ok("mutation($id: ID!) { updateTask(id: $id, input: {title: \"y\"}) { id } }", json!({ "id": watched })).await;

    let mut got_task = None;
    let mut got_comment = None;
    while got_task.is_none() || got_comment.is_none() {
        let message = ws.next_json().await.expect("events");
        match message["id"].as_str() {
            Some("one") => {
                assert!(got_task.is_none(), "only one event for the watched task: {message}");
                got_task = Some(message["payload"]["data"]["taskUpdated"]["taskId"].clone());
            }
            Some("comments") => {
                assert!(got_comment.is_none(), "only one comment activity: {message}");
                got_comment = Some(message["payload"]["data"]["activity"]["type"].clone());
            }
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!(got_task.unwrap(), json!(watched));
    assert_eq!(got_comment.unwrap(), json!("COMMENT"));
    assert!(matches!(ws.next_within(Duration::from_millis(300)).await, Err(WsEnd::Timeout)), "nothing else arrives");
}

#[tokio::test]
async fn a_rolled_back_mutation_produces_no_event() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "keep", "tags": ["old"] })).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("t", TASKS, json!({})).await;
    ws.subscribe("a", ACTIVITY, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = app
        .graphql(
            "mutation($id: ID!, $i: UpdateTaskInput!) { updateTask(id: $id, input: $i) { id } }",
            json!({ "id": id, "i": { "tags": ["new"], "metadata": { "x": "m".repeat(20_000) } } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    app.ok("mutation($id: ID!) { updateTask(id: $id, input: {title: \"after\"}) { id } }", json!({ "id": id })).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = ws.next_json().await.expect("event");
        seen.push(m.clone());
        if m["id"] == "t" {
            assert_eq!(
                m["payload"]["data"]["taskUpdated"]["task"]["title"], "after",
                "the first task event is the committed one"
            );
        }
    }
    assert!(matches!(ws.next_within(Duration::from_millis(300)).await, Err(WsEnd::Timeout)));
}

#[tokio::test]
async fn resume_with_after_replays_then_continues_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("a", ACTIVITY, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut received: Vec<(String, String)> = Vec::new();
    for i in 0..5 {
        app.create_task(json!({ "title": format!("before {i}") })).await;
        let data = ws.next_data("a").await;
        received.push((
            data["activity"]["id"].as_str().unwrap().into(),
            data["activity"]["cursor"].as_str().unwrap().into(),
        ));
    }
    ws.close().await;

    // Mutations go on while the client is away, and while it resumes.
    let writer = {
        let client = app.client.clone();
        let url = format!("{}/graphql", app.address);
        let token = app.token.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let q = json!({ "query": "mutation($t: String!) { createTask(input: {title: $t}) { id } }", "variables": { "t": format!("during {i}") } });
                let r = client.post(&url).bearer_auth(&token).json(&q).send().await.unwrap();
                assert_eq!(r.status(), 200);
                if i == 10 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ws = app.ws_ready().await;
    let last_cursor = received.last().unwrap().1.clone();
    ws.subscribe("a", ACTIVITY, json!({ "a": last_cursor })).await;
    writer.await.unwrap();
    let total = feed_ids_oldest_first(&app.client, &app.address, &app.token).await;
    assert_eq!(total.len(), 45);
    while received.len() < total.len() {
        let data = ws.next_data("a").await;
        received.push((data["activity"]["id"].as_str().unwrap().into(), String::new()));
    }
    let ids: Vec<String> = received.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, total, "every activity exactly once, in order");
    assert!(matches!(ws.next_within(Duration::from_millis(300)).await, Err(WsEnd::Timeout)), "no duplicates after");
}

#[tokio::test]
async fn two_hundred_subscribers_all_receive_one_event() {
    let app = spawn_app_with(|c| c.ws_rate_limit = 1000, None).await;
    let mut sockets = Vec::new();
    for _ in 0..200 {
        let mut ws = app.ws_ready().await;
        ws.subscribe("t", TASKS, json!({})).await;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = app.create_task(json!({ "title": "broadcast" })).await;
    let receivers = sockets
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { ws.next_data("t").await["taskUpdated"]["taskId"].clone() }));
    let results = futures_util::future::join_all(receivers).await;
    assert_eq!(results.len(), 200);
    for result in results {
        assert_eq!(result.unwrap(), Value::String(id.clone()));
    }
}

#[tokio::test]
async fn subscriptions_per_socket_are_limited() {
    let app = spawn_app_with(|c| c.ws_max_subscriptions = 2, None).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("1", TASKS, json!({})).await;
    ws.subscribe("2", TASKS, json!({})).await;
    ws.subscribe("3", TASKS, json!({})).await;
    let refused = ws.next_json().await.unwrap();
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "3");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
    // Completing one frees a slot.
    ws.send(json!({ "id": "1", "type": "complete" })).await;
    ws.subscribe("4", TASKS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = app.create_task(json!({ "title": "x" })).await;
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let m = ws.next_json().await.unwrap();
        if m["type"] == "complete" {
            assert_eq!(m["id"], "1", "the completed subscription is acknowledged");
            continue;
        }
        assert_eq!(m["payload"]["data"]["taskUpdated"]["taskId"], id.as_str());
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["2", "4"]);
}

#[tokio::test]
async fn agent_status_sends_the_current_snapshot_at_once() {
    let app = spawn_app().await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("s", "subscription { agentStatus { agents { id status } changed } }", json!({})).await;
    let first = ws.next_data("s").await;
    assert_eq!(first["agentStatus"], json!({ "agents": [], "changed": [] }));
}

#[tokio::test]
async fn legacy_protocol_delivers_events() {
    let app = spawn_app().await;
    let mut ws = app.ws("graphql-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.token) } }))
        .await;
    assert_eq!(ws.next_json().await.unwrap()["type"], "connection_ack");
    ws.send(json!({ "id": "1", "type": "start", "payload": { "query": TASKS } })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = app.create_task(json!({ "title": "legacy" })).await;
    let message = ws.next_json().await.unwrap();
    assert_eq!(message["type"], "data");
    assert_eq!(message["payload"]["data"]["taskUpdated"]["taskId"], id.as_str());
}

#[tokio::test]
async fn an_idle_socket_gets_keep_alive_pings_and_pongs_are_accepted() {
    let app = spawn_app_with(|c| c.ws_keepalive = Duration::from_millis(100), None).await;
    let mut ws = app.ws_ready().await;
    for _ in 0..2 {
        let ping = ws.next_raw(Duration::from_secs(2)).await.expect("a ping");
        assert_eq!(ping["type"], "ping");
        ws.send(json!({ "type": "pong" })).await;
    }
    ws.subscribe("t", TASKS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let id = app.create_task(json!({ "title": "still alive" })).await;
    assert_eq!(ws.next_data("t").await["taskUpdated"]["taskId"], id.as_str());
    let mut legacy = app.ws("graphql-ws").await;
    legacy.send(json!({ "type": "connection_init", "payload": { "token": app.token } })).await;
    assert_eq!(legacy.next_raw(Duration::from_secs(2)).await.unwrap()["type"], "connection_ack");
    assert_eq!(legacy.next_raw(Duration::from_secs(2)).await.unwrap()["type"], "ka", "legacy keep-alive");
}

#[tokio::test]
async fn a_burst_of_hundreds_of_messages_is_taken_in_order_not_refused_as_a_flood() {
    let app = spawn_app().await;
    let mut ws = app.ws_ready().await;
    let query = "subscription { taskUpdated { taskId } }";
    for round in 0..3 {
        let burst = (0..200).flat_map(|i| {
            let id = format!("{round}-{i}");
            [
                json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
                json!({ "id": id, "type": "complete" }),
            ]
        });
        ws.send_burst(burst).await;
        // The server answers each `complete` of a live subscription with its own.
        let mut completed = 0;
        while completed < 200 {
            match ws.next_json().await {
                Ok(message) if message["type"] == "complete" => completed += 1,
                Ok(message) => panic!("round {round}: only completes were due, got {message}"),
                Err(end) => panic!("round {round}: the socket ended after {completed} completes: {end:?}"),
            }
        }
    }
    ws.subscribe("live", query, json!({})).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let id = app.create_task(json!({ "title": "after the bursts" })).await;
    assert_eq!(ws.next_data("live").await["taskUpdated"]["taskId"], id.as_str());
}

#[tokio::test]
async fn a_client_flooding_before_init_is_still_closed_in_time() {
    let app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_millis(500), None).await;
    let mut ws = app.ws("graphql-transport-ws").await;
    let started = std::time::Instant::now();
    let mut cut_off = false;
    for _ in 0..5000 {
        if !ws.try_send(json!({ "type": "ping" })).await {
            cut_off = true; // the server closed the socket mid-flood
            break;
        }
    }
    if !cut_off {
        let code = ws.closed_with().await;
        assert!(matches!(code, Some(4408 | 4429) | None), "closed with {code:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed in time, not hung");
    // The server is fine.
    assert!(app.ok("{ tasks { totalCount } }", json!({})).await["tasks"]["totalCount"].is_i64());
}

#[tokio::test]
async fn a_task_titled_complete_does_not_free_a_subscription_slot() {
    let app = spawn_app_with(|c| c.ws_max_subscriptions = 1, None).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe("1", TASKS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.create_task(json!({ "title": "complete", "metadata": { "type": "complete" } })).await;
    assert_eq!(ws.next_data("1").await["taskUpdated"]["task"]["title"], "complete");
    ws.subscribe("2", TASKS, json!({})).await;
    let refused = ws.next_json().await.unwrap();
    assert_eq!(refused["id"], "2");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
}
