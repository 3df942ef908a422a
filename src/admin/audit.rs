//! `GET /api/admin/audit`: the global audit log, or one tenant's own log with `tenant_id` (then the entries
//! come from that tenant's database: writes through the API, the merchant app and the CRM proxy). Filters
//! `actor`, `action`, `resource`, `tenant_id`, `since`, `until`, `limit`, `cursor`; newest first.
//! `scope=tenant` (with `tenant_id`) reads the tenant's log; the default `scope=global` the global one.

use super::AdminAuth;
use crate::audit::query::{Page, Params};
use crate::error::ApiError;
use crate::http::extract::Query;
use crate::state::AppState;
use axum::extract::State;

#[utoipa::path(
    get,
    path = "/api/admin/audit",
    tag = "admin-audit",
    summary = "The global audit log, or one tenant's",
    description = "Newest first. `scope=tenant` with `tenant_id` reads that tenant's own log (its database).",
    params(Params),
    responses(
        (status = 200, description = "A page of entries.", body = Page),
        (status = 400, description = "`invalid_query`, naming the filter."),
        (status = 404, description = "`tenant_not_found`."),
    ),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(mut params): Query<Params>,
) -> Result<axum::Json<Page>, ApiError> {
    let scope = params.scope.take();
    let filter = params.validate(true)?;
    match scope.as_deref().unwrap_or("global") {
        "global" => Ok(axum::Json(
            crate::audit::global::list(state.db(), &filter).await?,
        )),
        "tenant" => {
            let Some(id) = filter.tenant else {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "scope=tenant needs tenant_id.",
                ));
            };
            let tenant = state.lifecycle().find(&id.to_string()).await?;
            let pool = state.pools().get(&tenant).await?;
            let mut page = crate::audit::tenant::list(&pool, &filter).await?;
            for entry in &mut page.entries {
                entry.tenant_id = Some(id);
            }
            Ok(axum::Json(page))
        }
        other => Err(ApiError::bad_request(
            "invalid_query",
            format!("scope must be global or tenant, not {other:?}."),
        )),
    }
}
