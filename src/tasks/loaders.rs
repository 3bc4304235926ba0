//! Batched task fields: the comments (and the runs) of every task of a page in one query.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use crate::entity::{comment, task_run};
use crate::error::AppError;
use crate::loaders::DbLoader;
use crate::tasks::queries::{comments_of, runs_of};

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

/// Key: the runs of this task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunsOf(pub String);

impl Loader<RunsOf> for DbLoader {
    type Value = Vec<task_run::Model>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[RunsOf]) -> Result<HashMap<RunsOf, Self::Value>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = runs_of(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|(id, rows)| (RunsOf(id), rows)).collect())
    }
}
