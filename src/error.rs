//! One error type for the whole server, mapped to a GraphQL `extensions.code` and an HTTP status.
//!
//! Internal failures are logged with their cause and reach clients only as "internal error".

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;

/// Defines [`ErrorCode`], its client-facing names and the list of all of them from one table.
macro_rules! error_codes {
    ($($variant:ident => $code:literal),* $(,)?) => {
        /// Every `extensions.code` a client can see, in one place. The README's error table is
        /// checked against [`ErrorCode::ALL`] by a test.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant),*
        }

        impl ErrorCode {
            /// Every code, in the README's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code),*
                }
            }
        }
    };
}

error_codes! {
    Unauthenticated => "UNAUTHENTICATED",
    Forbidden => "FORBIDDEN",
    NotFound => "NOT_FOUND",
    BadUserInput => "BAD_USER_INPUT",
    AgentRuntimeError => "AGENT_RUNTIME_ERROR",
    RateLimited => "RATE_LIMITED",
    InternalServerError => "INTERNAL_SERVER_ERROR",
    GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
    GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
    QueryTooDeep => "QUERY_TOO_DEEP",
    QueryTooComplex => "QUERY_TOO_COMPLEX",
    QueryTooLarge => "QUERY_TOO_LARGE",
    BadRequest => "BAD_REQUEST",
    BatchTooLarge => "BATCH_TOO_LARGE",
    PayloadTooLarge => "PAYLOAD_TOO_LARGE",
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
    NotAcceptable => "NOT_ACCEPTABLE",
    MethodNotAllowed => "METHOD_NOT_ALLOWED",
    Timeout => "TIMEOUT",
    TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
    SubscriptionLagged => "SUBSCRIPTION_LAGGED",
    SubscriptionGap => "SUBSCRIPTION_GAP",
}

/// Sets `code` as the `extensions.code` of `err`, unless it has one already.
pub fn with_code(mut err: async_graphql::ServerError, code: ErrorCode) -> async_graphql::ServerError {
    let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has_code {
        err.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    }
    err
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// The agent runtime cannot be reached right now (the gateway connection is down); the
    /// same call may work when retried. Carries `retryable: true`.
    #[error("{0}")]
    AgentUnavailable(String),
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
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::Validation(_) => ErrorCode::BadUserInput,
            AppError::AgentRuntime(_) | AppError::AgentUnavailable(_) => ErrorCode::AgentRuntimeError,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::Db(_) | AppError::Internal(_) => ErrorCode::InternalServerError,
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
            AppError::AgentUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.public_message()).extend_with(|_, ext| {
            ext.set("code", self.code().as_str());
            if matches!(self, AppError::AgentUnavailable(_)) {
                ext.set("retryable", true);
            }
        })
    }
}

/// The JSON body of a REST error: `{"error": {"code", "message"}}`.
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({
            "error": { "code": self.code().as_str(), "message": self.public_message() }
        });
        (self.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The README's error table lists exactly the codes of `ErrorCode`.
    #[test]
    fn the_readme_error_table_matches_the_enum() {
        let readme = include_str!("../README.md");
        let section =
            readme.split("## Errors").nth(1).and_then(|s| s.split("\n## ").next()).expect("an Errors section");
        let listed: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
    }
}
