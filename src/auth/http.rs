//! The REST shim: `POST /api/auth/login` and `GET /api/auth/verify`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::{Json, response::IntoResponse};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{AuthState, Credentials, Role};
use crate::error::AppError;
use crate::limits::RateLimits;

/// Longest accepted username.
const MAX_USERNAME: usize = 64;

/// Body of `POST /api/auth/login`.
#[derive(Deserialize)]
pub struct LoginBody {
    password: String,
    username: Option<String>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `POST /api/auth/login`: a token for the right password, `401` otherwise.
pub async fn login(
    State(auth): State<Arc<AuthState>>,
    State(rate): State<Arc<RateLimits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::response::Response, AppError> {
    let client = rate.client_ip(peer, &headers);
    if let Err(wait) = rate.check_login(client).await {
        tracing::warn!(client = %client, "login refused: rate limit");
        let secs = crate::limits::retry_after_secs(wait);
        let err = AppError::RateLimited(format!("too many login attempts: retry in {secs} s"));
        let mut response = err.into_response();
        if let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let Json(body) = body.map_err(|e| AppError::Validation(format!("login body: {}", e.body_text())))?;
    let subject = match body.username.as_deref().map(str::trim) {
        None | Some("") => "admin".to_owned(),
        Some(name) if name.chars().count() > MAX_USERNAME => {
            return Err(AppError::invalid("username", format!("at most {MAX_USERNAME} characters")));
        }
        Some(name) => name.to_owned(),
    };
    let role = if auth.admin_password.verify(&body.password) {
        Role::Admin
    } else if auth.viewer_password.as_ref().is_some_and(|check| check.verify(&body.password)) {
        Role::Viewer
    } else {
        tracing::warn!(client = %client, "login failed: wrong password");
        return Err(AppError::Unauthenticated("invalid credentials".into()));
    };
    let (token, expires) = auth.tokens.issue(&subject, role, Utc::now())?;
    tracing::info!(client = %client, subject = %subject, role = role.as_str(), "login");
    Ok(Json(json!({ "token": token, "expiresAt": rfc3339(expires) })).into_response())
}

/// `GET /api/auth/verify`: whether the bearer token is valid, and whose it is.
pub async fn verify(State(auth): State<Arc<AuthState>>, headers: HeaderMap) -> Result<impl IntoResponse, AppError> {
    let viewer = auth.authenticate(Credentials::Headers(&headers))?.viewer;
    let expires = Utc.timestamp_opt(viewer.expires_at, 0).single().map(rfc3339);
    Ok(Json(json!({
        "valid": true,
        "subject": viewer.subject,
        "role": viewer.role.as_str(),
        "expiresAt": expires,
    })))
}
