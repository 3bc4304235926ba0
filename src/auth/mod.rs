//! Authentication: password login, HS256 tokens, and the caller identity resolvers see.

pub mod cli;
pub mod http;
pub mod keys;
pub mod password;
pub mod permissions;
pub mod resolvers;
pub mod token;
pub mod users;

pub use password::PasswordCheck;
pub use token::{Claims, TokenService};

use axum::http::{HeaderMap, header};

use crate::error::AppError;

/// Login checks and the token service: everything that decides who a caller is.
pub struct AuthState {
    pub admin_password: PasswordCheck,
    pub viewer_password: Option<PasswordCheck>,
    pub tokens: TokenService,
    /// Every account, for the checks of account tokens.
    pub directory: std::sync::Arc<users::Directory>,
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
    /// The one door every transport uses: who presents `credentials` (a token or an API key).
    pub fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        let token = credentials.token().ok_or(match credentials {
            Credentials::Headers(_) => AuthError::Missing("missing bearer token: send Authorization: Bearer <jwt>"),
            Credentials::ConnectionInit(_) => {
                AuthError::Missing("connection_init must carry {\"authorization\": \"Bearer <jwt>\"}")
            }
        })?;
        let viewer = if token.starts_with(keys::KEY_PREFIX) {
            let key = self.directory.keys.find(token).ok_or_else(|| AuthError::Refused("unknown API key".into()))?;
            self.directory.keys.note_use(&key.id);
            Viewer {
                subject: key.name.clone(),
                role: key.role,
                kind: ActorKind::ApiKey,
                expires_at: key.expires_at.map(|ms| ms.div_euclid(1000)),
                credential: Credential::ApiKey { id: key.id.clone() },
                client: None,
            }
        } else {
            let claims = self.tokens.verify(token).map_err(|e| AuthError::Refused(e.to_string()))?;
            Viewer::from(claims)
        };
        let viewer = self.current(viewer).map_err(|why| AuthError::Refused(why.into()))?;
        Ok(Principal { viewer, token: token.to_owned() })
    }

    /// `viewer` as its credential stands now: an account's token is as good as the account is
    /// (deleted or disabled ones are refused, a changed role applies at once); a logged-out
    /// token, a revoked or expired key are refused. Sockets ask again every second.
    pub fn current(&self, mut viewer: Viewer) -> Result<Viewer, &'static str> {
        match &viewer.credential {
            Credential::Token { jti, uid } => {
                if self.directory.is_revoked(jti) {
                    return Err("this token was logged out");
                }
                if let Some(uid) = uid {
                    match self.directory.get(uid) {
                        Some(account) if !account.disabled => {
                            viewer.role = account.role;
                            viewer.subject = account.username;
                        }
                        Some(_) => return Err("this account is disabled"),
                        None => return Err("this account no longer exists"),
                    }
                }
            }
            Credential::ApiKey { id } => match self.directory.keys.get(id) {
                Some(key) if key.is_live(crate::time::now_millis()) => viewer.role = key.role,
                Some(_) => return Err("this API key has expired"),
                None => return Err("this API key was revoked"),
            },
        }
        Ok(viewer)
    }
}

/// What kind of principal acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum ActorKind {
    /// A person: an account, or one of the bootstrap logins.
    User,
    /// An agent or a script, with an API key.
    ApiKey,
    /// The server's own actions.
    System,
}
crate::entity::stored_enum!(ActorKind { User => "USER", ApiKey => "API_KEY", System => "SYSTEM" });

/// What a caller authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token from login: its `jti` (which logout revokes) and the account's id, if any.
    Token { jti: String, uid: Option<String> },
    /// An API key, by id.
    ApiKey { id: String },
}

/// Who a change is recorded under: in the activity feed and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub kind: ActorKind,
    /// The client address the change came from.
    pub client: Option<String>,
}

impl Actor {
    /// The server itself.
    pub fn system() -> Actor {
        Actor { name: "system".into(), kind: ActorKind::System, client: None }
    }

    /// A person acting from `client`.
    pub fn user(name: &str, client: Option<std::net::IpAddr>) -> Actor {
        Actor { name: name.to_owned(), kind: ActorKind::User, client: client.map(|ip| ip.to_string()) }
    }
}

/// What a caller may do (see [`permissions`] for the table of rights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, user management included.
    Admin,
    /// Reads, and changes tasks, comments, agents, metrics and approvals.
    Operator,
    /// Read and subscribe only.
    Viewer,
}

impl Role {
    /// The role's name as it appears in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// The role named `word` (`admin`, `operator`, `viewer`, any case).
    pub fn parse(word: &str) -> Option<Role> {
        match word.to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The role stored as `word`; an unknown word reads as the least role.
    pub fn stored(word: &str) -> Role {
        Role::parse(word).unwrap_or(Role::Viewer)
    }

    /// The GraphQL name (`ADMIN`, `OPERATOR`, `VIEWER`), as the audit log records it.
    pub fn graphql_name(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Operator => "OPERATOR",
            Role::Viewer => "VIEWER",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Operator => 1,
            Role::Admin => 2,
        }
    }

    /// Whether this role has every right of `required`.
    pub fn allows(self, required: Role) -> bool {
        self.rank() >= required.rank()
    }
}

/// The authenticated caller of one request or WebSocket, put in the GraphQL context data.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The actor name: the account's username, the key's name, `admin` or `viewer` for the
    /// bootstrap logins.
    pub subject: String,
    pub role: Role,
    pub kind: ActorKind,
    /// When the credential expires, as seconds since the epoch (a key may never expire).
    pub expires_at: Option<i64>,
    pub credential: Credential,
    /// The client address, as the transport saw it.
    pub client: Option<std::net::IpAddr>,
}

impl Viewer {
    /// Fails with `FORBIDDEN` unless the caller's role has the rights of `required`.
    pub fn require(&self, required: Role) -> Result<(), AppError> {
        if self.role.allows(required) {
            return Ok(());
        }
        Err(AppError::Forbidden(match self.role {
            Role::Viewer => "the viewer role is read-only".to_owned(),
            role => format!("this needs the {} role; yours is {}", required.as_str(), role.as_str()),
        }))
    }

    /// The caller as the actor of a change.
    pub fn actor(&self) -> Actor {
        Actor { name: self.subject.clone(), kind: self.kind, client: self.client.map(|ip| ip.to_string()) }
    }

    /// The same caller, seen from `client`.
    pub fn from_client(mut self, client: std::net::IpAddr) -> Viewer {
        self.client = Some(client);
        self
    }
}

impl From<Claims> for Viewer {
    fn from(claims: Claims) -> Self {
        Viewer {
            subject: claims.sub,
            role: claims.role,
            kind: ActorKind::User,
            expires_at: Some(claims.exp),
            credential: Credential::Token { jti: claims.jti, uid: claims.uid },
            client: None,
        }
    }
}

/// The caller of a GraphQL operation.
///
/// Every transport puts a `Viewer` in the context before executing; its absence is a bug in
/// the transport, reported as `UNAUTHENTICATED` rather than a panic.
pub fn viewer<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a Viewer, AppError> {
    ctx.data_opt::<Viewer>().ok_or_else(|| AppError::Unauthenticated("authentication required".into()))
}

/// The caller of a GraphQL mutation: authenticated and allowed to change things. (Rights are
/// checked per operation by [`permissions`] before anything runs; this is a second guard.)
pub fn writer<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a Viewer, AppError> {
    let who = viewer(ctx)?;
    who.require(Role::Operator)?;
    Ok(who)
}

/// Extracts the token from an `Authorization: Bearer <jwt>` value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
