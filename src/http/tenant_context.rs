//! `TenantContext`: the tenant a request acts for, established from a verified credential only — an embedded
//! app session (`wss_…`), a Clerk session token (its active organization) or a tenant API key — resolved through
//! the cached directory and passed through the status gate. A handler that takes a `TenantContext` can only ever see that tenant.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use sqlx::PgPool;

use crate::clerk::jwt::SessionClaims;
use crate::clerk::session::{SessionVerifier, token_from_headers};
use crate::embedded::session::{AppSession, SESSION_PREFIX, SessionError};
use crate::error::ApiError;
use crate::provisioning::steps;
use crate::state::AppState;
use crate::tenancy::{ApiKeyHash, LookupKey, Tenant, TenantId, TenantStatus, looks_like_key};

pub struct TenantContext {
    pub tenant: Arc<Tenant>,
    /// Who acts, for audit records (e.g. `api_key:wsl_3f9a1c2b`, `clerk:user_2g7…`).
    pub actor: String,
    pub principal: Principal,
}

/// The verified credential behind a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A tenant API key: a machine credential of the tenant, with admin rights on it.
    ApiKey,
    /// A Clerk session of a member of the tenant's organization.
    Member(Arc<SessionClaims>),
    /// A session of the Salla embedded app (the store's owner or a staff member).
    AppSession(Arc<AppSession>),
}

impl TenantContext {
    pub fn id(&self) -> TenantId {
        self.tenant.id
    }

    /// The member's role in the organization (`admin`, `member`, a custom role; `owner` or `member` for
    /// embedded app sessions), `None` for API keys.
    pub fn role(&self) -> Option<&str> {
        match &self.principal {
            Principal::ApiKey => None,
            Principal::Member(claims) => claims.org_role(),
            Principal::AppSession(session) => Some(&session.role),
        }
    }

    /// The acting person's name for the UI, when known (embedded app sessions).
    pub fn display_name(&self) -> Option<&str> {
        match &self.principal {
            Principal::AppSession(session) => session.display_name.as_deref(),
            Principal::ApiKey | Principal::Member(_) => None,
        }
    }

    /// Admin actions (API keys, members, settings): API keys and organization admins; 403 for anyone else.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role() {
            None | Some("admin") | Some("owner") => Ok(()),
            Some(other) => Err(ApiError::forbidden(
                "insufficient_role",
                format!("This needs the admin role in the organization; you are {other}."),
            )),
        }
    }
}

impl FromRequestParts<AppState> for TenantContext {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = Self::authenticate(parts, state).await?;
        // Maintenance (global) and read-only tenants, after the status gate.
        crate::maintenance::check(state, &context.tenant, !parts.method.is_safe()).await?;
        Ok(context)
    }
}

impl TenantContext {
    /// The credential → tenant → status gate.
    async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // `Bearer wss_…`: an embedded app session (or an operator's impersonation cookie in the app).
        if let Some(token) = bearer(parts).or_else(|| crate::web::impersonate::cookie(parts))
            && token.starts_with(SESSION_PREFIX)
        {
            return from_app_session(state, parts, token).await;
        }
        // A Bearer token that is not one of our `wsl_` keys (or the `__session` cookie) is a Clerk session.
        if let Some(sessions) = state.sessions()
            && let Some(token) = token_from_headers(&parts.headers)
        {
            let claims = verify_session(sessions, token).await?;
            return from_session(state, claims).await;
        }
        let (key, claimed_tenant) = credentials(parts)?;
        if !looks_like_key(&key) {
            return Err(ApiError::Unauthorized("Invalid API key.".into()));
        }
        let tenant = state
            .directory()
            .resolve(&LookupKey::ApiKey(ApiKeyHash::of(&key)))
            .await
            .map_err(|e| ApiError::internal(format!("resolving an API key: {e}")))?
            .ok_or_else(|| ApiError::Unauthorized("Invalid API key.".into()))?;
        if let Some(claimed) = claimed_tenant
            && claimed != tenant.id
        {
            return Err(ApiError::forbidden(
                "tenant_mismatch",
                "The API key does not belong to the tenant named in X-Tenant-Id.",
            ));
        }
        crate::http::record_tenant(tenant.id);
        gate(state.db(), &tenant).await?;
        Ok(Self {
            actor: format!("api_key:{}", &key[..12]),
            tenant,
            principal: Principal::ApiKey,
        })
    }
}

/// A verified Clerk session, or the 401 (503 when signing keys cannot be obtained) that explains why not.
pub async fn verify_session(
    sessions: &SessionVerifier,
    token: &str,
) -> Result<Arc<SessionClaims>, ApiError> {
    sessions.verify(token).await.map_err(|error| {
        if error.is_unavailable() {
            ApiError::Unavailable {
                code: "identity_unavailable",
                message: "Sign-in cannot be checked right now; try again shortly.".into(),
                details: None,
            }
        } else {
            ApiError::AuthFailed {
                code: error.code(),
                message: format!("Invalid session: {error}."),
            }
        }
    })
}

/// Active organization → tenant → gate.
async fn from_session(
    state: &AppState,
    claims: Arc<SessionClaims>,
) -> Result<TenantContext, ApiError> {
    let org = claims.org_id().ok_or_else(|| {
        ApiError::forbidden(
            "no_active_organization",
            "The session has no active organization; select one in the app.",
        )
    })?;
    let tenant = state
        .directory()
        .resolve(&LookupKey::ClerkOrg(org.to_owned()))
        .await
        .map_err(|e| ApiError::internal(format!("resolving a Clerk organization: {e}")))?
        .ok_or_else(|| {
            ApiError::not_found("tenant_not_found", "The organization has no tenant.")
        })?;
    crate::http::record_tenant(tenant.id);
    gate(state.db(), &tenant).await?;
    Ok(TenantContext {
        actor: format!("clerk:{}", claims.user_id()),
        tenant,
        principal: Principal::Member(claims),
    })
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn session_expired() -> ApiError {
    ApiError::AuthFailed {
        code: "session_expired",
        message: "The session has expired; open the app again.".into(),
    }
}

/// An embedded app session → its tenant → gate. An `X-Tenant-Id` naming another tenant is refused.
async fn from_app_session(
    state: &AppState,
    parts: &Parts,
    token: &str,
) -> Result<TenantContext, ApiError> {
    let session = state
        .app_sessions()
        .verify(token)
        .await
        .map_err(|error| match error {
            SessionError::Expired => session_expired(),
            SessionError::Db(error) => error.into(),
        })?;
    if let Some(claimed) = parts.headers.get("x-tenant-id") {
        let claimed = claimed
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<TenantId>().ok());
        if claimed != Some(session.tenant_id) {
            return Err(ApiError::forbidden(
                "tenant_mismatch",
                "The session does not belong to the tenant named in X-Tenant-Id.",
            ));
        }
    }
    let tenant = state
        .directory()
        .get(session.tenant_id)
        .await
        .map_err(|e| ApiError::internal(format!("resolving a session's tenant: {e}")))?
        .ok_or_else(session_expired)?;
    crate::http::record_tenant(tenant.id);
    gate(state.db(), &tenant).await?;
    Ok(TenantContext {
        actor: session.actor(),
        tenant,
        principal: Principal::AppSession(session),
    })
}

/// The key, and the tenant id the caller claims (only with `X-Api-Key`).
fn credentials(parts: &Parts) -> Result<(String, Option<TenantId>), ApiError> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("Malformed Authorization header.".into()))?;
        let token = value.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::Unauthorized("Expected `Authorization: Bearer wsl_…`.".into())
        })?;
        return Ok((token.trim().to_owned(), None));
    }
    let key = parts.headers.get("x-api-key");
    let tenant = parts.headers.get("x-tenant-id");
    match (key, tenant) {
        (Some(key), Some(tenant)) => {
            let key = key
                .to_str()
                .map_err(|_| ApiError::Unauthorized("Malformed X-Api-Key header.".into()))?;
            let tenant = tenant
                .to_str()
                .ok()
                .and_then(|t| t.trim().parse::<TenantId>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_tenant_id", "X-Tenant-Id is not a tenant id.")
                })?;
            Ok((key.trim().to_owned(), Some(tenant)))
        }
        (Some(_), None) => Err(ApiError::Unauthorized(
            "X-Api-Key must come with X-Tenant-Id.".into(),
        )),
        _ => Err(ApiError::Unauthorized(
            "Missing credentials: send `Authorization: Bearer wsl_…` or X-Tenant-Id and X-Api-Key."
                .into(),
        )),
    }
}

/// Only `ready` tenants are served (DESIGN §5).
pub async fn gate(db: &PgPool, tenant: &Tenant) -> Result<(), ApiError> {
    let unavailable = |status, code, message: String, provisioning| ApiError::TenantUnavailable {
        status,
        code,
        message,
        provisioning,
    };
    match tenant.status {
        TenantStatus::Ready => Ok(()),
        TenantStatus::Pending | TenantStatus::Provisioning => {
            let progress = provisioning_progress(db, tenant.id).await;
            Err(unavailable(
                StatusCode::CONFLICT,
                "tenant_provisioning",
                "The organization is still being set up; try again in a moment.".into(),
                Some(progress),
            ))
        }
        TenantStatus::Suspended => Err(unavailable(
            StatusCode::FORBIDDEN,
            "tenant_suspended",
            format!(
                "The organization is suspended: {}.",
                tenant
                    .suspended_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ),
            None,
        )),
        TenantStatus::Deleting | TenantStatus::Deleted => Err(unavailable(
            StatusCode::GONE,
            "tenant_deleted",
            "The organization has been deleted.".into(),
            None,
        )),
        TenantStatus::Failed => Err(unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            "tenant_failed",
            "Setting up the organization failed; support has been notified.".into(),
            None,
        )),
    }
}

/// `{step, progress}` of the tenant's latest provisioning run (progress 0–100).
pub async fn provisioning_progress(db: &PgPool, tenant: TenantId) -> serde_json::Value {
    let Ok(Some(run)) = steps::latest_run(db, tenant).await else {
        return serde_json::json!({ "step": null, "progress": 0 });
    };
    let records = steps::steps_of(db, run.id).await.unwrap_or_default();
    let (step, progress) = step_and_progress(&records);
    serde_json::json!({ "step": step, "progress": progress, "provisioning_id": run.id })
}

/// The first step not done yet, and the share of steps done.
pub fn step_and_progress(records: &[steps::StepRecord]) -> (Option<String>, u8) {
    let done = records.iter().filter(|r| r.is_done()).count();
    let current = records
        .iter()
        .find(|r| !r.is_done())
        .map(|r| r.name.clone());
    let progress = if records.is_empty() {
        0
    } else {
        (done * 100 / records.len()) as u8
    };
    (current, progress)
}
