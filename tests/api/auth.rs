//! Login, token checks and roles.

use chrono::Utc;
use mission_control::auth::Role;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn login_with_the_right_password_gives_a_24h_token() {
    let app = spawn_app().await;
    let response = app.login(json!({ "password": PASSWORD })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let hours = (expires.with_timezone(&Utc) - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "expires in {hours} h");

    let verify = app
        .client
        .get(format!("{}/api/auth/verify", app.address))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let verify: Value = verify.json().await.unwrap();
    assert_eq!(verify["valid"], true);
    assert_eq!(verify["subject"], "admin");
    assert_eq!(verify["role"], "admin");
}

#[tokio::test]
async fn an_account_logs_in_with_its_own_password_and_is_the_actor() {
    let app = spawn_app().await;
    let create = "mutation($u: String!) { createUser(input: {username: $u, password: \"correct horse battery\", role: OPERATOR}) { id username role } }";
    let created = app.ok(create, json!({ "u": "ops-alice" })).await;
    assert_eq!(created["createUser"]["role"], "OPERATOR");
    // The shared password no longer lets anyone claim a name.
    let claimed = app.login(json!({ "password": PASSWORD, "username": "ops-alice" })).await;
    assert_eq!(claimed.status(), 401);
    let body: Value =
        app.login(json!({ "username": "ops-alice", "password": "correct horse battery" })).await.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let (_, me) = app.graphql_as(Some(token), "{ me { name role kind } }", json!({})).await;
    assert_eq!(me["data"]["me"], json!({ "name": "ops-alice", "role": "OPERATOR", "kind": "USER" }), "{me}");
    let (_, created) =
        app.graphql_as(Some(token), "mutation { createTask(input: {title: \"by alice\"}) { id } }", json!({})).await;
    let id = created["data"]["createTask"]["id"].as_str().unwrap();
    let feed = app
        .ok("query($id: String) { feed(filter: {targetId: $id}) { edges { node { actor } } } }", json!({ "id": id }))
        .await;
    assert_eq!(feed["feed"]["edges"][0]["node"]["actor"], "ops-alice");
    let users = app.ok("{ users { username role disabled lastLoginAt } }", json!({})).await;
    assert_eq!(users["users"][0]["username"], "ops-alice");
    assert!(users["users"][0]["lastLoginAt"].is_string());
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    let app = spawn_app().await;
    app.ok(
        "mutation { createUser(input: {username: \"bob\", password: \"correct horse battery\", role: VIEWER}) { id } }",
        json!({}),
    )
    .await;
    let mut answers = Vec::new();
    for body in [
        json!({ "username": "bob", "password": "wrong horse battery" }),
        json!({ "username": "nobody", "password": "correct horse battery" }),
        json!({ "username": "x".repeat(500), "password": "correct horse battery" }),
    ] {
        let response = app.login(body).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        answers.push((status, body));
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
}

#[tokio::test]
async fn a_disabled_or_deleted_account_is_refused_at_once_and_a_new_role_applies() {
    let app = spawn_app().await;
    let created = app
        .ok("mutation { createUser(input: {username: \"carol\", password: \"correct horse battery\", role: OPERATOR}) { id } }", json!({}))
        .await;
    let id = created["createUser"]["id"].as_str().unwrap().to_owned();
    let body: Value =
        app.login(json!({ "username": "carol", "password": "correct horse battery" })).await.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let task = "mutation { createTask(input: {title: \"t\"}) { id } }";
    assert!(app.graphql_as(Some(&token), task, json!({})).await.1.get("errors").is_none());

    let update = "mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { role disabled } }";
    app.ok(update, json!({ "id": id, "i": { "role": "VIEWER" } })).await;
    let (_, refused) = app.graphql_as(Some(&token), task, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "the new role applies to the live token");

    let mut socket = ws_ready_on(app.port, &token).await;
    socket.subscribe("s", "subscription { taskUpdated { kind } }", json!({})).await;
    app.ok(update, json!({ "id": id, "i": { "disabled": true } })).await;
    assert_eq!(socket.closed_with().await, Some(4401), "the account's live socket is cut");
    let (status, _) = app.graphql_as(Some(&token), "{ me { name } }", json!({})).await;
    assert_eq!(status, 401, "a disabled account's token stops working");
    let login = app.login(json!({ "username": "carol", "password": "correct horse battery" })).await;
    assert_eq!(login.status(), 401);

    app.ok(update, json!({ "id": id, "i": { "disabled": false } })).await;
    app.ok("mutation($id: ID!) { deleteUser(id: $id) }", json!({ "id": id })).await;
    let (status, _) = app.graphql_as(Some(&token), "{ me { name } }", json!({})).await;
    assert_eq!(status, 401, "a deleted account's token stops working");
    let feed = app.ok("{ feed(filter: {type: SYSTEM}) { edges { node { action actor } } } }", json!({})).await;
    assert_eq!(
        node_strings(&feed["feed"], "action"),
        ["user_deleted", "user_updated", "user_updated", "user_updated", "user_created"]
    );
}

/// Every role against every mutation of the schema: the table of rights is the only gate,
/// checked before the document is even validated, so each mutation can be named bare.
#[tokio::test]
async fn each_role_runs_exactly_the_mutations_its_rights_allow() {
    let app = spawn_app().await;
    app.ok("mutation { createUser(input: {username: \"op\", password: \"correct horse battery\", role: OPERATOR}) { id } }", json!({}))
        .await;
    let op: Value =
        app.login(json!({ "username": "op", "password": "correct horse battery" })).await.json().await.unwrap();
    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let tokens =
        [("ADMIN", app.token.clone()), ("OPERATOR", op["token"].as_str().unwrap().to_owned()), ("VIEWER", viewer)];
    let sdl = mission_control::schema::sdl();
    let mutation = sdl.split("type Mutation {").nth(1).unwrap().split("\n}").next().unwrap();
    let fields: Vec<&str> = mutation
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('"') && l.contains(':'))
        .filter_map(|l| l.split(['(', ':']).next())
        .filter(|name| name.chars().all(char::is_alphanumeric))
        .collect();
    assert!(fields.len() >= 12, "{fields:?}");
    let admin_only = [
        "createUser",
        "updateUser",
        "deleteUser",
        "createApiKey",
        "revokeApiKey",
        "createSchedule",
        "updateSchedule",
        "deleteSchedule",
        "runScheduleNow",
        "createAlertRule",
        "updateAlertRule",
        "deleteAlertRule",
        "createWebhook",
        "updateWebhook",
        "deleteWebhook",
    ];
    for field in &fields {
        for (role, token) in &tokens {
            let (_, body) = app.graphql_as(Some(token), &format!("mutation {{ {field} }}"), json!({})).await;
            let allowed = match *role {
                "ADMIN" => true,
                "OPERATOR" => !admin_only.contains(field),
                _ => false,
            };
            // Most fail for their missing arguments; one with none required may just run.
            let code = body["errors"][0]["extensions"]["code"].as_str().unwrap_or("none");
            assert_eq!(code != "FORBIDDEN", allowed, "{role} {field}: {body}");
        }
    }
    let (_, users) = app.graphql_as(Some(&tokens[1].1), "{ users { id } }", json!({})).await;
    assert_eq!(error_code(&users), "FORBIDDEN", "listing users is for admins");
    for read in ["{ apiKeys { id } }", "{ auditLog { totalCount } }", "{ webhooks { id } }"] {
        let (_, body) = app.graphql_as(Some(&tokens[1].1), read, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{read} is for admins");
    }
    let (_, through_fragment) = app
        .graphql_as(Some(&tokens[2].1), "mutation { ...M } fragment M on Mutation { deleteTask(id: \"x\") }", json!({}))
        .await;
    assert_eq!(error_code(&through_fragment), "FORBIDDEN", "fragments do not hide a root field");
}

/// Documents that passed the limits are kept by their text and not parsed again; the rights
/// check and the limits still hold for every request that sends one.
#[tokio::test]
async fn a_document_kept_from_an_earlier_request_is_still_checked_for_each_caller() {
    let app = spawn_app().await;
    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let create = "mutation { createTask(input: {title: \"kept\"}) { title } }";
    for _ in 0..2 {
        assert_eq!(app.ok(create, json!({})).await["createTask"]["title"], "kept");
        let (_, refused) = app.graphql_as(Some(&viewer), create, json!({})).await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    }
    let (_, tasks) = app.graphql_as(Some(&viewer), "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(tasks["data"]["tasks"]["totalCount"], 2, "only the admin's two creates ran: {tasks}");
    let deep = format!("{{ tasks {{ edges {{ node {{ {}id{} }} }} }} }}", "comments { ".repeat(12), " }".repeat(12));
    for _ in 0..2 {
        let (_, body) = app.graphql_as(Some(&app.token), &deep, json!({})).await;
        assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body}");
    }
}

#[tokio::test]
async fn the_last_enabled_admin_account_cannot_be_demoted() {
    let app = spawn_app().await;
    let created = app
        .ok("mutation { createUser(input: {username: \"root\", password: \"correct horse battery\", role: ADMIN}) { id } }", json!({}))
        .await;
    let id = created["createUser"]["id"].as_str().unwrap();
    let update = "mutation($id: ID!) { updateUser(id: $id, input: {role: VIEWER}) { role } }";
    let refused = app.graphql(update, json!({ "id": id })).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    assert!(error_message(&refused).contains("last enabled admin"), "{refused}");
    let bad = app
        .graphql("mutation { createUser(input: {username: \"admin\", password: \"correct horse battery\", role: ADMIN}) { id } }", json!({}))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT", "reserved name");
}

#[tokio::test]
async fn wrong_password_is_401_with_a_code() {
    let app = spawn_app().await;
    for body in [json!({ "password": "nope" }), json!({ "password": "" }), json!({ "password": "admin1234" })] {
        let response = app.login(body).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        assert!(body.get("token").is_none());
    }
}

#[tokio::test]
async fn malformed_login_body_is_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/api/auth/login", app.address))
        .header("content-type", "application/json")
        .body("{\"password\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn verify_refuses_missing_and_bad_tokens() {
    let app = spawn_app().await;
    let url = format!("{}/api/auth/verify", app.address);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(app.client.get(&url).bearer_auth("garbage").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn graphql_without_a_token_is_401_unauthenticated() {
    let app = spawn_app().await;
    let (status, body) = app.graphql_as(None, "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn expired_forged_and_unsigned_tokens_are_refused() {
    let app = spawn_app().await;
    let now = Utc::now().timestamp();
    let expired = app.sign("admin", Role::Admin, now - 7200, now - 60);
    let (status, body) = app.graphql_as(Some(&expired), "{ agents { id } }", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(error_message(&body).contains("expired"));

    let other = mission_control::auth::TokenService::new(
        b"some-other-secret-some-other-secret",
        std::time::Duration::from_secs(60),
    );
    let (forged, _) = other.issue("admin", Role::Admin, Utc::now()).unwrap();
    let (status, _) = app.graphql_as(Some(&forged), "{ agents { id } }", json!({})).await;
    assert_eq!(status, 401);

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = format!(r#"{{"sub":"admin","role":"admin","iat":{now},"exp":{},"jti":"x"}}"#, now + 600);
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
    let (status, _) = app.graphql_as(Some(&unsigned), "{ agents { id } }", json!({})).await;
    assert_eq!(status, 401);

    // HS512 with the right secret is still the wrong algorithm.
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    let claims: Value = serde_json::from_str(&claims).unwrap();
    let hs512 =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    let (status, _) = app.graphql_as(Some(&hs512), "{ agents { id } }", json!({})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn viewer_role_reads_but_may_not_write() {
    let app = spawn_app().await;
    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let (status, body) = app.graphql_as(Some(&viewer), "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["tasks"]["totalCount"], 0);
    let (_, body) =
        app.graphql_as(Some(&viewer), "mutation { createTask(input: {title: \"x\"}) { id } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let count = app.ok("{ tasks { totalCount } feed { totalCount } }", json!({})).await;
    assert_eq!(count["tasks"]["totalCount"], 0, "a refused mutation changes nothing");
    assert_eq!(count["feed"]["totalCount"], 0);
}

#[tokio::test]
async fn health_and_ready_answer_without_auth() {
    let app = spawn_app().await;
    let health: Value = app.client.get(format!("{}/health", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["version"].is_string());
    assert!(health["uptimeSeconds"].is_u64());
    let ready = app.client.get(format!("{}/ready", app.address)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn logout_revokes_that_token_and_its_sockets_only() {
    let app = spawn_app().await;
    let other = app.login_token(PASSWORD).await;
    let mut socket = ws_ready_on(app.port, &app.token).await;
    socket.subscribe("s", "subscription { taskUpdated { kind } }", json!({})).await;
    let logout = |token: String| {
        let client = app.client.clone();
        let url = format!("{}/api/auth/logout", app.address);
        async move { client.post(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(logout(app.token.clone()).await, 200);
    let (status, body) = app.graphql_as(Some(&app.token), "{ me { name } }", json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert!(error_message(&body).contains("logged out"), "{body}");
    assert_eq!(socket.closed_with().await, Some(4401), "its live socket is cut");
    assert_eq!(logout(app.token.clone()).await, 401, "a logged-out token cannot log out again");
    let (status, _) = app.graphql_as(Some(&other), "{ me { name } }", json!({})).await;
    assert_eq!(status, 200, "other tokens of the same login still work");
}
