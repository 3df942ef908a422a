//! A tenant's own API keys (admins of the organization, and API keys themselves). Every query is scoped by the caller's tenant id from `TenantContext`, so a key of
//! another tenant is simply not found.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{Event, Origin, Via};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::{Json, Path};
use crate::provisioning::lifecycle::Actor;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
}

/// Checks a key's display name: 1–100 characters, no control characters.
pub fn check_key_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 100 || name.chars().any(char::is_control) {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(
            "name".to_owned(),
            "must be 1 to 100 printable characters".to_owned(),
        );
        return Err(ApiError::Invalid { fields });
    }
    Ok(name.to_owned())
}

pub async fn list(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> Result<axum::Json<Value>, ApiError> {
    ctx.require_admin()?;
    let keys = state.lifecycle().list_api_keys(ctx.id()).await?;
    Ok(axum::Json(json!({ "api_keys": keys })))
}

pub async fn create(
    State(state): State<AppState>,
    ctx: TenantContext,
    origin: Origin,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    ctx.require_admin()?;
    let name = check_key_name(&body.name)?;
    let actor = Actor::from_request(&ctx.actor, &origin);
    let (info, plain) = state
        .lifecycle()
        .create_api_key(ctx.id(), &name, &actor)
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

pub async fn revoke(
    State(state): State<AppState>,
    ctx: TenantContext,
    origin: Origin,
    Path(key_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    ctx.require_admin()?;
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
