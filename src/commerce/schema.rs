//! The commerce tables of a tenant database (`migrations/tenant/*_commerce.sql`), each column declared once:
//! its name, SQL type, the payload keys it is read from, and how its value is taken from the Salla model.
//! The upsert and patch statements (`sql.rs`), the JSON rows they read (`write.rs`) and the select lists of
//! the readers (`read.rs`) are all generated from these declarations, so adding a column is this file plus
//! the migration (and the field of whichever reader shows it).

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::salla::model::{Amount, Cart, Customer, Money, Order, OrderItem, Product};

pub(crate) const TEXT: &str = "text";
pub(crate) const BIGINT: &str = "bigint";
pub(crate) const INTEGER: &str = "integer";
pub(crate) const BOOLEAN: &str = "boolean";
pub(crate) const MONEY: &str = "numeric(14,2)";
pub(crate) const DATE: &str = "date";
pub(crate) const TIMESTAMPTZ: &str = "timestamptz";
pub(crate) const JSONB: &str = "jsonb";

/// A column written from payloads (besides `salla_id`, `raw` and `source_updated_at`, which every table has).
pub(crate) struct Column<T> {
    pub name: &'static str,
    /// Its SQL type, for reading JSON rows and patches.
    pub ty: &'static str,
    /// The payload's top-level keys the column is read from: a payload without any of them leaves it alone.
    pub keys: &'static [&'static str],
    /// NOT NULL in the table: a missing value keeps the stored one.
    pub required: bool,
    /// Its value in a JSON row: money as exact decimal text, dates and times as ISO 8601 text.
    pub value: fn(&T) -> Value,
}

pub(crate) const fn col<T>(
    name: &'static str,
    ty: &'static str,
    keys: &'static [&'static str],
    value: fn(&T) -> Value,
) -> Column<T> {
    Column {
        name,
        ty,
        keys,
        required: false,
        value,
    }
}

pub(crate) const fn required<T>(
    name: &'static str,
    ty: &'static str,
    keys: &'static [&'static str],
    value: fn(&T) -> Value,
) -> Column<T> {
    Column {
        name,
        ty,
        keys,
        required: true,
        value,
    }
}

/// A field of the JSON rows that is not a column read from the payload (an input of `inserts` or
/// `carried`).
pub(crate) const fn field<T>(
    name: &'static str,
    ty: &'static str,
    value: fn(&T) -> Value,
) -> Column<T> {
    col(name, ty, &[], value)
}

pub(crate) struct Table<T: 'static> {
    pub name: &'static str,
    pub columns: &'static [Column<T>],
    /// Insert expressions replacing `i.<column>`: NOT NULL columns need a value even when the payload has
    /// none (`e` is the stored row, if any).
    pub inserts: &'static [(&'static str, &'static str)],
    /// Fields of the JSON rows that are not columns (inputs of `inserts` and `carried`).
    pub extra: &'static [Column<T>],
    /// Columns that are not read from the payload: each with its insert expression, whose value (`EXCLUDED`)
    /// an update also takes.
    pub carried: &'static [(&'static str, &'static str)],
}

/// A Salla object stored as one row keyed by its Salla id.
pub(crate) trait Payload {
    fn salla_id(&self) -> i64;
    fn raw(&self) -> &Value;
    /// Salla's own `updated_at`, when the payload carries one (see the module docs of `commerce`).
    fn updated_at(&self) -> Option<OffsetDateTime>;
}

macro_rules! payload {
    ($($ty:ty),*) => {$(
        impl Payload for $ty {
            fn salla_id(&self) -> i64 {
                self.id
            }
            fn raw(&self) -> &Value {
                &self.raw
            }
            fn updated_at(&self) -> Option<OffsetDateTime> {
                self.updated_at
            }
        }
    )*};
}
payload!(Customer, Product, Order, Cart);

impl<T: Payload + 'static> Table<T> {
    /// The JSON row of `item` for `jsonb_to_recordset`.
    pub fn row(&self, item: &T) -> Map<String, Value> {
        let mut row = Map::with_capacity(self.columns.len() + self.extra.len() + 3);
        row.insert("salla_id".into(), item.salla_id().into());
        row.insert("raw".into(), item.raw().clone());
        row.insert("source_updated_at".into(), time(item.updated_at()));
        for column in self.columns.iter().chain(self.extra) {
            row.insert(column.name.into(), (column.value)(item));
        }
        row
    }
}

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

fn text(value: &Option<String>) -> Value {
    value.clone().into()
}

fn money(value: Option<Money>) -> Value {
    value.map(|money| money.to_string()).into()
}

fn amount(value: &Option<Amount>) -> Value {
    money(value.as_ref().map(|amount| amount.amount))
}

/// An `integer` column; a count beyond its range is not a real count and is stored as unknown.
fn int32(value: Option<i64>) -> Value {
    value.and_then(|v| i32::try_from(v).ok()).into()
}

fn date(value: Option<Date>) -> Value {
    value.map(|date| date.to_string()).into()
}

pub(crate) fn time(value: Option<OffsetDateTime>) -> Value {
    value
        .and_then(|time| time.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

// ---------------------------------------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------------------------------------

pub(crate) const CUSTOMERS: Table<Customer> = Table {
    name: "customers",
    columns: &[
        col("first_name", TEXT, &["first_name"], |c| text(&c.first_name)),
        col("last_name", TEXT, &["last_name"], |c| text(&c.last_name)),
        col("email", TEXT, &["email"], |c| text(&c.email)),
        col("mobile", TEXT, &["mobile"], |c| text(&c.mobile)),
        col("mobile_code", TEXT, &["mobile_code"], |c| {
            text(&c.mobile_code)
        }),
        col("gender", TEXT, &["gender"], |c| text(&c.gender)),
        col("birthday", DATE, &["birthday"], |c| date(c.birthday)),
        col("city", TEXT, &["city"], |c| text(&c.city)),
        col("country", TEXT, &["country"], |c| text(&c.country)),
        col("country_code", TEXT, &["country_code"], |c| {
            text(&c.country_code)
        }),
        col("currency", TEXT, &["currency"], |c| text(&c.currency)),
        col("location", TEXT, &["location"], |c| text(&c.location)),
        col("avatar", TEXT, &["avatar"], |c| text(&c.avatar)),
        required("groups", JSONB, &["groups"], |c| c.groups.clone().into()),
        col(
            "is_notifications_enabled",
            BOOLEAN,
            &["is_notifications_enabled"],
            |c| c.is_notifications_enabled.into(),
        ),
    ],
    inserts: &[],
    extra: &[],
    carried: &[],
};

pub(crate) const PRODUCTS: Table<Product> = Table {
    name: "products",
    columns: &[
        required("name", TEXT, &["name"], |p| text(&p.name)),
        col("sku", TEXT, &["sku"], |p| text(&p.sku)),
        col("mpn", TEXT, &["mpn"], |p| text(&p.mpn)),
        col("gtin", TEXT, &["gtin"], |p| text(&p.gtin)),
        col("type", TEXT, &["type"], |p| text(&p.product_type)),
        col("status", TEXT, &["status"], |p| text(&p.status)),
        col("is_available", BOOLEAN, &["is_available"], |p| {
            p.is_available.into()
        }),
        col("price", MONEY, &["price"], |p| amount(&p.price)),
        col("sale_price", MONEY, &["sale_price"], |p| {
            amount(&p.sale_price)
        }),
        col("sale_end", DATE, &["sale_end", "sale_price"], |p| {
            date(p.sale_end)
        }),
        col("regular_price", MONEY, &["regular_price"], |p| {
            amount(&p.regular_price)
        }),
        col("cost_price", MONEY, &["cost_price", "cost"], |p| {
            amount(&p.cost_price)
        }),
        col("currency", TEXT, &["currency", "price"], |p| {
            text(&p.currency)
        }),
        col(
            "quantity",
            INTEGER,
            &["quantity", "unlimited_quantity"],
            |p| int32(p.stock()),
        ),
        col("sold_quantity", INTEGER, &["sold_quantity"], |p| {
            int32(p.sold_quantity)
        }),
        col("url", TEXT, &["url", "urls"], |p| text(&p.url)),
        col("main_image", TEXT, &["main_image"], |p| text(&p.main_image)),
        required("categories", JSONB, &["categories"], |p| {
            p.categories.clone().into()
        }),
        required("tags", JSONB, &["tags"], |p| p.tags.clone().into()),
        col("brand", JSONB, &["brand"], |p| p.brand.clone().into()),
    ],
    inserts: &[("name", "COALESCE(i.name, e.name, '')")],
    extra: &[],
    carried: &[],
};

pub(crate) const ORDERS: Table<Order> = Table {
    name: "orders",
    columns: &[
        col("reference_id", TEXT, &["reference_id"], |o| {
            text(&o.reference_id)
        }),
        col("status_id", BIGINT, &["status"], |o| {
            o.status.as_ref().and_then(|s| s.id).into()
        }),
        col("status_slug", TEXT, &["status"], |o| {
            o.status.as_ref().and_then(|s| s.slug.clone()).into()
        }),
        col("status_name", TEXT, &["status"], |o| {
            o.status.as_ref().and_then(|s| s.name.clone()).into()
        }),
        col("customer_salla_id", BIGINT, &["customer"], |o| {
            o.customer.as_ref().map(|c| c.id).into()
        }),
        col("customer_name", TEXT, &["customer"], |o| {
            o.customer.as_ref().and_then(Customer::display_name).into()
        }),
        col("customer_mobile", TEXT, &["customer"], |o| {
            o.customer.as_ref().and_then(|c| c.mobile.clone()).into()
        }),
        col("customer_email", TEXT, &["customer"], |o| {
            o.customer.as_ref().and_then(|c| c.email.clone()).into()
        }),
        col("total", MONEY, &["amounts", "total"], |o| amount(&o.total)),
        col("sub_total", MONEY, &["amounts"], |o| amount(&o.sub_total)),
        col("shipping_cost", MONEY, &["amounts"], |o| {
            amount(&o.shipping_cost)
        }),
        col("cash_on_delivery", MONEY, &["amounts"], |o| {
            amount(&o.cash_on_delivery)
        }),
        col("discount", MONEY, &["amounts"], |o| {
            money(o.discount_total())
        }),
        col("tax", MONEY, &["amounts"], |o| amount(&o.tax)),
        col("currency", TEXT, &["currency", "amounts", "total"], |o| {
            text(&o.currency)
        }),
        col("payment_method", TEXT, &["payment_method"], |o| {
            text(&o.payment_method)
        }),
        col("items_count", INTEGER, &["items"], |o| {
            int32(o.items_count())
        }),
        col("source", TEXT, &["source"], |o| text(&o.source)),
        col("source_device", TEXT, &["source_device"], |o| {
            text(&o.source_device)
        }),
        col("shipping_country", TEXT, &["shipping"], |o| {
            text(&o.shipping_country)
        }),
        col("shipping_city", TEXT, &["shipping"], |o| {
            text(&o.shipping_city)
        }),
        required("ordered_at", TIMESTAMPTZ, &["date"], |o| time(o.date)),
    ],
    // An order without a date (never seen from Salla) is dated when we first stored it.
    inserts: &[("ordered_at", "COALESCE(i.ordered_at, e.ordered_at, now())")],
    // Whether the order still needs its details fetched (`src/salla/details.rs`): set by the row when it
    // says (a whole order: false; a listed order the import marks: true, see `write::upsert_orders_marking`),
    // else kept.
    extra: &[field("details_needed", BOOLEAN, |o| {
        o.full_items().is_some().then_some(false).into()
    })],
    carried: &[(
        "details_needed",
        "COALESCE(i.details_needed, e.details_needed, false)",
    )],
};

pub(crate) const CARTS: Table<Cart> = Table {
    name: "abandoned_carts",
    columns: &[
        col("customer_salla_id", BIGINT, &["customer"], |c| {
            c.customer.as_ref().map(|c| c.id).into()
        }),
        col("customer_name", TEXT, &["customer"], |c| {
            c.customer.as_ref().and_then(Customer::display_name).into()
        }),
        col("customer_mobile", TEXT, &["customer"], |c| {
            c.customer.as_ref().and_then(|c| c.mobile.clone()).into()
        }),
        col("customer_email", TEXT, &["customer"], |c| {
            c.customer.as_ref().and_then(|c| c.email.clone()).into()
        }),
        col("total", MONEY, &["total"], |c| amount(&c.total)),
        col("subtotal", MONEY, &["subtotal"], |c| amount(&c.subtotal)),
        col("total_discount", MONEY, &["total_discount"], |c| {
            amount(&c.total_discount)
        }),
        col("currency", TEXT, &["currency", "total"], |c| {
            text(&c.currency)
        }),
        col("items_count", INTEGER, &["items"], |c| {
            int32(c.items_count())
        }),
        col("checkout_url", TEXT, &["checkout_url"], |c| {
            text(&c.checkout_url)
        }),
        col("coupon_code", TEXT, &["coupon", "coupon_code"], |c| {
            text(&c.coupon_code)
        }),
        col("status", TEXT, &["status"], |c| text(&c.status)),
        col("source_created_at", TIMESTAMPTZ, &["created_at"], |c| {
            time(c.created_at)
        }),
    ],
    // Without created_at, the creation time is derived once from age_in_minutes (the table's convention),
    // truncated to the minute that age counts in; later payloads keep it instead of drifting it.
    inserts: &[(
        "source_created_at",
        "COALESCE(i.source_created_at, e.source_created_at, \
         date_trunc('minute', now()) - make_interval(mins => i.age_in_minutes))",
    )],
    extra: &[field("age_in_minutes", INTEGER, |c| {
        int32(c.age_in_minutes)
    })],
    carried: &[],
};

/// `order_items`, keyed by the item's `salla_id` and replaced as a whole per order (`sql::ITEMS_SQL`): the
/// columns besides the keys (`salla_id`, `order_salla_id`), which [`item_row`] sets.
pub(crate) const ITEM_COLUMNS: &[Column<OrderItem>] = &[
    col("product_salla_id", BIGINT, &[], |i| i.product_id.into()),
    required("name", TEXT, &[], |i| text(&i.name)),
    col("sku", TEXT, &[], |i| text(&i.sku)),
    required("quantity", INTEGER, &[], |i| int32(i.quantity)),
    col("price", MONEY, &[], |i| amount(&i.price)),
    col("discount", MONEY, &[], |i| amount(&i.discount)),
    col("tax", MONEY, &[], |i| amount(&i.tax)),
    col("total", MONEY, &[], |i| amount(&i.total)),
    col("currency", TEXT, &[], |i| text(&i.currency)),
    required("raw", JSONB, &[], |i| i.raw.clone()),
];

/// Insert expressions of the item columns that are NOT NULL without a default.
pub(crate) const ITEM_INSERTS: &[(&str, &str)] = &[
    ("name", "COALESCE(i.name, '')"),
    ("quantity", "COALESCE(i.quantity, 0)"),
];

/// The JSON row of line `item_id` of order `order_id`.
pub(crate) fn item_row(order_id: i64, item_id: i64, item: &OrderItem) -> Map<String, Value> {
    let mut row = Map::with_capacity(ITEM_COLUMNS.len() + 2);
    row.insert("salla_id".into(), item_id.into());
    row.insert("order_salla_id".into(), order_id.into());
    for column in ITEM_COLUMNS {
        row.insert(column.name.into(), (column.value)(item));
    }
    row
}
