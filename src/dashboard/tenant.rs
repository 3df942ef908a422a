//! `GET /api/tenant`: the caller's tenant, its settings (from its own database, cached) and status.

use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;

/// `GET /api/tenant`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `show`")]
pub struct TenantView {
    id: crate::tenancy::TenantId,
    slug: crate::tenancy::Slug,
    name: String,
    status: crate::tenancy::TenantStatus,
    plan: String,
    created_at: Option<time::OffsetDateTime>,
    ready_at: Option<time::OffsetDateTime>,
    /// From the tenant's own database; `null` until it is seeded.
    settings: Option<crate::tenancy::TenantSettings>,
}

#[utoipa::path(
    get,
    path = "/api/tenant",
    tag = "tenant",
    summary = "The caller's tenant",
    responses((status = 200, description = "The tenant, its status and settings.", body = TenantView)),
)]
pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let settings = state
        .directory()
        .settings(&ctx.tenant, state.pools())
        .await?;
    let tenant = &ctx.tenant;
    Ok(axum::Json(json!({
        "id": tenant.id,
        "slug": tenant.slug,
        "name": tenant.display_name,
        "status": tenant.status,
        "plan": tenant.plan,
        "created_at": tenant.created_at.format(&time::format_description::well_known::Rfc3339).ok(),
        "ready_at": tenant.ready_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "settings": settings,
    })))
}
