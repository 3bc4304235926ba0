//! Authentication: password login, HS256 tokens, and the caller identity resolvers see.

pub mod http;
pub mod password;
pub mod token;

pub use password::PasswordCheck;
pub use token::{Claims, TokenService};

use axum::http::{HeaderMap, header};

use crate::error::AppError;

/// Login checks and the token service: everything that decides who a caller is.
pub struct AuthState {
    pub admin_password: PasswordCheck,
    pub viewer_password: Option<PasswordCheck>,
    pub tokens: TokenService,
}

/// What a caller presents: HTTP headers (`Authorization: Bearer <jwt>`) or the payload of a
/// WebSocket `connection_init` (`{"authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`).
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    Headers(&'a HeaderMap),
    ConnectionInit(&'a serde_json::Value),
}

impl<'a> Credentials<'a> {
    /// The bearer token presented, if any.
    fn token(self) -> Option<&'a str> {
        match self {
            Credentials::Headers(headers) => {
                headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer)
            }
            Credentials::ConnectionInit(payload) => {
                let get = |key: &str| payload.get(key).and_then(|v| v.as_str());
                get("authorization").or_else(|| get("Authorization")).and_then(bearer).or_else(|| get("token"))
            }
        }
    }
}

/// Why a caller is not authenticated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Nothing was presented; the message says what to send.
    #[error("{0}")]
    Missing(&'static str),
    /// A token was presented and refused; the message says why.
    #[error("{0}")]
    Refused(String),
}

impl From<AuthError> for AppError {
    fn from(err: AuthError) -> Self {
        AppError::Unauthenticated(err.to_string())
    }
}

/// An authenticated caller, and the token it presented (the per-token rate limit keys on it).
#[derive(Debug, Clone)]
pub struct Principal {
    pub viewer: Viewer,
    pub token: String,
}

impl AuthState {
    /// The one door every transport uses: who presents `credentials`.
    pub fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        let token = credentials.token().ok_or(match credentials {
            Credentials::Headers(_) => AuthError::Missing("missing bearer token: send Authorization: Bearer <jwt>"),
            Credentials::ConnectionInit(_) => {
                AuthError::Missing("connection_init must carry {\"authorization\": \"Bearer <jwt>\"}")
            }
        })?;
        let claims = self.tokens.verify(token).map_err(|e| AuthError::Refused(e.to_string()))?;
        Ok(Principal { viewer: claims.into(), token: token.to_owned() })
    }
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read and subscribe only.
    Viewer,
}

impl Role {
    /// The role's name as it appears in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// The authenticated caller of one request or WebSocket, put in the GraphQL context data.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub subject: String,
    pub role: Role,
    /// Expiry of the token, as seconds since the epoch.
    pub expires_at: i64,
}

impl Viewer {
    /// Fails with `FORBIDDEN` unless the caller may change things.
    fn require_write(&self) -> Result<(), AppError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => {
                Err(AppError::Forbidden("the viewer role is read-only; log in with the admin password".into()))
            }
        }
    }
}

impl From<Claims> for Viewer {
    fn from(claims: Claims) -> Self {
        Viewer { subject: claims.sub, role: claims.role, expires_at: claims.exp }
    }
}

/// The caller of a GraphQL operation.
///
/// Every transport puts a `Viewer` in the context before executing; its absence is a bug in
/// the transport, reported as `UNAUTHENTICATED` rather than a panic.
pub fn viewer<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a Viewer, AppError> {
    ctx.data_opt::<Viewer>().ok_or_else(|| AppError::Unauthenticated("authentication required".into()))
}

/// The caller of a GraphQL mutation: authenticated and allowed to change things.
pub fn writer<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a Viewer, AppError> {
    let who = viewer(ctx)?;
    who.require_write()?;
    Ok(who)
}

/// Extracts the token from an `Authorization: Bearer <jwt>` value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
