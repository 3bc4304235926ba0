//! GraphQL of accounts: `me`, and user management for admins. Rights are checked per operation
//! by `permissions` before any of this runs.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, ResultExt, SimpleObject};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use super::users::{self, Directory, UserChanges};
use super::{ActorKind, Role, keys, viewer};
use crate::audit::{self, Change};
use crate::db::Writer;
use crate::entity::{api_key, user};
use crate::error::AppResult;
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::time::from_millis;

/// The caller.
#[derive(SimpleObject)]
pub struct Me {
    /// The actor name changes are recorded under.
    pub name: String,
    pub role: Role,
    pub kind: ActorKind,
}

/// An account.
pub struct User(pub user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        self.0.id.clone().into()
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    async fn role(&self) -> Role {
        users::role_of(&self.0)
    }
    async fn disabled(&self) -> bool {
        self.0.disabled
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_login_at.map(from_millis)
    }
}

/// Input of `createUser`.
#[derive(InputObject)]
pub struct CreateUserInput {
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    pub role: Role,
}

/// Input of `updateUser`: what is given changes.
#[derive(InputObject)]
pub struct UpdateUserInput {
    pub role: Option<Role>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
}

/// An API key, for an agent or a script. The key itself is shown once, at creation.
pub struct ApiKey(api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        self.0.id.clone().into()
    }
    /// The actor name of the key's changes.
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn role(&self) -> Role {
        Role::stored(&self.0.role)
    }
    /// The key's first characters, to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_millis(self.0.created_at)
    }
    /// Who created it.
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    /// When it was last used on any instance (uses are written every few seconds; this
    /// instance's own are shown at once).
    async fn last_used_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        let here = ctx.data::<Arc<Directory>>()?.keys.unwritten_use(&self.0.id);
        Ok(Ord::max(self.0.last_used_at, here).map(from_millis))
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at.map(from_millis)
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at.map(from_millis)
    }
}

/// A new key: the secret, shown once, and the key as stored.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// Starts with `mc_`. Keep it: it cannot be shown again.
    pub key: String,
    pub api_key: ApiKey,
}

/// Input of `createApiKey`.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// The actor name of the key's changes.
    pub name: String,
    pub role: Role,
    /// When it stops working; never, if not given.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// Who is calling.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let who = viewer(ctx).extend()?;
        Ok(Me { name: who.subject.clone(), role: who.role, kind: who.kind })
    }

    /// Every account, oldest first (ADMIN).
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(users::list(db).await.extend()?.into_iter().map(User).collect())
    }

    /// Every API key, revoked ones included, newest first (ADMIN).
    async fn api_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiKey>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(keys::list(db).await.extend()?.into_iter().map(ApiKey).collect())
    }
}

#[derive(Default)]
pub struct AuthMutation;

/// What an account or key change did: the value to answer, the feed's action and target, and
/// the audit entry.
struct Done<T> {
    value: T,
    activity: &'static str,
    target: (&'static str, String),
    name: String,
    audit: Change,
}

/// Runs `change`, then logs its activity and audit entry, all in one change through the
/// writer; re-reads the directory after the commit.
async fn logged<T, F>(ctx: &Context<'_>, change: F) -> async_graphql::Result<T>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, AppResult<Done<T>>> + Send + 'static,
{
    let who = viewer(ctx).extend()?;
    let (changes, directory) = (ctx.data::<Writer>()?, ctx.data::<Arc<Directory>>()?);
    let actor = who.actor();
    let value = changes
        .run(move |uow| {
            Box::pin(async move {
                let done = change(uow.txn()).await?;
                let (kind, id) = done.target;
                let activity = NewActivity::new(ActivityKind::System, &actor.name, done.activity)
                    .target(kind, &id)
                    .metadata(serde_json::json!({ "name": done.name }));
                log_activity(uow, activity);
                audit::record(uow, &actor, done.audit.target(kind, &id));
                Ok(done.value)
            })
        })
        .await
        .extend()?;
    // After the commit, so no concurrent refresh can undo it.
    directory.changed(changes.db()).await.extend()?;
    Ok(value)
}

/// A key as the audit log shows it (never its hash).
fn key_json(row: &api_key::Model) -> serde_json::Value {
    serde_json::json!({
        "name": row.name,
        "role": Role::stored(&row.role).graphql_name(),
        "prefix": row.prefix,
        "expiresAt": row.expires_at.map(from_millis),
        "revokedAt": row.revoked_at.map(from_millis),
    })
}

#[Object]
impl AuthMutation {
    /// Creates an account (ADMIN).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> async_graphql::Result<User> {
        let hash = users::new_password(&input.password).await.extend()?;
        logged(ctx, move |txn| {
            Box::pin(async move {
                let row = users::create(txn, input.username.trim(), hash, input.role).await?;
                Ok(Done {
                    activity: "user_created",
                    target: ("user", row.id.clone()),
                    name: row.username.clone(),
                    audit: Change::new("user.create").after(users::audited(&row)),
                    value: User(row),
                })
            })
        })
        .await
    }

    /// Changes an account's role, password or whether it may log in (ADMIN). A disabled
    /// account's tokens stop working within seconds. The last enabled admin cannot be demoted
    /// or disabled.
    async fn update_user(&self, ctx: &Context<'_>, id: ID, input: UpdateUserInput) -> async_graphql::Result<User> {
        let password_changed = input.password.is_some();
        let password_hash = match &input.password {
            Some(password) => Some(users::new_password(password).await.extend()?),
            None => None,
        };
        let changes = UserChanges { role: input.role, password_hash, disabled: input.disabled };
        logged(ctx, move |txn| {
            Box::pin(async move {
                let (before, row) = users::update(txn, &id, changes).await?;
                let (old, mut new) = audit::diff(users::audited(&before), users::audited(&row));
                if password_changed {
                    new["passwordChanged"] = true.into();
                }
                Ok(Done {
                    activity: "user_updated",
                    target: ("user", row.id.clone()),
                    name: row.username.clone(),
                    audit: Change::new("user.update").before(old).after(new),
                    value: User(row),
                })
            })
        })
        .await
    }

    /// Deletes an account (ADMIN); the last enabled admin cannot be deleted.
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        logged(ctx, move |txn| {
            Box::pin(async move {
                let gone = users::delete(txn, &id).await?;
                Ok(Done {
                    activity: "user_deleted",
                    target: ("user", gone.id.clone()),
                    name: gone.username.clone(),
                    audit: Change::new("user.delete").before(users::audited(&gone)),
                    value: id.clone(),
                })
            })
        })
        .await
    }

    /// Creates an API key (ADMIN). The key is in the answer, and only there: it is stored
    /// hashed. Send it as `Authorization: Bearer mc_…`, or in `connection_init`.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> async_graphql::Result<CreatedApiKey> {
        let creator = viewer(ctx).extend()?.subject.clone();
        logged(ctx, move |txn| {
            Box::pin(async move {
                let made = keys::create(txn, &input.name, input.role, input.expires_at, &creator).await?;
                Ok(Done {
                    activity: "apikey_created",
                    target: ("apikey", made.row.id.clone()),
                    name: made.row.name.clone(),
                    audit: Change::new("apikey.create").after(key_json(&made.row)),
                    value: CreatedApiKey { key: made.key, api_key: ApiKey(made.row) },
                })
            })
        })
        .await
    }

    /// Revokes an API key (ADMIN): it is refused from then on, and the sockets it opened close
    /// within seconds.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ApiKey> {
        logged(ctx, move |txn| {
            Box::pin(async move {
                let (before, row) = keys::revoke(txn, &id).await?;
                Ok(Done {
                    activity: "apikey_revoked",
                    target: ("apikey", row.id.clone()),
                    name: row.name.clone(),
                    audit: Change::new("apikey.revoke").diff(key_json(&before), key_json(&row)),
                    value: ApiKey(row),
                })
            })
        })
        .await
    }
}
