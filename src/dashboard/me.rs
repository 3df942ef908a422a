//! `GET /api/me`: who the signed-in Clerk user is, their active organization, its tenant and their role.

use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::{Principal, TenantContext};
use crate::state::AppState;

/// `GET /api/me`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct Me {
    /// `id`, `session_id`.
    #[schema(value_type = Object, example = json!({"id": "user_2g7", "session_id": "sess_2g8"}))]
    user: Value,
    /// The session's active organization: `id`, `slug`.
    #[schema(value_type = Object)]
    organization: Value,
    /// The Clerk organization role, e.g. `org:admin`.
    role: Option<String>,
    permissions: Vec<String>,
    tenant: MeTenant,
}

/// The tenant of `GET /api/me`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct MeTenant {
    id: crate::tenancy::TenantId,
    slug: crate::tenancy::Slug,
    name: String,
    status: crate::tenancy::TenantStatus,
    plan: String,
    settings: Option<crate::tenancy::TenantSettings>,
}

#[utoipa::path(
    get,
    path = "/api/me",
    tag = "tenant",
    summary = "The signed-in user, their organization, role and tenant",
    description = "A Clerk session only: an API key has no user (403 `session_required`).",
    responses(
        (status = 200, description = "Who the caller is.", body = Me),
    ),
)]
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
