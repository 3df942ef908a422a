//! `POST /api/embedded/session` (a Salla embedded token → a Wosool session) and `POST /api/embedded/standalone`
//! (a Clerk sign-in ticket to continue outside Salla).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::session::{NewSession, PersonKind};
use super::staff;
use super::{Embedded, IntrospectError};
use crate::error::ApiError;
use crate::http::extract::Json;
use crate::http::{Principal, TenantContext, gate};
use crate::tenancy::{LookupKey, TenantStatus};

/// Longest token accepted (Salla's are a few hundred bytes).
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Lifetime of a standalone sign-in ticket.
const SIGN_IN_TOKEN_SECS: u64 = 60;

/// The body of `POST /api/embedded/session`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SessionRequest {
    /// The token the Salla embedded SDK gives the app (`embedded.auth.getToken()`), at most 8 KiB.
    token: String,
}

/// `POST /api/embedded/session`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `create_session`")]
pub struct SessionCreated {
    /// The session (`wss_…`): send it as `Authorization: Bearer <session>`.
    session: String,
    expires_at: time::OffsetDateTime,
    idle_timeout_secs: u64,
    /// `id`, `name`.
    #[schema(value_type = Object)]
    tenant: Value,
    /// `kind` (`owner` or `staff`), `name`, `role`.
    #[schema(value_type = Object)]
    user: Value,
}

/// `POST /api/embedded/standalone`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `standalone`")]
pub struct StandaloneLink {
    /// `/sso?__clerk_ticket=…`, valid for a minute.
    url: String,
}

impl std::fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionRequest { token: [redacted] }")
    }
}

fn introspect_error(error: IntrospectError) -> ApiError {
    match error {
        IntrospectError::Expired => ApiError::AuthFailed {
            code: "token_expired",
            message: "The Salla token has expired; get a new one (embedded.auth.refresh()).".into(),
        },
        IntrospectError::Invalid(_) => ApiError::AuthFailed {
            code: "invalid_token",
            message: "Salla does not recognise this token.".into(),
        },
        IntrospectError::WrongApp(message) => {
            tracing::error!(
                message,
                "Salla refused our app id (embedded.app_id) at token introspection"
            );
            ApiError::forbidden(
                "wrong_app",
                "Salla refused this app's id; the embedded app is misconfigured.",
            )
        }
        IntrospectError::Unavailable(cause) => {
            tracing::warn!(cause, "Salla token introspection unavailable");
            ApiError::Unavailable {
                code: "salla_unavailable",
                message: "Salla cannot be reached to check the token; try again shortly.".into(),
                details: None,
            }
        }
    }
}

/// `POST /api/embedded/session` `{"token": …}`: verifies the token with Salla, finds the store's tenant and the
/// person, and mints a session. Never creates a tenant.
#[utoipa::path(
    post,
    path = "/api/embedded/session",
    tag = "embedded",
    summary = "A merchant app session from a Salla embedded token",
    description = "Verifies the token with Salla, finds the store's tenant and the person, and mints a session. \
                   Limited per client IP.",
    request_body = SessionRequest,
    responses(
        (status = 200, description = "The session.", body = SessionCreated),
        (status = 401, description = "`token_expired` or `invalid_token`."),
        (status = 403, description = "`wrong_app`, or the person may not use the app."),
        (status = 404, description = "No tenant for this store."),
        (status = 409, description = "`tenant_not_ready`: `provisioning` beside `error`."),
        (status = 503, description = "`salla_unavailable`, or the embedded app is not configured."),
    ),
)]
pub async fn create_session(
    _: crate::maintenance::NotInMaintenance,
    State(embedded): State<Embedded>,
    Json(request): Json<SessionRequest>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let Some(introspector) = embedded.introspector() else {
        return Err(ApiError::not_found(
            "embedded_disabled",
            "The embedded app is not configured (embedded.app_id).",
        ));
    };
    let token = request.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::AuthFailed {
            code: "invalid_token",
            message: "The token is missing or malformed.".into(),
        });
    }
    let found = introspector
        .introspect(token)
        .await
        .map_err(introspect_error)?;
    let core = embedded.core();
    let tenant = core
        .directory()
        .resolve(&LookupKey::SallaMerchant(found.merchant))
        .await
        .map_err(|e| ApiError::internal(format!("resolving a Salla store: {e}")))?
        .ok_or_else(|| {
            ApiError::conflict(
                "store_not_installed",
                "This store has no Wosool account; install the app from the Salla App Store.",
            )
        })?;
    crate::http::record_tenant(tenant.id);
    if matches!(
        tenant.status,
        TenantStatus::Pending | TenantStatus::Provisioning
    ) {
        let progress = crate::http::provisioning_progress(core.db(), tenant.id).await;
        return Err(ApiError::TenantUnavailable {
            status: StatusCode::CONFLICT,
            code: "tenant_not_ready",
            message: "The store's account is still being set up; try again in a moment.".into(),
            provisioning: Some(progress),
        });
    }
    gate(core.db(), &tenant).await?;

    let pool = core.pools().get(&tenant).await?;
    let installer = crate::salla::install::installer_of(core.db(), found.merchant).await?;
    let is_owner = installer
        .as_ref()
        .is_some_and(|(user, _)| *user == found.user_id);
    let new = if is_owner {
        let member = staff::owner(&pool).await?;
        let clerk_user = match member.as_ref().and_then(|m| m.clerk_user_id.clone()) {
            Some(user) => Some(user),
            None => owner_clerk_user(&embedded, tenant.id).await,
        };
        let name = installer
            .and_then(|(_, name)| name)
            .filter(|n| !n.trim().is_empty())
            .or_else(|| member.as_ref().and_then(|m| m.display_name.clone()))
            .or_else(|| member.as_ref().and_then(|m| m.email.clone()));
        NewSession {
            tenant_id: tenant.id,
            person: clerk_user.unwrap_or_else(|| staff::owner_external_id(tenant.id)),
            kind: PersonKind::Owner,
            member_id: member.map(|m| m.id),
            display_name: name,
            merchant: found.merchant,
            salla_user_id: found.user_id,
        }
    } else {
        let external_id = staff::external_id(found.merchant, found.user_id);
        let member =
            staff::staff(&pool, &external_id, staff::wants_clerk(&embedded, &tenant)).await?;
        if member.status == "disabled" {
            return Err(ApiError::forbidden(
                "member_disabled",
                "Your access to this store's account has been disabled.",
            ));
        }
        if member.clerk_link.as_deref() == Some("pending")
            && let Err(error) =
                staff::enqueue_link(&embedded, tenant.id, &member, &external_id).await
        {
            // The next session of this member enqueues it again.
            tracing::warn!(error = %error, "cannot enqueue adding a staff member to Clerk");
        }
        NewSession {
            tenant_id: tenant.id,
            person: external_id,
            kind: PersonKind::Staff,
            member_id: Some(member.id),
            display_name: member.display_name,
            merchant: found.merchant,
            salla_user_id: found.user_id,
        }
    };
    let minted = embedded.sessions().create(&new).await?;
    tracing::info!(tenant_id = %tenant.id, kind = new.kind.as_str(), "embedded app session created");
    let name = new
        .display_name
        .clone()
        .unwrap_or_else(|| format!("Salla user {}", new.salla_user_id));
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "session": minted.token,
            "expires_at": minted.expires_at.format(&Rfc3339).map_err(ApiError::internal)?,
            "idle_timeout_secs": embedded.sessions().idle_timeout().as_secs(),
            "tenant": { "id": tenant.id, "name": tenant.display_name },
            "user": { "kind": new.kind.as_str(), "name": name, "role": new.kind.role() },
        })),
    ))
}

/// The owner's Clerk user when the member row does not name it yet (the membership webhook may not have
/// arrived): the user the provisioning `identity` step created, by its external id. `None` without Clerk or on
/// any failure (the session then names the owner by that external id).
async fn owner_clerk_user(embedded: &Embedded, tenant: crate::tenancy::TenantId) -> Option<String> {
    let clerk = embedded.clerk()?;
    match clerk
        .find_user_by_external_id(&staff::owner_external_id(tenant))
        .await
    {
        Ok(user) => user.map(|u| u.id),
        Err(error) => {
            tracing::warn!(tenant_id = %tenant, error = %error, "cannot look up the owner's Clerk user");
            None
        }
    }
}

/// `POST /api/embedded/standalone` (a `wss_` session): a Clerk sign-in ticket for the person, to continue in a
/// new tab outside Salla at `/sso?__clerk_ticket=…`.
#[utoipa::path(
    post,
    path = "/api/embedded/standalone",
    tag = "embedded",
    summary = "A sign-in link to continue outside Salla",
    description = "Needs a merchant app session (`wss_…`). Limited per client IP.",
    responses(
        (status = 200, description = "The link.", body = StandaloneLink),
        (status = 404, description = "`standalone_disabled`."),
        (status = 409, description = "`no_clerk_user`."),
    ),
)]
pub async fn standalone(
    State(embedded): State<Embedded>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let config = &embedded.core().config().clerk;
    let clerk = match embedded.clerk() {
        Some(clerk) if !config.publishable_key.is_empty() => clerk,
        _ => {
            return Err(ApiError::not_found(
                "standalone_disabled",
                "Standalone access is not configured (clerk.publishable_key).",
            ));
        }
    };
    let Principal::AppSession(session) = &ctx.principal else {
        return Err(ApiError::forbidden(
            "app_session_required",
            "This needs a session of the embedded app (Authorization: Bearer wss_…).",
        ));
    };
    let pool = embedded.core().pools().get(&ctx.tenant).await?;
    let mut user = match session.member_id {
        Some(member) => staff::clerk_user_of(&pool, member).await?,
        None => None,
    };
    if user.is_none() && session.kind == PersonKind::Owner {
        user = owner_clerk_user(&embedded, ctx.tenant.id).await;
    }
    let user = user.ok_or_else(|| {
        ApiError::conflict(
            "no_clerk_user",
            "You have no account outside Salla; open the app from your Salla dashboard.",
        )
    })?;
    let ticket = clerk
        .create_sign_in_token(&user, SIGN_IN_TOKEN_SECS)
        .await
        .map_err(|error| {
            tracing::warn!(error = %error, "cannot create a Clerk sign-in token");
            ApiError::Unavailable {
                code: "identity_unavailable",
                message: "Sign-in cannot be prepared right now; try again shortly.".into(),
                details: None,
            }
        })?;
    let url = format!(
        "/sso?__clerk_ticket={}",
        url::form_urlencoded::byte_serialize(ticket.token.as_bytes()).collect::<String>()
    );
    Ok(axum::Json(json!({ "url": url })))
}
