//! The REST shim: `POST /api/auth/login` and `GET /api/auth/verify`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::{Json, response::IntoResponse};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{Actor, AuthState, Credential, Credentials, PasswordCheck, Role, users};
use crate::audit::{self, Change};
use crate::db::Writer;
use crate::error::AppError;
use crate::limits::RateLimits;

/// Body of `POST /api/auth/login`.
#[derive(Deserialize)]
pub struct LoginBody {
    password: String,
    username: Option<String>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn too_many(wait: std::time::Duration) -> axum::response::Response {
    let secs = crate::limits::retry_after_secs(wait);
    let err = AppError::RateLimited(format!("too many login attempts: retry in {secs} s"));
    let mut response = err.into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// `POST /api/auth/login`: a token for the right password, `401` otherwise. Attempts are
/// limited per client address and per username; each success and failure is audited.
pub async fn login(
    State(auth): State<Arc<AuthState>>,
    State(rate): State<Arc<RateLimits>>,
    State(changes): State<Writer>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::response::Response, AppError> {
    let client = rate.client_ip(peer, &headers);
    if let Err(wait) = rate.check_login(client).await {
        tracing::warn!(client = %client, "login refused: rate limit per address");
        return Ok(too_many(wait));
    }
    let Json(body) = body.map_err(|e| AppError::Validation(format!("login body: {}", e.body_text())))?;
    let username = body.username.as_deref().map(str::trim).filter(|u| !u.is_empty());
    // The name as the audit log and the per-name limit see it: bounded, and the bootstrap
    // logins under their actor names.
    let claimed: String = username.unwrap_or("admin").chars().take(users::MAX_USERNAME).collect();
    if let Some(name) = username
        && let Err(wait) = rate.check_login_name(&name.to_lowercase()).await
    {
        tracing::warn!(client = %client, username = %claimed, "login refused: rate limit per username");
        return Ok(too_many(wait));
    }
    let who = |name: &str| Actor::user(name, Some(client));
    let (subject, role, uid) = match username {
        // The bootstrap logins: the configured passwords alone.
        None if auth.admin_password.verify(&body.password) => ("admin".to_owned(), Role::Admin, None),
        None if auth.viewer_password.as_ref().is_some_and(|check| check.verify(&body.password)) => {
            ("viewer".to_owned(), Role::Viewer, None)
        }
        None => return Err(refused(&changes, who(&claimed)).await),
        Some(name) => {
            let account = if name.chars().count() <= users::MAX_USERNAME {
                users::by_username(changes.db(), name).await?
            } else {
                None
            };
            // Unknown, disabled or wrong: one answer, after the same hashing work.
            let hash = account.as_ref().map_or_else(|| dummy_hash().to_owned(), |a| a.password_hash.clone());
            let attempt = body.password.clone();
            let matches =
                tokio::task::spawn_blocking(move || PasswordCheck::Hash(hash).verify(&attempt)).await.unwrap_or(false);
            match account {
                Some(account) if matches && !account.disabled => {
                    (account.username.clone(), users::role_of(&account), Some(account.id))
                }
                _ => return Err(refused(&changes, who(&claimed)).await),
            }
        }
    };
    let (token, expires) = auth.tokens.issue_for(&subject, role, uid.as_deref(), Utc::now())?;
    let mut change = Change::new("auth.login").after(json!({ "role": role.graphql_name() }));
    if let Some(id) = &uid {
        change = change.target("user", id);
    }
    let (actor, account) = (who(&subject), uid.clone());
    changes
        .run(move |uow| {
            Box::pin(async move {
                if let Some(id) = &account {
                    users::record_login(uow.txn(), id).await?;
                }
                audit::record(uow, &actor, change);
                Ok(())
            })
        })
        .await?;
    tracing::info!(client = %client, subject = %subject, role = role.as_str(), "login");
    Ok(Json(json!({ "token": token, "expiresAt": rfc3339(expires) })).into_response())
}

/// The answer to a failed login, once it is audited (the answer is the same if that fails).
async fn refused(changes: &Writer, who: Actor) -> AppError {
    tracing::warn!(client = who.client.as_deref().unwrap_or("-"), username = %who.name, "login failed");
    let audited = changes
        .run(move |uow| {
            Box::pin(async move {
                audit::record(uow, &who, Change::new("auth.login_failed"));
                Ok(())
            })
        })
        .await;
    if let Err(e) = audited {
        tracing::error!(error = %e, "cannot audit a failed login");
    }
    AppError::Unauthenticated("invalid credentials".into())
}

/// A hash no password matches, checked when the username is unknown so that the answer takes
/// as long as for a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| users::hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}
/// `POST /api/auth/logout`: revokes the bearer token on every instance until it would have
/// expired; `401` for it from then on.
pub async fn logout(
    State(auth): State<Arc<AuthState>>,
    State(rate): State<Arc<RateLimits>>,
    State(changes): State<Writer>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    let viewer = auth.authenticate(Credentials::Headers(&headers))?.viewer.from_client(rate.client_ip(peer, &headers));
    let Credential::Token { jti, .. } = &viewer.credential else {
        return Err(AppError::invalid("authorization", "an API key is not logged out: revoke it with revokeApiKey"));
    };
    let (jti, expires_at, actor) = (jti.clone(), viewer.expires_at.unwrap_or(i64::MAX), viewer.actor());
    let directory = Arc::clone(&auth.directory);
    changes
        .run(move |uow| {
            Box::pin(async move {
                directory.revoke(uow.txn(), &jti, expires_at).await?;
                audit::record(uow, &actor, Change::new("auth.logout"));
                Ok(())
            })
        })
        .await?;
    tracing::info!(subject = %viewer.subject, "logout");
    Ok(Json(json!({ "ok": true })))
}

/// `GET /api/auth/verify`: whether the bearer token is valid, and whose it is.
pub async fn verify(State(auth): State<Arc<AuthState>>, headers: HeaderMap) -> Result<impl IntoResponse, AppError> {
    let viewer = auth.authenticate(Credentials::Headers(&headers))?.viewer;
    let expires = viewer.expires_at.and_then(|at| Utc.timestamp_opt(at, 0).single()).map(rfc3339);
    Ok(Json(json!({
        "valid": true,
        "subject": viewer.subject,
        "role": viewer.role.as_str(),
        "kind": viewer.kind.as_str(),
        "expiresAt": expires,
    })))
}
