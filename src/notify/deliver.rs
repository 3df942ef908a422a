//! The two jobs every notice goes through:
//!
//! 1. `notify.dispatch` (one per notice): looks the tenant up, decides the recipients and the language, and
//!    records one `notifications` row per recipient (a duplicate of the dedupe key is left alone), each with
//!    its `notify.send` job, in one transaction. A notice that reaches nobody gets one `skipped` row saying why.
//! 2. `notify.send` (one per delivery): renders and sends by email or the operator webhook; transient failures
//!    (SMTP 4xx, timeouts, webhook 429/5xx) are retried with the job backoff, permanent ones (SMTP 5xx,
//!    webhook 4xx) recorded as `failed` at once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::email::{Mailer, MailerError};
use super::notice::{Audience, Notice};
use super::record::{self, NewDelivery};
use super::templates::{self, LOCALES};
use super::values::{self, Context};
use super::webhook::OperatorWebhook;
use crate::core::Core;
use crate::jobs::{Job, JobContext, JobError, NewJob};
use crate::outbound::ClientError;
use crate::tenancy::{LookupKey, Tenant, TenantStatus, registry};

/// Why one attempt to deliver failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying (SMTP 4xx, network, timeout, webhook 429/5xx).
    Transient(String),
    /// No retry will help (SMTP 5xx, webhook 4xx, a bad address).
    Permanent(String),
}

/// `notify.dispatch`: one notice to fan out to its recipients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dispatch {
    pub notice: Notice,
    /// Computed when the notice was raised (not when the job runs, which may be another day).
    pub dedupe_key: String,
}

impl Job for Dispatch {
    const KIND: &'static str = "notify.dispatch";
    const MAX_ATTEMPTS: Option<i32> = Some(10);
}

/// `notify.send`: one delivery of the `notifications` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Send {
    pub notification_id: i64,
}

impl Job for Send {
    const KIND: &'static str = "notify.send";
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Mailer(#[from] MailerError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The delivery service: the configured channels, built once per process.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    mailer: Option<Mailer>,
    webhook: Option<OperatorWebhook>,
}

/// Who one delivery goes to.
struct Recipient {
    channel: &'static str,
    address: String,
}

impl Notifier {
    pub fn build(core: &Core) -> Result<Self, NotifierError> {
        let config = &core.config().notify;
        let timeout = Duration::from_secs(config.timeout_secs);
        let webhook = if config.webhook_configured() {
            OperatorWebhook::build(config, core.http("operator webhook", timeout)?)
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                core: core.clone(),
                mailer: Mailer::build(config)?,
                webhook,
            }),
        })
    }

    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    pub(super) async fn dispatch(&self, job: &Dispatch) -> Result<(), JobError> {
        let core = &self.inner.core;
        let config = &core.config().notify;
        let notice = &job.notice;
        let tenant = match notice.tenant() {
            Some(id) => registry::find(core.db(), &LookupKey::Id(id)).await?,
            None => None,
        };
        let context = Context {
            tenant_name: tenant.as_ref().map(|t| t.display_name.clone()),
            public_url: config.public_url.clone(),
            salla_app_url: core.config().app.salla_app_url.clone(),
        };
        let values = values::values(notice, &context);
        let (locale, recipients) = match notice.audience() {
            Audience::Merchant => self.merchant(notice, tenant.as_ref()).await,
            Audience::Operator => (config.default_locale.clone(), self.operators()),
        };
        let subject = templates::render(notice.kind(), &locale, &values)
            .map_err(JobError::permanent)?
            .subject;
        let mut tx = core.db().begin().await?;
        let base = |channel, recipient, status, error| NewDelivery {
            kind: notice.kind(),
            audience: notice.audience().as_str(),
            tenant_id: notice.tenant(),
            channel,
            recipient,
            locale: &locale,
            dedupe_key: &job.dedupe_key,
            subject: &subject,
            vars: &values,
            status,
            error,
        };
        match recipients {
            Err(reason) => {
                if record::insert(&mut tx, &base("none", "", "skipped", Some(&reason)))
                    .await?
                    .is_some()
                {
                    count("none", notice.kind(), "skipped");
                    tracing::info!(tenant_id = ?notice.tenant(), kind = notice.kind(), reason, "notification not sent");
                }
            }
            Ok(recipients) => {
                for recipient in &recipients {
                    let inserted = record::insert(
                        &mut tx,
                        &base(recipient.channel, &recipient.address, "pending", None),
                    )
                    .await?;
                    if let Some(id) = inserted {
                        let mut send = NewJob::new(&Send {
                            notification_id: id,
                        })?
                        .max_attempts(config.max_attempts);
                        if let Some(tenant) = notice.tenant() {
                            send = send.for_tenant(tenant);
                        }
                        core.jobs().enqueue_in(&mut tx, send).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The merchant's language and address, or why they get nothing.
    async fn merchant(
        &self,
        notice: &Notice,
        tenant: Option<&Tenant>,
    ) -> (String, Result<Vec<Recipient>, String>) {
        let config = &self.inner.core.config().notify;
        let Some(tenant) = tenant else {
            return (
                config.default_locale.clone(),
                Err("the tenant no longer exists".into()),
            );
        };
        // The merchant's own app settings (language, alerts), when their database is there to ask.
        let preferences = if tenant.status == TenantStatus::Ready {
            match self.inner.core.pools().get(tenant).await {
                Ok(pool) => crate::tenancy::app_preferences(&pool).await.ok(),
                Err(_) => None,
            }
        } else {
            None
        };
        let tenant_lang = tenant.locale.split(['-', '_']).next().unwrap_or_default();
        let locale = preferences
            .as_ref()
            .and_then(|p| p.lang.clone())
            .filter(|l| LOCALES.contains(&l.as_str()))
            .or_else(|| {
                LOCALES
                    .contains(&tenant_lang)
                    .then(|| tenant_lang.to_owned())
            })
            .unwrap_or_else(|| config.default_locale.clone());
        let recipients = if !config.enabled {
            Err(off())
        } else if matches!(notice, Notice::SyncFailing { .. })
            && preferences.is_some_and(|p| !p.notify_sync_failures)
        {
            Err("the merchant turned sync failure alerts off".into())
        } else if self.inner.mailer.is_none() {
            Err("no SMTP relay is configured (notify.smtp_host)".into())
        } else if tenant.owner_email.is_empty() {
            Err("the tenant has no owner email".into())
        } else {
            Ok(vec![Recipient {
                channel: "email",
                address: tenant.owner_email.clone(),
            }])
        };
        (locale, recipients)
    }

    fn operators(&self) -> Result<Vec<Recipient>, String> {
        let config = &self.inner.core.config().notify;
        if !config.enabled {
            return Err(off());
        }
        let mut recipients = Vec::new();
        if self.inner.mailer.is_some() {
            recipients.extend(config.operator_emails.iter().map(|address| Recipient {
                channel: "email",
                address: address.clone(),
            }));
        }
        if self.inner.webhook.is_some() {
            recipients.push(Recipient {
                channel: "webhook",
                address: OperatorWebhook::recipient(&config.operator_webhook_url),
            });
        }
        if recipients.is_empty() {
            return Err(
                "no operator channel is configured (notify.operator_emails with \
                        notify.smtp_host, or notify.operator_webhook_url)"
                    .into(),
            );
        }
        Ok(recipients)
    }

    pub(super) async fn send(&self, ctx: &JobContext, job: &Send) -> Result<(), JobError> {
        let db = self.inner.core.db();
        let Some(row) = record::get(db, job.notification_id).await? else {
            return Ok(());
        };
        if row.status != "pending" {
            return Ok(());
        }
        let result = match templates::render(&row.kind, &row.locale, &row.vars.0) {
            Err(error) => Err(Failure::Permanent(error.to_string())),
            Ok(text) => match row.channel.as_str() {
                "email" => match &self.inner.mailer {
                    Some(mailer) => mailer.send(&row.recipient, &row.locale, &text).await,
                    None => Err(Failure::Permanent(
                        "no SMTP relay is configured any more".into(),
                    )),
                },
                "webhook" => match &self.inner.webhook {
                    Some(webhook) => {
                        let body = serde_json::json!({
                            "text": format!("*{}*\n{}", text.subject, text.body),
                            "kind": row.kind,
                            "tenant_id": row.tenant_id,
                            "notification_id": row.id,
                            "subject": text.subject,
                            "fields": &row.vars.0,
                        });
                        let timeout =
                            Duration::from_secs(self.inner.core.config().notify.timeout_secs);
                        webhook.post(&body, timeout).await
                    }
                    None => Err(Failure::Permanent(
                        "no operator webhook is configured any more".into(),
                    )),
                },
                other => Err(Failure::Permanent(format!("unknown channel {other}"))),
            },
        };
        match result {
            Ok(()) => {
                record::mark_sent(db, row.id).await?;
                count(&row.channel, &row.kind, "sent");
                tracing::info!(tenant_id = ?row.tenant_id, kind = row.kind, channel = row.channel, notification_id = row.id, "notification sent");
                Ok(())
            }
            Err(failure) => {
                let (message, permanent) = match failure {
                    Failure::Transient(message) => (message, false),
                    Failure::Permanent(message) => (message, true),
                };
                let last = permanent || ctx.attempt >= ctx.max_attempts;
                record::mark_attempt_failed(db, row.id, &message, last).await?;
                count(
                    &row.channel,
                    &row.kind,
                    if last { "failed" } else { "retry" },
                );
                tracing::warn!(tenant_id = ?row.tenant_id, kind = row.kind, channel = row.channel, notification_id = row.id, attempt = ctx.attempt, error = %message, last, "notification not delivered");
                Err(if last {
                    JobError::permanent(message)
                } else {
                    JobError::retry(message)
                })
            }
        }
    }
}

fn off() -> String {
    "notifications are off (notify.enabled = false)".into()
}

fn count(channel: &str, kind: &str, outcome: &'static str) {
    metrics::counter!(
        "notifications_sent_total",
        "channel" => channel.to_owned(),
        "kind" => kind.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}
