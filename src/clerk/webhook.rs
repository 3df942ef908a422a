//! Clerk webhooks: Svix signature verification (pure) and the `clerk.event` job that applies a stored
//! delivery. The HTTP side is in [`super::routes`]; storage in [`crate::inbox`].
//!
//! Signature scheme (`../shared/reference/clerk.md` §1.6): HMAC-SHA256 over `"{id}.{timestamp}.{raw body}"`,
//! keyed by the standard-base64 decoding of the secret after its `whsec_` prefix; the signature header is a
//! space-separated list of `<version>,<base64>` entries and any `v1` entry that matches wins; the timestamp
//! (seconds) must be within ±[`TOLERANCE_SECS`] of now. `svix-*` header names are read first, then the
//! white-labelled `webhook-*` ones.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::ClerkConfig;
use crate::inbox::{self, Outcome};
use crate::jobs::{Job, JobContext, JobError, Registry};
use crate::provisioning::lifecycle::{Actor, TenantLifecycle};
use crate::provisioning::{ProvisionError, Provisioner, RegistrationRequest};
use crate::tenancy::{LookupKey, RegistryError, Slug, TenantId, TenantStatus};

use super::identity::TENANT_ID_METADATA;

/// Accepted clock difference between the sender's timestamp and ours, both ways.
pub const TOLERANCE_SECS: i64 = 300;

/// The inbox `provider` of Clerk deliveries.
pub const PROVIDER: &str = "clerk";

/// Why a tenant is suspended when its Clerk organization is deleted.
const ORG_DELETED_REASON: &str = "Clerk organization deleted";

/// Why a delivery was rejected. None of these reveal anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvixError {
    /// `svix-id`/`svix-timestamp`/`svix-signature` (or the `webhook-*` equivalent) is absent.
    #[error("missing header {0} (or its webhook-* equivalent)")]
    MissingHeader(&'static str),
    /// A header is present but not visible ASCII.
    #[error("header {0} is not valid text")]
    InvalidHeader(&'static str),
    /// The timestamp is not a non-negative integer number of seconds.
    #[error("the timestamp is not a valid number of seconds")]
    BadTimestamp,
    #[error("the timestamp {timestamp} is more than {TOLERANCE_SECS} s older than now ({now})")]
    TimestampTooOld { timestamp: i64, now: i64 },
    #[error("the timestamp {timestamp} is more than {TOLERANCE_SECS} s ahead of now ({now})")]
    TimestampTooNew { timestamp: i64, now: i64 },
    /// No `v1` entry of the signature header matches (tampered body, wrong secret, malformed entries).
    #[error("no signature matches")]
    NoMatchingSignature,
    /// The configured secret cannot be used (empty, or not base64 after `whsec_`): a configuration problem.
    #[error("the webhook secret is unusable: {0}")]
    BadSecret(&'static str),
}

impl SvixError {
    /// Whether the fault is ours (configuration) rather than the request's.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::BadSecret(_))
    }
}

/// The delivery headers, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHeaders<'h> {
    /// `svix-id`: the same on every redelivery of a message, so it is the dedupe key.
    pub id: &'h str,
    pub timestamp: i64,
    pub signature: &'h str,
}

const ID: [&str; 2] = ["svix-id", "webhook-id"];
const TIMESTAMP: [&str; 2] = ["svix-timestamp", "webhook-timestamp"];
const SIGNATURE: [&str; 2] = ["svix-signature", "webhook-signature"];

fn header<'h>(headers: &'h HeaderMap, names: [&'static str; 2]) -> Result<&'h str, SvixError> {
    let value = names
        .iter()
        .find_map(|name| headers.get(*name))
        .ok_or(SvixError::MissingHeader(names[0]))?;
    let text = value
        .to_str()
        .map_err(|_| SvixError::InvalidHeader(names[0]))?
        .trim();
    if text.is_empty() {
        return Err(SvixError::MissingHeader(names[0]));
    }
    Ok(text)
}

/// Reads the id, timestamp and signature headers (`svix-*`, else `webhook-*`), without checking the time.
pub fn delivery_headers(headers: &HeaderMap) -> Result<DeliveryHeaders<'_>, SvixError> {
    let id = header(headers, ID)?;
    let raw_timestamp = header(headers, TIMESTAMP)?;
    let signature = header(headers, SIGNATURE)?;
    let timestamp: i64 = raw_timestamp.parse().map_err(|_| SvixError::BadTimestamp)?;
    if timestamp < 0 {
        return Err(SvixError::BadTimestamp);
    }
    Ok(DeliveryHeaders {
        id,
        timestamp,
        signature,
    })
}

fn check_time(timestamp: i64, now: i64) -> Result<(), SvixError> {
    if now.saturating_sub(timestamp) > TOLERANCE_SECS {
        return Err(SvixError::TimestampTooOld { timestamp, now });
    }
    if timestamp.saturating_sub(now) > TOLERANCE_SECS {
        return Err(SvixError::TimestampTooNew { timestamp, now });
    }
    Ok(())
}

fn key(secret: &str) -> Result<Vec<u8>, SvixError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    if encoded.is_empty() {
        return Err(SvixError::BadSecret("empty"));
    }
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SvixError::BadSecret("not base64 after whsec_"))?;
    if key.is_empty() {
        return Err(SvixError::BadSecret("empty"));
    }
    Ok(key)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Whether any `v1,<base64>` entry of `signatures` is the MAC (constant-time comparison). Entries of other
/// versions (`v1a`, …), without a comma, or with invalid base64 are skipped.
fn matches(mac: &Hmac<Sha256>, signatures: &str) -> bool {
    signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok())
}

/// Verifies a Svix-signed delivery against one secret (`whsec_…`), on the raw body bytes, at `now_unix`
/// (seconds). Pure: no clock, no I/O.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SvixError> {
    verify_any(&[secret], headers, body, now_unix)
}

/// Like [`verify`], accepting a signature by any of `secrets` (the current and, during rotation, the
/// previous one). Fails with [`SvixError::BadSecret`] only when no secret is usable.
pub fn verify_any(
    secrets: &[&str],
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SvixError> {
    let delivery = delivery_headers(headers)?;
    check_time(delivery.timestamp, now_unix)?;
    let mut last_secret_error = SvixError::BadSecret("none configured");
    let mut any_usable = false;
    for secret in secrets {
        match key(secret) {
            Ok(key) => {
                any_usable = true;
                let mac = mac(&key, delivery.id, delivery.timestamp, body);
                if matches(&mac, delivery.signature) {
                    return Ok(());
                }
            }
            Err(error) => last_secret_error = error,
        }
    }
    if any_usable {
        Err(SvixError::NoMatchingSignature)
    } else {
        Err(last_secret_error)
    }
}

/// The `v1,<base64>` signature of a delivery, as Svix sends it (for tests and tools).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SvixError> {
    let key = key(secret)?;
    let tag = mac(&key, id, timestamp, body).finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

// ---------------------------------------------------------------------------------------------------------
// Processing: the `clerk.event` job.
// ---------------------------------------------------------------------------------------------------------

/// Applies one stored Clerk delivery (`webhook_inbox.id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClerkEvent {
    pub inbox_id: i64,
}

impl Job for ClerkEvent {
    const KIND: &'static str = "clerk.event";
}

/// Registers the `clerk.event` handler.
pub fn register_jobs(
    registry: &mut Registry,
    provisioner: Provisioner,
    lifecycle: TenantLifecycle,
    config: &ClerkConfig,
) {
    let instance_id: Option<Arc<str>> =
        (!config.instance_id.is_empty()).then(|| config.instance_id.as_str().into());
    registry.register(move |ctx, job: ClerkEvent| {
        let handler = EventHandler {
            provisioner: provisioner.clone(),
            lifecycle: lifecycle.clone(),
            instance_id: instance_id.clone(),
        };
        async move { handler.run(&ctx, job.inbox_id).await }
    });
}

struct EventHandler {
    provisioner: Provisioner,
    lifecycle: TenantLifecycle,
    /// The Clerk instance we serve, when configured (`clerk.instance_id`).
    instance_id: Option<Arc<str>>,
}

/// `organization.created` carries the creator's user id but no email, and the registry requires an owner
/// email. Until the membership/user events (part 4) fill in the real owner, the tenant gets this
/// placeholder on the reserved `.invalid` TLD (RFC 2606), which can never receive mail.
pub fn placeholder_owner_email(org_id: &str) -> String {
    format!("owner+{}@clerk.invalid", org_id.to_ascii_lowercase())
}

impl EventHandler {
    async fn run(&self, ctx: &JobContext, inbox_id: i64) -> Result<(), JobError> {
        inbox::process(self.provisioner.db(), ctx, inbox_id, |row| async move {
            self.dispatch(&row.event_type, &row.payload).await
        })
        .await
    }

    async fn dispatch(
        &self,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Result<Outcome, JobError> {
        if let Some(expected) = &self.instance_id
            && let Some(sent) = payload["instance_id"].as_str()
            && sent != &**expected
        {
            return Ok(Outcome::Ignored(
                None,
                format!("delivery from Clerk instance {sent}, this server serves {expected}"),
            ));
        }
        let data = &payload["data"];
        match event_type {
            "organization.created" => self.organization_created(data).await,
            "organization.updated" => self.organization_updated(data).await,
            "organization.deleted" => self.organization_deleted(data).await,
            "organizationMembership.created"
            | "organizationMembership.updated"
            | "organizationMembership.deleted" => {
                super::members::membership_event(&self.provisioner, data).await
            }
            "user.updated" => super::members::user_event(&self.provisioner, false, data).await,
            "user.deleted" => super::members::user_event(&self.provisioner, true, data).await,
            other => Ok(Outcome::Ignored(
                None,
                format!("event type {other} is not handled"),
            )),
        }
    }

    async fn tenant_of(&self, org_id: &str) -> Result<Option<TenantId>, JobError> {
        Ok(tenant_of_org(&self.provisioner, org_id)
            .await?
            .map(|t| t.id))
    }

    /// Registers and provisions a tenant for the organization unless one exists: idempotent (the registry's
    /// unique `clerk_org_id` makes a concurrent duplicate fail with `Taken`, treated as done).
    async fn organization_created(&self, data: &serde_json::Value) -> Result<Outcome, JobError> {
        let org_id = org_id(data)?;
        if let Some(tenant) = self.tenant_of(org_id).await? {
            return Ok(Outcome::Processed(Some(tenant)));
        }
        // Our own identity step's organization, echoed back before (or without) the step recording it: its
        // private metadata names the tenant. Linked to that tenant, never registered again.
        if let Some(tenant) = data["private_metadata"][TENANT_ID_METADATA]
            .as_str()
            .and_then(|id| id.parse::<TenantId>().ok())
        {
            return self.link_echo(tenant, org_id).await;
        }
        if organization_deletion_seen(&self.provisioner, org_id).await? {
            return Ok(Outcome::Ignored(
                None,
                "the organization was already deleted".into(),
            ));
        }
        let name = org_name(data);
        let slug = data["slug"]
            .as_str()
            .filter(|raw| Slug::parse(raw).is_ok())
            .map(str::to_owned);
        let mut request = RegistrationRequest {
            organization_name: if name.is_empty() {
                org_id.to_owned()
            } else {
                name
            },
            admin_email: placeholder_owner_email(org_id),
            plan: None,
            slug,
            locale: None,
            currency: None,
            timezone: None,
        };
        loop {
            let mut valid = request
                .validate(self.provisioner.config())
                .map_err(|fields| {
                    JobError::permanent(format!("cannot register the organization: {fields:?}"))
                })?;
            valid.tenant.clerk_org_id = Some(org_id.to_owned());
            match self.provisioner.register(valid, None, "clerk", None).await {
                Ok(registered) => {
                    tracing::info!(tenant_id = %registered.tenant.id, org_id, "tenant registered for a Clerk organization");
                    return Ok(Outcome::Processed(Some(registered.tenant.id)));
                }
                Err(ProvisionError::Registry(RegistryError::Taken {
                    field: "clerk_org_id",
                })) => {
                    // Registered concurrently (a duplicate delivery, or another path): done.
                    return Ok(Outcome::Processed(self.tenant_of(org_id).await?));
                }
                Err(ProvisionError::Registry(RegistryError::Taken { field: "slug" }))
                    if request.slug.is_some() =>
                {
                    // Another tenant has the org's slug: fall back to a generated one.
                    request.slug = None;
                }
                Err(error) => return Err(JobError::retry(error)),
            }
        }
    }

    /// Links the organization our identity step created for `tenant` (an `organization.created` echo).
    async fn link_echo(&self, tenant: TenantId, org_id: &str) -> Result<Outcome, JobError> {
        let found = self
            .provisioner
            .directory()
            .get(tenant)
            .await
            .map_err(|e| JobError::retry(e.to_string()))?;
        let Some(found) = found else {
            return Ok(Outcome::Ignored(
                None,
                format!("organization of tenant {tenant}, which does not exist"),
            ));
        };
        if matches!(found.status, TenantStatus::Deleting | TenantStatus::Deleted) {
            return Ok(Outcome::Ignored(
                Some(tenant),
                "organization of a deleted tenant".into(),
            ));
        }
        match found.clerk_org_id.as_deref() {
            Some(linked) if linked == org_id => Ok(Outcome::Processed(Some(tenant))),
            Some(other) => Ok(Outcome::Ignored(
                Some(tenant),
                format!("the tenant is linked to organization {other}"),
            )),
            None => {
                self.provisioner
                    .directory()
                    .set_clerk_org(tenant, org_id)
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                tracing::info!(tenant_id = %tenant, org_id, "organization echo linked to the tenant that created it");
                Ok(Outcome::Processed(Some(tenant)))
            }
        }
    }

    /// Renames the organization's tenant (registry and the tenant's settings). The slug is not followed: the
    /// tenant slug names its database backups and URLs and stays stable.
    async fn organization_updated(&self, data: &serde_json::Value) -> Result<Outcome, JobError> {
        let org_id = org_id(data)?;
        let Some(tenant) = tenant_of_org(&self.provisioner, org_id).await? else {
            return Err(JobError::retry(format!(
                "no tenant for organization {org_id} yet"
            )));
        };
        let name = org_name(data);
        if name.is_empty() {
            return Ok(Outcome::Ignored(
                Some(tenant.id),
                "no name in the event".into(),
            ));
        }
        match tenant.status {
            TenantStatus::Pending | TenantStatus::Provisioning => {
                return Err(JobError::retry("the tenant is still being provisioned"));
            }
            TenantStatus::Deleting | TenantStatus::Deleted | TenantStatus::Failed => {
                return Ok(Outcome::Ignored(
                    Some(tenant.id),
                    format!("the tenant is {}", tenant.status),
                ));
            }
            TenantStatus::Ready | TenantStatus::Suspended => {}
        }
        let pool = self
            .provisioner
            .pools()
            .get(&tenant)
            .await
            .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
        sqlx::query("UPDATE settings SET organization_name = $1, updated_at = now() WHERE organization_name <> $1")
            .bind(&name)
            .execute(&*pool)
            .await?;
        // Renaming after the settings update: its invalidation also evicts the cached settings everywhere.
        self.provisioner
            .directory()
            .rename(tenant.id, &name)
            .await?;
        Ok(Outcome::Processed(Some(tenant.id)))
    }

    /// Suspends the organization's tenant and schedules its deletion after the grace period.
    async fn organization_deleted(&self, data: &serde_json::Value) -> Result<Outcome, JobError> {
        let org_id = org_id(data)?;
        let Some(tenant) = tenant_of_org(&self.provisioner, org_id).await? else {
            // No tenant (yet): `organization.created`, if it comes later, sees this deletion and skips.
            return Ok(Outcome::Ignored(
                None,
                "no tenant for the organization".into(),
            ));
        };
        match tenant.status {
            TenantStatus::Ready => {}
            // Suspended by an earlier attempt that may have died before scheduling: schedule (idempotent).
            TenantStatus::Suspended
                if tenant.suspended_reason.as_deref() == Some(ORG_DELETED_REASON) =>
            {
                self.lifecycle
                    .schedule_deletion(tenant.id)
                    .await
                    .map_err(JobError::retry)?;
                return Ok(Outcome::Processed(Some(tenant.id)));
            }
            TenantStatus::Suspended | TenantStatus::Deleting | TenantStatus::Deleted => {
                return Ok(Outcome::Processed(Some(tenant.id)));
            }
            TenantStatus::Failed => {
                return Ok(Outcome::Ignored(
                    Some(tenant.id),
                    "the tenant failed provisioning; nothing to suspend".into(),
                ));
            }
            // Suspending needs a ready tenant: wait for provisioning to finish.
            TenantStatus::Pending | TenantStatus::Provisioning => {
                return Err(JobError::retry(format!(
                    "tenant {} is {}; suspending once it is ready",
                    tenant.id, tenant.status
                )));
            }
        }
        let actor = Actor::system("clerk");
        match self
            .lifecycle
            .suspend(&tenant.id.to_string(), ORG_DELETED_REASON, &actor)
            .await
        {
            Ok(_) => {
                self.lifecycle
                    .schedule_deletion(tenant.id)
                    .await
                    .map_err(JobError::retry)?;
                Ok(Outcome::Processed(Some(tenant.id)))
            }
            // A concurrent change (e.g. another delivery suspended it): the next attempt reads it afresh.
            Err(error) => Err(JobError::retry(error)),
        }
    }
}

/// The tenant of a Clerk organization, through the cached directory.
pub(super) async fn tenant_of_org(
    provisioner: &Provisioner,
    org_id: &str,
) -> Result<Option<std::sync::Arc<crate::tenancy::Tenant>>, JobError> {
    provisioner
        .directory()
        .resolve(&LookupKey::ClerkOrg(org_id.to_owned()))
        .await
        .map_err(|e| JobError::retry(format!("resolving the tenant: {e}")))
}

/// Whether an `organization.deleted` for this organization is already in the inbox.
pub(super) async fn organization_deletion_seen(
    provisioner: &Provisioner,
    org_id: &str,
) -> Result<bool, JobError> {
    let deletions = inbox::events_about(
        provisioner.db(),
        PROVIDER,
        &["organization.deleted"],
        org_id,
    )
    .await?;
    Ok(!deletions.is_empty())
}

/// The organization's name as a tenant name: trimmed, without control characters, at most 200 characters
/// (the registry's limit). Empty when the event has none.
fn org_name(data: &serde_json::Value) -> String {
    data["name"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fn org_id(data: &serde_json::Value) -> Result<&str, JobError> {
    data["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| JobError::permanent("the event has no data.id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_c2VjcmV0LW51bWJlci10d28tYXQtbGVhc3Q=";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    /// Svix's documented example, cross-checked with Python's `hmac`.
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(prefix: &str, id: &str, ts: &str, signature: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in [("id", id), ("timestamp", ts), ("signature", signature)] {
            map.insert(
                http::HeaderName::try_from(format!("{prefix}-{name}")).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn svix(signature: &str) -> HeaderMap {
        headers("svix", ID, &TS.to_string(), signature)
    }

    #[test]
    fn known_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), EXPECTED);
        assert_eq!(verify(SECRET, &svix(EXPECTED), BODY, TS), Ok(()));
    }

    #[test]
    fn tampered_body_or_signature() {
        let body = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(SECRET, &svix(EXPECTED), body, TS),
            Err(SvixError::NoMatchingSignature)
        );
        let mut flipped = EXPECTED.to_owned();
        flipped.pop();
        flipped.pop();
        flipped.push_str("0=");
        assert_eq!(
            verify(SECRET, &svix(&flipped), BODY, TS),
            Err(SvixError::NoMatchingSignature)
        );
        let truncated = &EXPECTED[..20];
        assert_eq!(
            verify(SECRET, &svix(truncated), BODY, TS),
            Err(SvixError::NoMatchingSignature)
        );
        for malformed in ["v1", "v1,", "v1,!!!not-base64", "g0hM9SsE"] {
            assert_eq!(
                verify(SECRET, &svix(malformed), BODY, TS),
                Err(SvixError::NoMatchingSignature),
                "{malformed}"
            );
        }
        // The id and the timestamp are signed too.
        let other_id = headers("svix", "msg_other", &TS.to_string(), EXPECTED);
        assert_eq!(
            verify(SECRET, &other_id, BODY, TS),
            Err(SvixError::NoMatchingSignature)
        );
        let other_ts = headers("svix", ID, &(TS + 1).to_string(), EXPECTED);
        assert_eq!(
            verify(SECRET, &other_ts, BODY, TS),
            Err(SvixError::NoMatchingSignature)
        );
    }

    #[test]
    fn wrong_secret_and_rotation() {
        assert_eq!(
            verify(OTHER, &svix(EXPECTED), BODY, TS),
            Err(SvixError::NoMatchingSignature)
        );
        assert_eq!(
            verify_any(&[OTHER, SECRET], &svix(EXPECTED), BODY, TS),
            Ok(())
        );
        assert_eq!(
            verify_any(&[SECRET, OTHER], &svix(EXPECTED), BODY, TS),
            Ok(())
        );
        // An unusable secret does not hide a usable one.
        assert_eq!(
            verify_any(&["whsec_", SECRET], &svix(EXPECTED), BODY, TS),
            Ok(())
        );
    }

    #[test]
    fn bad_secrets() {
        for secret in ["", "whsec_", "whsec_***"] {
            assert!(
                matches!(
                    verify(secret, &svix(EXPECTED), BODY, TS),
                    Err(SvixError::BadSecret(_))
                ),
                "{secret:?}"
            );
        }
        assert!(matches!(
            verify_any(&[], &svix(EXPECTED), BODY, TS),
            Err(SvixError::BadSecret(_))
        ));
        assert!(SvixError::BadSecret("x").is_configuration());
    }

    #[test]
    fn timestamps() {
        let h = svix(EXPECTED);
        assert_eq!(verify(SECRET, &h, BODY, TS + TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(SECRET, &h, BODY, TS - TOLERANCE_SECS), Ok(()));
        assert_eq!(
            verify(SECRET, &h, BODY, TS + TOLERANCE_SECS + 1),
            Err(SvixError::TimestampTooOld {
                timestamp: TS,
                now: TS + TOLERANCE_SECS + 1
            })
        );
        assert_eq!(
            verify(SECRET, &h, BODY, TS - TOLERANCE_SECS - 1),
            Err(SvixError::TimestampTooNew {
                timestamp: TS,
                now: TS - TOLERANCE_SECS - 1
            })
        );
        for bad in ["-5", "abc", "1614265330.5", "99999999999999999999"] {
            assert_eq!(
                verify(SECRET, &headers("svix", ID, bad, EXPECTED), BODY, TS),
                Err(SvixError::BadTimestamp),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_headers() {
        let full = svix(EXPECTED);
        for (name, expected) in [
            ("svix-id", "svix-id"),
            ("svix-timestamp", "svix-timestamp"),
            ("svix-signature", "svix-signature"),
        ] {
            let mut h = full.clone();
            h.remove(name);
            assert_eq!(
                verify(SECRET, &h, BODY, TS),
                Err(SvixError::MissingHeader(expected))
            );
        }
        let mut empty = full.clone();
        empty.insert("svix-id", HeaderValue::from_static(""));
        assert_eq!(
            verify(SECRET, &empty, BODY, TS),
            Err(SvixError::MissingHeader("svix-id"))
        );
        assert_eq!(
            verify(SECRET, &HeaderMap::new(), BODY, TS),
            Err(SvixError::MissingHeader("svix-id"))
        );
    }

    #[test]
    fn several_signatures_one_valid() {
        let wrong = sign(OTHER, ID, TS, BODY).unwrap();
        let list = format!("v1,AAAA {wrong} v1,bm90LWl0 {EXPECTED}");
        assert_eq!(verify(SECRET, &svix(&list), BODY, TS), Ok(()));
        let none = format!("{wrong} v1,bm90LWl0");
        assert_eq!(
            verify(SECRET, &svix(&none), BODY, TS),
            Err(SvixError::NoMatchingSignature)
        );
    }

    #[test]
    fn webhook_header_names() {
        let h = headers("webhook", ID, &TS.to_string(), EXPECTED);
        assert_eq!(verify(SECRET, &h, BODY, TS), Ok(()));
        let parsed = delivery_headers(&h).unwrap();
        assert_eq!(parsed.id, ID);
        assert_eq!(parsed.timestamp, TS);
    }

    #[test]
    fn other_versions_are_ignored() {
        let digest = EXPECTED.strip_prefix("v1,").unwrap();
        for entry in [
            format!("v1a,{digest}"),
            format!("v2,{digest}"),
            digest.to_owned(),
        ] {
            assert_eq!(
                verify(SECRET, &svix(&entry), BODY, TS),
                Err(SvixError::NoMatchingSignature),
                "{entry}"
            );
        }
        let mixed = format!("v1a,{digest} {EXPECTED}");
        assert_eq!(verify(SECRET, &svix(&mixed), BODY, TS), Ok(()));
    }

    #[test]
    fn large_payload() {
        let body = vec![b'x'; 300 * 1024];
        let signature = sign(SECRET, ID, TS, &body).unwrap();
        assert_eq!(verify(SECRET, &svix(&signature), &body, TS), Ok(()));
        let mut tampered = body.clone();
        tampered[150 * 1024] = b'y';
        assert_eq!(
            verify(SECRET, &svix(&signature), &tampered, TS),
            Err(SvixError::NoMatchingSignature)
        );
    }

    #[test]
    fn placeholder_email_is_valid() {
        let email = placeholder_owner_email("org_2g7np7Hrk0SN6kj5EDMLDaKNL0S");
        assert_eq!(email, "owner+org_2g7np7hrk0sn6kj5edmldaknl0s@clerk.invalid");
        assert!(crate::tenancy::settings::check_email(&email).is_ok());
    }
}
