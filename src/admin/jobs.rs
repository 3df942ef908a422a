//! Inspect and steer the job queue.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::AdminAuth;
use crate::error::ApiError;
use crate::http::extract::{Json, Path, Query};
use crate::jobs::{Enqueued, JobFilter, JobId, JobRow, JobState, KindStats, NewJob};
use crate::state::AppState;
use crate::tenancy::TenantId;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `pending`, `running`, `succeeded`, `discarded` or `cancelled`.
    state: Option<String>,
    /// A job kind, e.g. `salla.import_resource`.
    kind: Option<String>,
    tenant_id: Option<TenantId>,
    /// Page backwards: jobs with an id below this one.
    before: Option<i64>,
    /// 1–500, default 50.
    limit: Option<i64>,
}

/// `GET /api/admin/jobs`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `list`")]
pub struct JobList {
    jobs: Vec<JobRow>,
    /// The `before` of the next page; `null` on the last.
    next_before: Option<JobId>,
}

/// `POST /api/admin/jobs`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documents the json! answer of `enqueue`")]
pub struct EnqueuedJob {
    job: JobRow,
    /// The unique key was taken: `job` is the live duplicate (status 200).
    duplicate: bool,
}

/// `GET /admin/jobs`: newest first, filtered by state, kind and tenant.
#[utoipa::path(
    get,
    path = "/api/admin/jobs",
    tag = "admin-jobs",
    summary = "Jobs, newest first",
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs.", body = JobList),
        (status = 400, description = "`invalid_query`."),
    ),
)]
pub async fn list(
    _: AdminAuth,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let job_state = match params.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("Unknown state {s:?}; expected one of pending, running, succeeded, discarded, cancelled."),
            )
        })?),
    };
    let filter = JobFilter {
        state: job_state,
        kind: params.kind,
        tenant_id: params.tenant_id,
        before: params.before.map(JobId),
        limit: params.limit.unwrap_or(50),
    };
    let jobs = state.jobs().list(&filter).await?;
    let next_before = if jobs.len() as i64 == filter.limit.clamp(1, 500) {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(axum::Json(
        json!({ "jobs": jobs, "next_before": next_before }),
    ))
}

/// `GET /admin/jobs/stats`: counts by kind and state.
#[utoipa::path(
    get,
    path = "/api/admin/jobs/stats",
    tag = "admin-jobs",
    summary = "Job counts by kind and state",
    responses((status = 200, description = "One entry per kind.", body = Vec<KindStats>)),
)]
pub async fn stats(
    _: AdminAuth,
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<KindStats>>, ApiError> {
    Ok(axum::Json(state.jobs().stats().await?))
}

/// `GET /admin/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/api/admin/jobs/{id}",
    tag = "admin-jobs",
    summary = "One job",
    params(("id" = i64, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobRow),
        (status = 404, description = "`job_not_found`."),
    ),
)]
pub async fn get(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobRow>, ApiError> {
    job_json(&state, id).await
}

/// The body of `POST /api/admin/jobs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "jobs.prune_finished", "payload": {}}))]
pub struct EnqueueRequest {
    /// A registered job kind (422 `unknown_job_kind` lists them).
    kind: String,
    /// The kind's payload (default `{}`), checked against it (422 `invalid_payload`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
    tenant_id: Option<TenantId>,
    /// While a live job holds this key, enqueueing again answers that job (200, `duplicate`).
    unique_key: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    run_at: Option<OffsetDateTime>,
    /// 1–100.
    max_attempts: Option<i32>,
    priority: Option<i16>,
}

/// `POST /admin/jobs`: run a registered job kind now or later (e.g. trigger a periodic task by hand).
/// 201 with the new job, or 200 with the live duplicate when the unique key is taken.
#[utoipa::path(
    post,
    path = "/api/admin/jobs",
    tag = "admin-jobs",
    summary = "Enqueue a job",
    description = "Run a registered job kind now or later (e.g. trigger a periodic task by hand).",
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "The new job.", body = EnqueuedJob),
        (status = 200, description = "The live duplicate holding `unique_key`.", body = EnqueuedJob),
        (status = 422, description = "`unknown_job_kind`, `invalid_payload` or `invalid_body`."),
    ),
)]
pub async fn enqueue(
    _: AdminAuth,
    State(state): State<AppState>,
    Json(request): Json<EnqueueRequest>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let payload = request.payload.unwrap_or_else(|| json!({}));
    match state.job_registry().check_payload(&request.kind, &payload) {
        None => {
            return Err(ApiError::unprocessable(
                "unknown_job_kind",
                format!(
                    "No handler is registered for kind {:?}; known kinds: {}.",
                    request.kind,
                    state.job_registry().kinds().join(", ")
                ),
            ));
        }
        Some(Err(e)) => {
            return Err(ApiError::unprocessable(
                "invalid_payload",
                format!("The payload does not fit kind {:?}: {e}", request.kind),
            ));
        }
        Some(Ok(())) => {}
    }
    if request
        .max_attempts
        .is_some_and(|n| !(1..=100).contains(&n))
    {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "max_attempts must be between 1 and 100.",
        ));
    }
    let mut job = NewJob::raw(request.kind, payload);
    if let Some(tenant) = request.tenant_id {
        job = job.for_tenant(tenant);
    }
    if let Some(key) = request.unique_key {
        job = job.unique_key(key);
    }
    if let Some(at) = request.run_at {
        job = job.run_at(at);
    }
    if let Some(n) = request.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(p) = request.priority {
        job = job.priority(p);
    }
    let (status, id) = match state.jobs().enqueue(job).await? {
        Enqueued::Inserted(id) => (StatusCode::CREATED, id),
        Enqueued::Duplicate(id) => (StatusCode::OK, id),
    };
    let row = state
        .jobs()
        .get(id)
        .await?
        .ok_or_else(|| job_not_found(id.0))?;
    Ok((
        status,
        axum::Json(json!({ "job": row, "duplicate": status == StatusCode::OK })),
    ))
}

/// `POST /admin/jobs/{id}/retry`: a discarded or cancelled job runs again with fresh attempts.
#[utoipa::path(
    post,
    path = "/api/admin/jobs/{id}/retry",
    tag = "admin-jobs",
    summary = "Retry a discarded or cancelled job",
    params(("id" = i64, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, pending again.", body = JobRow),
        (status = 404, description = "`job_not_found`."),
        (status = 409, description = "`invalid_job_state`."),
    ),
)]
pub async fn retry(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobRow>, ApiError> {
    if !state.jobs().retry(JobId(id)).await? {
        return Err(state_conflict(
            &state,
            id,
            "only discarded or cancelled jobs can be retried",
        )
        .await);
    }
    job_json(&state, id).await
}

/// `POST /admin/jobs/{id}/cancel`: a pending job will not run.
#[utoipa::path(
    post,
    path = "/api/admin/jobs/{id}/cancel",
    tag = "admin-jobs",
    summary = "Cancel a pending job",
    params(("id" = i64, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job, cancelled.", body = JobRow),
        (status = 404, description = "`job_not_found`."),
        (status = 409, description = "`invalid_job_state`."),
    ),
)]
pub async fn cancel(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobRow>, ApiError> {
    if !state.jobs().cancel(JobId(id)).await? {
        return Err(state_conflict(&state, id, "only pending jobs can be cancelled").await);
    }
    job_json(&state, id).await
}

/// 404 if the job does not exist, else 409 saying which state it is in.
async fn state_conflict(state: &AppState, id: i64, rule: &str) -> ApiError {
    match state.jobs().get(JobId(id)).await {
        Ok(Some(job)) => ApiError::conflict(
            "invalid_job_state",
            format!("Job {id} is {}; {rule}.", job.state),
        ),
        Ok(None) => job_not_found(id),
        Err(e) => e.into(),
    }
}

async fn job_json(state: &AppState, id: i64) -> Result<axum::Json<JobRow>, ApiError> {
    let job = state.jobs().get(JobId(id)).await?;
    job.map(axum::Json).ok_or_else(|| job_not_found(id))
}

fn job_not_found(id: i64) -> ApiError {
    ApiError::not_found("job_not_found", format!("No job with id {id}."))
}
