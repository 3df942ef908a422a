//! `POST /api/auth/register-organization` and `GET /api/auth/provisioning-status/{id}`.
//!
//! Who may register is `tenancy.self_service`: `off` (nobody: operators and integrations create tenants),
//! `clerk` (a caller with a verified Clerk session, who becomes the owner) or `open` (anyone; local use).
//! Whatever the mode, a self-served tenant gets `tenancy.default_plan`: the body's `plan` is ignored.

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clerk::session::token_from_headers;
use crate::config::SelfService;
use crate::embedded::Embedded;
use crate::error::ApiError;
use crate::http::extract::{Json, Path, RequestId};
use crate::http::{step_and_progress, verify_session};
use crate::provisioning::steps;
use crate::provisioning::{RegistrationRequest, ValidRegistration};
use crate::state::AppState;
use crate::tenancy::{LookupKey, TenantStatus};

/// `POST /api/auth/register-organization`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `register`")]
pub struct Registered {
    tenant_id: crate::tenancy::TenantId,
    slug: crate::tenancy::Slug,
    plan: String,
    provisioning_id: Uuid,
    status: TenantStatus,
    /// Where to watch the progress: `/api/auth/provisioning-status/{provisioning_id}`.
    status_url: String,
}

/// `GET /api/auth/provisioning-status/{id}`'s answer: progress only, fit for the registrant.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `status`")]
pub struct ProvisioningProgress {
    provisioning_id: Uuid,
    status: TenantStatus,
    /// The current step, if any.
    step: Option<String>,
    /// 0–100.
    progress: i64,
    message: String,
    steps: Vec<StepProgress>,
}

/// One provisioning step.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `status`")]
pub struct StepProgress {
    name: String,
    status: String,
}

/// Registers an organization and starts provisioning it: 202 with where to watch the progress.
#[utoipa::path(
    post,
    path = "/api/auth/register-organization",
    tag = "registration",
    summary = "Register an organization",
    description = "Who may register is `tenancy.self_service`: `off` (403 `self_service_disabled`), `clerk` (a \
                   signed-in Clerk session, who becomes the owner; their email is used) or `open`. The plan is \
                   always `tenancy.default_plan`. Limited per client IP.",
    request_body = RegistrationRequest,
    responses(
        (status = 202, description = "Provisioning started.", body = Registered),
        (status = 401, description = "`clerk` mode without a valid session."),
        (status = 403, description = "`self_service_disabled`, or `email_required`."),
        (status = 409, description = "The slug is taken."),
        (status = 422, description = "`validation_failed`: `details.fields` names each field."),
        (status = 429, description = "Too many registrations from this IP."),
    ),
)]
pub async fn register(
    _: crate::maintenance::NotInMaintenance,
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Json(mut request): Json<RegistrationRequest>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let tenancy = &state.config().tenancy;
    // The plan is the operator's choice, never the registrant's.
    request.plan = None;
    let (valid, actor) = match tenancy.self_service {
        SelfService::Off => {
            return Err(ApiError::forbidden(
                "self_service_disabled",
                "Organizations are not registered here: they are created by the operators or by an \
                 integration (installing the Salla app, creating a Clerk organization).",
            ));
        }
        SelfService::Open => (validate(&request, &state)?, "self-service".to_owned()),
        SelfService::Clerk => {
            let owner = clerk_owner(&state, &headers).await?;
            // The owner's email is their Clerk user's, whatever the body says.
            request.admin_email = owner.email;
            let mut valid = validate(&request, &state)?;
            valid.owner_user_id = Some(owner.user_id.clone());
            (valid, format!("clerk:{}", owner.user_id))
        }
    };
    let registered = state
        .provisioner()
        .register(valid, None, &actor, request_id.as_deref())
        .await?;
    let tenant = &registered.tenant;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "tenant_id": tenant.id,
            "slug": tenant.slug,
            "plan": tenant.plan,
            "provisioning_id": registered.run_id,
            "status": tenant.status,
            "status_url": format!("/api/auth/provisioning-status/{}", registered.run_id),
        })),
    ))
}

fn validate(
    request: &RegistrationRequest,
    state: &AppState,
) -> Result<ValidRegistration, ApiError> {
    request
        .validate(&state.config().tenancy)
        .map_err(|fields| ApiError::Invalid { fields })
}

/// The Clerk user registering in `clerk` mode.
struct ClerkOwner {
    user_id: String,
    email: String,
}

/// The caller's verified Clerk session (`Authorization: Bearer <jwt>` or the `__session` cookie) and their
/// Clerk user's primary email: 401 without a valid session, 403 without a usable email.
async fn clerk_owner(state: &AppState, headers: &HeaderMap) -> Result<ClerkOwner, ApiError> {
    // `clerk` mode without Clerk is refused when the configuration loads; this only guards that invariant.
    let not_configured = || ApiError::internal("tenancy.self_service is clerk but Clerk is off");
    let sessions = state.sessions().ok_or_else(not_configured)?;
    let token = token_from_headers(headers).ok_or_else(|| ApiError::AuthFailed {
        code: "session_required",
        message: "Registering an organization needs a signed-in Clerk session \
                  (Authorization: Bearer <session token> or the __session cookie)."
            .into(),
    })?;
    let claims = verify_session(sessions, token).await?;
    let user_id = claims.user_id().to_owned();
    let embedded = Embedded::from_ref(state);
    let api = embedded.clerk().ok_or_else(not_configured)?;
    let user = api
        .get_user(&user_id)
        .await
        .map_err(|error| {
            tracing::warn!(error = %error, "reading the registering Clerk user failed");
            ApiError::Unavailable {
                code: "identity_unavailable",
                message: "Your account cannot be checked right now; try again shortly.".into(),
                details: None,
            }
        })?
        .ok_or_else(|| ApiError::AuthFailed {
            code: "user_not_found",
            message: "The session's user no longer exists.".into(),
        })?;
    let email = user.primary_email().ok_or_else(|| {
        ApiError::forbidden(
            "email_required",
            "Your account needs a verified primary email address to own an organization.",
        )
    })?;
    Ok(ClerkOwner {
        email: email.to_owned(),
        user_id,
    })
}

/// Progress of a provisioning run, by its id (unguessable; returned only to whoever registered). Progress
/// only: the status, the current step, a percentage and a message fit for the registrant — never the tenant's
/// id, database, server or the steps' internal details and errors (operators see those in the admin API).
#[utoipa::path(
    get,
    path = "/api/auth/provisioning-status/{id}",
    tag = "registration",
    summary = "Progress of a registration",
    params(("id" = Uuid, Path, description = "The `provisioning_id` returned by the registration.")),
    responses(
        (status = 200, description = "The progress.", body = ProvisioningProgress),
        (status = 404, description = "`provisioning_not_found`."),
        (status = 429, description = "Too many requests from this IP."),
    ),
)]
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let not_found = || ApiError::not_found("provisioning_not_found", "No such provisioning run.");
    let run = steps::get_run(state.db(), id)
        .await?
        .ok_or_else(not_found)?;
    let records = steps::steps_of(state.db(), id).await?;
    let tenant = state
        .directory()
        .resolve(&LookupKey::Id(run.tenant_id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    let (step, progress) = step_and_progress(&records);
    let progress = if tenant.status == TenantStatus::Ready {
        100
    } else {
        progress
    };
    let steps: Vec<Value> = records
        .iter()
        .map(|r| json!({ "name": r.name, "status": r.status }))
        .collect();
    let message = public_message(tenant.status, step.as_deref());
    Ok(axum::Json(json!({
        "provisioning_id": run.id,
        "status": tenant.status,
        "step": step,
        "progress": progress,
        "message": message,
        "steps": steps,
    })))
}

/// What the registrant is told, by status and current step.
fn public_message(status: TenantStatus, step: Option<&str>) -> &'static str {
    match status {
        TenantStatus::Pending => "Waiting to start setting up your organization.",
        TenantStatus::Provisioning => match step {
            Some("create_database" | "migrate" | "seed") => "Preparing your organization's data.",
            Some("identity") => "Setting up your sign-in.",
            Some("crm") => "Setting up your CRM workspace.",
            _ => "Finishing the setup.",
        },
        TenantStatus::Ready => "Your organization is ready.",
        TenantStatus::Failed => "Setting up your organization failed; our team has been notified.",
        TenantStatus::Suspended => "Your organization is ready but currently suspended.",
        TenantStatus::Deleting | TenantStatus::Deleted => "This organization has been deleted.",
    }
}
