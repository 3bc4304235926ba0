//! Batch loaders: a field that every row of a list asks for (a task's comments, an agent's
//! recorded totals) is read with one query for the whole list, not one query per row.
//!
//! Only batching, no cache: the loader lives in the schema data, shared by all requests, so
//! a cache would serve stale rows.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;

use crate::agents::service::{RecordedTotals, recorded_totals_of};
use crate::entity::comment;
use crate::error::AppError;
use crate::tasks::service::comments_of;

/// Reads batched fields from the database.
pub struct DbLoader {
    pub db: DatabaseConnection,
}

/// Key: the comments of this task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentsOf(pub String);

/// Key: the recorded metric totals of this agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TotalsOf(pub String);

impl Loader<CommentsOf> for DbLoader {
    type Value = Vec<comment::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[CommentsOf]) -> Result<HashMap<CommentsOf, Self::Value>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = comments_of(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|(id, rows)| (CommentsOf(id), rows)).collect())
    }
}

impl Loader<TotalsOf> for DbLoader {
    type Value = RecordedTotals;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[TotalsOf]) -> Result<HashMap<TotalsOf, Self::Value>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = recorded_totals_of(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|(id, totals)| (TotalsOf(id), totals)).collect())
    }
}
