//! API keys and the audit log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mission_control::agents::simulated::{SimulatedConfig, SimulatedRuntime};
use serde_json::{Value, json};

use crate::helpers::*;

const CREATE_KEY: &str = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key apiKey { id name role prefix createdBy lastUsedAt expiresAt revokedAt } } }";
const AUDIT: &str = "query($f: AuditFilter, $first: Int, $after: String) { auditLog(filter: $f, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { actor actorKind action targetType targetId before after clientAddress timestamp } } } }";

/// Creates a key; returns (secret, id).
async fn make_key(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let data = app.ok(CREATE_KEY, json!({ "i": { "name": name, "role": role } })).await;
    let created = &data["createApiKey"];
    (created["key"].as_str().unwrap().to_owned(), created["apiKey"]["id"].as_str().unwrap().to_owned())
}

/// Every audit entry matching `filter`, newest first.
async fn audit(app: &TestApp, filter: Value) -> Vec<Value> {
    let data = app.ok(AUDIT, json!({ "f": filter, "first": 100 })).await;
    data["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

#[tokio::test]
async fn an_api_key_acts_over_http_and_websocket_until_it_is_revoked() {
    let app = spawn_app().await;
    let data = app.ok(CREATE_KEY, json!({ "i": { "name": "ci-bot", "role": "OPERATOR" } })).await;
    let created = &data["createApiKey"];
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["apiKey"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mc_") && key.len() > 40, "{key}");
    assert!(key.starts_with(created["apiKey"]["prefix"].as_str().unwrap()), "{created}");
    assert_eq!(created["apiKey"]["createdBy"], "admin");
    assert!(created["apiKey"]["lastUsedAt"].is_null());

    let (status, me) = app.graphql_as(Some(&key), "{ me { name role kind } }", json!({})).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["me"], json!({ "name": "ci-bot", "role": "OPERATOR", "kind": "API_KEY" }));
    let (_, made) =
        app.graphql_as(Some(&key), "mutation { createTask(input: {title: \"from CI\"}) { id } }", json!({})).await;
    let task = made["data"]["createTask"]["id"].as_str().unwrap().to_owned();
    let feed = app
        .ok("query($t: String) { feed(filter: {targetId: $t}) { edges { node { actor } } } }", json!({ "t": task }))
        .await;
    assert_eq!(node_strings(&feed["feed"], "actor"), ["ci-bot"], "the key's name is the actor");
    let (_, comment) = app
        .graphql_as(
            Some(&key),
            "mutation($t: ID!) { addComment(taskId: $t, content: \"done\") { author } }",
            json!({ "t": task }),
        )
        .await;
    assert_eq!(comment["data"]["addComment"]["author"], "ci-bot", "{comment}");
    let entries = audit(&app, json!({ "actor": "ci-bot" })).await;
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["actorKind"] == "API_KEY"), "{entries:?}");
    let keys = app.ok("{ apiKeys { id lastUsedAt } }", json!({})).await;
    assert!(keys["apiKeys"][0]["lastUsedAt"].is_string(), "use is visible at once: {keys}");
    let (_, users) = app.graphql_as(Some(&key), "{ users { id } }", json!({})).await;
    assert_eq!(error_code(&users), "FORBIDDEN", "an operator key is not an admin");

    let (viewer_key, _) = make_key(&app, "dashboard", "VIEWER").await;
    let (_, refused) =
        app.graphql_as(Some(&viewer_key), "mutation { createTask(input: {title: \"x\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let logout = app.client.post(format!("{}/api/auth/logout", app.address)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(logout.status(), 400, "a key is revoked, not logged out");

    let mut socket = ws_ready_on(app.port, &key).await;
    socket.subscribe("s", "subscription { taskUpdated { kind } }", json!({})).await;
    let revoked = app.ok("mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }", json!({ "id": id })).await;
    assert!(revoked["revokeApiKey"]["revokedAt"].is_string());
    assert_eq!(socket.closed_with().await, Some(4401), "revoking cuts the key's live socket");
    let (status, body) = app.graphql_as(Some(&key), "{ me { name } }", json!({})).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "UNAUTHENTICATED"), "{body}");
    let again = app.graphql("mutation($id: ID!) { revokeApiKey(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(error_code(&again), "BAD_USER_INPUT");
    let forged = format!("{}{}", &key[..11], "x".repeat(key.len() - 11));
    let (status, _) = app.graphql_as(Some(&forged), "{ me { name } }", json!({})).await;
    assert_eq!(status, 401);
    let past = app
        .graphql(CREATE_KEY, json!({ "i": { "name": "late", "role": "VIEWER", "expiresAt": "2020-01-01T00:00:00Z" } }))
        .await;
    assert_eq!(error_code(&past), "BAD_USER_INPUT");
    let blank = app.graphql(CREATE_KEY, json!({ "i": { "name": "  ", "role": "VIEWER" } })).await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT");
}

#[tokio::test]
async fn an_api_key_with_an_expiry_stops_at_it() {
    let app = spawn_app().await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let data = app.ok(CREATE_KEY, json!({ "i": { "name": "brief", "role": "VIEWER", "expiresAt": soon } })).await;
    let key = data["createApiKey"]["key"].as_str().unwrap().to_owned();
    assert!(data["createApiKey"]["apiKey"]["expiresAt"].is_string());
    let mut socket = ws_ready_on(app.port, &key).await;
    socket.subscribe("s", "subscription { taskUpdated { kind } }", json!({})).await;
    assert_eq!(app.graphql_as(Some(&key), "{ me { name } }", json!({})).await.0, 200);
    assert_eq!(socket.closed_with().await, Some(4401), "the socket closes at the expiry");
    assert_eq!(app.graphql_as(Some(&key), "{ me { name } }", json!({})).await.0, 401);
}

#[tokio::test]
async fn every_change_login_and_logout_is_audited_with_before_and_after() {
    let runtime =
        SimulatedRuntime::new(SimulatedConfig { seed: Some(3), step: Duration::from_millis(50), failure_rate: 0.0 });
    let app = spawn_app_with(|c| c.agent_poll_interval = Duration::from_secs(3600), Some(Arc::new(runtime))).await;
    let task = app.create_task(json!({ "title": "first", "priority": "HIGH" })).await;
    let update = "mutation($id: ID!) { updateTask(id: $id, input: {title: \"second\", status: IN_PROGRESS, priority: HIGH}) { id } }";
    app.ok(update, json!({ "id": task })).await;
    app.ok("mutation($t: ID!) { addComment(taskId: $t, content: \"noted\") { id } }", json!({ "t": task })).await;
    let spawned = app.ok("mutation { spawnAgent(input: {label: \"scout\", task: \"look\"}) { id } }", json!({})).await;
    let agent = spawned["spawnAgent"]["id"].as_str().unwrap().to_owned();
    app.ok("mutation($id: ID!) { sendAgentMessage(id: $id, message: \"more\") }", json!({ "id": agent })).await;
    app.ok("mutation($id: ID!) { killAgent(id: $id) { id } }", json!({ "id": agent })).await;
    app.ok("mutation { recordAgentMetrics(agentId: \"a1\", input: {tokens: 5, cost: 0.5}) { id } }", json!({})).await;
    app.ok("mutation($id: ID!) { deleteTask(id: $id) }", json!({ "id": task })).await;
    let user = app
        .ok("mutation { createUser(input: {username: \"dana\", password: \"correct horse battery\", role: VIEWER}) { id } }", json!({}))
        .await["createUser"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        "mutation($id: ID!) { updateUser(id: $id, input: {role: OPERATOR, password: \"another long secret\"}) { id } }",
        json!({ "id": user }),
    )
    .await;
    app.ok("mutation($id: ID!) { deleteUser(id: $id) }", json!({ "id": user })).await;
    let (_, key) = make_key(&app, "bot", "VIEWER").await;
    app.ok("mutation($id: ID!) { revokeApiKey(id: $id) { id } }", json!({ "id": key })).await;
    assert_eq!(app.login(json!({ "username": "ghost", "password": "not the password" })).await.status(), 401);
    let token = app.login_token(PASSWORD).await;
    let logout = app.client.post(format!("{}/api/auth/logout", app.address)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(logout.status(), 200);

    let entries = audit(&app, json!({})).await;
    let actions: Vec<&str> = entries.iter().rev().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "auth.login", // the test's own admin login
            "task.create",
            "task.update",
            "comment.create",
            "agent.spawn",
            "agent.message",
            "agent.kill",
            "metrics.record",
            "task.delete",
            "user.create",
            "user.update",
            "user.delete",
            "apikey.create",
            "apikey.revoke",
            "auth.login_failed",
            "auth.login",
            "auth.logout",
        ]
    );
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).unwrap().clone();
    let updated = find("task.update");
    assert_eq!(updated["targetId"], task);
    assert_eq!(updated["before"], json!({ "title": "first", "status": "TODO" }), "only what changed: {updated}");
    assert_eq!(updated["after"], json!({ "title": "second", "status": "IN_PROGRESS" }));
    assert_eq!(updated["actor"], "admin");
    assert_eq!(updated["actorKind"], "USER");
    assert_eq!(updated["clientAddress"], "127.0.0.1");
    assert_eq!(find("task.create")["after"]["priority"], "HIGH");
    assert!(find("task.create")["before"].is_null());
    assert_eq!(find("task.delete")["before"]["title"], "second");
    assert_eq!(find("agent.kill")["after"], json!({ "status": "KILLED" }));
    assert_eq!(find("agent.message")["after"]["message"], "more");
    let user_update = find("user.update");
    assert_eq!(user_update["before"], json!({ "role": "VIEWER" }));
    assert_eq!(user_update["after"], json!({ "role": "OPERATOR", "passwordChanged": true }));
    assert!(
        !user_update.to_string().contains("another long secret")
            && !entries.iter().any(|e| e.to_string().contains("argon2"))
    );
    assert_eq!(find("apikey.revoke")["before"]["revokedAt"], Value::Null);
    assert!(find("apikey.revoke")["after"]["revokedAt"].is_string());
    let failed = find("auth.login_failed");
    assert_eq!((failed["actor"].as_str(), failed["clientAddress"].as_str()), (Some("ghost"), Some("127.0.0.1")));

    // Filters and cursor pages.
    assert_eq!(audit(&app, json!({ "action": "task.update" })).await.len(), 1);
    assert_eq!(audit(&app, json!({ "targetId": task })).await.len(), 4);
    assert_eq!(audit(&app, json!({ "since": "2999-01-01T00:00:00Z" })).await.len(), 0);
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.ok(AUDIT, json!({ "first": 5, "after": after })).await;
        assert_eq!(page["auditLog"]["totalCount"], entries.len());
        let edges = page["auditLog"]["edges"].as_array().unwrap();
        seen.extend(edges.iter().map(|e| e["node"]["timestamp"].clone()));
        if page["auditLog"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["auditLog"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), entries.len(), "pages cover the log once");
    let bad = app.graphql(AUDIT, json!({ "after": "bm90LWEtY3Vyc29y" })).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_refused_or_failed_change_writes_no_audit_entry() {
    let app = spawn_app().await;
    let before = audit(&app, json!({})).await.len();
    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let (_, refused) =
        app.graphql_as(Some(&viewer), "mutation { createTask(input: {title: \"x\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let (_, audit_refused) = app.graphql_as(Some(&viewer), "{ auditLog { totalCount } }", json!({})).await;
    assert_eq!(error_code(&audit_refused), "FORBIDDEN", "the audit log is for admins");
    let missing = app
        .graphql(
            "mutation { updateTask(id: \"00000000-0000-7000-8000-000000000000\", input: {title: \"y\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    let invalid = app.graphql("mutation { createTask(input: {title: \"\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&invalid), "BAD_USER_INPUT");
    let entries = audit(&app, json!({})).await;
    // The viewer's login is the only new entry.
    assert_eq!(entries.len(), before + 1, "{entries:?}");
    assert_eq!(entries[0]["action"], "auth.login");
    assert_eq!(entries[0]["actor"], "viewer");
}

#[tokio::test]
async fn logins_are_limited_per_username_whatever_the_address() {
    let app = spawn_app_with(
        |c| {
            c.login_rate_limit = 3;
            c.trust_proxy = true;
        },
        None,
    )
    .await;
    let attempt = |name: &str, from: &str| {
        let request = app
            .client
            .post(format!("{}/api/auth/login", app.address))
            .header("x-forwarded-for", from)
            .json(&json!({ "username": name, "password": "guess guess guess" }));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for n in 1..=3 {
        assert_eq!(attempt("bob", &format!("198.51.100.{n}")).await, 401);
    }
    assert_eq!(attempt("BOB", "198.51.100.9").await, 429, "a fresh address does not reset the name's limit");
    assert_eq!(attempt("carol", "198.51.100.10").await, 401, "other names are unaffected");
}

/// An unknown username and a wrong password take the same time (the unknown one is checked
/// against a dummy hash), so timing does not tell which usernames exist.
#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let app = spawn_app_with(|c| c.login_rate_limit = 1000, None).await;
    app.ok("mutation { createUser(input: {username: \"erin\", password: \"correct horse battery\", role: VIEWER}) { id } }", json!({}))
        .await;
    let time = |name: &'static str| {
        let request = app.login(json!({ "username": name, "password": "wrong horse battery" }));
        async move {
            let start = Instant::now();
            assert_eq!(request.await.status(), 401);
            start.elapsed()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        known.push(time("erin").await);
        unknown.push(time("nobody-here").await);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[4].as_secs_f64() * 1e3, unknown[4].as_secs_f64() * 1e3);
    let larger = k.max(u);
    assert!((k - u).abs() <= 0.35 * larger + 5.0, "median wrong password {k:.1} ms, unknown user {u:.1} ms");
}
