//! `GET /api/me`: who the signed-in Clerk user is, their active organization, its tenant and their role.

use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::{Principal, TenantContext};
use crate::state::AppState;

pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let Principal::Member(claims) = &ctx.principal else {
        return Err(ApiError::forbidden(
            "session_required",
            "/api/me describes a signed-in user; API keys have no user.",
        ));
    };
    let settings = state
        .directory()
        .settings(&ctx.tenant, state.pools())
        .await?;
    let tenant = &ctx.tenant;
    Ok(axum::Json(json!({
        "user": { "id": claims.user_id(), "session_id": claims.session_id() },
        "organization": {
            "id": claims.org_id(),
            "slug": claims.org_slug(),
        },
        "role": claims.org_role(),
        "permissions": claims.org_permissions(),
        "tenant": {
            "id": tenant.id,
            "slug": tenant.slug,
            "name": tenant.display_name,
            "status": tenant.status,
            "plan": tenant.plan,
            "settings": settings,
        },
    })))
}
