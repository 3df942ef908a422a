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
use crate::provisioning::lifecycle::{Actor, parse_time};
use crate::state::AppState;
use crate::tenancy::registry::TenantFilter;
use crate::tenancy::{TenantId, TenantStatus};

fn actor(auth: &AdminAuth, request_id: Option<String>) -> Actor {
    Actor {
        name: auth.actor.clone(),
        request_id,
        ip: auth.origin.ip,
        user_agent: auth.origin.user_agent.clone(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    plan: Option<String>,
    search: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// Place the tenant database on this server instead of the least loaded one.
    server: Option<String>,
}

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
        .create(valid, params.server.as_deref(), &actor(&auth, request_id))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    reason: String,
}

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
        .suspend(&id, reason, &actor(&auth, request_id))
        .await?;
    Ok(axum::Json(json!({ "tenant": tenant })))
}

pub async fn activate(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let tenant = state
        .lifecycle()
        .activate(&id, &actor(&auth, request_id))
        .await?;
    Ok(axum::Json(json!({ "tenant": tenant })))
}

pub async fn retry(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let (tenant, run) = state
        .lifecycle()
        .retry(&id, &actor(&auth, request_id))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "tenant": tenant, "provisioning_id": run })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    #[serde(default)]
    keep_data: bool,
}

pub async fn delete(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let tenant = state
        .lifecycle()
        .delete(&id, params.keep_data, &actor(&auth, request_id))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "tenant": tenant })),
    ))
}

pub async fn list_keys(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let tenant = state.lifecycle().find(&id).await?;
    let keys = state.lifecycle().list_api_keys(tenant.id).await?;
    Ok(axum::Json(json!({ "api_keys": keys })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    /// `read` (the default), `write` or `admin`.
    #[serde(default)]
    scope: Option<String>,
}

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
        .create_api_key(tenant.id, &name, scope, &actor(&auth, request_id))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "api_key": info, "key": plain })),
    ))
}

pub async fn revoke_key(
    auth: AdminAuth,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path((id, key_id)): Path<(String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let tenant = state.lifecycle().find(&id).await?;
    if state
        .lifecycle()
        .revoke_api_key(tenant.id, key_id, &actor(&auth, request_id))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("api_key_not_found", "No such API key."))
    }
}

pub async fn stats(
    _: AdminAuth,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!(state.lifecycle().stats().await?)))
}
