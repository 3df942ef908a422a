//! Processing a stored delivery, the same for every provider: count the attempt, skip one already finished (a
//! retried job), hand the row to the provider's dispatch, record what came of it.

use std::future::Future;

use sqlx::PgPool;

use super::InboxStatus;
use super::store::{self, InboxRow};
use crate::jobs::{JobContext, JobError};
use crate::tenancy::TenantId;

/// What applying one delivery did.
#[derive(Debug)]
pub enum Outcome {
    /// Its effects were applied (about this tenant, when known).
    Processed(Option<TenantId>),
    /// Nothing to do, and why.
    Ignored(Option<TenantId>, String),
}

/// Applies stored delivery `inbox_id` with `dispatch`. A failure is kept on the row and retried by the job
/// until it is permanent or the attempts are spent, when the row becomes `failed`.
pub async fn process<F, Fut>(
    db: &PgPool,
    ctx: &JobContext,
    inbox_id: i64,
    dispatch: F,
) -> Result<(), JobError>
where
    F: FnOnce(InboxRow) -> Fut,
    Fut: Future<Output = Result<Outcome, JobError>>,
{
    let Some(row) = store::begin_attempt(db, inbox_id).await? else {
        return Err(JobError::permanent(format!(
            "webhook inbox row {inbox_id} does not exist"
        )));
    };
    if row.is_finished() {
        return Ok(());
    }
    let (provider, event_type) = (row.provider.clone(), row.event_type.clone());
    match dispatch(row).await {
        Ok(Outcome::Processed(tenant)) => {
            store::finish(db, inbox_id, InboxStatus::Processed, tenant, None).await?;
        }
        Ok(Outcome::Ignored(tenant, why)) => {
            store::finish(db, inbox_id, InboxStatus::Ignored, tenant, Some(&why)).await?;
        }
        Err(error) => {
            // A deferred delivery (its tenant's database is read-only while it moves) does not use up an attempt.
            if !error.is_deferred() && (error.is_permanent() || ctx.attempt >= ctx.max_attempts) {
                tracing::error!(inbox_id, provider, event_type, error = %error, "delivery failed for good");
                store::finish(
                    db,
                    inbox_id,
                    InboxStatus::Failed,
                    None,
                    Some(error.message()),
                )
                .await?;
            } else {
                tracing::warn!(inbox_id, provider, event_type, attempt = ctx.attempt, error = %error, "delivery will be retried");
                store::record_error(db, inbox_id, error.message()).await?;
            }
            return Err(error);
        }
    }
    Ok(())
}
