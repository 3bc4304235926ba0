//! Batched agent fields: the recorded metric totals of every agent of a list in one query.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use crate::agents::service::{RecordedTotals, recorded_totals_of};
use crate::error::AppError;
use crate::loaders::DbLoader;

/// Key: the recorded metric totals of this agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TotalsOf(pub String);

impl Loader<TotalsOf> for DbLoader {
    type Value = RecordedTotals;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[TotalsOf]) -> Result<HashMap<TotalsOf, Self::Value>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = recorded_totals_of(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|(id, totals)| (TotalsOf(id), totals)).collect())
    }
}
