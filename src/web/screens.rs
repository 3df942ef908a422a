//! The screens: Home, Customers (and a customer's card), Orders (and one order), Abandoned carts, Settings
//! and Team. Each handler reads through `dashboard::commerce` (and `salla::store_status`, `crm::workspace`,
//! `clerk::members`), shapes the rows for its template and answers through [`View::respond`]: the fragment
//! for htmx, the full page otherwise. Lists page by cursor: "more" asks for the next page's rows only
//! (`rows=1`), which replace the button.

use std::sync::{Arc, LazyLock};

use askama::Template;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use moka::future::Cache;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::i18n::{self, Lang};
use super::{Screen, View, render};
use crate::access::{Action, Resource};
use crate::crm::workspace::{self, WorkspaceState};
use crate::dashboard::commerce::carts::{Cart, ListCarts};
use crate::dashboard::commerce::customers::{Customer, ListCustomers};
use crate::dashboard::commerce::insights::{self, CartItem, DayPoint, Kpis, PERIODS};
use crate::dashboard::commerce::orders::{ListOrders, Order, OrderDetail};
use crate::dashboard::commerce::segments::Segment;
use crate::dashboard::commerce::sync::ResourceSync;
use crate::dashboard::commerce::{carts, customers, orders, sync};
use crate::error::ApiError;
use crate::http::extract::{Form, Path, Query};
use crate::salla::store_status::{self, StoreStatus};
use crate::state::AppState;
use crate::tenancy::{AppPreferences, TenantId};

/// Rows per list page.
const PAGE: &str = "25";

/// A link that keeps the view's language and theme.
fn link(v: &View, path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, val) in pairs {
        if !val.is_empty() {
            query.append_pair(k, val);
        }
    }
    query.append_pair("lang", v.lang.code());
    if v.theme != "auto" {
        query.append_pair("theme", v.theme);
    }
    format!("{path}?{}", query.finish())
}

/// Something on Home the merchant should act on.
pub struct Attention {
    pub testid: &'static str,
    pub message: &'static str,
    /// `danger` or `warning`.
    pub level: &'static str,
    pub action: Option<(String, &'static str)>,
}

/// One KPI tile: the value now, before, and the change.
pub struct Tile {
    pub testid: &'static str,
    pub label: &'static str,
    pub value: String,
    pub previous: String,
    /// `+12.5%`, or empty when there is nothing to compare with.
    pub change: String,
    /// `up`, `down` or `flat` (for colour; whether up is good is the tile's business).
    pub trend: &'static str,
}

fn tile(
    testid: &'static str,
    label: &'static str,
    now: f64,
    before: f64,
    show: impl Fn(f64) -> String,
) -> Tile {
    let (change, trend) = if before.abs() < f64::EPSILON {
        (String::new(), if now > 0.0 { "up" } else { "flat" })
    } else {
        let ratio = (now - before) / before.abs();
        let trend = if ratio > 0.0005 {
            "up"
        } else if ratio < -0.0005 {
            "down"
        } else {
            "flat"
        };
        (
            format!(
                "{}{:.1}%",
                if ratio > 0.0 { "+" } else { "" },
                ratio * 100.0
            ),
            trend,
        )
    };
    Tile {
        testid,
        label,
        value: show(now),
        previous: show(before),
        change,
        trend,
    }
}

fn to_f64(value: Decimal) -> f64 {
    value.try_into().unwrap_or(0.0)
}

fn tiles(v: &View, kpis: &Kpis) -> Vec<Tile> {
    let (now, before) = (&kpis.current, &kpis.previous);
    let lang = v.lang;
    let money = move |x: f64| i18n::money(lang, Decimal::try_from(x).unwrap_or_default(), None);
    let count = |x: f64| i18n::count(x.round() as i64);
    let percent = |x: f64| i18n::percent(x);
    vec![
        tile(
            "kpi-sales",
            v.t("kpi.sales"),
            to_f64(now.sales),
            to_f64(before.sales),
            money,
        ),
        tile(
            "kpi-orders",
            v.t("kpi.orders"),
            now.orders as f64,
            before.orders as f64,
            count,
        ),
        tile(
            "kpi-aov",
            v.t("kpi.aov"),
            now.average_order_value.map(to_f64).unwrap_or(0.0),
            before.average_order_value.map(to_f64).unwrap_or(0.0),
            money,
        ),
        tile(
            "kpi-new-customers",
            v.t("kpi.new_customers"),
            now.new_customers as f64,
            before.new_customers as f64,
            count,
        ),
        tile(
            "kpi-returning-customers",
            v.t("kpi.returning_customers"),
            now.returning_customers as f64,
            before.returning_customers as f64,
            count,
        ),
        tile(
            "kpi-repeat-rate",
            v.t("kpi.repeat_rate"),
            now.repeat_rate.unwrap_or(0.0),
            before.repeat_rate.unwrap_or(0.0),
            percent,
        ),
        tile(
            "kpi-abandoned-carts",
            v.t("kpi.abandoned_carts"),
            now.abandoned_carts as f64,
            before.abandoned_carts as f64,
            count,
        ),
        tile(
            "kpi-abandoned-value",
            v.t("kpi.abandoned_value"),
            to_f64(now.abandoned_value),
            to_f64(before.abandoned_value),
            money,
        ),
        tile(
            "kpi-recovered-carts",
            v.t("kpi.recovered_carts"),
            now.recovered_carts as f64,
            before.recovered_carts as f64,
            count,
        ),
    ]
}

/// A resource's import progress as Home shows it.
pub struct SyncRow {
    pub resource: String,
    pub label: &'static str,
    pub status: String,
    pub status_label: &'static str,
    pub done: i64,
    pub total: Option<i64>,
    /// 0..=100 when the total is known.
    pub percent: Option<i64>,
    pub last_event: Option<String>,
    pub error: Option<String>,
}

fn sync_rows(v: &View, resources: Vec<ResourceSync>) -> Vec<SyncRow> {
    resources
        .into_iter()
        .map(|r| {
            let percent = r
                .total_expected
                .filter(|t| *t > 0)
                .map(|t| (r.items_synced * 100 / t).clamp(0, 100));
            SyncRow {
                label: v.t(&format!("sync.resource.{}", r.resource)),
                status_label: v.t(&format!("sync.status.{}", r.status)),
                done: r.items_synced,
                total: r.total_expected,
                percent,
                last_event: r.last_event_at.map(|at| v.datetime(at)),
                error: r.last_error,
                status: r.status,
                resource: r.resource,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "screens/home.html")]
struct Home<'a> {
    v: &'a View,
    days: i32,
    periods: Vec<(i32, String)>,
    tiles: Vec<Tile>,
    sync: Vec<SyncRow>,
    sync_done: bool,
    attention: Vec<Attention>,
    trend_labels: String,
    trend_sales: String,
    trend_orders: String,
    can_resync: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct HomeQuery {
    period: Option<String>,
}

/// Home's KPIs and trend per tenant and window, kept this long: the figures are sums over up to 180 days of
/// orders (tens of milliseconds on a 50k-order store), and a dashboard a few seconds behind is fine, while
/// every other part of Home (sync, attention) is read fresh.
const FIGURES_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Home's figures of one tenant and window.
type Figures = Arc<(Kpis, Vec<DayPoint>)>;

static FIGURES: LazyLock<Cache<(TenantId, i32), Figures>> = LazyLock::new(|| {
    Cache::builder()
        .max_capacity(10_000)
        .time_to_live(FIGURES_TTL)
        .build()
});

/// `GET /app/home`.
pub async fn home(
    State(state): State<AppState>,
    Screen { ctx, pool, v }: Screen,
    Query(query): Query<HomeQuery>,
) -> Result<Response, ApiError> {
    let days = query
        .period
        .as_deref()
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|d| PERIODS.contains(d))
        .unwrap_or(30);
    let tz = state
        .directory()
        .settings(&ctx.tenant, state.pools())
        .await
        .ok()
        .flatten()
        .map(|s| s.timezone.clone())
        .unwrap_or_else(|| "Asia/Riyadh".to_owned());
    let store = async {
        match ctx.tenant.salla_merchant_id {
            Some(merchant) => store_status::of(state.db(), merchant)
                .await
                .map_err(ApiError::from),
            None => Ok(None),
        }
    };
    let crm = async {
        workspace::state(state.db(), state.core().keyring(), ctx.id())
            .await
            .map_err(|e| ApiError::internal(format!("reading the CRM workspace: {e}")))
    };
    // Concurrent misses of one tenant and window compute once (moka coalesces the loads).
    let figures = async {
        FIGURES
            .try_get_with((ctx.id(), days), async {
                let (kpis, trend) = tokio::try_join!(
                    insights::kpis(&pool, days),
                    insights::trend(&pool, days, &tz)
                )?;
                Ok::<_, ApiError>(Arc::new((kpis, trend)))
            })
            .await
            // The loader's own error when this request ran it; waiters that shared it get a 500 naming it.
            .map_err(|shared: Arc<ApiError>| {
                Arc::try_unwrap(shared).unwrap_or_else(|shared| {
                    ApiError::internal(format!("computing Home's figures: {shared}"))
                })
            })
    };
    let (figures, resources, store, crm) =
        tokio::try_join!(figures, sync::progress(&pool), store, crm,)?;
    let trend = &figures.1;
    let sync = sync_rows(&v, resources);
    let sync_done = sync
        .iter()
        .all(|r| r.status == "done" || (r.status == "idle" && r.done == 0 && r.error.is_none()))
        && sync.iter().any(|r| r.status == "done");
    let attention = attention(&v, store.as_ref(), &sync, &crm, &state);
    let page = Home {
        days,
        periods: PERIODS
            .iter()
            .map(|d| (*d, link(&v, "/app/home", &[("period", &d.to_string())])))
            .collect(),
        tiles: tiles(&v, &figures.0),
        sync_done,
        sync,
        attention,
        trend_labels: json_list(
            trend
                .iter()
                .map(|p| serde_json::json!(i18n::day_label(p.day))),
        ),
        trend_sales: json_list(
            trend
                .iter()
                .map(|p: &DayPoint| serde_json::json!(to_f64(p.sales))),
        ),
        trend_orders: json_list(trend.iter().map(|p| serde_json::json!(p.orders))),
        can_resync: ctx.can(Resource::Sync, Action::Manage)
            && ctx.tenant.salla_merchant_id.is_some(),
        v: &v,
    };
    Ok(v.respond("home", "nav.home", render(&page)?))
}

fn json_list(values: impl Iterator<Item = serde_json::Value>) -> String {
    serde_json::Value::Array(values.collect()).to_string()
}

fn attention(
    v: &View,
    store: Option<&StoreStatus>,
    sync: &[SyncRow],
    crm: &WorkspaceState,
    state: &AppState,
) -> Vec<Attention> {
    let mut list = Vec::new();
    if let Some(store) = store
        && store.needs_reinstall()
    {
        let url = &state.config().app.salla_app_url;
        list.push(Attention {
            testid: "attention-reinstall",
            message: v.t("attention.reinstall"),
            level: "danger",
            action: (!url.is_empty()).then(|| (url.clone(), v.t("attention.reinstall_action"))),
        });
    }
    if sync.iter().any(|r| r.status == "failed") {
        list.push(Attention {
            testid: "attention-sync-failing",
            message: v.t("attention.sync_failing"),
            level: "danger",
            action: None,
        });
    }
    if matches!(crm, WorkspaceState::WaitingForCapacity) {
        list.push(Attention {
            testid: "attention-crm-waiting",
            message: v.t("attention.crm_waiting"),
            level: "warning",
            action: None,
        });
    }
    list
}

/// `POST /app/sync/resync` (admin): starts a full re-scan, as `POST /api/sync/resync`; answers a notice.
pub async fn resync(
    State(state): State<AppState>,
    Screen { ctx, v, pool }: Screen,
    origin: crate::audit::Origin,
) -> Result<Response, ApiError> {
    let Some(merchant) = ctx.tenant.salla_merchant_id else {
        return Err(ApiError::conflict(
            "no_salla_store",
            "This tenant is not connected to a Salla store.",
        ));
    };
    if !state.config().salla.enabled() {
        return Err(ApiError::Unavailable {
            code: "salla_not_configured",
            message: "The Salla app is not configured on this server.".into(),
            details: None,
        });
    }
    crate::salla::import::enqueue_full(state.jobs(), ctx.tenant.id, merchant)
        .await
        .map_err(|e| ApiError::internal(e.message()))?;
    crate::audit::Event::tenant(&ctx, crate::audit::Via::App, "sync.resync_requested")
        .origin(&origin)
        .resource(format!("store:{merchant}"))
        .record_tenant(&pool)
        .await;
    Ok(notice(&v, "sync.resync_started"))
}

/// A small confirmation fragment, also announced to the page (`HX-Trigger: wosool:toast`) so the shell can
/// show Salla's own toast.
fn notice(v: &View, key: &str) -> Response {
    let text = v.t(key);
    let mut response = axum::response::Html(format!(
        "<p class=\"notice\" role=\"status\" data-testid=\"notice\">{}</p>",
        askama_escape(text)
    ))
    .into_response();
    let trigger = serde_json::json!({ "wosool:toast": { "message": text } }).to_string();
    if let Ok(value) = HeaderValue::from_str(&trigger) {
        response.headers_mut().insert("hx-trigger", value);
    }
    response
}

fn askama_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

// ---------------------------------------------------------------------------------------------- customers

/// A customer row with its segment badges.
pub struct CustomerRow {
    pub c: Customer,
    pub segments: Vec<&'static str>,
    pub href: String,
}

fn customer_rows(v: &View, customers: Vec<Customer>) -> Vec<CustomerRow> {
    customers
        .into_iter()
        .map(|c| CustomerRow {
            segments: Segment::of(c.orders_count, c.total_spent.amount(), c.last_order_at)
                .into_iter()
                .map(|s| v.t(&format!("segment.{}", s.name())))
                .collect(),
            href: link(v, &format!("/app/customers/{}", c.id), &[]),
            c,
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct CustomersQuery {
    q: Option<String>,
    segment: Option<String>,
    cursor: Option<String>,
    rows: Option<String>,
}

#[derive(Template)]
#[template(path = "screens/customers.html")]
struct Customers<'a> {
    v: &'a View,
    q: String,
    segment: String,
    segments: Vec<(&'static str, &'static str)>,
    rows: Vec<CustomerRow>,
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "parts/customer_rows.html")]
struct CustomerRows<'a> {
    v: &'a View,
    rows: Vec<CustomerRow>,
    more: Option<String>,
}

/// `GET /app/customers`: search, segment, cursor paging.
pub async fn customers(
    Screen { pool, v, .. }: Screen,
    Query(query): Query<CustomersQuery>,
) -> Result<Response, ApiError> {
    let params = ListCustomers {
        limit: Some(PAGE.into()),
        cursor: query.cursor.clone(),
        q: query.q.clone().filter(|q| !q.trim().is_empty()),
        segment: query.segment.clone().filter(|s| !s.is_empty()),
        ..ListCustomers::default()
    };
    let page = customers::fetch(&pool, &params).await?;
    let (q, segment) = (
        query.q.unwrap_or_default(),
        query.segment.unwrap_or_default(),
    );
    let more = page.next_cursor.map(|cursor| {
        link(
            &v,
            "/app/customers",
            &[
                ("q", &q),
                ("segment", &segment),
                ("cursor", &cursor),
                ("rows", "1"),
            ],
        )
    });
    let rows = customer_rows(&v, page.data);
    if query.rows.is_some() {
        return Ok(v.respond(
            "customers",
            "nav.customers",
            render(&CustomerRows { v: &v, rows, more })?,
        ));
    }
    let screen = Customers {
        segments: Segment::ALL
            .iter()
            .map(|s| (s.name(), v.t(&format!("segment.{}", s.name()))))
            .collect(),
        q,
        segment,
        rows,
        more,
        v: &v,
    };
    Ok(v.respond("customers", "nav.customers", render(&screen)?))
}

#[derive(Template)]
#[template(path = "screens/customer.html")]
struct CustomerCard<'a> {
    v: &'a View,
    c: Customer,
    segments: Vec<&'static str>,
    average: Option<Decimal>,
    orders: Vec<OrderRow>,
    carts: Vec<CartRow>,
    crm: super::crm::CustomerPanel,
    new_note_href: String,
}

/// `GET /app/customers/{id}`: the customer's card (404 for an id of no customer of this tenant).
pub async fn customer(
    State(state): State<AppState>,
    Screen { ctx, pool, v }: Screen,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = customers::one(&pool, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer_not_found", "No such customer."))?;
    let orders_params = ListOrders {
        limit: Some("50".into()),
        customer_id: Some(c.id.to_string()),
        ..ListOrders::default()
    };
    let carts_params = ListCarts {
        limit: Some("20".into()),
        customer_id: Some(c.id.to_string()),
        ..ListCarts::default()
    };
    let (orders, carts, crm) = tokio::join!(
        orders::fetch(&pool, &orders_params),
        carts::fetch(&pool, &carts_params),
        super::crm::customer_panel(&state, &ctx, c.id),
    );
    let (orders, carts) = (orders?, carts?);
    let items =
        insights::cart_items(&pool, &carts.data.iter().map(|c| c.id).collect::<Vec<_>>()).await?;
    let card = CustomerCard {
        segments: Segment::of(c.orders_count, c.total_spent.amount(), c.last_order_at)
            .into_iter()
            .map(|s| v.t(&format!("segment.{}", s.name())))
            .collect(),
        average: (c.orders_count > 0)
            .then(|| (c.total_spent.amount() / Decimal::from(c.orders_count)).round_dp(2)),
        orders: order_rows(&v, orders.data),
        carts: cart_rows(&v, carts.data, &items),
        crm,
        new_note_href: format!("/app/crm/notes/new?customer={}", c.id),
        c,
        v: &v,
    };
    Ok(v.respond("customers", "nav.customers", render(&card)?))
}

// ------------------------------------------------------------------------------------------------ orders

pub struct OrderRow {
    pub o: Order,
    pub href: String,
    pub status: String,
    pub when: String,
}

fn order_rows(v: &View, orders: Vec<Order>) -> Vec<OrderRow> {
    orders
        .into_iter()
        .map(|o| OrderRow {
            href: link(v, &format!("/app/orders/{}", o.id), &[]),
            status: o
                .status_name
                .clone()
                .or_else(|| o.status_slug.clone())
                .unwrap_or_default(),
            when: v.datetime(o.ordered_at),
            o,
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct OrdersQuery {
    q: Option<String>,
    status: Option<String>,
    payment_method: Option<String>,
    cursor: Option<String>,
    rows: Option<String>,
}

/// Salla's order status slugs, for the filter.
const STATUSES: &[&str] = &[
    "payment_pending",
    "under_review",
    "in_progress",
    "completed",
    "delivering",
    "delivered",
    "shipped",
    "canceled",
    "restored",
];

/// Salla's common payment method slugs, for the filter.
const PAYMENTS: &[&str] = &[
    "mada",
    "credit_card",
    "apple_pay",
    "stc_pay",
    "bank",
    "cod",
    "tabby",
    "tamara",
];

#[derive(Template)]
#[template(path = "screens/orders.html")]
struct Orders<'a> {
    v: &'a View,
    q: String,
    status: String,
    payment_method: String,
    statuses: Vec<(&'static str, &'static str)>,
    payments: Vec<(&'static str, &'static str)>,
    rows: Vec<OrderRow>,
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "parts/order_rows.html")]
struct OrderRows<'a> {
    v: &'a View,
    rows: Vec<OrderRow>,
    more: Option<String>,
}

/// `GET /app/orders`: search, status and payment filters, cursor paging.
pub async fn orders(
    Screen { pool, v, .. }: Screen,
    Query(query): Query<OrdersQuery>,
) -> Result<Response, ApiError> {
    let given = |value: &Option<String>| value.clone().filter(|s| !s.trim().is_empty());
    let params = ListOrders {
        limit: Some(PAGE.into()),
        cursor: query.cursor.clone(),
        q: given(&query.q),
        status: given(&query.status),
        payment_method: given(&query.payment_method),
        ..ListOrders::default()
    };
    let page = orders::fetch(&pool, &params).await?;
    let q = query.q.unwrap_or_default();
    let status = query.status.unwrap_or_default();
    let payment_method = query.payment_method.unwrap_or_default();
    let more = page.next_cursor.map(|cursor| {
        link(
            &v,
            "/app/orders",
            &[
                ("q", &q),
                ("status", &status),
                ("payment_method", &payment_method),
                ("cursor", &cursor),
                ("rows", "1"),
            ],
        )
    });
    let rows = order_rows(&v, page.data);
    if query.rows.is_some() {
        return Ok(v.respond(
            "orders",
            "nav.orders",
            render(&OrderRows { v: &v, rows, more })?,
        ));
    }
    let screen = Orders {
        statuses: STATUSES
            .iter()
            .map(|s| (*s, v.t(&format!("order_status.{s}"))))
            .collect(),
        payments: PAYMENTS
            .iter()
            .map(|s| (*s, v.t(&format!("payment.{s}"))))
            .collect(),
        q,
        status,
        payment_method,
        rows,
        more,
        v: &v,
    };
    Ok(v.respond("orders", "nav.orders", render(&screen)?))
}

#[derive(Template)]
#[template(path = "screens/order.html")]
struct OrderScreen<'a> {
    v: &'a View,
    d: OrderDetail,
    status: String,
    when: String,
    customer_href: Option<String>,
}

/// `GET /app/orders/{id}`: lines, status, payment and customer (404 for an id of no order of this tenant).
pub async fn order(
    Screen { pool, v, .. }: Screen,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = orders::detail(&pool, &id).await?;
    let screen = OrderScreen {
        status: d
            .order
            .status_name
            .clone()
            .or_else(|| d.order.status_slug.clone())
            .unwrap_or_default(),
        when: v.datetime(d.order.ordered_at),
        customer_href: d
            .order
            .customer_id
            .map(|id| link(&v, &format!("/app/customers/{id}"), &[])),
        d,
        v: &v,
    };
    Ok(v.respond("orders", "nav.orders", render(&screen)?))
}

// ------------------------------------------------------------------------------------------------- carts

pub struct CartRow {
    pub c: Cart,
    pub items: Vec<(String, i32)>,
    pub status: &'static str,
    pub started: Option<String>,
    pub customer_href: Option<String>,
}

fn cart_rows(v: &View, carts: Vec<Cart>, items: &[CartItem]) -> Vec<CartRow> {
    carts
        .into_iter()
        .map(|c| CartRow {
            items: items
                .iter()
                .filter(|i| i.cart_id == c.id)
                .map(|i| {
                    let name = i.name.clone().unwrap_or_else(|| match i.product_id {
                        Some(id) => format!("#{id}"),
                        None => v.t("carts.unknown_product").to_owned(),
                    });
                    (name, i.quantity)
                })
                .collect(),
            status: match c.status.as_deref() {
                Some("purchased") => v.t("carts.status.purchased"),
                _ => v.t("carts.status.abandoned"),
            },
            started: c
                .source_created_at
                .or(c.source_updated_at)
                .map(|at| v.datetime(at)),
            customer_href: c
                .customer_id
                .map(|id| link(v, &format!("/app/customers/{id}"), &[])),
            c,
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct CartsQuery {
    status: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    rows: Option<String>,
}

#[derive(Template)]
#[template(path = "screens/carts.html")]
struct Carts<'a> {
    v: &'a View,
    q: String,
    status: String,
    rows: Vec<CartRow>,
    more: Option<String>,
}

#[derive(Template)]
#[template(path = "parts/cart_rows.html")]
struct CartRows<'a> {
    v: &'a View,
    rows: Vec<CartRow>,
    more: Option<String>,
}

/// `GET /app/carts`: abandoned carts (value, items, customer, Salla's status), newest activity first.
pub async fn carts(
    Screen { pool, v, .. }: Screen,
    Query(query): Query<CartsQuery>,
) -> Result<Response, ApiError> {
    let given = |value: &Option<String>| value.clone().filter(|s| !s.trim().is_empty());
    let params = ListCarts {
        limit: Some(PAGE.into()),
        cursor: query.cursor.clone(),
        q: given(&query.q),
        status: given(&query.status),
        ..ListCarts::default()
    };
    let page = carts::fetch(&pool, &params).await?;
    let ids: Vec<i64> = page.data.iter().map(|c| c.id).collect();
    let items = insights::cart_items(&pool, &ids).await?;
    let q = query.q.unwrap_or_default();
    let status = query.status.unwrap_or_default();
    let more = page.next_cursor.map(|cursor| {
        link(
            &v,
            "/app/carts",
            &[
                ("q", &q),
                ("status", &status),
                ("cursor", &cursor),
                ("rows", "1"),
            ],
        )
    });
    let rows = cart_rows(&v, page.data, &items);
    if query.rows.is_some() {
        return Ok(v.respond(
            "carts",
            "nav.carts",
            render(&CartRows { v: &v, rows, more })?,
        ));
    }
    let screen = Carts {
        q,
        status,
        rows,
        more,
        v: &v,
    };
    Ok(v.respond("carts", "nav.carts", render(&screen)?))
}

// ---------------------------------------------------------------------------------------------- settings

#[derive(Template)]
#[template(path = "screens/settings.html")]
struct Settings<'a> {
    v: &'a View,
    store: Option<StoreStatus>,
    token_health: &'static str,
    token_level: &'static str,
    reinstall_url: String,
    sync: Vec<SyncRow>,
    preferences: AppPreferences,
    can_edit: bool,
    saved: bool,
    crm: &'static str,
}

/// `GET /app/settings`.
pub async fn settings(State(state): State<AppState>, screen: Screen) -> Result<Response, ApiError> {
    settings_page(&state, screen, false).await
}

async fn settings_page(
    state: &AppState,
    screen: Screen,
    saved: bool,
) -> Result<Response, ApiError> {
    let Screen { ctx, pool, v } = screen;
    let store = match ctx.tenant.salla_merchant_id {
        Some(merchant) => store_status::of(state.db(), merchant).await?,
        None => None,
    };
    let (resources, preferences, crm) = tokio::try_join!(
        sync::progress(&pool),
        async { Ok(crate::tenancy::app_preferences(&pool).await?) },
        async {
            workspace::state(state.db(), state.core().keyring(), ctx.id())
                .await
                .map_err(|e| ApiError::internal(format!("reading the CRM workspace: {e}")))
        },
    )?;
    let (token_health, token_level) = match &store {
        None => ("settings.token.none", "warning"),
        Some(s) if s.needs_reinstall() => ("settings.token.revoked", "danger"),
        Some(s) if s.status == "uninstalled" => ("settings.token.uninstalled", "danger"),
        Some(s) if s.last_refresh_error.is_some() => ("settings.token.refresh_failing", "warning"),
        Some(s) if s.has_tokens => ("settings.token.ok", "ok"),
        Some(_) => ("settings.token.pending", "warning"),
    };
    let page = Settings {
        token_health: v.t(token_health),
        token_level,
        reinstall_url: state.config().app.salla_app_url.clone(),
        sync: sync_rows(&v, resources),
        preferences,
        can_edit: ctx.can(Resource::Settings, Action::Manage),
        saved,
        crm: v.t(match crm {
            WorkspaceState::Ready(_) => "settings.crm.ready",
            WorkspaceState::WaitingForCapacity => "settings.crm.waiting",
            WorkspaceState::NotReady => "settings.crm.not_ready",
        }),
        store,
        v: &v,
    };
    Ok(v.respond("settings", "nav.settings", render(&page)?))
}

#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    lang: Option<String>,
    notify_daily_summary: Option<String>,
    notify_abandoned_carts: Option<String>,
    notify_sync_failures: Option<String>,
}

/// `POST /app/settings` (admin): saves language and notification toggles; answers the Settings screen.
pub async fn save_settings(
    State(state): State<AppState>,
    mut screen: Screen,
    origin: crate::audit::Origin,
    Form(form): Form<SettingsForm>,
) -> Result<Response, ApiError> {
    let lang = match form.lang.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => None,
        Some(text) => Some(
            Lang::parse(text)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_lang", "lang must be ar, en or auto.")
                })?
                .code()
                .to_owned(),
        ),
    };
    let on = |value: &Option<String>| value.as_deref().is_some_and(|v| v == "on" || v == "true");
    let preferences = AppPreferences {
        lang: lang.clone(),
        notify_daily_summary: on(&form.notify_daily_summary),
        notify_abandoned_carts: on(&form.notify_abandoned_carts),
        notify_sync_failures: on(&form.notify_sync_failures),
    };
    let before = crate::tenancy::app_preferences(&screen.pool).await.ok();
    crate::tenancy::save_app_preferences(&screen.pool, &preferences).await?;
    crate::audit::Event::tenant(&screen.ctx, crate::audit::Via::App, "settings.saved")
        .origin(&origin)
        .resource("settings")
        .change(
            serde_json::to_value(&before).unwrap_or_default(),
            serde_json::to_value(&preferences).unwrap_or_default(),
        )
        .record_tenant(&screen.pool)
        .await;
    if let Some(lang) = lang.as_deref().and_then(Lang::parse) {
        screen.v.lang = lang;
    }
    let mut response = settings_page(&state, screen, true).await?;
    let trigger = serde_json::json!({ "wosool:toast": { "message": "saved" } }).to_string();
    if let Ok(value) = HeaderValue::from_str(&trigger) {
        response.headers_mut().insert("hx-trigger", value);
    }
    Ok(response)
}

// -------------------------------------------------------------------------------------------------- team

pub struct MemberView {
    pub name: String,
    pub email: String,
    /// Salla staff (opened the app from Salla) or an account member.
    pub source: &'static str,
    pub last_seen: String,
    pub role: String,
    pub status: &'static str,
    pub since: String,
}

#[derive(Template)]
#[template(path = "screens/team.html")]
struct Team<'a> {
    v: &'a View,
    members: Vec<MemberView>,
}

/// `GET /app/team`: the people of the tenant (owner, members, Salla staff who opened the app) and roles.
pub async fn team(Screen { pool, v, .. }: Screen) -> Result<Response, ApiError> {
    let members = crate::clerk::members::list(&pool, 500).await?;
    let page = Team {
        members: members
            .into_iter()
            .map(|m| MemberView {
                name: m
                    .display_name
                    .clone()
                    .or_else(|| m.email.clone())
                    .or_else(|| m.external_id.clone())
                    .unwrap_or_default(),
                email: m.email.clone().unwrap_or_default(),
                source: v.t(if m.external_id.is_some() {
                    "team.source.salla"
                } else {
                    "team.source.account"
                }),
                last_seen: v.datetime_opt(m.last_seen_at),
                role: match m.role_key.as_str() {
                    "owner" => v.t("team.role.owner").to_owned(),
                    "admin" => v.t("team.role.admin").to_owned(),
                    "member" => v.t("team.role.member").to_owned(),
                    _ => m.role_name,
                },
                status: v.t(match m.status.as_str() {
                    "invited" => "team.status.invited",
                    "disabled" => "team.status.disabled",
                    _ => "team.status.active",
                }),
                since: v.date(m.created_at.date()),
            })
            .collect(),
        v: &v,
    };
    Ok(v.respond("team", "nav.team", render(&page)?))
}
