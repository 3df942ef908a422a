//! `POST /api/admin/tenants/{id}/impersonate`: an operator opens a tenant's merchant app as one of its members,
//! for a limited time and a stated reason. The answer is a single-use link (`/app/impersonate?ticket=…`,
//! valid `impersonation.ticket_ttl_secs`); opening it mints an app session with the member's role, the
//! operator and the reason (`crate::web::impersonate`). This module is the one home of
//! `impersonation_tickets`: only the ticket's SHA-256 is stored, and consuming it is one conditional UPDATE.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::AdminAuth;
use crate::audit::{Event, Origin};
use crate::error::ApiError;
use crate::http::extract::{Json, Path};
use crate::state::AppState;
use crate::tenancy::{TenantId, TenantStatus};

const TICKET_PREFIX: &str = "wsi_";

/// The body of `POST /api/admin/tenants/{id}/impersonate`: the member by id or email, and why.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "owner@nour.example", "reason": "Ticket 4821: orders missing"}))]
pub struct ImpersonateBody {
    member_id: Option<Uuid>,
    email: Option<String>,
    /// Required: recorded in the audit log and shown in the app's banner.
    reason: Option<String>,
    /// The session's lifetime; default and maximum from `impersonation.*`.
    ttl_secs: Option<u64>,
}

/// `POST /api/admin/tenants/{id}/impersonate`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `impersonate`")]
pub struct ImpersonationLink {
    /// `/app/impersonate?ticket=wsi_…`: works once, within `impersonation.ticket_ttl_secs`.
    url: String,
    ticket_expires_at: Option<time::OffsetDateTime>,
    session_ttl_secs: u64,
    /// `id`, `name`, `role`.
    #[schema(value_type = Object)]
    member: serde_json::Value,
    note: String,
}

/// The member an operator will act as.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub id: Uuid,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub role_key: String,
    pub external_id: Option<String>,
    pub clerk_user_id: Option<String>,
}

impl Member {
    /// How the banner names the member.
    pub fn label(&self) -> String {
        self.display_name
            .clone()
            .or_else(|| self.email.clone())
            .unwrap_or_else(|| self.id.to_string())
    }
}

/// A consumed ticket: what the session is minted from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ticket {
    pub tenant_id: TenantId,
    pub member_id: Uuid,
    pub member_name: Option<String>,
    pub role: String,
    pub operator: String,
    pub reason: String,
    pub session_ttl_secs: i32,
}

fn hash(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

/// Takes the ticket once: `None` when it is unknown, expired or already used (atomically, so two
/// concurrent openings cannot both succeed).
pub async fn consume(db: &PgPool, ticket: &str) -> Result<Option<Ticket>, sqlx::Error> {
    if !ticket.starts_with(TICKET_PREFIX) || ticket.len() > 64 {
        return Ok(None);
    }
    sqlx::query_as(
        "UPDATE impersonation_tickets SET consumed_at = now() \
          WHERE ticket_hash = $1 AND consumed_at IS NULL AND expires_at > now() \
         RETURNING tenant_id, member_id, member_name, role, operator, reason, session_ttl_secs",
    )
    .bind(hash(ticket).as_slice())
    .fetch_optional(db)
    .await
}

/// An active member of the tenant by id or email.
pub async fn find_member(
    pool: &PgPool,
    id: Option<Uuid>,
    email: Option<&str>,
) -> Result<Option<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, display_name, role_key, external_id, clerk_user_id FROM members \
          WHERE status = 'active' AND (id = $1 OR ($2::text IS NOT NULL AND lower(email) = lower($2))) \
          ORDER BY id = $1 DESC LIMIT 1",
    )
    .bind(id)
    .bind(email)
    .fetch_optional(pool)
    .await
}

fn invalid(field: &str, problem: &str) -> ApiError {
    let mut fields = BTreeMap::new();
    fields.insert(field.to_owned(), problem.to_owned());
    ApiError::Invalid { fields }
}

#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/impersonate",
    tag = "admin-tenants",
    summary = "A single-use link to open the merchant app as a member",
    params(("id" = String, Path, description = "The tenant's id or slug.")),
    request_body = ImpersonateBody,
    responses(
        (status = 201, description = "The link.", body = ImpersonationLink),
        (status = 404, description = "`tenant_not_found` or no such member."),
        (status = 422, description = "`validation_failed`."),
    ),
)]
pub async fn impersonate(
    auth: AdminAuth,
    State(state): State<AppState>,
    origin: Origin,
    Path(id): Path<String>,
    Json(body): Json<ImpersonateBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let config = &state.config().impersonation;
    let reason = body.reason.as_deref().map(str::trim).unwrap_or("");
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(invalid("reason", "required: 1 to 500 printable characters"));
    }
    let ttl = body.ttl_secs.unwrap_or(config.default_ttl_secs);
    if ttl == 0 || ttl > config.max_ttl_secs {
        return Err(invalid(
            "ttl_secs",
            &format!("must be 1 to {} seconds", config.max_ttl_secs),
        ));
    }
    let email = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if body.member_id.is_none() && email.is_none() {
        return Err(invalid(
            "member_id",
            "name the member by member_id or email",
        ));
    }
    if email.is_some_and(|e| e.len() > 320 || e.contains('\0')) {
        return Err(invalid("email", "is not an email address"));
    }
    let tenant = state.lifecycle().find(&id).await?;
    if tenant.status != TenantStatus::Ready {
        return Err(ApiError::conflict(
            "tenant_not_ready",
            format!(
                "Only a ready tenant can be opened; this one is {}.",
                tenant.status
            ),
        ));
    }
    let pool = state.pools().get(&tenant).await?;
    let member = find_member(&pool, body.member_id, email)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("member_not_found", "The tenant has no such active member.")
        })?;

    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let ticket = format!("{TICKET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let mut tx = state.db().begin().await?;
    let expires_at: OffsetDateTime = sqlx::query_scalar(
        "INSERT INTO impersonation_tickets (ticket_hash, tenant_id, member_id, member_name, role, operator, \
           reason, session_ttl_secs, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9)) RETURNING expires_at",
    )
    .bind(hash(&ticket).as_slice())
    .bind(tenant.id)
    .bind(member.id)
    .bind(member.label())
    .bind(&member.role_key)
    .bind(&auth.actor)
    .bind(reason)
    .bind(ttl as i32)
    .bind(config.ticket_ttl_secs as f64)
    .fetch_one(&mut *tx)
    .await?;
    Event::operator(&auth.actor, "impersonation.requested")
        .on_tenant(tenant.id)
        .origin(&origin)
        .resource(format!("member:{}", member.id))
        .details(json!({
            "member_id": member.id,
            "member": member.label(),
            "role": member.role_key,
            "reason": reason,
            "ttl_secs": ttl,
        }))
        .write_global(&mut tx)
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "url": format!("/app/impersonate?ticket={ticket}"),
            "ticket_expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).ok(),
            "session_ttl_secs": ttl,
            "member": { "id": member.id, "name": member.label(), "role": member.role_key },
            "note": "The link works once, within a minute; it opens the merchant app as this member.",
        })),
    ))
}
