//! The global `audit_log`'s one home: operators' and the system's actions on tenants.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::Event;
use super::query::{Filter, Page, push_filters};

pub async fn insert(conn: &mut PgConnection, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, tenant_id, request_id, details, ip, user_agent, resource, \
           before, after, via) \
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8, $9, $10, $11)",
    )
    .bind(&event.actor)
    .bind(&event.action)
    .bind(event.tenant)
    .bind(&event.origin.request_id)
    .bind(&event.details)
    .bind(event.origin.ip.map(|ip| ip.to_string()))
    .bind(&event.origin.user_agent)
    .bind(&event.resource)
    .bind(&event.before)
    .bind(&event.after)
    .bind(event.via.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of the global log, newest first.
pub async fn list(db: &PgPool, filter: &Filter) -> Result<Page, sqlx::Error> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT id, at, actor, action, resource, via, tenant_id, host(ip) AS ip, \
                user_agent, request_id, before, after, details \
           FROM audit_log WHERE true",
    );
    if let Some(tenant) = filter.tenant {
        query.push(" AND tenant_id = ").push_bind(tenant);
    }
    push_filters(&mut query, filter, "resource");
    let rows = query.build_query_as().fetch_all(db).await?;
    Ok(Page::of(rows, filter.limit))
}

/// Deletes entries older than `cutoff`, `batch` rows per statement; the number deleted.
pub async fn prune(db: &PgPool, cutoff: OffsetDateTime, batch: i64) -> Result<u64, sqlx::Error> {
    super::prune_audit_log(db, cutoff, batch).await
}
