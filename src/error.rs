//! One error type for the whole server, mapped to a GraphQL `extensions.code` and an HTTP status.
//!
//! Internal failures are logged with their cause and reach clients only as "internal error".

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;

use crate::agents::runtime::RuntimeError;

/// Every failure a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No token, a bad signature, a wrong algorithm or an expired token.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Client input failed validation; the message names the field.
    #[error("{0}")]
    Validation(String),
    /// The agent runtime failed or is not configured; the message says why.
    #[error("{0}")]
    AgentRuntime(String),
    /// Too many requests.
    #[error("{0}")]
    RateLimited(String),
    /// A database failure: logged, never shown.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Anything else: logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for results of service functions.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A validation error naming `field`.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        AppError::Validation(format!("{field}: {problem}"))
    }

    /// The `extensions.code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Validation(_) => "BAD_USER_INPUT",
            AppError::AgentRuntime(_) => "AGENT_RUNTIME_ERROR",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::Db(_) | AppError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status for REST endpoints.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Validation(_) => StatusCode::BAD_REQUEST,
            AppError::AgentRuntime(_) => StatusCode::BAD_GATEWAY,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Db(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message clients see: internals are logged here and replaced.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Db(_) | AppError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<RuntimeError> for AppError {
    fn from(err: RuntimeError) -> Self {
        match err {
            RuntimeError::UnknownAgent(id) => AppError::NotFound(format!("unknown agent {id}")),
            other => AppError::AgentRuntime(other.to_string()),
        }
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.public_message()).extend_with(|_, ext| ext.set("code", self.code()))
    }
}

/// The JSON body of a REST error: `{"error": {"code", "message"}}`.
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.public_message() }
        });
        (self.status(), axum::Json(body)).into_response()
    }
}
