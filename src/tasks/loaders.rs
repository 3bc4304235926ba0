//! Batched task fields: the comments of every task of a page in one query.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use crate::entity::comment;
use crate::error::AppError;
use crate::loaders::DbLoader;
use crate::tasks::queries::comments_of;

/// Key: the comments of this task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommentsOf(pub String);

impl Loader<CommentsOf> for DbLoader {
    type Value = Vec<comment::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[CommentsOf]) -> Result<HashMap<CommentsOf, Self::Value>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = comments_of(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|(id, rows)| (CommentsOf(id), rows)).collect())
    }
}
