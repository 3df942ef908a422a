//! Notifications (docs/notifications.md): merchants hear about what concerns them (their tenant is ready,
//! their store needs a reinstall, their sync has been failing for a day, their plan ended), operators about
//! what needs a person (provisioning failed after its retries, a deletion finished, a backup or a tenant move
//! failed). Email over SMTP in Arabic and English, and an operator webhook for chat tools.
//!
//! The code that has something to say calls [`enqueue`] with a [`Notice`], on a pool or inside its own
//! transaction; the rest is durable jobs (`deliver.rs`) and a record of every delivery (`record.rs`).
//!
//! | file | one purpose |
//! |---|---|
//! | `notice.rs` | the `Notice` enum: kinds, audience, dedupe keys |
//! | `values.rs`, `templates.rs`, `messages.toml` | the texts and what fills them |
//! | `email.rs`, `webhook.rs` | the channels: SMTP (lettre) and the signed operator webhook |
//! | `deliver.rs` | the `notify.dispatch` and `notify.send` jobs |
//! | `record.rs` | the `notifications` table |
//! | `sync_check.rs` | the periodic `notify.sync_check` that raises `SyncFailing` |

mod deliver;
mod email;
mod notice;
pub mod record;
mod sync_check;
pub mod templates;
mod values;
pub mod webhook;

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

pub use deliver::{Dispatch, Notifier, NotifierError, Send};
pub use notice::{Audience, Notice};
pub use sync_check::SyncCheck;

use crate::jobs::{Job, JobId, NewJob, Registry};

/// What [`enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A `notify.dispatch` job will deliver it.
    Queued(JobId),
    /// This notice (same dedupe key) was already delivered or is on its way: nothing to do.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("encoding the notice: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Raises a notice: enqueues its `notify.dispatch` job. Whether anything is sent, to whom, and in which
/// language is decided by the job from `[notify]`; a notice whose dedupe key was already handled (the same
/// notice for the same tenant and period) is a no-op.
pub async fn enqueue(db: &PgPool, notice: &Notice) -> Result<Enqueued, NotifyError> {
    let mut conn = db.acquire().await?;
    enqueue_in(&mut conn, notice).await
}

/// [`enqueue`] on the caller's connection: pass `&mut *tx` to make the notice part of a transaction (it is
/// then raised only if that commits).
pub async fn enqueue_in(conn: &mut PgConnection, notice: &Notice) -> Result<Enqueued, NotifyError> {
    let dedupe_key = notice.dedupe_key(OffsetDateTime::now_utc());
    if record::exists(&mut *conn, &dedupe_key).await? {
        return Ok(Enqueued::Duplicate);
    }
    let mut job = NewJob::new(&Dispatch {
        notice: notice.clone(),
        dedupe_key: dedupe_key.clone(),
    })?
    .unique_key(dedupe_key)
    .priority(5);
    if let Some(tenant) = notice.tenant() {
        job = job.for_tenant(tenant);
    }
    match crate::jobs::enqueue_on(conn, job, 10).await? {
        crate::jobs::Enqueued::Inserted(id) => {
            tracing::info!(tenant_id = ?notice.tenant(), kind = notice.kind(), job_id = %id, "notification raised");
            Ok(Enqueued::Queued(id))
        }
        crate::jobs::Enqueued::Duplicate(_) => Ok(Enqueued::Duplicate),
    }
}

/// Registers `notify.dispatch`, `notify.send` and the periodic `notify.sync_check`.
pub fn register_jobs(registry: &mut Registry, notifier: Notifier) -> Result<(), serde_json::Error> {
    let interval = Duration::from_secs(notifier.core().config().notify.sync_check_interval_secs);
    let dispatcher = notifier.clone();
    registry.register::<Dispatch, _, _>(move |_ctx, job| {
        let notifier = dispatcher.clone();
        async move { notifier.dispatch(&job).await }
    });
    let sender = notifier.clone();
    registry.register::<Send, _, _>(move |ctx, job| {
        let notifier = sender.clone();
        async move { notifier.send(&ctx, &job).await }
    });
    let checker = notifier;
    registry.register::<SyncCheck, _, _>(move |_ctx, _job| {
        let notifier = checker.clone();
        async move {
            let raised = sync_check::run(notifier.core()).await?;
            if raised > 0 {
                tracing::info!(raised, "sync check raised sync_failing notices");
            }
            Ok(())
        }
    });
    registry.periodic(
        SyncCheck::KIND,
        interval,
        NewJob::new(&SyncCheck::default())?,
    );
    Ok(())
}
