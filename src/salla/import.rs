//! The history import and periodic re-scans (shared/reference/salla.md §3.2–3.4): one `salla.import` job per
//! store and resource walks the Merchant API list page by page. Each page is upserted (idempotent, keyed by the
//! Salla id, stale-guarded) in the same tenant-database transaction that advances the checkpoint
//! (`sync_state.next_page`), so a crash resumes at the first page not written and a page written twice changes
//! nothing. A re-scan is the same walk started again: Salla has no "updated since" filter and some edits emit no
//! event, so walking everything is the only reconciliation there is.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio::sync::Mutex;

use super::api::{AccessTokens, MerchantId, Resource, SallaApiError, StoreInfo, TokenFuture};
use super::model::{self, Cart, Customer, Order, Product};
use super::service::Salla;
use super::tokens::{StoreTokens, TokenError};
use crate::commerce;
use crate::jobs::{Job, JobContext, JobError, JobQueue, NewJob};
use crate::tenancy::{TenantId, TenantStatus};

/// Imports (or resumes importing) one resource of one store into its tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResource {
    pub tenant_id: TenantId,
    pub merchant_id: MerchantId,
    pub resource: Resource,
}

impl Job for ImportResource {
    const KIND: &'static str = "salla.import";
}

/// Starts a full walk of every resource of a store (first import, re-scan, or an admin's resync). A walk
/// already running for a resource is not started twice.
pub async fn enqueue_full(
    queue: &JobQueue,
    tenant: TenantId,
    merchant: MerchantId,
) -> Result<u64, JobError> {
    let jobs: Vec<NewJob> = Resource::ALL
        .iter()
        .map(|resource| {
            NewJob::new(&ImportResource {
                tenant_id: tenant,
                merchant_id: merchant,
                resource: *resource,
            })
            .map(|job| {
                job.for_tenant(tenant)
                    .unique_key(format!("import:{}", resource.name()))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(queue.enqueue_many(&jobs).await?)
}

/// `AccessTokens` for one store, backed by the token store: the Merchant API client asks it for the access
/// token, and after a 401 for a refreshed one (single-flight per store through the store's row lock).
pub struct StoreCredentials {
    salla: Salla,
    merchant: MerchantId,
    current: Mutex<Option<StoreTokens>>,
}

impl StoreCredentials {
    pub fn new(salla: &Salla, merchant: MerchantId) -> Self {
        Self {
            salla: salla.clone(),
            merchant,
            current: Mutex::new(None),
        }
    }
}

fn token_error(error: TokenError) -> super::api::AccessTokenError {
    match error {
        TokenError::NeedsReinstall(_) => super::api::AccessTokenError::Revoked,
        other => super::api::AccessTokenError::Unavailable(other.to_string()),
    }
}

impl AccessTokens for StoreCredentials {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if let Some(tokens) = current.as_ref() {
                return Ok(tokens.access_token.clone());
            }
            let tokens = self
                .salla
                .tokens()
                .usable(self.merchant)
                .await
                .map_err(token_error)?;
            let access = tokens.access_token.clone();
            *current = Some(tokens);
            Ok(access)
        })
    }

    fn refresh_rejected<'a>(&'a self, rejected: &'a str) -> TokenFuture<'a> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            // Refresh from the version that issued the rejected token; a newer stored one is reused as is.
            let seen = match current.as_ref() {
                Some(tokens) if tokens.access_token == rejected => tokens.token_version,
                Some(tokens) => return Ok(tokens.access_token.clone()),
                None => {
                    self.salla
                        .tokens()
                        .current(self.merchant)
                        .await
                        .map_err(token_error)?
                        .token_version
                }
            };
            let tokens = self
                .salla
                .tokens()
                .refresh(self.merchant, seen)
                .await
                .map_err(token_error)?;
            let access = tokens.access_token.clone();
            *current = Some(tokens);
            Ok(access)
        })
    }
}

fn api_error(what: &str, error: SallaApiError) -> JobError {
    if error.is_transient() {
        JobError::retry(format!("{what}: {error}"))
    } else {
        match error {
            // A revoked store stops here; its reinstall starts a new import.
            SallaApiError::Token(super::api::AccessTokenError::Revoked) => {
                JobError::permanent(format!("{what}: {error}"))
            }
            other => JobError::retry(format!("{what}: {other}")),
        }
    }
}

/// `GET /store/info` of a store, with its tokens.
pub async fn store_info(salla: &Salla, merchant: MerchantId) -> Result<StoreInfo, JobError> {
    let credentials = StoreCredentials::new(salla, merchant);
    salla
        .api()
        .store_info(merchant, &credentials)
        .await
        .map_err(|e| api_error("store/info", e))
}

#[derive(sqlx::FromRow)]
struct SyncState {
    status: String,
    next_page: Option<i32>,
}

/// The `salla.import` job.
pub(super) async fn run(
    salla: &Salla,
    ctx: &JobContext,
    job: &ImportResource,
) -> Result<(), JobError> {
    let Some(tenant) = salla
        .directory()
        .get(job.tenant_id)
        .await
        .map_err(|e| JobError::retry(format!("tenant lookup: {e}")))?
    else {
        return Ok(());
    };
    match tenant.status {
        TenantStatus::Ready => {}
        TenantStatus::Pending | TenantStatus::Provisioning => {
            return Err(JobError::retry("the tenant is not ready yet"));
        }
        // Suspended, failed or gone: nothing to import into (a reactivation starts a new walk).
        _ => return Ok(()),
    }
    let pool = salla
        .pools()
        .get(&tenant)
        .await
        .map_err(|e| JobError::retry(format!("tenant database: {e}")))?;
    let resource = job.resource;
    let name = resource.name();
    let state: Option<SyncState> =
        sqlx::query_as("SELECT status, next_page FROM sync_state WHERE resource = $1")
            .bind(name)
            .fetch_optional(&*pool)
            .await?;
    let mut page = match state {
        // A walk that was interrupted resumes at its checkpoint.
        Some(SyncState {
            status,
            next_page: Some(next),
        }) if status == "running" => next.max(1) as u32,
        _ => {
            sqlx::query(
                "INSERT INTO sync_state (resource, status, next_page, items_synced, total_expected, started_at, last_error) \
                 VALUES ($1, 'running', 1, 0, NULL, now(), NULL) \
                 ON CONFLICT (resource) DO UPDATE SET status = 'running', next_page = 1, items_synced = 0, \
                   total_expected = NULL, started_at = now(), last_error = NULL, updated_at = now()",
            )
            .bind(name)
            .execute(&*pool)
            .await?;
            1
        }
    };
    let credentials = Arc::new(StoreCredentials::new(salla, job.merchant_id));
    let store = job.merchant_id;
    // The store's request budget starts from its plan (the responses' X-RateLimit-* headers correct it).
    let plan: Option<Option<String>> =
        sqlx::query_scalar("SELECT store_plan FROM salla_stores WHERE merchant_id = $1")
            .bind(job.merchant_id)
            .fetch_optional(salla.db())
            .await?;
    if salla.api().limits().requests_per_minute(store).is_none() {
        salla
            .api()
            .limits()
            .set_plan(store, plan.flatten().as_deref());
    }
    loop {
        if ctx.shutdown.is_cancelled() {
            return Err(JobError::retry(
                "worker shutting down; resuming from the checkpoint",
            ));
        }
        let page_started = std::time::Instant::now();
        let listed = salla
            .api()
            .list_page(store, credentials.as_ref(), resource, page)
            .await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                let message = format!("page {page}: {error}");
                let _ = sqlx::query(
                    "UPDATE sync_state SET last_error = $2, failing_since = coalesce(failing_since, now()), \
                     updated_at = now() WHERE resource = $1",
                )
                .bind(name)
                .bind(&message)
                .execute(&*pool)
                .await;
                if !error.is_transient() && ctx.attempt >= ctx.max_attempts {
                    let _ = sqlx::query("UPDATE sync_state SET status = 'failed', updated_at = now() WHERE resource = $1")
                        .bind(name)
                        .execute(&*pool)
                        .await;
                }
                return Err(api_error(&format!("{name} page {page}"), error));
            }
        };
        // Orders whose details are missing or stale, known before the page overwrites what is stored.
        let needing_details = if resource == Resource::Orders {
            needing_details(&pool, &listed.items).await?
        } else {
            Vec::new()
        };
        let mut tx = pool.begin().await?;
        let written = write_page(&mut tx, resource, &listed.items, &needing_details).await?;
        let last = !listed.has_more();
        let per_minute =
            listed.items.len() as f64 / page_started.elapsed().as_secs_f64().max(1e-3) * 60.0;
        sqlx::query(
            "UPDATE sync_state SET next_page = $2, items_synced = items_synced + $3, total_expected = $4, \
             status = CASE WHEN $5 THEN 'done' ELSE 'running' END, \
             last_full_import_at = CASE WHEN $5 THEN now() ELSE last_full_import_at END, \
             items_per_minute = coalesce(items_per_minute * 0.7 + $6 * 0.3, $6), \
             last_error = NULL, failing_since = NULL, updated_at = now() WHERE resource = $1",
        )
        .bind(name)
        .bind(if last { None } else { Some(page as i32 + 1) })
        .bind(listed.items.len() as i64)
        .bind(listed.total.map(|t| t as i64))
        .bind(last)
        .bind(per_minute)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!("salla_import_items_total", "resource" => name)
            .increment(listed.items.len() as u64);
        tracing::debug!(tenant_id = %tenant.id, resource = name, page, written, "Salla import page written");
        if last {
            tracing::info!(tenant_id = %tenant.id, merchant = job.merchant_id.as_i64(), resource = name, "Salla import done");
            // Every list done: the order details follow, newest first.
            super::details::enqueue_when_lists_done(
                salla.jobs(),
                &pool,
                tenant.id,
                job.merchant_id,
            )
            .await?;
            return Ok(());
        }
        page += 1;
    }
}

/// Upserts one page of list items (orders of `needing_details` marked for the details walk).
async fn write_page(
    conn: &mut PgConnection,
    resource: Resource,
    items: &[serde_json::Value],
    needing_details: &[i64],
) -> Result<u64, JobError> {
    let counts = match resource {
        Resource::Customers => {
            let (rows, errors) = model::parse_items(items, Customer::from_value);
            log_skipped(resource, &errors);
            commerce::upsert_customers(conn, &rows).await
        }
        Resource::Products => {
            let (rows, errors) = model::parse_items(items, Product::from_value);
            log_skipped(resource, &errors);
            commerce::upsert_products(conn, &rows).await
        }
        Resource::Orders => {
            let (rows, errors) = model::parse_items(items, Order::from_value);
            log_skipped(resource, &errors);
            commerce::upsert_orders_marking(conn, &rows, needing_details).await
        }
        Resource::AbandonedCarts => {
            let (rows, errors) = model::parse_items(items, Cart::from_value);
            log_skipped(resource, &errors);
            commerce::upsert_carts(conn, &rows).await
        }
    }
    .map_err(|e| JobError::retry(format!("writing {}: {e}", resource.name())))?;
    Ok(counts.written())
}

fn log_skipped(resource: Resource, errors: &[(usize, model::ModelError)]) {
    for (index, error) in errors {
        tracing::warn!(resource = resource.name(), index, error = %error, "Salla item skipped: does not parse");
    }
    if !errors.is_empty() {
        metrics::counter!("salla_import_items_skipped_total", "resource" => resource.name())
            .increment(errors.len() as u64);
    }
}

/// The listed orders whose details we lack or whose listed status or total changed since we fetched them:
/// List Orders has no `updated_at`, so a changed status or total is how a re-scan notices an edit that sent no
/// event. Their details are fetched after the lists (`details`).
async fn needing_details(
    pool: &sqlx::PgPool,
    items: &[serde_json::Value],
) -> Result<Vec<i64>, JobError> {
    let ids: Vec<i64> = items
        .iter()
        .filter_map(|item| model::id_of(&item["id"]))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stored: Vec<(i64, Option<String>, Option<rust_decimal::Decimal>)> = sqlx::query_as(
        "SELECT salla_id, status_slug, total FROM orders WHERE salla_id = ANY($1) AND source_updated_at IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let unchanged = |item: &serde_json::Value| {
        let id = model::id_of(&item["id"]);
        let slug = item["status"]["slug"].as_str();
        let total = model::Amount::from_json(&item["total"]).map(|a| a.amount.decimal());
        stored.iter().any(|(sid, s_slug, s_total)| {
            Some(*sid) == id && s_slug.as_deref() == slug && s_total.is_some() && *s_total == total
        })
    };
    Ok(items
        .iter()
        .filter(|item| !unchanged(item))
        .filter_map(|item| model::id_of(&item["id"]))
        .collect())
}
