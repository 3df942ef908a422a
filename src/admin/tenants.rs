//! Operate the tenant fleet: list, show, create, suspend, activate, retry, delete, API keys, stats.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AdminAuth;
use crate::dashboard::{check_key_name, check_key_scope};
use crate::error::ApiError;
use crate::http::extract::{Json, Path, Query, RequestId};
use crate::provisioning::RegistrationRequest;
use crate::provisioning::lifecycle::parse_time;
use crate::state::AppState;
use crate::tenancy::registry::TenantFilter;
use crate::tenancy::{TenantId, TenantStatus};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A tenant status, e.g. `ready`.
    status: Option<String>,
    plan: Option<String>,
    /// Part of the name, slug or owner email (at most 100 characters).
    search: Option<String>,
    /// RFC 3339.
    created_after: Option<String>,
    /// RFC 3339.
    created_before: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// 1–200, default 50.
    limit: Option<i64>,
}

/// `GET /api/admin/tenants`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `list`")]
pub struct TenantList {
    tenants: Vec<crate::tenancy::Tenant>,
    next_cursor: Option<String>,
}

/// An answer naming one tenant.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answers naming a tenant")]
pub struct TenantAnswer {
    tenant: crate::tenancy::Tenant,
    /// The provisioning run started (create, retry).
    #[schema(required = false)]
    provisioning_id: Option<Uuid>,
    /// The provisioning job (create).
    #[schema(required = false)]
    job_id: Option<crate::jobs::JobId>,
}

/// The opaque cursor: `<unix nanos>.<tenant id>` of the last tenant of the previous page.
fn encode_cursor(tenant: &crate::tenancy::Tenant) -> String {
    format!("{}.{}", tenant.created_at.unix_timestamp_nanos(), tenant.id)
}

fn decode_cursor(raw: &str) -> Option<(time::OffsetDateTime, TenantId)> {
    let (nanos, id) = raw.split_once('.')?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?;
    Some((at, id.parse().ok()?))
}

#[utoipa::path(
    get,
    path = "/api/admin/tenants",
    tag = "admin-tenants",
    summary = "The tenant fleet, newest first",
    params(ListParams),
    responses(
        (status = 200, description = "A page of tenants.", body = TenantList),
        (status = 400, description = "`invalid_query`."),
    ),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid_query", message);
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => {
            Some(TenantStatus::parse(s).ok_or_else(|| bad(format!("Unknown status {s:?}.")))?)
        }
    };
    let time = |raw: &Option<String>| {
        raw.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| bad(e.to_string()))
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad("limit must be between 1 and 200.".into()));
    }
    if params
        .search
        .as_ref()
        .is_some_and(|s| s.chars().count() > 100)
    {
        return Err(bad("search must be at most 100 characters.".into()));
    }
    let filter = TenantFilter {
        status,
        plan: params.plan,
        search: params.search,
        created_after: time(&params.created_after)?,
        created_before: time(&params.created_before)?,
        after: match params.cursor.as_deref() {
            None => None,
            Some(raw) => Some(decode_cursor(raw).ok_or_else(|| bad("Invalid cursor.".into()))?),
        },
        limit,
    };
    let tenants = state.lifecycle().list(&filter).await?;
    let next_cursor = if tenants.len() as i64 == limit {
        tenants.last().map(encode_cursor)
    } else {
        None
    };
    Ok(axum::Json(
        json!({ "tenants": tenants, "next_cursor": next_cursor }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Place the tenant database on this server instead of the least loaded one.
    server: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants",
    tag = "admin-tenants",
    summary = "Create a tenant",
    description = "Any plan of `tenancy.plans`; provisioning runs as a job.",
    params(CreateParams),
    request_body = RegistrationRequest,
    responses(
        (status = 202, description = "Provisioning started.", body = TenantAnswer),
        (status = 409, description = "The slug is taken."),
        (status = 422, description = "`validation_failed`."),
    ),
)]
pub async fn create(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Query(params): Query<CreateParams>,
    Json(body): Json<RegistrationRequest>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let valid = body
        .validate(&state.config().tenancy)
        .map_err(|fields| ApiError::Invalid { fields })?;
    let registered = state
        .lifecycle()
        .create(
            valid,
            params.server.as_deref(),
            &auth.lifecycle_actor(request_id),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "tenant": registered.tenant,
            "provisioning_id": registered.run_id,
            "job_id": registered.job_id,
        })),
    ))
}

#[utoipa::path(
    get,
    path = "/api/admin/tenants/{id}",
    tag = "admin-tenants",
    summary = "One tenant with its runs, keys and row counts",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 200, description = "The tenant as an operator sees it.", body = crate::provisioning::lifecycle::TenantDetails),
        (status = 404, description = "`tenant_not_found`."),
    ),
)]
pub async fn show(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let details = state.lifecycle().show(&id).await?;
    let backup = super::backups::tenant_summary(&state, details.tenant.id).await?;
    let mut body = json!(details);
    body["backup"] = backup;
    Ok(axum::Json(body))
}

/// The body of `POST /api/admin/tenants/{id}/suspend`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// 1–500 characters.
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/suspend",
    tag = "admin-tenants",
    summary = "Suspend a ready tenant",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    request_body = SuspendBody,
    responses(
        (status = 200, description = "Suspended.", body = TenantAnswer),
        (status = 404, description = "`tenant_not_found`."),
        (status = 409, description = "Not in a status that can be suspended."),
        (status = 422, description = "`validation_failed`: `reason`."),
    ),
)]
pub async fn suspend(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    Json(body): Json<SuspendBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("reason".into(), "must be 1 to 500 characters".into());
        return Err(ApiError::Invalid { fields });
    }
    let tenant = state
        .lifecycle()
        .suspend(&id, reason, &auth.lifecycle_actor(request_id))
        .await?;
    Ok(axum::Json(json!({ "tenant": tenant })))
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/activate",
    tag = "admin-tenants",
    summary = "Reactivate a suspended tenant",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 200, description = "Ready again.", body = TenantAnswer),
        (status = 404, description = "`tenant_not_found`."),
        (status = 409, description = "Not suspended."),
    ),
)]
pub async fn activate(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let tenant = state
        .lifecycle()
        .activate(&id, &auth.lifecycle_actor(request_id))
        .await?;
    Ok(axum::Json(json!({ "tenant": tenant })))
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/retry",
    tag = "admin-tenants",
    summary = "Retry a failed provisioning",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 202, description = "Provisioning restarted.", body = TenantAnswer),
        (status = 404, description = "`tenant_not_found`."),
        (status = 409, description = "Not failed."),
    ),
)]
pub async fn retry(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let (tenant, run) = state
        .lifecycle()
        .retry(&id, &auth.lifecycle_actor(request_id))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "tenant": tenant, "provisioning_id": run })),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Keep the tenant database (and its dump) instead of dropping it.
    #[serde(default)]
    keep_data: bool,
}

#[utoipa::path(
    delete,
    path = "/api/admin/tenants/{id}",
    tag = "admin-tenants",
    summary = "Delete a tenant",
    description = "Dumps the database, drops it, removes the CRM workspace and identity, then marks it deleted.",
    params(("id" = String, Path, description = "The tenant's id or slug."), DeleteParams),
    responses(
        (status = 202, description = "Deletion started (a job): the tenant is `deleting`.", body = TenantAnswer),
        (status = 404, description = "`tenant_not_found`."),
        (status = 409, description = "A ready tenant is suspended first."),
    ),
)]
pub async fn delete(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let tenant = state
        .lifecycle()
        .delete(&id, params.keep_data, &auth.lifecycle_actor(request_id))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "tenant": tenant })),
    ))
}

#[utoipa::path(
    get,
    path = "/api/admin/tenants/{id}/api-keys",
    tag = "admin-tenants",
    summary = "A tenant's API keys",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    responses(
        (status = 200, description = "Every key.", body = crate::dashboard::api_keys::ApiKeyList),
        (status = 404, description = "`tenant_not_found`."),
    ),
)]
pub async fn list_keys(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let tenant = state.lifecycle().find(&id).await?;
    let keys = state.lifecycle().list_api_keys(tenant.id).await?;
    Ok(axum::Json(json!({ "api_keys": keys })))
}

/// The body of `POST /api/admin/tenants/{id}/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminCreateKey, example = json!({"name": "Integration", "scope": "admin"}))]
pub struct CreateKey {
    /// 1–100 printable characters.
    name: String,
    /// `read` (the default), `write` or `admin`.
    #[serde(default)]
    scope: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/api-keys",
    tag = "admin-tenants",
    summary = "Create an API key for a tenant",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key, shown once.", body = crate::dashboard::api_keys::CreatedKey),
        (status = 404, description = "`tenant_not_found`."),
        (status = 422, description = "`validation_failed`: `name` or `scope`."),
    ),
)]
pub async fn create_key(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = check_key_name(&body.name)?;
    let scope = check_key_scope(body.scope.as_deref())?;
    let tenant = state.lifecycle().find(&id).await?;
    let (info, plain) = state
        .lifecycle()
        .create_api_key(tenant.id, &name, scope, &auth.lifecycle_actor(request_id))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "api_key": info, "key": plain })),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/admin/tenants/{id}/api-keys/{key_id}",
    tag = "admin-tenants",
    summary = "Revoke a tenant's API key",
    params(("id" = String, Path, description = "The tenant's id or slug."), ("key_id" = Uuid, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "`tenant_not_found` or `api_key_not_found`."),
    ),
)]
pub async fn revoke_key(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path((id, key_id)): Path<(String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let tenant = state.lifecycle().find(&id).await?;
    if state
        .lifecycle()
        .revoke_api_key(tenant.id, key_id, &auth.lifecycle_actor(request_id))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("api_key_not_found", "No such API key."))
    }
}

#[utoipa::path(
    get,
    path = "/api/admin/stats",
    tag = "admin-tenants",
    summary = "Fleet figures",
    responses(
        (status = 200, description = "Tenants by status and plan, provisioning times, queue depth, pools.", body = crate::provisioning::lifecycle::FleetStats),
    ),
)]
pub async fn stats(
    _: AdminAuth,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!(state.lifecycle().stats().await?)))
}
