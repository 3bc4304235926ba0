//! Authentication: password login, HS256 tokens, and the caller identity resolvers see.

pub mod http;
pub mod password;
pub mod token;

pub use password::PasswordCheck;
pub use token::{Claims, TokenService};

use crate::error::AppError;

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
    pub fn require_write(&self) -> Result<(), AppError> {
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
