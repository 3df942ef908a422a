//! `GET /api/tenant`: the caller's tenant, its settings (from its own database) and status.

use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;

#[derive(Debug, serde::Serialize, sqlx::FromRow)]
struct Settings {
    organization_name: String,
    locale: String,
    currency: String,
    timezone: String,
    #[serde(with = "time::serde::rfc3339::option")]
    onboarding_completed_at: Option<time::OffsetDateTime>,
}

pub async fn show(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = state.pools.get(&ctx.tenant).await?;
    let settings: Option<Settings> = sqlx::query_as(
        "SELECT organization_name, locale, currency, timezone, onboarding_completed_at FROM settings",
    )
    .fetch_optional(&*pool)
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
