//! The audit trail: who did what, to which resource, when, from where and through which door.
//!
//! Two tables, one home each: the global `audit_log` (operators, lifecycle, integrations; [`global`]) and every
//! tenant database's `audit_log` (writes through the tenant API, the merchant app and the CRM proxy; [`tenant`]).
//! There is one way to write an entry: an [`Event`] built from the `TenantContext` (or an operator's name),
//! the request's [`Origin`] (request id, client IP, user agent) and what was done. Reading goes through
//! [`Filter`] and the two list endpoints ([`routes`] for tenants, `admin::audit` for operators), newest first
//! with opaque cursors. Old entries are deleted by the periodic [`retention`] job.
//!
//! Never put bodies, keys or passwords into an event: `details`/`before`/`after` are for ids, names and the
//! fields that changed.

pub mod global;
pub mod proxy;
pub mod query;
pub mod retention;
pub mod routes;
pub mod tenant;

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;

use crate::http::TenantContext;
use crate::http::client_ip::{ClientIp, TrustedProxies};
use crate::state::AppState;
use crate::tenancy::TenantId;

pub use query::{Entry, Filter, Page};

/// User agents longer than this are cut (they are for people reading the log, not for parsing).
const MAX_USER_AGENT: usize = 256;

/// Through which door a write came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The tenant API (`/api/*`: API keys, Clerk sessions).
    Api,
    /// The merchant app (`/app/*`).
    App,
    /// The CRM proxy (`/crm/*`).
    CrmProxy,
    /// An operator (admin API, CLI).
    Operator,
    /// Wosool itself (jobs, integrations).
    System,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::App => "app",
            Self::CrmProxy => "crm_proxy",
            Self::Operator => "operator",
            Self::System => "system",
        }
    }
}

/// Where a request came from: its request id, the client's IP (behind trusted proxies) and user agent.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn of(parts: &Parts, trusted: &TrustedProxies) -> Self {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        Self {
            request_id: header("x-request-id").map(str::to_owned),
            ip: ClientIp::of(parts, trusted).0,
            user_agent: header("user-agent").map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts, state.trusted_proxies()))
    }
}

/// One audit entry, built then written once to the tenant's log ([`Event::write_tenant`]) or the global one
/// ([`Event::write_global`]).
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: String,
    pub action: String,
    pub via: Via,
    pub tenant: Option<TenantId>,
    pub resource: Option<String>,
    pub origin: Origin,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub details: Value,
}

impl Event {
    /// An action of whoever `ctx` authenticated, on their tenant.
    pub fn tenant(ctx: &TenantContext, via: Via, action: impl Into<String>) -> Self {
        let mut event = Self::by(ctx.actor.clone(), via, action);
        event.tenant = Some(ctx.id());
        event
    }

    /// An operator's action (`admin:…`, `cli:…`).
    pub fn operator(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self::by(actor, Via::Operator, action)
    }

    /// An action by `actor` through `via`.
    pub fn by(actor: impl Into<String>, via: Via, action: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            via,
            tenant: None,
            resource: None,
            origin: Origin::default(),
            before: None,
            after: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn origin(mut self, origin: &Origin) -> Self {
        self.origin = origin.clone();
        self
    }

    pub fn on_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// What was acted on, e.g. `api_key:<id>`, `note:<id>`, `tenant:<id>`.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The changed fields, before and after.
    pub fn change(mut self, before: Value, after: Value) -> Self {
        self.before = Some(before);
        self.after = Some(after);
        self
    }

    /// Writes to the tenant database's `audit_log`.
    pub async fn write_tenant(&self, pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        tenant::insert(pool, self).await
    }

    /// Writes to the tenant's log and only logs a failure: for writes that already happened (the CRM proxy
    /// answered, the record is saved), where failing the request would tell the caller something false.
    pub async fn record_tenant(&self, pool: &sqlx::PgPool) {
        if let Err(error) = self.write_tenant(pool).await {
            tracing::error!(action = %self.action, error = %error, "writing the tenant audit log failed");
        }
    }

    /// Writes to the global `audit_log`.
    pub async fn write_global(&self, conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        global::insert(conn, self).await
    }
}

/// Deletes `audit_log` entries older than `cutoff` from the database of `pool` (the global one or a tenant's:
/// both logs have `id` and `at`), `batch` rows per statement so no statement holds locks for long; the number
/// deleted.
async fn prune_audit_log(
    pool: &sqlx::PgPool,
    cutoff: time::OffsetDateTime,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < batch as u64 {
            return Ok(total);
        }
    }
}
