//! User accounts: each logs in with its own password (argon2id), has a role, and can be
//! disabled. The bootstrap logins (`MC_PASSWORD`, the viewer password) stay as they are.
//!
//! Tokens of an account carry its id (`uid`); every authentication looks the id (and the
//! token's `jti`, which logout revokes) up in a [`Directory`] kept in memory (refreshed from the
//! database every few seconds, at once for changes made here), so a disabled, deleted or
//! re-roled account, or a logged-out token, takes effect within seconds on every instance,
//! without a database read per request.

use std::collections::HashMap;
use std::sync::RwLock;

use argon2::password_hash::{SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHasher};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::Role;
use crate::entity::{revoked_token, user};
use crate::error::{AppError, AppResult};
use crate::time::now_millis;

/// Longest username, and the shortest and longest password of an account.
pub const MAX_USERNAME: usize = 64;
pub const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;
/// Names the server's own logins and actions use: no account may take them.
const RESERVED: [&str; 3] = ["admin", "viewer", "system"];

/// What is known about an account, for authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
}

/// Every account by id, every token logged out and every live API key, as of the last refresh.
#[derive(Default)]
pub struct Directory {
    accounts: RwLock<HashMap<String, Account>>,
    /// The `jti` of every token logged out and not yet expired.
    revoked: RwLock<std::collections::HashSet<String>>,
    /// The API keys not revoked.
    pub keys: super::keys::KeyRing,
    /// Bumped by every change made here, so a refresh that read the database before the change
    /// committed does not undo it.
    changes: std::sync::atomic::AtomicU64,
}

impl Directory {
    /// The account `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<Account> {
        self.accounts.read().ok()?.get(id).cloned()
    }

    /// Whether the token `jti` was logged out.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().is_ok_and(|r| r.contains(jti))
    }

    /// Revokes token `jti` (which expires at `expires_at`, epoch seconds) on every instance:
    /// here at once, on the others at their next refresh.
    pub async fn revoke(&self, db: &impl ConnectionTrait, jti: &str, expires_at: i64) -> AppResult<()> {
        use sea_orm::sea_query::OnConflict;
        let row = revoked_token::ActiveModel { jti: Set(jti.to_owned()), expires_at: Set(expires_at) };
        revoked_token::Entity::insert(row)
            .on_conflict(OnConflict::column(revoked_token::Column::Jti).do_nothing().to_owned())
            .try_insert()
            .exec(db)
            .await?;
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.insert(jti.to_owned());
        }
        Ok(())
    }

    /// Replaces what is known with the database's accounts, keys and revoked tokens (only
    /// reads: it runs every few seconds on every instance).
    pub async fn refresh(&self, db: &impl ConnectionTrait) -> AppResult<()> {
        use std::sync::atomic::Ordering;
        let now = chrono::Utc::now().timestamp();
        let revoked = revoked_token::Entity::find().filter(revoked_token::Column::ExpiresAt.gte(now)).all(db).await?;
        if let Ok(mut known) = self.revoked.write() {
            known.extend(revoked.into_iter().map(|r| r.jti));
        }
        let before = self.changes.load(Ordering::SeqCst);
        let keys = super::keys::KeyRing::load(db).await?;
        let rows = user::Entity::find().all(db).await?;
        let accounts = rows.iter().map(|u| (u.id.clone(), account_of(u))).collect();
        if let Ok(mut known) = self.accounts.write()
            && self.changes.load(Ordering::SeqCst) == before
        {
            *known = accounts;
            self.keys.replace(keys);
        }
        Ok(())
    }

    /// Deletes the revocations of tokens that have expired anyway.
    pub async fn prune_revoked(db: &impl ConnectionTrait) -> AppResult<()> {
        let now = chrono::Utc::now().timestamp();
        revoked_token::Entity::delete_many().filter(revoked_token::Column::ExpiresAt.lt(now)).exec(db).await?;
        Ok(())
    }

    /// Re-reads the accounts after a change this instance committed; a refresh already under
    /// way (which may have read before the commit) is discarded.
    pub async fn changed(&self, db: &impl ConnectionTrait) -> AppResult<()> {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.refresh(db).await
    }
}

fn account_of(row: &user::Model) -> Account {
    Account { username: row.username.clone(), role: role_of(row), disabled: row.disabled }
}

/// The stored role of `row` (an unknown word reads as the least role).
pub fn role_of(row: &user::Model) -> Role {
    Role::stored(&row.role)
}

/// An account as the audit log shows it (never its password hash).
pub fn audited(row: &user::Model) -> serde_json::Value {
    serde_json::json!({
        "username": row.username,
        "role": role_of(row).graphql_name(),
        "disabled": row.disabled,
    })
}

/// Checks a username: 1–64 characters of letters, digits and `._-@`, not a reserved name.
pub fn check_username(name: &str) -> AppResult<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.chars().count() > MAX_USERNAME || !name.chars().all(ok_char) {
        return Err(AppError::invalid(
            "username",
            format!("1 to {MAX_USERNAME} characters: letters, digits, '.', '_', '-', '@'"),
        ));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(AppError::invalid("username", format!("'{name}' is reserved for the server's own logins")));
    }
    Ok(())
}

fn check_password(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AppError::invalid("password", format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters")));
    }
    Ok(())
}

/// [`hash_password`] off the async threads (hashing takes tens of milliseconds on purpose).
async fn hash_off_thread(password: &str) -> AppResult<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))?
}

/// An argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
}

/// Every account, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find().order_by_asc(user::Column::CreatedAt).all(db).await?)
}

/// The account named `username`.
pub async fn by_username(db: &impl ConnectionTrait, username: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find().filter(user::Column::Username.eq(username)).one(db).await?)
}

/// Checks a new password and hashes it (off the async threads: it takes tens of
/// milliseconds), before the change that stores it begins.
pub async fn new_password(password: &str) -> AppResult<String> {
    check_password(password)?;
    hash_off_thread(password).await
}

/// Creates an account whose password hashes to `password_hash` (from [`new_password`]).
pub async fn create(
    db: &impl ConnectionTrait,
    username: &str,
    password_hash: String,
    role: Role,
) -> AppResult<user::Model> {
    check_username(username)?;
    if by_username(db, username).await?.is_some() {
        return Err(AppError::invalid("username", format!("'{username}' is taken")));
    }
    let now = now_millis();
    let row = user::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        username: Set(username.to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        last_login_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// What an update changes (`None`: unchanged).
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    /// A new password's hash, from [`new_password`].
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

async fn find(db: &impl ConnectionTrait, id: &str) -> AppResult<user::Model> {
    user::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("unknown user {id}")))
}

/// Refuses a change that would leave no enabled admin account.
async fn keep_an_admin(db: &impl ConnectionTrait, row: &user::Model, what: &str) -> AppResult<()> {
    if role_of(row) != Role::Admin || row.disabled {
        return Ok(());
    }
    let others = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin.as_str()))
        .filter(user::Column::Disabled.eq(false))
        .filter(user::Column::Id.ne(row.id.clone()))
        .count(db)
        .await?;
    if others == 0 {
        return Err(AppError::invalid(
            "id",
            format!("{} is the last enabled admin: it cannot be {what}", row.username),
        ));
    }
    Ok(())
}

/// Changes an account's role, password or whether it may log in; returns it before and after.
pub async fn update(
    db: &impl ConnectionTrait,
    id: &str,
    changes: UserChanges,
) -> AppResult<(user::Model, user::Model)> {
    let row = find(db, id).await?;
    let before = row.clone();
    if changes.role.is_some_and(|r| r != Role::Admin) {
        keep_an_admin(db, &row, "demoted").await?;
    }
    if changes.disabled == Some(true) {
        keep_an_admin(db, &row, "disabled").await?;
    }
    let mut active: user::ActiveModel = row.into();
    if let Some(role) = changes.role {
        active.role = Set(role.as_str().to_owned());
    }
    if let Some(hash) = changes.password_hash {
        active.password_hash = Set(hash);
    }
    if let Some(disabled) = changes.disabled {
        active.disabled = Set(disabled);
    }
    active.updated_at = Set(now_millis());
    let row = active.update(db).await?;
    Ok((before, row))
}

/// Deletes an account (its tokens stop working); returns it as it was.
pub async fn delete(db: &impl ConnectionTrait, id: &str) -> AppResult<user::Model> {
    let row = find(db, id).await?;
    keep_an_admin(db, &row, "deleted").await?;
    user::Entity::delete_by_id(id.to_owned()).exec(db).await?;
    Ok(row)
}

/// Records a successful login.
pub async fn record_login(db: &impl ConnectionTrait, id: &str) -> AppResult<()> {
    user::Entity::update_many()
        .col_expr(user::Column::LastLoginAt, sea_orm::sea_query::Expr::value(now_millis()))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("ops-alice").is_ok());
        assert!(check_username("a.b_c@d").is_ok());
        for bad in ["", "has space", "émile", "admin", "System", &"x".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_last_enabled_admin_stays() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let hash = new_password("correct horse battery").await.unwrap();
        let root = create(&db, "root", hash.clone(), Role::Admin).await.unwrap();
        let demote = UserChanges { role: Some(Role::Operator), ..UserChanges::default() };
        let err = update(&db, &root.id, demote).await.unwrap_err();
        assert!(err.to_string().contains("last enabled admin"), "{err}");
        assert!(delete(&db, &root.id).await.is_err());
        let other = create(&db, "second", hash.clone(), Role::Admin).await.unwrap();
        let disable = UserChanges { disabled: Some(true), ..UserChanges::default() };
        assert!(update(&db, &root.id, disable).await.unwrap().1.disabled);
        assert!(delete(&db, &other.id).await.is_err(), "root is disabled: second is the last");
        assert!(create(&db, "second", hash, Role::Viewer).await.is_err(), "taken");
        let short = new_password("short").await.unwrap_err();
        assert!(short.to_string().contains("password"), "{short}");
    }
}
