//! Idempotent writes of Salla commerce data into a tenant database (migrations/tenant/*_commerce.sql): batch
//! upserts of Merchant API pages, the application of webhook events, and customer aggregates computed from
//! orders.
//!
//! Every function takes `&mut PgConnection`, so callers can run it inside their own transaction; those that
//! write more than once open a savepoint of their own, so each call is atomic.
//!
//! # When a payload overwrites a stored row
//!
//! Salla sends no delivery ids and no ordering; what dates a payload is Salla's own `updated_at`, which API
//! items and most webhooks carry ("dated") and some do not: List Orders items, the docs' `order.created`,
//! legacy carts ("undated"). The rule, per row:
//!
//! 1. **Dated vs dated:** a payload older than the stored `source_updated_at` is stale and changes nothing. An
//!    equal or newer one is applied.
//! 2. **Undated onto a dated row:** its age is unknown, so it cannot prove it is newer than the dated data;
//!    it only fills columns that are still NULL (and adds `raw` keys the row lacks). This is what keeps a List
//!    Orders item (status and total only) from clobbering a richer, newer order details or webhook payload.
//! 3. **Undated onto an undated (or no) row:** applied, the last write wins.
//!
//! "Applied" means: each column takes the payload's value when the payload carries the column's source key
//! (even as `null`, `{}` or `0`: that is how Salla clears a sale price or a coupon), and keeps the stored value
//! when the payload lacks the key (a thin payload never blanks what a richer one stored). `raw` is the stored
//! object merged with the payload's top-level keys, so fields without a column are never lost, and
//! `source_updated_at` only moves forward. A payload that would change nothing is not written at all, so
//! writing the same page or event twice changes no row (not even `synced_at`).
//!
//! Events without a date of their own follow their own rules, documented on [`apply_event`].

use std::collections::HashMap;
use std::sync::LazyLock;

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::{Connection, PgConnection};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::api::Resource;
use super::events::{EventKind, ProductPatch};
use super::model::{Amount, Cart, Customer, Money, Order, OrderItem, Product};

#[derive(Debug, thiserror::Error)]
pub enum StoreDataError {
    #[error("tenant database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Rows were inserted or changed.
    Changed,
    /// Everything the event says is already stored (a duplicate delivery).
    Unchanged,
    /// The event is older than the stored data and was ignored.
    Stale,
    /// The event patches a product we do not have; the next full import or re-scan brings it whole.
    Missing,
    /// Not a store-data event (app lifecycle, events we do not act on).
    NotApplicable,
}

/// What a batch upsert did, per payload of the batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
    /// Older than the stored row: ignored.
    pub stale: u64,
    /// Already stored as they are (or repeated within the batch).
    pub unchanged: u64,
}

impl UpsertCounts {
    /// Rows inserted or updated.
    pub fn written(&self) -> u64 {
        self.inserted + self.updated
    }

    fn applied(&self) -> Applied {
        if self.written() > 0 {
            Applied::Changed
        } else if self.stale > 0 {
            Applied::Stale
        } else {
            Applied::Unchanged
        }
    }
}

/// A customer's order history, computed from `orders`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerAggregates {
    pub orders_count: i64,
    /// The sum of the orders' totals, each in its order's currency (Salla stores sell in one currency; a
    /// multi-currency store's sum mixes them, as Salla's own customer list does).
    pub total_spent: Decimal,
    pub last_order_at: Option<OffsetDateTime>,
}

// ---------------------------------------------------------------------------------------------------------
// Table descriptions: the generated SQL and the JSON rows agree on these names.
// ---------------------------------------------------------------------------------------------------------

/// A column written from payloads (besides `salla_id`, `raw` and `source_updated_at`, which every table has).
struct Column {
    name: &'static str,
    /// Its SQL type, for reading JSON rows and patches.
    ty: &'static str,
    /// The payload's top-level keys the column is read from: a payload without any of them leaves it alone.
    keys: &'static [&'static str],
    /// NOT NULL in the table: a missing value keeps the stored one.
    required: bool,
}

const fn col(name: &'static str, ty: &'static str, keys: &'static [&'static str]) -> Column {
    Column {
        name,
        ty,
        keys,
        required: false,
    }
}

const fn required(name: &'static str, ty: &'static str, keys: &'static [&'static str]) -> Column {
    Column {
        name,
        ty,
        keys,
        required: true,
    }
}

struct Table {
    name: &'static str,
    columns: &'static [Column],
    /// Insert expressions replacing `i.<column>`: NOT NULL columns need a value even when the payload has none
    /// (`e` is the stored row, if any).
    inserts: &'static [(&'static str, &'static str)],
    /// Fields of the JSON rows that are not columns (inputs of `inserts` and `carried`).
    extra: &'static [(&'static str, &'static str)],
    /// Columns that are not read from the payload: each with its insert expression, whose value (`EXCLUDED`)
    /// an update also takes.
    carried: &'static [(&'static str, &'static str)],
}

const MONEY: &str = "numeric(14,2)";

const CUSTOMERS: Table = Table {
    name: "customers",
    columns: &[
        col("first_name", "text", &["first_name"]),
        col("last_name", "text", &["last_name"]),
        col("email", "text", &["email"]),
        col("mobile", "text", &["mobile"]),
        col("mobile_code", "text", &["mobile_code"]),
        col("gender", "text", &["gender"]),
        col("birthday", "date", &["birthday"]),
        col("city", "text", &["city"]),
        col("country", "text", &["country"]),
        col("country_code", "text", &["country_code"]),
        col("currency", "text", &["currency"]),
        col("location", "text", &["location"]),
        col("avatar", "text", &["avatar"]),
        required("groups", "jsonb", &["groups"]),
        col(
            "is_notifications_enabled",
            "boolean",
            &["is_notifications_enabled"],
        ),
    ],
    inserts: &[],
    extra: &[],
    carried: &[],
};

const PRODUCTS: Table = Table {
    name: "products",
    columns: &[
        required("name", "text", &["name"]),
        col("sku", "text", &["sku"]),
        col("mpn", "text", &["mpn"]),
        col("gtin", "text", &["gtin"]),
        col("type", "text", &["type"]),
        col("status", "text", &["status"]),
        col("is_available", "boolean", &["is_available"]),
        col("price", MONEY, &["price"]),
        col("sale_price", MONEY, &["sale_price"]),
        col("sale_end", "date", &["sale_end", "sale_price"]),
        col("regular_price", MONEY, &["regular_price"]),
        col("cost_price", MONEY, &["cost_price", "cost"]),
        col("currency", "text", &["currency", "price"]),
        col("quantity", "integer", &["quantity", "unlimited_quantity"]),
        col("sold_quantity", "integer", &["sold_quantity"]),
        col("url", "text", &["url", "urls"]),
        col("main_image", "text", &["main_image"]),
        required("categories", "jsonb", &["categories"]),
        required("tags", "jsonb", &["tags"]),
        col("brand", "jsonb", &["brand"]),
    ],
    inserts: &[("name", "COALESCE(i.name, e.name, '')")],
    extra: &[],
    carried: &[],
};

const ORDERS: Table = Table {
    name: "orders",
    columns: &[
        col("reference_id", "text", &["reference_id"]),
        col("status_id", "bigint", &["status"]),
        col("status_slug", "text", &["status"]),
        col("status_name", "text", &["status"]),
        col("customer_salla_id", "bigint", &["customer"]),
        col("customer_name", "text", &["customer"]),
        col("customer_mobile", "text", &["customer"]),
        col("customer_email", "text", &["customer"]),
        col("total", MONEY, &["amounts", "total"]),
        col("sub_total", MONEY, &["amounts"]),
        col("shipping_cost", MONEY, &["amounts"]),
        col("cash_on_delivery", MONEY, &["amounts"]),
        col("discount", MONEY, &["amounts"]),
        col("tax", MONEY, &["amounts"]),
        col("currency", "text", &["currency", "amounts", "total"]),
        col("payment_method", "text", &["payment_method"]),
        col("items_count", "integer", &["items"]),
        col("source", "text", &["source"]),
        col("source_device", "text", &["source_device"]),
        col("shipping_country", "text", &["shipping"]),
        col("shipping_city", "text", &["shipping"]),
        required("ordered_at", "timestamptz", &["date"]),
    ],
    // An order without a date (never seen from Salla) is dated when we first stored it.
    inserts: &[("ordered_at", "COALESCE(i.ordered_at, e.ordered_at, now())")],
    // Whether the order still needs its details fetched (`src/salla/details.rs`): set by the row when it
    // says (a listed order whose details are missing or stale: true; a whole order: false), else kept.
    extra: &[("details_needed", "boolean")],
    carried: &[(
        "details_needed",
        "COALESCE(i.details_needed, e.details_needed, false)",
    )],
};

const CARTS: Table = Table {
    name: "abandoned_carts",
    columns: &[
        col("customer_salla_id", "bigint", &["customer"]),
        col("customer_name", "text", &["customer"]),
        col("customer_mobile", "text", &["customer"]),
        col("customer_email", "text", &["customer"]),
        col("total", MONEY, &["total"]),
        col("subtotal", MONEY, &["subtotal"]),
        col("total_discount", MONEY, &["total_discount"]),
        col("currency", "text", &["currency", "total"]),
        col("items_count", "integer", &["items"]),
        col("checkout_url", "text", &["checkout_url"]),
        col("coupon_code", "text", &["coupon", "coupon_code"]),
        col("status", "text", &["status"]),
        col("source_created_at", "timestamptz", &["created_at"]),
    ],
    // Without created_at, the creation time is derived once from age_in_minutes (the table's convention),
    // truncated to the minute that age counts in; later payloads keep it instead of drifting it.
    inserts: &[(
        "source_created_at",
        "COALESCE(i.source_created_at, e.source_created_at, \
         date_trunc('minute', now()) - make_interval(mins => i.age_in_minutes))",
    )],
    extra: &[("age_in_minutes", "integer")],
    carried: &[],
};

/// The row is dated and the payload is not (rule 2 of the module docs).
const FILL_ONLY: &str = "(EXCLUDED.source_updated_at IS NULL AND t.source_updated_at IS NOT NULL)";

/// One statement per batch: the JSON rows become a record set, upserted on `salla_id` under the rule of the
/// module docs. It answers the ids inserted, the ids updated, and how many payloads were stale.
fn upsert_sql(table: &Table) -> String {
    let name = table.name;
    let mut record = vec!["salla_id bigint".to_owned()];
    record.extend(table.columns.iter().map(|c| format!("{} {}", c.name, c.ty)));
    record.extend(
        table
            .extra
            .iter()
            .map(|(field, ty)| format!("{field} {ty}")),
    );
    record.extend([
        "raw jsonb".to_owned(),
        "source_updated_at timestamptz".to_owned(),
    ]);

    let mut names = vec!["salla_id"];
    names.extend(table.columns.iter().map(|c| c.name));
    names.extend(["raw", "source_updated_at"]);
    names.extend(table.carried.iter().map(|(name, _)| *name));
    let values: Vec<String> = names
        .iter()
        .map(|column| {
            table
                .inserts
                .iter()
                .chain(table.carried)
                .find(|(name, _)| name == column)
                .map_or_else(|| format!("i.{column}"), |(_, expr)| (*expr).to_owned())
        })
        .collect();

    let mut targets: Vec<(&str, String)> = table
        .columns
        .iter()
        .map(|c| {
            let keys = c
                .keys
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ");
            let n = c.name;
            let expr = format!(
                "CASE WHEN EXCLUDED.raw ?| ARRAY[{keys}] AND NOT {FILL_ONLY} THEN EXCLUDED.{n} \
                 ELSE COALESCE(t.{n}, EXCLUDED.{n}) END"
            );
            (n, expr)
        })
        .collect();
    targets.push((
        "raw",
        format!("CASE WHEN {FILL_ONLY} THEN EXCLUDED.raw || t.raw ELSE t.raw || EXCLUDED.raw END"),
    ));
    targets.push((
        "source_updated_at",
        "COALESCE(EXCLUDED.source_updated_at, t.source_updated_at)".to_owned(),
    ));
    targets.extend(
        table
            .carried
            .iter()
            .map(|(name, _)| (*name, format!("EXCLUDED.{name}"))),
    );
    let sets = targets
        .iter()
        .map(|(n, e)| format!("{n} = {e}"))
        .collect::<Vec<_>>()
        .join(", ");
    let old = targets
        .iter()
        .map(|(n, _)| format!("t.{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let new = targets
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");

    format!(
        "WITH incoming AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i({record})), \
         stale AS (SELECT count(*) AS n FROM incoming i JOIN {name} t ON t.salla_id = i.salla_id \
                   WHERE i.source_updated_at < t.source_updated_at), \
         written AS ( \
           INSERT INTO {name} AS t ({names}) \
           SELECT {values} FROM incoming i LEFT JOIN {name} e ON e.salla_id = i.salla_id \
           ON CONFLICT (salla_id) DO UPDATE SET {sets}, synced_at = now(), updated_at = now() \
           WHERE (EXCLUDED.source_updated_at IS NULL OR t.source_updated_at IS NULL \
                  OR EXCLUDED.source_updated_at >= t.source_updated_at) \
             AND ROW({old}) IS DISTINCT FROM ROW({new}) \
           RETURNING t.salla_id, (t.xmax = 0) AS inserted) \
         SELECT COALESCE(array_agg(salla_id) FILTER (WHERE inserted), '{{}}'), \
                COALESCE(array_agg(salla_id) FILTER (WHERE NOT inserted), '{{}}'), \
                (SELECT n FROM stale) \
         FROM written",
        record = record.join(", "),
        names = names.join(", "),
        values = values.join(", "),
    )
}

/// Sets the columns a patch carries (the keys of `$2`, a JSON row as for the upserts: `->>` reads numbers
/// and booleans as their text, and `null` clears) on product `$1`, merges `$3` into `raw`, and answers the
/// row id when something changed.
fn patch_sql(table: &Table) -> String {
    let targets: Vec<(&str, String)> = table
        .columns
        .iter()
        .map(|c| {
            let n = c.name;
            let value = match c.ty {
                "text" => format!("p.v->>'{n}'"),
                "jsonb" => format!("NULLIF(p.v->'{n}', 'null'::jsonb)"),
                ty => format!("(p.v->>'{n}')::{ty}"),
            };
            let value = if c.required {
                format!("COALESCE({value}, t.{n})")
            } else {
                value
            };
            (
                n,
                format!("CASE WHEN p.v ? '{n}' THEN {value} ELSE t.{n} END"),
            )
        })
        .chain([("raw", "t.raw || p.overlay".to_owned())])
        .collect();
    let sets = targets
        .iter()
        .map(|(n, e)| format!("{n} = {e}"))
        .collect::<Vec<_>>()
        .join(", ");
    let old = targets
        .iter()
        .map(|(n, _)| format!("t.{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let new = targets
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH p AS (SELECT $2::jsonb AS v, $3::jsonb AS overlay) \
         UPDATE {name} AS t SET {sets}, synced_at = now(), updated_at = now() FROM p \
         WHERE t.salla_id = $1 AND ROW({old}) IS DISTINCT FROM ROW({new}) RETURNING t.id",
        name = table.name
    )
}

static CUSTOMERS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&CUSTOMERS));
static PRODUCTS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&PRODUCTS));
static ORDERS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&ORDERS));
static CARTS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&CARTS));
static PRODUCT_PATCH_SQL: LazyLock<String> = LazyLock::new(|| patch_sql(&PRODUCTS));

/// Replaces the items of orders that carried full lines (`$2`: `{salla_id, source_updated_at}` of each, `$1`:
/// their items), when the order row took that payload: a dated payload that was not stale, an undated one
/// onto an undated row, or an undated one onto an order that has no items yet (rule 2: fill only). Items
/// that are no longer in the order are deleted. Answers the orders whose items changed.
const ITEMS_SQL: &str = "\
WITH item AS ( \
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(order_salla_id bigint, salla_id bigint, \
    product_salla_id bigint, name text, sku text, quantity integer, price numeric(14,2), \
    discount numeric(14,2), tax numeric(14,2), total numeric(14,2), currency text, raw jsonb)), \
full_order AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS f(salla_id bigint, source_updated_at timestamptz)), \
target AS ( \
  SELECT o.salla_id FROM full_order f JOIN orders o ON o.salla_id = f.salla_id \
  WHERE CASE WHEN f.source_updated_at IS NOT NULL THEN o.source_updated_at = f.source_updated_at \
             WHEN o.source_updated_at IS NULL THEN true \
             ELSE NOT EXISTS (SELECT 1 FROM order_items x WHERE x.order_salla_id = o.salla_id) END), \
removed AS ( \
  DELETE FROM order_items x USING target g \
  WHERE x.order_salla_id = g.salla_id AND NOT EXISTS (SELECT 1 FROM item i WHERE i.salla_id = x.salla_id) \
  RETURNING x.order_salla_id), \
written AS ( \
  INSERT INTO order_items AS t (salla_id, order_salla_id, product_salla_id, name, sku, quantity, price, \
    discount, tax, total, currency, raw) \
  SELECT i.salla_id, i.order_salla_id, i.product_salla_id, COALESCE(i.name, ''), i.sku, \
    COALESCE(i.quantity, 0), i.price, i.discount, i.tax, i.total, i.currency, i.raw \
  FROM item i JOIN target g ON g.salla_id = i.order_salla_id \
  ON CONFLICT (salla_id) DO UPDATE SET order_salla_id = EXCLUDED.order_salla_id, \
    product_salla_id = EXCLUDED.product_salla_id, name = EXCLUDED.name, sku = EXCLUDED.sku, \
    quantity = EXCLUDED.quantity, price = EXCLUDED.price, discount = EXCLUDED.discount, tax = EXCLUDED.tax, \
    total = EXCLUDED.total, currency = EXCLUDED.currency, raw = EXCLUDED.raw, synced_at = now(), \
    updated_at = now() \
  WHERE ROW(t.order_salla_id, t.product_salla_id, t.name, t.sku, t.quantity, t.price, t.discount, t.tax, \
            t.total, t.currency, t.raw) \
        IS DISTINCT FROM ROW(EXCLUDED.order_salla_id, EXCLUDED.product_salla_id, EXCLUDED.name, EXCLUDED.sku, \
            EXCLUDED.quantity, EXCLUDED.price, EXCLUDED.discount, EXCLUDED.tax, EXCLUDED.total, \
            EXCLUDED.currency, EXCLUDED.raw) \
  RETURNING t.order_salla_id) \
SELECT COALESCE(array_agg(DISTINCT changed.order_salla_id), '{}') \
FROM (SELECT order_salla_id FROM removed UNION ALL SELECT order_salla_id FROM written) AS changed";

// ---------------------------------------------------------------------------------------------------------
// JSON rows
// ---------------------------------------------------------------------------------------------------------

/// One row for `jsonb_to_recordset`: values are JSON, money as exact decimal text, times as RFC 3339.
struct Row(Map<String, Value>);

impl Row {
    fn new(salla_id: i64, raw: &Value, updated_at: Option<OffsetDateTime>) -> Row {
        let mut row = Row(Map::new());
        row.set("salla_id", salla_id);
        row.set("raw", raw.clone());
        row.set("source_updated_at", time_json(updated_at));
        row
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }

    fn money(&mut self, key: &str, value: Option<Money>) {
        self.set(key, value.map(|money| money.to_string()));
    }

    fn amount(&mut self, key: &str, value: &Option<Amount>) {
        self.money(key, value.as_ref().map(|amount| amount.amount));
    }

    /// An `integer` column; a count beyond its range is not a real count and is stored as unknown.
    fn int32(&mut self, key: &str, value: Option<i64>) {
        self.set(key, value.and_then(|v| i32::try_from(v).ok()));
    }

    fn date(&mut self, key: &str, value: Option<Date>) {
        self.set(key, value.map(|date| date.to_string()));
    }

    fn time(&mut self, key: &str, value: Option<OffsetDateTime>) {
        self.set(key, time_json(value));
    }

    fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

fn time_json(value: Option<OffsetDateTime>) -> Value {
    value
        .and_then(|time| time.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn customer_row(c: &Customer) -> Map<String, Value> {
    let mut row = Row::new(c.id, &c.raw, c.updated_at);
    row.set("first_name", c.first_name.clone());
    row.set("last_name", c.last_name.clone());
    row.set("email", c.email.clone());
    row.set("mobile", c.mobile.clone());
    row.set("mobile_code", c.mobile_code.clone());
    row.set("gender", c.gender.clone());
    row.date("birthday", c.birthday);
    row.set("city", c.city.clone());
    row.set("country", c.country.clone());
    row.set("country_code", c.country_code.clone());
    row.set("currency", c.currency.clone());
    row.set("location", c.location.clone());
    row.set("avatar", c.avatar.clone());
    row.set("groups", c.groups.clone());
    row.set("is_notifications_enabled", c.is_notifications_enabled);
    row.into_map()
}

fn product_row(p: &Product) -> Map<String, Value> {
    let mut row = Row::new(p.id, &p.raw, p.updated_at);
    row.set("name", p.name.clone());
    row.set("sku", p.sku.clone());
    row.set("mpn", p.mpn.clone());
    row.set("gtin", p.gtin.clone());
    row.set("type", p.product_type.clone());
    row.set("status", p.status.clone());
    row.set("is_available", p.is_available);
    row.amount("price", &p.price);
    row.amount("sale_price", &p.sale_price);
    row.date("sale_end", p.sale_end);
    row.amount("regular_price", &p.regular_price);
    row.amount("cost_price", &p.cost_price);
    row.set("currency", p.currency.clone());
    row.int32("quantity", p.stock());
    row.int32("sold_quantity", p.sold_quantity);
    row.set("url", p.url.clone());
    row.set("main_image", p.main_image.clone());
    row.set("categories", p.categories.clone());
    row.set("tags", p.tags.clone());
    row.set("brand", p.brand.clone());
    row.into_map()
}

fn order_row(o: &Order) -> Map<String, Value> {
    let mut row = Row::new(o.id, &o.raw, o.updated_at);
    let status = o.status.as_ref();
    let customer = o.customer.as_ref();
    row.set("reference_id", o.reference_id.clone());
    row.set("status_id", status.and_then(|s| s.id));
    row.set("status_slug", status.and_then(|s| s.slug.clone()));
    row.set("status_name", status.and_then(|s| s.name.clone()));
    row.set("customer_salla_id", customer.map(|c| c.id));
    row.set("customer_name", customer.and_then(Customer::display_name));
    row.set("customer_mobile", customer.and_then(|c| c.mobile.clone()));
    row.set("customer_email", customer.and_then(|c| c.email.clone()));
    row.amount("total", &o.total);
    row.amount("sub_total", &o.sub_total);
    row.amount("shipping_cost", &o.shipping_cost);
    row.amount("cash_on_delivery", &o.cash_on_delivery);
    row.money("discount", o.discount_total());
    row.amount("tax", &o.tax);
    row.set("currency", o.currency.clone());
    row.set("payment_method", o.payment_method.clone());
    row.int32("items_count", o.items_count());
    row.set("source", o.source.clone());
    row.set("source_device", o.source_device.clone());
    row.set("shipping_country", o.shipping_country.clone());
    row.set("shipping_city", o.shipping_city.clone());
    row.time("ordered_at", o.date);
    row.into_map()
}

fn item_row(order_id: i64, item_id: i64, item: &OrderItem) -> Map<String, Value> {
    let mut row = Row(Map::new());
    row.set("order_salla_id", order_id);
    row.set("salla_id", item_id);
    row.set("product_salla_id", item.product_id);
    row.set("name", item.name.clone());
    row.set("sku", item.sku.clone());
    row.int32("quantity", item.quantity);
    row.amount("price", &item.price);
    row.amount("discount", &item.discount);
    row.amount("tax", &item.tax);
    row.amount("total", &item.total);
    row.set("currency", item.currency.clone());
    row.set("raw", item.raw.clone());
    row.into_map()
}

fn cart_row(c: &Cart) -> Map<String, Value> {
    let mut row = Row::new(c.id, &c.raw, c.updated_at);
    let customer = c.customer.as_ref();
    row.set("customer_salla_id", customer.map(|c| c.id));
    row.set("customer_name", customer.and_then(Customer::display_name));
    row.set("customer_mobile", customer.and_then(|c| c.mobile.clone()));
    row.set("customer_email", customer.and_then(|c| c.email.clone()));
    row.amount("total", &c.total);
    row.amount("subtotal", &c.subtotal);
    row.amount("total_discount", &c.total_discount);
    row.set("currency", c.currency.clone());
    row.int32("items_count", c.items_count());
    row.set("checkout_url", c.checkout_url.clone());
    row.set("coupon_code", c.coupon_code.clone());
    row.set("status", c.status.clone());
    row.time("source_created_at", c.created_at);
    row.int32("age_in_minutes", c.age_in_minutes);
    row.into_map()
}

/// One payload per id (the newest by `updated_at`, the later on a tie: one statement cannot update a row
/// twice), in id order (concurrent batches then lock rows in the same order).
fn newest_per_id<T>(
    items: &[T],
    id: impl Fn(&T) -> i64,
    updated_at: impl Fn(&T) -> Option<OffsetDateTime>,
) -> Vec<&T> {
    let mut newest: HashMap<i64, &T> = HashMap::with_capacity(items.len());
    for item in items {
        newest
            .entry(id(item))
            .and_modify(|kept| {
                if updated_at(item) >= updated_at(kept) {
                    *kept = item;
                }
            })
            .or_insert(item);
    }
    let mut batch: Vec<&T> = newest.into_values().collect();
    batch.sort_by_key(|item| id(item));
    batch
}

/// What one upsert statement wrote.
struct Written {
    inserted: Vec<i64>,
    updated: Vec<i64>,
    stale: i64,
}

impl Written {
    fn counts(&self, payloads: usize) -> UpsertCounts {
        let inserted = self.inserted.len() as u64;
        let updated = self.updated.len() as u64;
        let stale = self.stale.max(0).unsigned_abs();
        UpsertCounts {
            inserted,
            updated,
            stale,
            unchanged: (payloads as u64).saturating_sub(inserted + updated + stale),
        }
    }
}

async fn write_rows(
    conn: &mut PgConnection,
    sql: &'static str,
    rows: Vec<Value>,
) -> Result<Written, sqlx::Error> {
    let (inserted, updated, stale): (Vec<i64>, Vec<i64>, i64) = sqlx::query_as(sql)
        .bind(Value::Array(rows))
        .fetch_one(conn)
        .await?;
    Ok(Written {
        inserted,
        updated,
        stale,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Batch upserts
// ---------------------------------------------------------------------------------------------------------

/// Upserts customers (an API page, or one webhook's) under the rule of the module docs.
pub async fn upsert_customers(
    conn: &mut PgConnection,
    customers: &[Customer],
) -> Result<UpsertCounts, StoreDataError> {
    upsert_newest(
        conn,
        customers,
        CUSTOMERS_SQL.as_str(),
        |c| (c.id, c.updated_at),
        customer_row,
    )
    .await
}

/// Writes the newest payload of each id of `items` (rows built by `row`) with the upsert `sql`.
async fn upsert_newest<T>(
    conn: &mut PgConnection,
    items: &[T],
    sql: &'static str,
    key: impl Fn(&T) -> (i64, Option<OffsetDateTime>),
    row: impl Fn(&T) -> serde_json::Map<String, Value>,
) -> Result<UpsertCounts, StoreDataError> {
    if items.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let rows = newest_per_id(items, |item| key(item).0, |item| key(item).1)
        .into_iter()
        .map(|item| Value::Object(row(item)))
        .collect();
    Ok(write_rows(conn, sql, rows).await?.counts(items.len()))
}

/// Upserts products under the rule of the module docs. `deleted_at` is left alone: a late payload never
/// revives a deleted product.
pub async fn upsert_products(
    conn: &mut PgConnection,
    products: &[Product],
) -> Result<UpsertCounts, StoreDataError> {
    upsert_newest(
        conn,
        products,
        PRODUCTS_SQL.as_str(),
        |p| (p.id, p.updated_at),
        product_row,
    )
    .await
}

/// Upserts orders under the rule of the module docs, with their items: an order that carries full lines
/// (webhooks, order details) replaces its stored items when the order row took the payload; List Orders'
/// item summaries (no ids, no amounts) leave the stored items alone. An order counts as updated when its
/// items changed too. `deleted_at` is left alone.
pub async fn upsert_orders(
    conn: &mut PgConnection,
    orders: &[Order],
) -> Result<UpsertCounts, StoreDataError> {
    upsert_orders_marking(conn, orders, &[]).await
}

/// [`upsert_orders`], marking the orders of `needing_details` as needing their details fetched (a whole order
/// is never marked: it carries them). Marks are written with the row, in the same statement.
pub async fn upsert_orders_marking(
    conn: &mut PgConnection,
    orders: &[Order],
    needing_details: &[i64],
) -> Result<UpsertCounts, StoreDataError> {
    if orders.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let batch = newest_per_id(orders, |o| o.id, |o| o.updated_at);
    let rows = batch
        .iter()
        .map(|order| {
            let mut row = order_row(order);
            let needed = if order.full_items().is_some() {
                Some(false)
            } else {
                needing_details.contains(&order.id).then_some(true)
            };
            row.insert("details_needed".into(), needed.into());
            Value::Object(row)
        })
        .collect();
    let mut full_orders = Vec::new();
    let mut items: HashMap<i64, Value> = HashMap::new();
    for order in &batch {
        let Some(lines) = order.full_items() else {
            continue;
        };
        let mut carried = Row(Map::new());
        carried.set("salla_id", order.id);
        carried.time("source_updated_at", order.updated_at);
        full_orders.push(Value::Object(carried.into_map()));
        for line in lines {
            // An item id listed twice would be written twice in one statement; the later line wins.
            if let Some(id) = line.id {
                items.insert(id, Value::Object(item_row(order.id, id, line)));
            }
        }
    }

    let mut tx = conn.begin().await?;
    let mut written = write_rows(&mut tx, ORDERS_SQL.as_str(), rows).await?;
    if !full_orders.is_empty() {
        let changed: Vec<i64> = sqlx::query_scalar(ITEMS_SQL)
            .bind(Value::Array(items.into_values().collect()))
            .bind(Value::Array(full_orders))
            .fetch_one(&mut *tx)
            .await?;
        for id in changed {
            if !written.inserted.contains(&id) && !written.updated.contains(&id) {
                written.updated.push(id);
            }
        }
    }
    tx.commit().await?;
    Ok(written.counts(orders.len()))
}

/// Upserts abandoned carts (current and legacy shapes) under the rule of the module docs. A payload without
/// `status` keeps the stored one (a purchased cart stays purchased).
pub async fn upsert_carts(
    conn: &mut PgConnection,
    carts: &[Cart],
) -> Result<UpsertCounts, StoreDataError> {
    upsert_newest(
        conn,
        carts,
        CARTS_SQL.as_str(),
        |c| (c.id, c.updated_at),
        cart_row,
    )
    .await
}

// ---------------------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------------------

fn resource_of(kind: &EventKind) -> Option<Resource> {
    match kind {
        EventKind::OrderUpsert { .. }
        | EventKind::OrderStatusUpdated { .. }
        | EventKind::OrderDeleted { .. } => Some(Resource::Orders),
        EventKind::ProductUpsert(_)
        | EventKind::ProductPatch(_)
        | EventKind::ProductDeleted { .. } => Some(Resource::Products),
        EventKind::CustomerUpsert(_) => Some(Resource::Customers),
        EventKind::CartUpsert(_)
        | EventKind::CartStatusChanged { .. }
        | EventKind::CartPurchased { .. } => Some(Resource::AbandonedCarts),
        EventKind::StoreAuthorize(_)
        | EventKind::AppInstalled(_)
        | EventKind::AppUpdated(_)
        | EventKind::AppUninstalled(_)
        | EventKind::Trial { .. }
        | EventKind::Subscription { .. }
        | EventKind::Other => None,
    }
}

/// Applies a store event to the tenant database, atomically, and records it in `sync_state.last_event_at`
/// of its resource (creating that row if needed), whatever the outcome: the time says webhooks are flowing.
///
/// Full objects (orders, products, customers, carts) follow the rule of the module docs. The events without a
/// date of their own:
///
/// - `order.status.updated`: the order is an undated payload; the status (`data.status` as the name, the
///   slug from the order) is then set unless the row holds a dated payload newer than the status change
///   (`data.created_at`).
/// - Granular product events set exactly the columns whose keys they carry, always (they are the newest
///   word on their field), and merge their keys into `raw` except the price-like ones, whose shapes differ
///   from the full product's (`price` is a bare number there). A patch for a product we do not have is
///   [`Applied::Missing`].
/// - `order.deleted` / `product.deleted` set `deleted_at` (rows stay for history; later payloads never
///   revive them). A delete for a row we do not have stores a tombstone, so the create that a retry may
///   deliver after it stays deleted.
/// - `abandoned.cart.status.changed` sets `status`; `abandoned.cart.purchased` sets `status` and the totals
///   it carries. Both create the cart when it is unknown (carts have no required columns).
///
/// App events and [`EventKind::Other`] are [`Applied::NotApplicable`].
pub async fn apply_event(
    conn: &mut PgConnection,
    kind: &EventKind,
) -> Result<Applied, StoreDataError> {
    let Some(resource) = resource_of(kind) else {
        return Ok(Applied::NotApplicable);
    };
    let mut tx = conn.begin().await?;
    let applied = match kind {
        EventKind::OrderUpsert { order, .. } => upsert_orders(&mut tx, std::slice::from_ref(order))
            .await?
            .applied(),
        EventKind::OrderStatusUpdated {
            order,
            status_name,
            changed_at,
        } => order_status(&mut tx, order, status_name, *changed_at).await?,
        EventKind::OrderDeleted { id } => soft_delete_order(&mut tx, *id).await?,
        EventKind::ProductUpsert(product) => {
            upsert_products(&mut tx, std::slice::from_ref(product))
                .await?
                .applied()
        }
        EventKind::ProductPatch(patch) => patch_product(&mut tx, patch).await?,
        EventKind::ProductDeleted { id } => soft_delete_product(&mut tx, *id).await?,
        EventKind::CustomerUpsert(customer) => {
            upsert_customers(&mut tx, std::slice::from_ref(customer))
                .await?
                .applied()
        }
        EventKind::CartUpsert(cart) => upsert_carts(&mut tx, std::slice::from_ref(cart))
            .await?
            .applied(),
        EventKind::CartStatusChanged { id, status } => cart_status(&mut tx, *id, status).await?,
        EventKind::CartPurchased {
            id,
            status,
            currency,
            total,
            subtotal,
            total_discount,
        } => {
            cart_purchased(
                &mut tx,
                *id,
                status,
                currency.as_deref(),
                [*total, *subtotal, *total_discount],
            )
            .await?
        }
        _ => Applied::NotApplicable,
    };
    sqlx::query(
        "INSERT INTO sync_state (resource, last_event_at) VALUES ($1, now()) \
         ON CONFLICT (resource) DO UPDATE SET last_event_at = now(), updated_at = now()",
    )
    .bind(resource.name())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(applied)
}

fn changed_if(row: Option<i64>) -> Applied {
    if row.is_some() {
        Applied::Changed
    } else {
        Applied::Unchanged
    }
}

async fn order_status(
    conn: &mut PgConnection,
    order: &Order,
    status_name: &str,
    changed_at: Option<OffsetDateTime>,
) -> Result<Applied, StoreDataError> {
    let upserted = upsert_orders(conn, std::slice::from_ref(order)).await?;
    let status = order.status.as_ref();
    let status_json = order.raw.get("status").filter(|s| s.is_object()).cloned();
    let updated: Option<i64> = sqlx::query_scalar(
        "UPDATE orders AS t SET status_name = $2::text, status_slug = COALESCE($3::text, t.status_slug), \
           status_id = COALESCE($4::bigint, t.status_id), \
           raw = CASE WHEN $5::jsonb IS NULL THEN t.raw ELSE jsonb_set(t.raw, '{status}', $5::jsonb) END, \
           synced_at = now(), updated_at = now() \
         WHERE t.salla_id = $1 \
           AND ($6::timestamptz IS NULL OR t.source_updated_at IS NULL OR $6::timestamptz >= t.source_updated_at) \
           AND ROW(t.status_name, t.status_slug, t.status_id, t.raw) IS DISTINCT FROM \
               ROW($2::text, COALESCE($3::text, t.status_slug), COALESCE($4::bigint, t.status_id), \
                   CASE WHEN $5::jsonb IS NULL THEN t.raw ELSE jsonb_set(t.raw, '{status}', $5::jsonb) END) \
         RETURNING t.id",
    )
    .bind(order.id)
    .bind(status_name)
    .bind(status.and_then(|s| s.slug.as_deref()))
    .bind(status.and_then(|s| s.id))
    .bind(status_json)
    .bind(changed_at)
    .fetch_optional(&mut *conn)
    .await?;
    if updated.is_some() || upserted.written() > 0 {
        return Ok(Applied::Changed);
    }
    let stored: Option<Option<OffsetDateTime>> =
        sqlx::query_scalar("SELECT source_updated_at FROM orders WHERE salla_id = $1")
            .bind(order.id)
            .fetch_optional(&mut *conn)
            .await?;
    let stale = matches!((changed_at, stored), (Some(at), Some(Some(stored))) if at < stored);
    Ok(if stale || upserted.stale > 0 {
        Applied::Stale
    } else {
        Applied::Unchanged
    })
}

/// Keys of granular product events that are not merged into `raw`: their shapes differ from the full
/// product's (`price: 150` instead of `{amount, currency}`, `main_image` as an object, …).
const PATCH_KEYS_NOT_IN_RAW: &[&str] = &[
    "id",
    "price",
    "sale_price",
    "regular_price",
    "taxed_price",
    "pre_tax_price",
    "tax",
    "cost",
    "cost_price",
    "starting_price",
    "with_tax",
    "currency",
    "main_image",
];

async fn patch_product(
    conn: &mut PgConnection,
    patch: &ProductPatch,
) -> Result<Applied, StoreDataError> {
    let product = &patch.product;
    let mut full = product_row(product);
    let values: Map<String, Value> = PRODUCTS
        .columns
        .iter()
        .filter(|column| column.keys.iter().any(|key| patch.carries(key)))
        .filter_map(|column| {
            full.remove(column.name)
                .map(|value| (column.name.to_owned(), value))
        })
        .collect();
    let overlay: Map<String, Value> = product
        .raw
        .as_object()
        .map(|data| {
            data.iter()
                .filter(|(key, _)| !PATCH_KEYS_NOT_IN_RAW.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let updated: Option<i64> = sqlx::query_scalar(PRODUCT_PATCH_SQL.as_str())
        .bind(product.id)
        .bind(Value::Object(values))
        .bind(Value::Object(overlay))
        .fetch_optional(&mut *conn)
        .await?;
    if updated.is_some() {
        return Ok(Applied::Changed);
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE salla_id = $1)")
            .bind(product.id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(if exists {
        Applied::Unchanged
    } else {
        Applied::Missing
    })
}

async fn soft_delete_product(conn: &mut PgConnection, id: i64) -> Result<Applied, StoreDataError> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO products AS t (salla_id, name, raw, deleted_at) \
         VALUES ($1, '', jsonb_build_object('id', $1), now()) \
         ON CONFLICT (salla_id) DO UPDATE SET deleted_at = now(), synced_at = now(), updated_at = now() \
         WHERE t.deleted_at IS NULL RETURNING t.id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

async fn soft_delete_order(conn: &mut PgConnection, id: i64) -> Result<Applied, StoreDataError> {
    // A tombstone needs an order date; the create, if it ever arrives, brings the real one.
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO orders AS t (salla_id, ordered_at, raw, deleted_at) \
         VALUES ($1, now(), jsonb_build_object('id', $1), now()) \
         ON CONFLICT (salla_id) DO UPDATE SET deleted_at = now(), synced_at = now(), updated_at = now() \
         WHERE t.deleted_at IS NULL RETURNING t.id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

async fn cart_status(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
) -> Result<Applied, StoreDataError> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO abandoned_carts AS t (salla_id, status, raw) \
         VALUES ($1, $2::text, jsonb_build_object('id', $1, 'status', $2::text)) \
         ON CONFLICT (salla_id) DO UPDATE SET status = EXCLUDED.status, \
           raw = t.raw || jsonb_build_object('status', EXCLUDED.status), synced_at = now(), updated_at = now() \
         WHERE t.status IS DISTINCT FROM EXCLUDED.status RETURNING t.id",
    )
    .bind(id)
    .bind(status)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

async fn cart_purchased(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
    currency: Option<&str>,
    [total, subtotal, total_discount]: [Option<Money>; 3],
) -> Result<Applied, StoreDataError> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO abandoned_carts AS t (salla_id, status, currency, total, subtotal, total_discount, raw) \
         VALUES ($1, $2::text, $3, $4, $5, $6, jsonb_build_object('id', $1, 'status', $2::text)) \
         ON CONFLICT (salla_id) DO UPDATE SET status = EXCLUDED.status, \
           currency = COALESCE(EXCLUDED.currency, t.currency), total = COALESCE(EXCLUDED.total, t.total), \
           subtotal = COALESCE(EXCLUDED.subtotal, t.subtotal), \
           total_discount = COALESCE(EXCLUDED.total_discount, t.total_discount), \
           raw = t.raw || jsonb_build_object('status', EXCLUDED.status), synced_at = now(), updated_at = now() \
         WHERE ROW(t.status, t.currency, t.total, t.subtotal, t.total_discount) IS DISTINCT FROM \
               ROW(EXCLUDED.status, COALESCE(EXCLUDED.currency, t.currency), COALESCE(EXCLUDED.total, t.total), \
                   COALESCE(EXCLUDED.subtotal, t.subtotal), COALESCE(EXCLUDED.total_discount, t.total_discount)) \
         RETURNING t.id",
    )
    .bind(id)
    .bind(status)
    .bind(currency)
    .bind(total.map(Money::decimal))
    .bind(subtotal.map(Money::decimal))
    .bind(total_discount.map(Money::decimal))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(changed_if(row))
}

// ---------------------------------------------------------------------------------------------------------
// Aggregates
// ---------------------------------------------------------------------------------------------------------

/// Order count, total spent and last order date of each customer in `customer_ids` (every id gets an entry;
/// zero when the customer has no orders), computed from `orders` through `orders_customer_idx`.
///
/// Deleted orders (`deleted_at`) and canceled ones (status slug `canceled`, which custom statuses keep) are
/// not counted: they are not purchases. Every other status counts, including unpaid and refunded
/// (`restored`) ones, as Salla's own customer list does.
pub async fn customer_aggregates(
    conn: &mut PgConnection,
    customer_ids: &[i64],
) -> Result<HashMap<i64, CustomerAggregates>, StoreDataError> {
    let rows: Vec<(i64, i64, Decimal, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT customer_salla_id, count(*), COALESCE(sum(total), 0), max(ordered_at) FROM orders \
         WHERE customer_salla_id = ANY($1) AND deleted_at IS NULL \
           AND status_slug IS DISTINCT FROM 'canceled' \
         GROUP BY customer_salla_id",
    )
    .bind(customer_ids)
    .fetch_all(conn)
    .await?;
    let mut aggregates: HashMap<i64, CustomerAggregates> = customer_ids
        .iter()
        .map(|id| (*id, CustomerAggregates::default()))
        .collect();
    for (id, orders_count, total_spent, last_order_at) in rows {
        aggregates.insert(
            id,
            CustomerAggregates {
                orders_count,
                total_spent,
                last_order_at,
            },
        );
    }
    Ok(aggregates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sql_names_every_column_once() {
        for table in [&CUSTOMERS, &PRODUCTS, &ORDERS, &CARTS] {
            let sql = upsert_sql(table);
            for column in table.columns {
                assert!(
                    sql.contains(&format!(" {} = CASE", column.name)),
                    "{}: {}",
                    table.name,
                    column.name
                );
            }
            assert!(
                !sql.contains("deleted_at"),
                "upserts never touch deleted_at"
            );
        }
        let patch = patch_sql(&PRODUCTS);
        assert!(patch.contains("(p.v->>'price')::numeric(14,2)"));
        assert!(patch.contains("COALESCE(p.v->>'name', t.name)"));
    }

    #[test]
    fn a_batch_keeps_the_newest_payload_per_id_in_id_order() {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).ok();
        let items = [(2, at(5)), (1, None), (2, at(9)), (2, at(7)), (1, None)];
        let kept = newest_per_id(&items, |i| i.0, |i| i.1);
        assert_eq!(kept.len(), 2);
        assert!(std::ptr::eq(kept[0], &items[4]), "the later of equals");
        assert!(std::ptr::eq(kept[1], &items[2]), "the newest");
    }

    #[test]
    fn rows_carry_exact_money_and_international_mobiles() {
        let customer = Customer::from_value(serde_json::json!({
            "id": 7, "mobile": 501806978, "mobile_code": "966", "groups": [1],
            "updated_at": {"date": "2022-01-24 14:26:55.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
        }))
        .unwrap();
        let row = customer_row(&customer);
        assert_eq!(row["mobile"], "+966501806978");
        assert_eq!(row["source_updated_at"], "2022-01-24T14:26:55+03:00");
        let product = Product::from_value(
            serde_json::json!({"id": 8, "price": 175.47, "quantity": "3000000000"}),
        )
        .unwrap();
        let row = product_row(&product);
        assert_eq!(row["price"], "175.47");
        assert_eq!(row["quantity"], Value::Null, "beyond integer");
    }
}
