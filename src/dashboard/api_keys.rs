//! A tenant's own API keys (organization admins, and admin-scoped keys: `api_keys.manage` in
//! `crate::access::TABLE`, declared in `router.rs`). Every query is scoped by the caller's tenant id from
//! `TenantContext`, so a key of another tenant is simply not found. A key is created with a scope (`read`
//! by default) never wider than its creator's, so a leaked key cannot mint a more powerful one.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::access::Scope;
use crate::audit::{Event, Origin, Via};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::{Json, Path};
use crate::provisioning::lifecycle::Actor;
use crate::state::AppState;

/// The body of `POST /api/tenant/api-keys` (and the admin API's).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Reporting", "scope": "read"}))]
pub struct CreateKey {
    /// 1–100 printable characters.
    pub name: String,
    /// `read` (the default), `write` or `admin`.
    #[serde(default)]
    pub scope: Option<String>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(field.to_owned(), message.to_owned());
    ApiError::Invalid { fields }
}

/// Checks a key's display name: 1–100 characters, no control characters.
pub fn check_key_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 100 || name.chars().any(char::is_control) {
        return Err(invalid("name", "must be 1 to 100 printable characters"));
    }
    Ok(name.to_owned())
}

/// A requested key scope: `read` when none is given; 422 naming `scope` for anything else than the three.
pub fn check_key_scope(scope: Option<&str>) -> Result<Scope, ApiError> {
    match scope {
        None => Ok(Scope::Read),
        Some(scope) => scope
            .parse()
            .map_err(|_| invalid("scope", "must be one of read, write, admin")),
    }
}

/// A list of API keys (never the keys themselves).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of the key lists")]
pub struct ApiKeyList {
    api_keys: Vec<crate::tenancy::ApiKeyInfo>,
}

/// A created API key: the only time `key` is shown.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `create`")]
pub struct CreatedKey {
    api_key: crate::tenancy::ApiKeyInfo,
    /// The key itself (`wsl_` and 40 hex digits): send it as `Authorization: Bearer <key>`.
    #[schema(example = "wsl_3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c")]
    key: String,
    /// `Store the key now: it is not shown again.` (the tenant API only).
    #[schema(required = false)]
    note: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/tenant/api-keys",
    tag = "tenant",
    summary = "The tenant's API keys",
    responses((status = 200, description = "Every key, revoked ones included.", body = ApiKeyList)),
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    let keys = state.lifecycle().list_api_keys(ctx.id()).await?;
    Ok(axum::Json(json!({ "api_keys": keys })))
}

#[utoipa::path(
    post,
    path = "/api/tenant/api-keys",
    tag = "tenant",
    summary = "Create an API key",
    description = "The scope (`read` by default) is never wider than the caller's own (403 \
                   `scope_exceeds_caller`).",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key, shown once.", body = CreatedKey),
        (status = 422, description = "`validation_failed`: `name` or `scope`."),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    origin: Origin,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = check_key_name(&body.name)?;
    let scope = check_key_scope(body.scope.as_deref())?;
    let ceiling = ctx.role().max_scope();
    if scope > ceiling {
        return Err(ApiError::forbidden(
            "scope_exceeds_caller",
            format!(
                "A {scope} key cannot be created by a caller that may create at most {ceiling} keys."
            ),
        ));
    }
    let actor = Actor::from_request(&ctx.actor, &origin);
    let (info, plain) = state
        .lifecycle()
        .create_api_key(ctx.id(), &name, scope, &actor)
        .await?;
    let pool = state.pools().get(&ctx.tenant).await?;
    Event::tenant(&ctx, Via::Api, "api_key.created")
        .origin(&origin)
        .resource(format!("api_key:{}", info.id))
        .details(json!({ "key_id": info.id, "prefix": info.prefix, "name": name }))
        .record_tenant(&pool)
        .await;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({ "api_key": info, "key": plain, "note": "Store the key now: it is not shown again." }),
        ),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/tenant/api-keys/{key_id}",
    tag = "tenant",
    summary = "Revoke an API key",
    params(("key_id" = Uuid, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "`api_key_not_found` (also another tenant's key)."),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    ctx: TenantContext,
    origin: Origin,
    Path(key_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let actor = Actor::from_request(&ctx.actor, &origin);
    if state
        .lifecycle()
        .revoke_api_key(ctx.id(), key_id, &actor)
        .await?
    {
        let pool = state.pools().get(&ctx.tenant).await?;
        Event::tenant(&ctx, Via::Api, "api_key.revoked")
            .origin(&origin)
            .resource(format!("api_key:{key_id}"))
            .change(json!({ "revoked": false }), json!({ "revoked": true }))
            .record_tenant(&pool)
            .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("api_key_not_found", "No such API key."))
    }
}
