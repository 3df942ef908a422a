//! `GET /app/impersonate?ticket=…`: opens the merchant app as the member an operator chose
//! (`crate::admin::impersonation`). The ticket is taken once; the session it mints has the member's role, the
//! operator and the reason, and lives `ttl_secs`. The browser keeps it in an HttpOnly, `SameSite=Strict`
//! cookie scoped to `/app` (there is no Salla frame to hand it over), which `TenantContext` reads like a
//! `Bearer wss_…`. Every screen then shows the banner ([`banner`]). Both audit logs record the start.

use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::Banner;
use crate::admin::impersonation::{self, Ticket};
use crate::audit::{Event, Origin, Via};
use crate::embedded::session::{Impersonation, NewSession, PersonKind};
use crate::error::ApiError;
use crate::http::extract::Query;
use crate::http::{Principal, TenantContext};
use crate::state::AppState;
use crate::tenancy::{MerchantId, TenantStatus};

/// The cookie that carries an impersonated session (scoped to `/app`).
pub const COOKIE: &str = "wosool_impersonation";

#[derive(Debug, Deserialize)]
pub struct Params {
    ticket: String,
}

/// The session token of the impersonation cookie, if the request has one.
pub fn cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The banner of an impersonated session, `None` for everyone else.
pub fn banner(ctx: &TenantContext) -> Option<Banner> {
    let Principal::AppSession(session) = &ctx.principal else {
        return None;
    };
    let by = session.impersonation.as_ref()?;
    Some(Banner {
        member: session
            .display_name
            .clone()
            .unwrap_or_else(|| session.person.clone()),
        operator: by.operator.clone(),
        reason: by.reason.clone(),
    })
}

fn used_or_expired() -> ApiError {
    ApiError::AuthFailed {
        code: "impersonation_ticket_invalid",
        message: "This impersonation link was already used or has expired; ask for a new one."
            .into(),
    }
}

pub async fn open(
    State(state): State<AppState>,
    origin: Origin,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    crate::maintenance::check_global(&state).await?;
    let ticket = impersonation::consume(state.db(), params.ticket.trim())
        .await?
        .ok_or_else(used_or_expired)?;
    let tenant = state
        .directory()
        .get(ticket.tenant_id)
        .await
        .map_err(|e| ApiError::internal(format!("resolving an impersonated tenant: {e}")))?
        .filter(|t| t.status == TenantStatus::Ready)
        .ok_or_else(|| {
            ApiError::conflict("tenant_not_ready", "The tenant is not ready any more.")
        })?;
    let pool = state.pools().get(&tenant).await?;
    let member = impersonation::find_member(&pool, Some(ticket.member_id), None)
        .await?
        .ok_or_else(|| ApiError::not_found("member_not_found", "The member is gone."))?;
    let by = Impersonation {
        operator: ticket.operator.clone(),
        reason: ticket.reason.clone(),
    };
    let kind = if member.role_key == "owner" {
        PersonKind::Owner
    } else {
        PersonKind::Staff
    };
    let new = NewSession {
        tenant_id: tenant.id,
        person: member
            .clerk_user_id
            .clone()
            .or_else(|| member.external_id.clone())
            .unwrap_or_else(|| format!("member:{}", member.id)),
        kind,
        member_id: Some(member.id),
        display_name: Some(member.label()),
        // Sessions name a store; a tenant without one gets 0 (the app's Salla-only parts then say so).
        merchant: tenant.salla_merchant_id.unwrap_or(MerchantId::new(0)),
        salla_user_id: 0,
    };
    let ttl = Duration::from_secs(ticket.session_ttl_secs.max(1) as u64);
    let minted = state
        .app_sessions()
        .create_impersonated(&new, &member.role_key, ttl, &by)
        .await?;
    record_start(&state, &pool, &ticket, &origin, minted.expires_at).await?;

    let max_age = (minted.expires_at - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(1);
    let cookie = format!(
        "{COOKIE}={}; Path=/app; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
        minted.token
    );
    let mut response = Redirect::to("/app/home").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `impersonation.started` in the tenant's log and in the global one.
async fn record_start(
    state: &AppState,
    pool: &sqlx::PgPool,
    ticket: &Ticket,
    origin: &Origin,
    expires_at: time::OffsetDateTime,
) -> Result<(), ApiError> {
    let details = json!({
        "member_id": ticket.member_id,
        "member": ticket.member_name,
        "role": ticket.role,
        "operator": ticket.operator,
        "reason": ticket.reason,
        "expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).ok(),
    });
    let event = Event::by(&ticket.operator, Via::Operator, "impersonation.started")
        .on_tenant(ticket.tenant_id)
        .origin(origin)
        .resource(format!("member:{}", ticket.member_id))
        .details(details);
    event.write_tenant(pool).await?;
    let mut conn = state.db().acquire().await?;
    event.write_global(&mut conn).await?;
    Ok(())
}
