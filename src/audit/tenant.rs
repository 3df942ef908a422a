//! A tenant database's `audit_log`'s one home: writes made in the tenant through the API, the merchant app
//! and the CRM proxy. The pool is the tenant's own (from `TenantContext`), so every query is scoped by
//! construction.

use sqlx::PgPool;
use time::OffsetDateTime;

use super::Event;
use super::query::{Filter, Page, push_filters};

pub async fn insert(pool: &PgPool, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, subject, request_id, details, via, ip, user_agent, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8, $9, $10)",
    )
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.resource)
    .bind(&event.origin.request_id)
    .bind(&event.details)
    .bind(event.via.as_str())
    .bind(event.origin.ip.map(|ip| ip.to_string()))
    .bind(&event.origin.user_agent)
    .bind(&event.before)
    .bind(&event.after)
    .execute(pool)
    .await?;
    Ok(())
}

/// A page of the tenant's log, newest first (`filter.tenant` is ignored: the pool is the tenant).
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page, sqlx::Error> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT id, at, actor, action, subject AS resource, via, NULL::uuid AS tenant_id, host(ip) AS ip, \
                user_agent, request_id, before, after, details \
           FROM audit_log WHERE true",
    );
    push_filters(&mut query, filter, "subject");
    let rows = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::of(rows, filter.limit))
}

/// Deletes entries older than `cutoff`, `batch` rows per statement; the number deleted.
pub async fn prune(pool: &PgPool, cutoff: OffsetDateTime, batch: i64) -> Result<u64, sqlx::Error> {
    super::prune_audit_log(pool, cutoff, batch).await
}
