//! GraphQL of accounts: `me`, and user management for admins. Rights are checked per operation
//! by `permissions` before any of this runs.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, ResultExt, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::users::{self, Directory, UserChanges};
use super::{Role, viewer};
use crate::db::UnitOfWork;
use crate::entity::user;
use crate::events::EventBus;
use crate::feed::service::{ActivityKind, NewActivity, log_activity};
use crate::time::from_millis;

/// What kind of principal acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ActorKind {
    User,
    ApiKey,
    System,
}

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

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// Who is calling.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let who = viewer(ctx).extend()?;
        Ok(Me { name: who.subject.clone(), role: who.role, kind: ActorKind::User })
    }

    /// Every account, oldest first (ADMIN).
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        viewer(ctx).extend()?;
        let db = ctx.data::<DatabaseConnection>()?;
        Ok(users::list(db).await.extend()?.into_iter().map(User).collect())
    }
}

#[derive(Default)]
pub struct AuthMutation;

/// Runs `change` and logs `action` on user `target` in one transaction.
async fn logged<T>(
    ctx: &Context<'_>,
    action: &str,
    change: impl AsyncFnOnce(&sea_orm::DatabaseTransaction) -> crate::error::AppResult<(T, String, String)>,
) -> async_graphql::Result<T> {
    let who = viewer(ctx).extend()?;
    let (db, bus) = (ctx.data::<DatabaseConnection>()?, ctx.data::<EventBus>()?);
    let directory = ctx.data::<Arc<Directory>>()?;
    let mut uow = UnitOfWork::begin(db).await.extend()?;
    let (value, id, username) = change(uow.txn()).await.extend()?;
    let activity = NewActivity::new(ActivityKind::System, &who.subject, action)
        .target("user", &id)
        .metadata(serde_json::json!({ "username": username }));
    log_activity(&mut uow, activity).await.extend()?;
    uow.commit(bus).await.extend()?;
    // After the commit, so no concurrent refresh can undo it.
    directory.changed(db).await.extend()?;
    Ok(value)
}

#[Object]
impl AuthMutation {
    /// Creates an account (ADMIN).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> async_graphql::Result<User> {
        logged(ctx, "user_created", async |txn| {
            let row = users::create(txn, input.username.trim(), &input.password, input.role).await?;
            let (id, name) = (row.id.clone(), row.username.clone());
            Ok((User(row), id, name))
        })
        .await
    }

    /// Changes an account's role, password or whether it may log in (ADMIN). A disabled
    /// account's tokens stop working within seconds. The last enabled admin cannot be demoted
    /// or disabled.
    async fn update_user(&self, ctx: &Context<'_>, id: ID, input: UpdateUserInput) -> async_graphql::Result<User> {
        let changes = UserChanges { role: input.role, password: input.password, disabled: input.disabled };
        logged(ctx, "user_updated", async |txn| {
            let row = users::update(txn, &id, changes).await?;
            let (id, name) = (row.id.clone(), row.username.clone());
            Ok((User(row), id, name))
        })
        .await
    }

    /// Deletes an account (ADMIN); the last enabled admin cannot be deleted.
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        logged(ctx, "user_deleted", async |txn| {
            users::delete(txn, &id).await?;
            Ok((id.clone(), id.to_string(), String::new()))
        })
        .await
    }
}
