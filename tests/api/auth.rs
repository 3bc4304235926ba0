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
async fn login_with_a_username_uses_it_as_the_actor() {
    let app = spawn_app().await;
    let body: Value = app.login(json!({ "password": PASSWORD, "username": "ops-alice" })).await.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let (_, created) =
        app.graphql_as(Some(token), "mutation { createTask(input: {title: \"by alice\"}) { id } }", json!({})).await;
    let id = created["data"]["createTask"]["id"].as_str().unwrap();
    let feed = app
        .ok("query($id: String) { feed(filter: {targetId: $id}) { edges { node { actor } } } }", json!({ "id": id }))
        .await;
    assert_eq!(feed["feed"]["edges"][0]["node"]["actor"], "ops-alice");
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
