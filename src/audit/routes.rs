//! `GET /api/audit`: a tenant admin reads their tenant's audit log (filters and cursor pages as
//! `GET /api/admin/audit`, without `tenant_id`: the log read is the caller's tenant's, by construction).

use axum::extract::State;

use super::query::{Page, Params};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::Query;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "tenant",
    summary = "The tenant's audit log",
    description = "Newest first. `tenant_id` and `scope` are refused here (the log is the caller's tenant's).",
    params(Params),
    responses(
        (status = 200, description = "A page of entries.", body = Page),
        (status = 400, description = "`invalid_query`, naming the filter."),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
    Query(params): Query<Params>,
) -> Result<axum::Json<Page>, ApiError> {
    let filter = params.validate(false)?;
    let pool = state.pools().get(&ctx.tenant).await?;
    let mut page = super::tenant::list(&pool, &filter).await?;
    for entry in &mut page.entries {
        entry.tenant_id = Some(ctx.id());
    }
    Ok(axum::Json(page))
}
