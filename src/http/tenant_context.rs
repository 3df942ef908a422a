//! `TenantContext`: the tenant a request acts for, established from a verified credential only — an embedded
//! app session (`wss_…`), a Clerk session token (its active organization) or a tenant API key — resolved through
//! the cached directory and passed through the status gate. A handler that takes a `TenantContext` can only ever see that tenant.
//!
//! One credential gives one answer: a repeated credential header, or two kinds at once, is 400
//! `ambiguous_credentials`; an `X-Tenant-Id` naming another tenant is 403 `tenant_mismatch` whatever the
//! credential. The caller's role (`crate::access::Role`) must reach the minimum of the permission the route
//! declared in `router.rs` (403 `insufficient_role`); a route that declared none serves no tenant.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};

use sqlx::PgPool;

use crate::access::{Access, Action, Resource, Role, Scope};
use crate::clerk::jwt::SessionClaims;
use crate::clerk::session::{SessionVerifier, token_from_headers};
use crate::embedded::session::{AppSession, SESSION_PREFIX, SessionError};
use crate::error::ApiError;
use crate::provisioning::steps;
use crate::state::AppState;
use crate::tenancy::{ApiKeyHash, Tenant, TenantId, TenantStatus, looks_like_key};

pub struct TenantContext {
    pub tenant: Arc<Tenant>,
    /// Who acts, for audit records (e.g. `api_key:wsl_3f9a1c2b`, `clerk:user_2g7…`).
    pub actor: String,
    pub principal: Principal,
    /// What the caller may do (`crate::access::TABLE`), derived once from the credential.
    role: Role,
}

/// The verified credential behind a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A tenant API key: a machine credential of the tenant, with the scope chosen when it was created.
    ApiKey(Scope),
    /// A Clerk session of a member of the tenant's organization.
    Member(Arc<SessionClaims>),
    /// A session of the Salla embedded app (the store's owner or a staff member).
    AppSession(Arc<AppSession>),
}

impl Principal {
    /// The role this credential acts with: the Clerk organization role, the app session's role, or the key's
    /// scope. Unknown and missing roles are viewers.
    pub fn role(&self) -> Role {
        match self {
            Self::ApiKey(scope) => Role::from_scope(*scope),
            Self::Member(claims) => Role::from_clerk(claims.org_role()),
            Self::AppSession(session) => Role::from_app_session(&session.role),
        }
    }
}

impl TenantContext {
    pub fn id(&self) -> TenantId {
        self.tenant.id
    }

    /// The caller's role in the tenant.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The acting person's name for the UI, when known (embedded app sessions).
    pub fn display_name(&self) -> Option<&str> {
        match &self.principal {
            Principal::AppSession(session) => session.display_name.as_deref(),
            Principal::ApiKey(_) | Principal::Member(_) => None,
        }
    }

    /// Whether the caller may perform `action` on `resource` (for UI flags: the same table as the routes).
    pub fn can(&self, resource: Resource, action: Action) -> bool {
        crate::access::minimum(resource, action).is_some_and(|minimum| self.role >= minimum)
    }

    /// 403 `insufficient_role` unless the caller may perform `action` on `resource`. Routes declare their
    /// pair in `router.rs` and need not call this; handlers whose pair depends on the request do.
    pub fn require(&self, resource: Resource, action: Action) -> Result<(), ApiError> {
        if self.can(resource, action) {
            return Ok(());
        }
        let needed = crate::access::minimum(resource, action).map_or_else(
            || "a role no one has".to_owned(),
            |r| format!("the {r} role"),
        );
        Err(ApiError::forbidden(
            "insufficient_role",
            format!(
                "{}.{} needs {needed}; you act as {}.",
                resource.as_str(),
                action.as_str(),
                self.role
            ),
        ))
    }
}

impl FromRequestParts<AppState> for TenantContext {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let required = declared_permission(parts)?;
        let ctx = authenticate(parts, state).await?;
        if let Some((resource, action)) = required {
            ctx.require(resource, action)?;
        }
        // Maintenance (global) and read-only tenants, after the gate and the role: a write is what the route
        // declared as one; on routes that decide per request (the CRM proxy), an unsafe method.
        let is_write = match required {
            Some((_, action)) => action != Action::Read,
            None => !parts.method.is_safe(),
        };
        crate::maintenance::check(state, &ctx.tenant, is_write).await?;
        Ok(ctx)
    }
}

/// What the route declared in `router.rs` (a per-route extension): the permission to check, `None` when the
/// handler checks per request. A route that declared no tenant access never serves a tenant: 403
/// `access_undeclared` (a programming error, logged), not a silent pass.
fn declared_permission(parts: &Parts) -> Result<Option<(Resource, Action)>, ApiError> {
    match parts.extensions.get::<Access>() {
        Some(Access::Tenant(resource, action)) => Ok(Some((*resource, *action))),
        Some(Access::TenantDynamic) => Ok(None),
        declared => {
            tracing::error!(path = %parts.uri.path(), ?declared, "a tenant request on a route that declares no tenant access");
            Err(ApiError::forbidden(
                "access_undeclared",
                "This route declares no tenant access, so it serves no tenant.",
            ))
        }
    }
}

/// One credential, one tenant: the credential is verified, the tenant it names must be the one in
/// `X-Tenant-Id` when that is sent, then the status gate applies.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<TenantContext, ApiError> {
    let headers = &parts.headers;
    let authorization = single(headers, AUTHORIZATION.as_str())?;
    let api_key = single(headers, "x-api-key")?;
    let claimed = single(headers, "x-tenant-id")?
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|t| t.trim().parse::<TenantId>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_tenant_id", "X-Tenant-Id is not a tenant id.")
                })
        })
        .transpose()?;
    let (tenant, actor, principal) = match (authorization, api_key) {
        (Some(_), Some(_)) => {
            return Err(ambiguous(
                "Send one credential: Authorization or X-Api-Key, not both.",
            ));
        }
        (Some(value), None) => {
            let token = bearer_token(value)?;
            if token.starts_with(SESSION_PREFIX) {
                from_app_session(state, token).await?
            } else if token.starts_with(crate::clerk::session::API_KEY_PREFIX) {
                from_api_key(state, token).await?
            } else if let Some(sessions) = state.sessions() {
                from_session(state, verify_session(sessions, token).await?).await?
            } else {
                return Err(ApiError::Unauthorized("Invalid API key.".into()));
            }
        }
        (None, Some(key)) => {
            if claimed.is_none() {
                return Err(ApiError::Unauthorized(
                    "X-Api-Key must come with X-Tenant-Id.".into(),
                ));
            }
            let key = key
                .to_str()
                .map_err(|_| ApiError::Unauthorized("Malformed X-Api-Key header.".into()))?;
            from_api_key(state, key.trim()).await?
        }
        // Clerk's `__session` cookie (the standalone app in a browser).
        // An operator's impersonation cookie, honoured only in the merchant app (where its `Path` sends it).
        (None, None)
            if parts.uri.path().starts_with("/app")
                && let Some(token) = crate::web::impersonate::cookie(parts)
                && token.starts_with(SESSION_PREFIX) =>
        {
            from_app_session(state, token).await?
        }
        (None, None) => match (state.sessions(), token_from_headers(headers)) {
            (Some(sessions), Some(token)) => {
                from_session(state, verify_session(sessions, token).await?).await?
            }
            _ => {
                return Err(ApiError::Unauthorized(
                    "Missing credentials: send `Authorization: Bearer wsl_…` or X-Tenant-Id and X-Api-Key."
                        .into(),
                ));
            }
        },
    };
    if let Some(claimed) = claimed
        && claimed != tenant.id
    {
        return Err(ApiError::forbidden(
            "tenant_mismatch",
            "The credential does not belong to the tenant named in X-Tenant-Id.",
        ));
    }
    crate::http::record_tenant(tenant.id);
    gate(state.db(), &tenant).await?;
    state.rate_limiter().check_tenant(&tenant).await?;
    let role = principal.role();
    Ok(TenantContext {
        tenant,
        actor,
        principal,
        role,
    })
}

/// The header's value, `None` when absent; a header sent twice is refused rather than one of its values
/// picked (which would let a proxy and the server disagree on who is calling).
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a HeaderValue>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ambiguous(format!(
            "The {name} header is sent more than once."
        )));
    }
    Ok(first)
}

fn ambiguous(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("ambiguous_credentials", message)
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(value: &HeaderValue) -> Result<&str, ApiError> {
    let expected = || ApiError::Unauthorized("Expected `Authorization: Bearer <token>`.".into());
    let value = value.to_str().map_err(|_| expected())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(expected)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(expected());
    }
    Ok(token)
}

/// A tenant API key → its tenant and scope (through the cached directory; no gate yet).
async fn from_api_key(
    state: &AppState,
    key: &str,
) -> Result<(Arc<Tenant>, String, Principal), ApiError> {
    if !looks_like_key(key) {
        return Err(ApiError::Unauthorized("Invalid API key.".into()));
    }
    let (tenant, scope) = state
        .directory()
        .resolve_api_key(ApiKeyHash::of(key))
        .await
        .map_err(|e| ApiError::internal(format!("resolving an API key: {e}")))?
        .ok_or_else(|| ApiError::Unauthorized("Invalid API key.".into()))?;
    Ok((
        tenant,
        format!("api_key:{}", &key[..12]),
        Principal::ApiKey(scope),
    ))
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

/// Active organization → tenant (no gate yet).
async fn from_session(
    state: &AppState,
    claims: Arc<SessionClaims>,
) -> Result<(Arc<Tenant>, String, Principal), ApiError> {
    let org = claims.org_id().ok_or_else(|| {
        ApiError::forbidden(
            "no_active_organization",
            "The session has no active organization; select one in the app.",
        )
    })?;
    let tenant = state
        .directory()
        .resolve(&crate::tenancy::LookupKey::ClerkOrg(org.to_owned()))
        .await
        .map_err(|e| ApiError::internal(format!("resolving a Clerk organization: {e}")))?
        .ok_or_else(|| {
            ApiError::not_found("tenant_not_found", "The organization has no tenant.")
        })?;
    Ok((
        tenant,
        format!("clerk:{}", claims.user_id()),
        Principal::Member(claims),
    ))
}

fn session_expired() -> ApiError {
    ApiError::AuthFailed {
        code: "session_expired",
        message: "The session has expired; open the app again.".into(),
    }
}

/// An embedded app session → its tenant (no gate yet).
async fn from_app_session(
    state: &AppState,
    token: &str,
) -> Result<(Arc<Tenant>, String, Principal), ApiError> {
    let session = state
        .app_sessions()
        .verify(token)
        .await
        .map_err(|error| match error {
            SessionError::Expired => session_expired(),
            SessionError::Db(error) => error.into(),
        })?;
    let tenant = state
        .directory()
        .get(session.tenant_id)
        .await
        .map_err(|e| ApiError::internal(format!("resolving a session's tenant: {e}")))?
        .ok_or_else(session_expired)?;
    Ok((tenant, session.actor(), Principal::AppSession(session)))
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
            // True in every configuration: the failure is recorded with the tenant, and a
            // `provisioning_failed` notice goes to whichever operator channels `[notify]` configures.
            "Setting up the organization failed. It is recorded for the operators, who can resume it \
             once the cause is fixed."
                .into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(access: Option<Access>) -> Parts {
        let mut request = axum::http::Request::new(());
        if let Some(access) = access {
            request.extensions_mut().insert(access);
        }
        request.into_parts().0
    }

    fn refused(result: Result<Option<(Resource, Action)>, ApiError>) -> bool {
        matches!(
            result,
            Err(ApiError::Forbidden {
                code: "access_undeclared",
                ..
            })
        )
    }

    #[test]
    fn a_route_must_declare_tenant_access() {
        assert!(refused(declared_permission(&parts(None))));
        for access in [Access::Public, Access::Webhook, Access::Operator] {
            assert!(
                refused(declared_permission(&parts(Some(access)))),
                "{access:?}"
            );
        }
        assert!(matches!(
            declared_permission(&parts(Some(Access::Tenant(Resource::Crm, Action::Write)))),
            Ok(Some((Resource::Crm, Action::Write)))
        ));
        assert!(matches!(
            declared_permission(&parts(Some(Access::TenantDynamic))),
            Ok(None)
        ));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        for value in ["Bearer wsl_x", "bearer wsl_x", "BEARER  wsl_x "] {
            assert_eq!(
                bearer_token(&HeaderValue::from_static(value)).unwrap(),
                "wsl_x"
            );
        }
        for value in ["Basic wsl_x", "Bearer", "Bearer  ", "wsl_x"] {
            assert!(
                bearer_token(&HeaderValue::from_static(value)).is_err(),
                "{value}"
            );
        }
    }

    #[test]
    fn repeated_credential_headers_are_ambiguous() {
        let mut headers = HeaderMap::new();
        headers.append("x-tenant-id", HeaderValue::from_static("a"));
        assert!(single(&headers, "x-tenant-id").unwrap().is_some());
        headers.append("x-tenant-id", HeaderValue::from_static("a"));
        assert!(matches!(
            single(&headers, "x-tenant-id"),
            Err(ApiError::BadRequest {
                code: "ambiguous_credentials",
                ..
            })
        ));
    }
}
