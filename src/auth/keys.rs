//! API keys, for agents and scripts: `mc_` and 43 characters of base64url (256 random bits),
//! shown once at creation. Only a SHA-256 of each key is stored (a slow hash buys nothing for a
//! random 256-bit secret); a key is found by its first characters and its hash compared in
//! constant time.
//!
//! Every instance keeps the live keys in memory ([`KeyRing`], refreshed with the accounts), so
//! authenticating a key reads no database. When a key was last used is noted in memory and
//! written in batches, never once per request.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Role;
use crate::entity::api_key;
use crate::error::{AppError, AppResult};
use crate::time::now_millis;
use crate::validate;

/// What every key starts with.
pub const KEY_PREFIX: &str = "mc_";
/// Characters of a key shown (and stored in clear) to tell keys apart.
const SHOWN: usize = KEY_PREFIX.len() + 8;

/// A live key, as authentication needs it.
#[derive(Debug, Clone)]
pub struct LiveKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Epoch milliseconds.
    pub expires_at: Option<i64>,
    /// SHA-256 of the key, hex, as stored.
    hash: String,
}

impl LiveKey {
    /// Whether the key may still be used at `now` (epoch milliseconds).
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// The keys not revoked, by id and by shown prefix, and when each was last used here.
#[derive(Default)]
pub struct KeyRing {
    live: RwLock<Live>,
    /// Uses not yet written: key id to epoch milliseconds.
    used: Mutex<HashMap<String, i64>>,
}

/// Keys read from the database, to put in place.
pub struct LoadedKeys(Live);

#[derive(Default)]
struct Live {
    by_id: HashMap<String, LiveKey>,
    by_prefix: HashMap<String, Vec<String>>,
}

/// SHA-256 of `key`, hex (the stored form).
fn digest(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

impl KeyRing {
    /// The live, unexpired key `presented` is, if any.
    pub fn find(&self, presented: &str) -> Option<LiveKey> {
        let prefix = presented.get(..SHOWN)?;
        let hash = digest(presented);
        let live = self.live.read().ok()?;
        let now = now_millis();
        live.by_prefix
            .get(prefix)?
            .iter()
            .filter_map(|id| live.by_id.get(id))
            .find(|key| bool::from(key.hash.as_bytes().ct_eq(hash.as_bytes())))
            .filter(|key| key.is_live(now))
            .cloned()
    }

    /// The key `id`, if it is not revoked.
    pub fn get(&self, id: &str) -> Option<LiveKey> {
        self.live.read().ok()?.by_id.get(id).cloned()
    }

    /// Notes that key `id` was used just now.
    pub fn note_use(&self, id: &str) {
        if let Ok(mut used) = self.used.lock() {
            used.insert(id.to_owned(), now_millis());
        }
    }

    /// When key `id` was used here and not yet written.
    pub fn unwritten_use(&self, id: &str) -> Option<i64> {
        self.used.lock().ok()?.get(id).copied()
    }

    /// Replaces the live keys with the database's.
    pub async fn refresh(&self, db: &impl ConnectionTrait) -> AppResult<()> {
        let loaded = Self::load(db).await?;
        self.replace(loaded);
        Ok(())
    }

    /// Replaces the live keys with ones [`KeyRing::load`] read.
    pub fn replace(&self, loaded: LoadedKeys) {
        if let Ok(mut live) = self.live.write() {
            *live = loaded.0;
        }
    }

    /// Reads the keys not revoked.
    pub async fn load(db: &impl ConnectionTrait) -> AppResult<LoadedKeys> {
        let rows = api_key::Entity::find().filter(api_key::Column::RevokedAt.is_null()).all(db).await?;
        let mut fresh = Live::default();
        for row in rows {
            fresh.by_prefix.entry(row.prefix.clone()).or_default().push(row.id.clone());
            let role = Role::stored(&row.role);
            let key =
                LiveKey { id: row.id.clone(), name: row.name, role, expires_at: row.expires_at, hash: row.key_hash };
            fresh.by_id.insert(row.id, key);
        }
        Ok(LoadedKeys(fresh))
    }

    /// The uses noted since the last call, to write with [`KeyRing::write_uses`].
    pub fn take_uses(&self) -> Vec<(String, i64)> {
        self.used.lock().map(|mut used| used.drain().collect()).unwrap_or_default()
    }

    /// Puts back uses whose write did not commit, to be written next time (a later use of the
    /// same key wins).
    pub fn restore_uses(&self, uses: Vec<(String, i64)>) {
        if let Ok(mut used) = self.used.lock() {
            for (id, at) in uses {
                let slot = used.entry(id).or_insert(at);
                *slot = Ord::max(*slot, at);
            }
        }
    }

    /// Writes `uses`: one statement per key used, whatever the number of requests.
    pub async fn write_uses(db: &impl ConnectionTrait, uses: &[(String, i64)]) -> AppResult<()> {
        for (id, at) in uses {
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(*at))
                .filter(api_key::Column::Id.eq(id.as_str()))
                .filter(api_key::Column::LastUsedAt.is_null().or(Expr::col(api_key::Column::LastUsedAt).lt(*at)))
                .exec(db)
                .await?;
        }
        Ok(())
    }
}

/// A new key and its stored row.
pub struct NewKey {
    /// The secret, shown once.
    pub key: String,
    pub row: api_key::Model,
}

/// A fresh key: `mc_` and 256 random bits.
fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates key `name` with `role`, by `created_by`, valid until `expires_at` if given.
pub async fn create(
    db: &impl ConnectionTrait,
    name: &str,
    role: Role,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    created_by: &str,
) -> AppResult<NewKey> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::invalid("name", "must not be empty"));
    }
    validate::max_len("name", name, validate::MAX_NAME)?;
    let now = now_millis();
    let expires_at = expires_at.map(|at| validate::date("expiresAt", at)).transpose()?;
    if expires_at.is_some_and(|at| at <= now) {
        return Err(AppError::invalid("expiresAt", "must be in the future"));
    }
    let key = generate();
    let row = api_key::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set(name.to_owned()),
        role: Set(role.as_str().to_owned()),
        prefix: Set(key[..SHOWN].to_owned()),
        key_hash: Set(digest(&key)),
        created_by: Set(created_by.to_owned()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewKey { key, row })
}

/// Revokes key `id`; returns it before and after. Revoking a revoked key changes nothing.
pub async fn revoke(db: &impl ConnectionTrait, id: &str) -> AppResult<(api_key::Model, api_key::Model)> {
    validate::max_len("id", id, validate::MAX_NAME)?;
    let row = api_key::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("unknown API key {id}")))?;
    if row.revoked_at.is_some() {
        return Err(AppError::invalid("id", format!("API key {} is already revoked", row.name)));
    }
    let mut active: api_key::ActiveModel = row.clone().into();
    active.revoked_at = Set(Some(now_millis()));
    let revoked = active.update(db).await?;
    Ok((row, revoked))
}

/// Every key, revoked ones included, newest first.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<api_key::Model>> {
    Ok(api_key::Entity::find().order_by_desc(api_key::Column::CreatedAt).all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_found_by_itself_only_while_live() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let ring = KeyRing::default();
        let made = create(&db, "ci-bot", Role::Operator, None, "admin").await.unwrap();
        assert!(made.key.starts_with("mc_") && made.key.len() == 46, "{}", made.key);
        assert_ne!(made.row.key_hash, made.key, "the key itself is not stored");
        assert!(made.row.key_hash.len() == 64 && made.row.key_hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(ring.find(&made.key).is_none(), "not yet refreshed");
        ring.refresh(&db).await.unwrap();
        assert_eq!(ring.find(&made.key).unwrap().name, "ci-bot");
        // Same prefix, other secret: not a key.
        let forged = format!("{}{}", &made.key[..SHOWN], "A".repeat(made.key.len() - SHOWN));
        assert!(ring.find(&forged).is_none());
        assert!(ring.find("mc_").is_none());

        revoke(&db, &made.row.id).await.unwrap();
        assert!(revoke(&db, &made.row.id).await.is_err(), "already revoked");
        ring.refresh(&db).await.unwrap();
        assert!(ring.find(&made.key).is_none());

        // An expired key is refused (set the expiry in the past behind the API's back).
        let old = create(&db, "old", Role::Viewer, None, "admin").await.unwrap();
        let mut active: api_key::ActiveModel = old.row.clone().into();
        active.expires_at = Set(Some(now_millis() - 1));
        active.update(&db).await.unwrap();
        ring.refresh(&db).await.unwrap();
        assert!(ring.find(&old.key).is_none());
        let past = chrono::Utc::now() - chrono::Duration::minutes(1);
        assert!(create(&db, "late", Role::Viewer, Some(past), "admin").await.is_err());
    }

    #[tokio::test]
    async fn uses_are_written_in_one_batch() {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        let ring = KeyRing::default();
        let made = create(&db, "bot", Role::Viewer, None, "admin").await.unwrap();
        for _ in 0..100 {
            ring.note_use(&made.row.id);
        }
        let noted = ring.unwritten_use(&made.row.id).unwrap();
        let uses = ring.take_uses();
        assert_eq!(uses.len(), 1, "one write for a hundred uses");
        // A write that did not commit is put back for the next flush.
        ring.restore_uses(uses);
        assert_eq!(ring.unwritten_use(&made.row.id), Some(noted));
        KeyRing::write_uses(&db, &ring.take_uses()).await.unwrap();
        assert!(ring.unwritten_use(&made.row.id).is_none());
        let row = api_key::Entity::find_by_id(made.row.id.clone()).one(&db).await.unwrap().unwrap();
        assert_eq!(row.last_used_at, Some(noted));
    }
}
