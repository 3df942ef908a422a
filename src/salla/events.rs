//! Salla webhook events: the envelope `{event, merchant, created_at, data}` parsed into [`SallaEvent`], whose
//! [`EventKind`] names the events we act on (shared/reference/salla.md §2.1–§2.4).
//!
//! Parsing is tolerant where Salla drifts and strict where it matters: `merchant` may be a number or a string,
//! `created_at` stays opaque text (it comes in 3+ formats), unknown top-level keys (`pickup_branch`) are
//! ignored, and an event we do not act on is [`EventKind::Other`], never an error. An error means the body is
//! not a Salla event at all, or a known event lacks what identifies its object (see [`EventError`]).
//! [`parse`] is pure and never panics, whatever the input.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use super::api::MerchantId;
use super::model::{
    Amount, Cart, Customer, ModelError, Money, Order, Product, SallaTime, flag_of, id_of, int_of,
    text_of,
};

/// Why a body is not a usable Salla event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(#[from] serde_json::Error),
    #[error("not a Salla webhook envelope: {0}")]
    NotEnvelope(&'static str),
    #[error("`merchant` is not a Salla store id")]
    BadMerchant,
    #[error("bad data for `{event}`: {source}")]
    BadData {
        event: String,
        #[source]
        source: ModelError,
    },
}

/// One parsed webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct SallaEvent {
    name: String,
    merchant: MerchantId,
    created_at: Option<String>,
    kind: EventKind,
}

impl SallaEvent {
    /// The event name as sent (`order.created`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store id (`merchant`).
    pub fn merchant(&self) -> MerchantId {
        self.merchant
    }

    /// The envelope's `created_at` as sent: opaque, since Salla uses several formats and its value is not a
    /// reliable event time ([`SallaTime::parse`] reads the known formats when a time is wanted).
    pub fn created_at(&self) -> Option<&str> {
        self.created_at.as_deref()
    }

    pub fn kind(&self) -> &EventKind {
        &self.kind
    }

    pub fn into_kind(self) -> EventKind {
        self.kind
    }
}

/// The events we act on; everything else is [`EventKind::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `app.store.authorize`: the store's tokens (Easy Mode), on install and after every app update.
    StoreAuthorize(TokenGrant),
    AppInstalled(AppInfo),
    AppUpdated(AppInfo),
    AppUninstalled(AppInfo),
    /// `app.trial.started|expired|canceled`.
    Trial {
        change: TrialChange,
        info: Subscription,
    },
    /// `app.subscription.started|expired|canceled|renewed`.
    Subscription {
        change: SubscriptionChange,
        info: Subscription,
    },
    /// An order event whose `data` is the full order (created, updated, cancelled, refunded, …).
    OrderUpsert {
        order: Order,
        event: OrderEvent,
    },
    /// `order.status.updated`: `data.order` is the order, `data.status` the new status's display name (the
    /// slug is in `order.status.slug`), `data.created_at` when the status changed.
    OrderStatusUpdated {
        order: Order,
        status_name: String,
        changed_at: Option<OffsetDateTime>,
    },
    OrderDeleted {
        id: i64,
    },
    /// `product.created` and the deprecated `product.updated`: the full product.
    ProductUpsert(Product),
    /// The granular product events, carrying only some fields.
    ProductPatch(ProductPatch),
    ProductDeleted {
        id: i64,
    },
    /// `customer.created|updated|login`.
    CustomerUpsert(Customer),
    /// `abandoned.cart` (created or updated) and `coupon.applied` (`data.cart`).
    CartUpsert(Cart),
    /// `abandoned.cart.status.changed`.
    CartStatusChanged {
        id: i64,
        status: String,
    },
    /// `abandoned.cart.purchased`: flat, with bare-number totals.
    CartPurchased {
        id: i64,
        status: String,
        currency: Option<String>,
        total: Option<Money>,
        subtotal: Option<Money>,
        total_discount: Option<Money>,
    },
    /// Anything else (stored by the caller, not acted on).
    Other,
}

/// The tokens of `app.store.authorize`. `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub refresh_token: String,
    /// When the access token expires, as unix seconds: this webhook's `expires` is absolute (the token
    /// endpoint's is a duration).
    pub expires_at: i64,
    /// Space-separated scopes.
    pub scope: Option<String>,
    pub token_type: Option<String>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// The app as `app.installed|updated|uninstalled` describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppInfo {
    /// Salla's app id (`data.id`).
    pub app_id: Option<i64>,
    pub app_name: Option<String>,
    pub app_type: Option<String>,
    /// development, demo or live.
    pub store_type: Option<String>,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub installation_date: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub update_date: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub uninstallation_date: Option<OffsetDateTime>,
    pub refunded: Option<bool>,
    pub raw: Value,
}

/// An app plan as the trial and subscription events describe it (prices are strings such as `"20.00"`, and
/// `subscription_balance` may be the string `"null"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub app_id: Option<i64>,
    /// Absent from trial events.
    pub subscription_id: Option<i64>,
    pub app_name: Option<String>,
    pub plan_name: Option<String>,
    /// recurring, one_time, …
    pub plan_type: Option<String>,
    pub plan_period: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub start_date: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_date: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub renew_date: Option<OffsetDateTime>,
    pub price: Option<Money>,
    pub price_before_discount: Option<Money>,
    pub initialization_cost: Option<Money>,
    /// The tax rate (`"0.15"`).
    pub tax: Option<Money>,
    pub tax_value: Option<Money>,
    pub total: Option<Money>,
    pub subscription_balance: Option<Money>,
    pub store_type: Option<String>,
    pub raw: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialChange {
    Started,
    Expired,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionChange {
    Started,
    Expired,
    Canceled,
    Renewed,
}

/// Which order event carried a full order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEvent {
    Created,
    Updated,
    Cancelled,
    Refunded,
    PaymentUpdated,
    ProductsUpdated,
    TotalPriceUpdated,
    CouponUpdated,
    ShippingAddressUpdated,
    CustomerUpdated,
}

/// Which granular product event a [`ProductPatch`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductChange {
    Price,
    Status,
    Image,
    Category,
    Brand,
    Tags,
    QuantityLow,
    Channels,
}

/// A granular product event (`product.price.updated`, …): `product` is read from `data` like a full
/// product, but only the fields the event carries mean anything: [`ProductPatch::carries`] tells which
/// (`product.price.updated` sends `price` as a bare number, `cost` for the cost price and
/// `sale_price.expired_at` for the sale end; all read into the usual fields).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPatch {
    pub change: ProductChange,
    pub product: Product,
}

impl ProductPatch {
    /// Whether the event's `data` has the key `key` (even as `null`, which clears the field).
    pub fn carries(&self, key: &str) -> bool {
        self.product.raw.get(key).is_some()
    }
}

/// Parses a webhook body. Errors only when the body is not a Salla event at all, or when an event we act on
/// lacks the object id it is about; unknown events are [`EventKind::Other`].
pub fn parse(body: &[u8]) -> Result<SallaEvent, EventError> {
    let value: Value = serde_json::from_slice(body)?;
    let Value::Object(mut envelope) = value else {
        return Err(EventError::NotEnvelope("the body is not a JSON object"));
    };
    let name = match envelope.get("event") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => return Err(EventError::NotEnvelope("no `event` name")),
    };
    let merchant = envelope
        .get("merchant")
        .ok_or(EventError::NotEnvelope("no `merchant`"))
        .and_then(|merchant| merchant_of(merchant).ok_or(EventError::BadMerchant))?;
    let created_at = envelope.get("created_at").and_then(text_of);
    let data = envelope.remove("data").unwrap_or(Value::Null);
    let kind =
        kind_of(&name, data, created_at.as_deref()).map_err(|source| EventError::BadData {
            event: name.clone(),
            source,
        })?;
    Ok(SallaEvent {
        name,
        merchant,
        created_at,
        kind,
    })
}

/// A store id: a positive integer that fits the database's `bigint`, as a number or a digit string.
fn merchant_of(value: &Value) -> Option<MerchantId> {
    let id = id_of(value)?;
    (id > 0).then(|| MerchantId::new(id))
}

fn kind_of(name: &str, data: Value, created_at: Option<&str>) -> Result<EventKind, ModelError> {
    Ok(match name {
        "app.store.authorize" => EventKind::StoreAuthorize(token_grant(&data, created_at)?),
        "app.installed" => EventKind::AppInstalled(AppInfo::from_value(data)?),
        "app.updated" => EventKind::AppUpdated(AppInfo::from_value(data)?),
        "app.uninstalled" => EventKind::AppUninstalled(AppInfo::from_value(data)?),
        "app.trial.started" => trial(TrialChange::Started, data)?,
        "app.trial.expired" => trial(TrialChange::Expired, data)?,
        "app.trial.canceled" => trial(TrialChange::Canceled, data)?,
        "app.subscription.started" => subscription(SubscriptionChange::Started, data)?,
        "app.subscription.expired" => subscription(SubscriptionChange::Expired, data)?,
        "app.subscription.canceled" => subscription(SubscriptionChange::Canceled, data)?,
        "app.subscription.renewed" => subscription(SubscriptionChange::Renewed, data)?,

        "order.created" => order(OrderEvent::Created, data)?,
        "order.updated" => order(OrderEvent::Updated, data)?,
        "order.cancelled" => order(OrderEvent::Cancelled, data)?,
        "order.refunded" => order(OrderEvent::Refunded, data)?,
        "order.payment.updated" => order(OrderEvent::PaymentUpdated, data)?,
        "order.products.updated" => order(OrderEvent::ProductsUpdated, data)?,
        "order.total.price.updated" => order(OrderEvent::TotalPriceUpdated, data)?,
        "order.coupon.updated" => order(OrderEvent::CouponUpdated, data)?,
        "order.shipping.address.updated" => order(OrderEvent::ShippingAddressUpdated, data)?,
        "order.customer.updated" => order(OrderEvent::CustomerUpdated, data)?,
        "order.status.updated" => order_status(data)?,
        "order.deleted" => EventKind::OrderDeleted {
            id: object_id(&data)?,
        },

        "product.created" | "product.updated" => {
            EventKind::ProductUpsert(Product::from_value(data)?)
        }
        "product.price.updated" => product_patch(ProductChange::Price, data)?,
        "product.status.updated" => product_patch(ProductChange::Status, data)?,
        "product.image.updated" => product_patch(ProductChange::Image, data)?,
        "product.category.updated" => product_patch(ProductChange::Category, data)?,
        "product.brand.updated" => product_patch(ProductChange::Brand, data)?,
        "product.tags.updated" => product_patch(ProductChange::Tags, data)?,
        "product.quantity.low" => product_patch(ProductChange::QuantityLow, data)?,
        "product.channels.changed" => product_patch(ProductChange::Channels, data)?,
        "product.deleted" => EventKind::ProductDeleted {
            id: object_id(&data)?,
        },

        "customer.created" | "customer.updated" | "customer.login" => {
            EventKind::CustomerUpsert(Customer::from_value(data)?)
        }

        "abandoned.cart" => EventKind::CartUpsert(Cart::from_value(data)?),
        "coupon.applied" => EventKind::CartUpsert(Cart::from_value(wrapped(data, "cart"))?),
        "abandoned.cart.status.changed" => {
            let fields = data.as_object().ok_or(ModelError::NotAnObject)?;
            EventKind::CartStatusChanged {
                id: object_id(&data)?,
                status: fields
                    .get("status")
                    .and_then(text_of)
                    .ok_or(ModelError::Field("status"))?,
            }
        }
        "abandoned.cart.purchased" => cart_purchased(&data)?,

        _ => EventKind::Other,
    })
}

/// `data.<key>` when `data` wraps the object there, else `data` itself (tolerating an unwrapped payload).
fn wrapped(mut data: Value, key: &str) -> Value {
    match data.as_object_mut().and_then(|fields| fields.remove(key)) {
        Some(inner) if inner.is_object() => inner,
        _ => data,
    }
}

fn object_id(data: &Value) -> Result<i64, ModelError> {
    let fields = data.as_object().ok_or(ModelError::NotAnObject)?;
    fields
        .get("id")
        .and_then(id_of)
        .ok_or(ModelError::Field("id"))
}

fn order(event: OrderEvent, data: Value) -> Result<EventKind, ModelError> {
    Ok(EventKind::OrderUpsert {
        order: Order::from_value(data)?,
        event,
    })
}

fn order_status(mut data: Value) -> Result<EventKind, ModelError> {
    let fields = data.as_object_mut().ok_or(ModelError::NotAnObject)?;
    let status_text = fields.get("status").and_then(text_of);
    let changed_at = fields.get("created_at").and_then(SallaTime::from_json);
    let order = match fields.remove("order") {
        Some(order) => Order::from_value(order)?,
        // Not wrapped: then `data` is the order itself.
        None => Order::from_value(data)?,
    };
    let status_name = status_text
        .or_else(|| order.status.as_ref().and_then(|status| status.name.clone()))
        .ok_or(ModelError::Field("status"))?;
    Ok(EventKind::OrderStatusUpdated {
        order,
        status_name,
        changed_at,
    })
}

fn product_patch(change: ProductChange, data: Value) -> Result<EventKind, ModelError> {
    Ok(EventKind::ProductPatch(ProductPatch {
        change,
        product: Product::from_value(data)?,
    }))
}

fn cart_purchased(data: &Value) -> Result<EventKind, ModelError> {
    let fields = data.as_object().ok_or(ModelError::NotAnObject)?;
    let amount = |key: &str| fields.get(key).and_then(Amount::from_json);
    let total = amount("total");
    Ok(EventKind::CartPurchased {
        id: object_id(data)?,
        status: fields
            .get("status")
            .and_then(text_of)
            .unwrap_or_else(|| "purchased".to_owned()),
        currency: fields
            .get("currency")
            .and_then(text_of)
            .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
        total: total.map(|total| total.amount),
        subtotal: amount("subtotal").map(|subtotal| subtotal.amount),
        total_discount: amount("total_discount").map(|discount| discount.amount),
    })
}

/// `expires` (or `expires_in`) under the league/oauth2-client rule: a value under ten years of seconds is a
/// duration, counted from the envelope's `created_at`; a larger one is already a unix time. The documented
/// webhook sends an absolute time; the rule only guards against the duration that community code reports.
const DURATION_LIMIT_SECS: i64 = 10 * 365 * 24 * 3600;

fn token_grant(data: &Value, created_at: Option<&str>) -> Result<TokenGrant, ModelError> {
    let fields = data.as_object().ok_or(ModelError::NotAnObject)?;
    let token = |key: &'static str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
            .ok_or(ModelError::Field(key))
    };
    let expires = fields
        .get("expires")
        .and_then(int_of)
        .or_else(|| fields.get("expires_in").and_then(int_of))
        .ok_or(ModelError::Field("expires"))?;
    let expires_at = if expires >= DURATION_LIMIT_SECS {
        expires
    } else {
        let issued = created_at
            .and_then(SallaTime::parse)
            .ok_or(ModelError::Field("expires"))?;
        issued.unix_timestamp().saturating_add(expires)
    };
    Ok(TokenGrant {
        access_token: token("access_token")?,
        refresh_token: token("refresh_token")?,
        expires_at,
        scope: fields.get("scope").and_then(text_of),
        token_type: fields.get("token_type").and_then(text_of),
    })
}

fn trial(change: TrialChange, data: Value) -> Result<EventKind, ModelError> {
    Ok(EventKind::Trial {
        change,
        info: Subscription::from_value(data)?,
    })
}

fn subscription(change: SubscriptionChange, data: Value) -> Result<EventKind, ModelError> {
    Ok(EventKind::Subscription {
        change,
        info: Subscription::from_value(data)?,
    })
}

fn fields_of(value: &Value) -> Result<&Map<String, Value>, ModelError> {
    value.as_object().ok_or(ModelError::NotAnObject)
}

impl AppInfo {
    /// Reads `app.installed|updated|uninstalled` data; nothing in it is required.
    pub fn from_value(raw: Value) -> Result<AppInfo, ModelError> {
        let f = fields_of(&raw)?;
        let text = |key: &str| f.get(key).and_then(text_of);
        let time = |key: &str| f.get(key).and_then(SallaTime::from_json);
        let info = AppInfo {
            app_id: f.get("id").and_then(id_of),
            app_name: text("app_name"),
            app_type: text("app_type"),
            store_type: text("store_type"),
            scopes: f
                .get("app_scopes")
                .and_then(Value::as_array)
                .map(|scopes| scopes.iter().filter_map(text_of).collect())
                .unwrap_or_default(),
            installation_date: time("installation_date"),
            update_date: time("update_date"),
            uninstallation_date: time("uninstallation_date"),
            refunded: f.get("refunded").and_then(flag_of),
            raw: Value::Null,
        };
        // `raw` moves in once the fields borrowed from it are read.
        Ok(AppInfo { raw, ..info })
    }
}

impl Subscription {
    /// Reads trial or subscription data; nothing in it is required.
    pub fn from_value(raw: Value) -> Result<Subscription, ModelError> {
        let f = fields_of(&raw)?;
        let text = |key: &str| f.get(key).and_then(text_of);
        let time = |key: &str| f.get(key).and_then(SallaTime::from_json);
        let money = |key: &str| f.get(key).and_then(Money::from_json);
        let info = Subscription {
            app_id: f.get("id").and_then(id_of),
            subscription_id: f.get("subscription_id").and_then(id_of),
            app_name: text("app_name"),
            plan_name: text("plan_name"),
            plan_type: text("plan_type"),
            plan_period: text("plan_period"),
            start_date: time("start_date"),
            end_date: time("end_date"),
            renew_date: time("renew_date"),
            price: money("price"),
            price_before_discount: money("price_before_discount"),
            initialization_cost: money("initialization_cost"),
            tax: money("tax"),
            tax_value: money("tax_value"),
            total: money("total"),
            subscription_balance: money("subscription_balance"),
            store_type: text("store_type"),
            raw: Value::Null,
        };
        Ok(Subscription { raw, ..info })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/salla")
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn parsed(name: &str) -> SallaEvent {
        parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn money(text: &str) -> Money {
        Money(Decimal::from_str(text).unwrap())
    }

    /// Every webhook fixture (not the API and OAuth answers) with the kind it must parse into.
    fn expected_kind(name: &str, kind: &EventKind) -> bool {
        use EventKind as K;
        match name {
            "app.store.authorize.json" => matches!(kind, K::StoreAuthorize(_)),
            "app.installed.json" => matches!(kind, K::AppInstalled(_)),
            "app.updated.json" => matches!(kind, K::AppUpdated(_)),
            "app.uninstalled.json" => matches!(kind, K::AppUninstalled(_)),
            "app.trial.started.json" => matches!(
                kind,
                K::Trial {
                    change: TrialChange::Started,
                    ..
                }
            ),
            "app.trial.expired.json" => matches!(
                kind,
                K::Trial {
                    change: TrialChange::Expired,
                    ..
                }
            ),
            "app.trial.canceled.json" => matches!(
                kind,
                K::Trial {
                    change: TrialChange::Canceled,
                    ..
                }
            ),
            "app.subscription.started.json" => {
                matches!(
                    kind,
                    K::Subscription {
                        change: SubscriptionChange::Started,
                        ..
                    }
                )
            }
            "app.subscription.expired.json" => {
                matches!(
                    kind,
                    K::Subscription {
                        change: SubscriptionChange::Expired,
                        ..
                    }
                )
            }
            "app.subscription.canceled.json" => {
                matches!(
                    kind,
                    K::Subscription {
                        change: SubscriptionChange::Canceled,
                        ..
                    }
                )
            }
            "app.subscription.renewed.json" => {
                matches!(
                    kind,
                    K::Subscription {
                        change: SubscriptionChange::Renewed,
                        ..
                    }
                )
            }
            "app.feedback.created.json"
            | "app.settings.updated.json"
            | "customer.otp.request.json" => {
                matches!(kind, K::Other)
            }
            "order.created.json" => matches!(
                kind,
                K::OrderUpsert {
                    event: OrderEvent::Created,
                    ..
                }
            ),
            "synthetic-order.updated.json" => {
                matches!(
                    kind,
                    K::OrderUpsert {
                        event: OrderEvent::Updated,
                        ..
                    }
                )
            }
            "synthetic-order.cancelled.json" => {
                matches!(
                    kind,
                    K::OrderUpsert {
                        event: OrderEvent::Cancelled,
                        ..
                    }
                )
            }
            "product.created.json" | "synthetic-product.updated.json" => {
                matches!(kind, K::ProductUpsert(_))
            }
            "synthetic-product.deleted.json" => {
                matches!(kind, K::ProductDeleted { id: 1025569331 })
            }
            "product.price.updated.json" => {
                matches!(kind, K::ProductPatch(p) if p.change == ProductChange::Price)
            }
            "product.status.updated.json" => {
                matches!(kind, K::ProductPatch(p) if p.change == ProductChange::Status)
            }
            "product.image.updated.json" => {
                matches!(kind, K::ProductPatch(p) if p.change == ProductChange::Image)
            }
            "product.category.updated.json" => {
                matches!(kind, K::ProductPatch(p) if p.change == ProductChange::Category)
            }
            "product.brand.updated.json" => {
                matches!(kind, K::ProductPatch(p) if p.change == ProductChange::Brand)
            }
            "product.tags.updated.json" => {
                matches!(kind, K::ProductPatch(p) if p.change == ProductChange::Tags)
            }
            "customer.login.json"
            | "synthetic-customer.created.json"
            | "synthetic-customer.updated.json" => {
                matches!(kind, K::CustomerUpsert(c) if c.id == 225167971)
            }
            "abandoned.cart.json" => matches!(kind, K::CartUpsert(c) if c.id == 1097962121),
            "coupon.applied.json" => matches!(kind, K::CartUpsert(c) if c.id == 746780865),
            "abandoned.cart.status.changed.json" => matches!(
                kind,
                K::CartStatusChanged { id: 1305879817, status } if status == "purchased"
            ),
            other => panic!("no expectation for fixture {other}: add one"),
        }
    }

    fn webhook_fixtures() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(fixtures())
            .expect("fixtures directory")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| {
                name.ends_with(".json") && !name.starts_with("api-") && !name.starts_with("oauth-")
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_webhook_fixture_parses_into_its_kind_and_merchant() {
        let names = webhook_fixtures();
        assert_eq!(names.len(), 32, "{names:?}");
        for name in names {
            let body = fixture(&name);
            let envelope: Value = serde_json::from_slice(&body).unwrap();
            let event = parsed(&name);
            assert_eq!(event.name(), envelope["event"].as_str().unwrap(), "{name}");
            assert_eq!(
                Some(event.merchant().as_i64()),
                envelope["merchant"].as_i64(),
                "{name}"
            );
            assert_eq!(
                event.created_at(),
                envelope["created_at"].as_str(),
                "{name}"
            );
            assert!(
                expected_kind(&name, event.kind()),
                "{name}: {:?}",
                event.kind()
            );
        }
    }

    #[test]
    fn authorize_carries_an_absolute_expiry_and_never_prints_tokens() {
        let event = parsed("app.store.authorize.json");
        let EventKind::StoreAuthorize(grant) = event.kind() else {
            panic!("{:?}", event.kind())
        };
        assert_eq!(event.merchant(), MerchantId::new(1234509876));
        assert_eq!(grant.expires_at, 1634819484);
        assert!(grant.access_token.starts_with("KGsn"));
        assert!(grant.refresh_token.starts_with("fWcc"));
        assert_eq!(
            grant.scope.as_deref(),
            Some("settings.read branches.read offline_access")
        );
        let printed = format!("{event:?}");
        assert!(
            !printed.contains("KGsn") && !printed.contains("fWcc"),
            "{printed}"
        );
        assert!(printed.contains("1634819484"));
    }

    #[test]
    fn an_authorize_duration_counts_from_created_at() {
        let body = json!({"event": "app.store.authorize", "merchant": 1, "created_at": "2022-12-31 12:31:25",
            "data": {"access_token": "a", "refresh_token": "r", "expires_in": 1209600}});
        let EventKind::StoreAuthorize(grant) =
            parse(body.to_string().as_bytes()).unwrap().into_kind()
        else {
            panic!()
        };
        let issued = datetime!(2022-12-31 12:31:25 +03:00).unix_timestamp();
        assert_eq!(grant.expires_at, issued + 1209600);
        let missing =
            json!({"event": "app.store.authorize", "merchant": 1, "data": {"access_token": "a"}});
        assert!(matches!(
            parse(missing.to_string().as_bytes()),
            Err(EventError::BadData {
                source: ModelError::Field("refresh_token" | "expires"),
                ..
            })
        ));
    }

    #[test]
    fn app_events_read_dates_and_plans() {
        let EventKind::AppUninstalled(app) = parsed("app.uninstalled.json").into_kind() else {
            panic!()
        };
        assert_eq!(app.app_id, Some(6789012345));
        assert_eq!(
            app.uninstallation_date,
            Some(datetime!(2021-10-07 12:46:07 +03:00))
        );
        assert_eq!(app.refunded, Some(false));
        let EventKind::AppInstalled(app) = parsed("app.installed.json").into_kind() else {
            panic!()
        };
        assert_eq!(app.scopes.len(), 15);
        assert_eq!(app.store_type.as_deref(), Some("development"));

        let EventKind::Subscription { info, .. } =
            parsed("app.subscription.renewed.json").into_kind()
        else {
            panic!()
        };
        assert_eq!(info.subscription_id, Some(1510766049));
        assert_eq!(info.price, Some(money("20.00")));
        assert_eq!(info.total, Some(money("23.00")));
        assert_eq!(info.initialization_cost, Some(money("10")));
        assert_eq!(
            info.subscription_balance, None,
            "the string \"null\" is no balance"
        );
        assert_eq!(info.renew_date, Some(datetime!(2021-11-09 21:00:00 UTC)));
        assert_eq!(info.plan_name, None);

        let EventKind::Trial { info, .. } = parsed("app.trial.canceled.json").into_kind() else {
            panic!()
        };
        assert_eq!(info.start_date, Some(datetime!(2023-07-27 00:00:00 +03:00)));
        assert_eq!(info.subscription_id, None);
        let EventKind::Trial { info, .. } = parsed("app.trial.expired.json").into_kind() else {
            panic!()
        };
        assert_eq!(info.plan_name.as_deref(), Some("Diamond Plan"));
        // Serializable for the store record (install.rs keeps it as JSON).
        assert_eq!(
            serde_json::to_value(&info).unwrap()["plan_name"],
            "Diamond Plan"
        );
    }

    #[test]
    fn order_created_reads_the_full_order() {
        let EventKind::OrderUpsert { order, event } = parsed("order.created.json").into_kind()
        else {
            panic!()
        };
        assert_eq!(event, OrderEvent::Created);
        assert_eq!(order.id, 2116149737);
        assert_eq!(order.reference_id.as_deref(), Some("41027662"));
        assert_eq!(order.total.as_ref().map(|t| t.amount), Some(money("196")));
        assert_eq!(
            order.total.as_ref().and_then(|t| t.currency.as_deref()),
            Some("SAR")
        );
        assert_eq!(
            order.sub_total.as_ref().map(|t| t.amount),
            Some(money("186"))
        );
        assert_eq!(
            order.shipping_cost.as_ref().map(|t| t.amount),
            Some(money("15"))
        );
        assert_eq!(order.tax.as_ref().map(|t| t.amount), Some(Money::ZERO));
        assert_eq!(order.discount_total(), Some(money("5.00")));
        assert_eq!(order.date, Some(datetime!(2022-06-26 12:21:45 +03:00)));
        let status = order.status.as_ref().unwrap();
        assert_eq!(status.slug.as_deref(), Some("under_review"));
        assert_eq!(status.id, Some(566146469));
        let customer = order.customer.as_ref().unwrap();
        assert_eq!(customer.id, 225167971);
        assert_eq!(customer.mobile.as_deref(), Some("+966501806978"));
        assert_eq!(customer.display_name().as_deref(), Some("Mohammed Ali"));
        assert_eq!(order.shipping_city.as_deref(), Some("جدة"));
        assert_eq!(order.items_count(), Some(1));
        let items = order.full_items().expect("webhook items are full lines");
        assert_eq!(items[0].id, Some(70815337));
        assert_eq!(items[0].product_id, Some(720881993));
        assert_eq!(
            items[0].price.as_ref().map(|p| p.amount),
            Some(money("186"))
        );
        assert_eq!(
            items[0].discount.as_ref().map(|p| p.amount),
            Some(money("5"))
        );
        assert_eq!(
            order.updated_at, None,
            "the docs' order.created has no updated_at"
        );
        assert!(
            order.raw.get("pickup_branch").is_none(),
            "pickup_branch sits beside data"
        );
    }

    /// `order.status.updated` as reference §2.4 describes it (no fixture exists).
    fn status_updated() -> Value {
        serde_json::from_str(
            r#"{
            "event": "order.status.updated", "merchant": "1305146709",
            "created_at": "Sun Jun 26 2022 12:30:00 GMT+0300",
            "data": {
                "id": 1212312, "status": "تم التنفيذ", "customized": null, "note": "",
                "created_at": {"date": "2022-06-26 12:29:58.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
                "order": {
                    "id": 2116149737, "reference_id": 41027662,
                    "urls": {"customer": "https://salla.sa/x", "admin": "https://s.salla.sa/y"},
                    "date": {"date": "2022-06-26 12:21:45.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
                    "source": "store", "source_device": "desktop",
                    "source_details": {"type": "direct", "value": null, "device": "desktop", "user-agent": "x", "ip": "1.1.1.1"},
                    "first_complete_at": {"date": "2022-06-26 12:29:58.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
                    "status": {"id": 1473353380, "name": "تم التنفيذ", "slug": "completed"},
                    "payment_method": "bank", "currency": "SAR",
                    "amounts": {
                        "sub_total": {"amount": 186, "currency": "SAR"},
                        "shipping_cost": {"amount": 15, "currency": "SAR"},
                        "cash_on_delivery": {"amount": 0, "currency": "SAR"},
                        "tax": {"percent": "15.00", "amount": {"amount": "27.90", "currency": "SAR"}},
                        "discounts": [{"title": "x", "type": "special", "code": "x", "discount": "126.00", "currency": "SAR"}],
                        "total": {"amount": 102.9, "currency": "SAR"}
                    },
                    "shipping": {"id": 1, "app_id": "1473353380", "company": "x", "logo": "",
                        "receiver": {"name": "a"}, "shipper": {"name": "b"},
                        "pickup_address": {"city": "مكة", "geo_coordinates": {"lat": 1, "lng": 2}},
                        "address": {"country": "SA", "city": "الرياض"},
                        "shipment": {"id": "1", "pickup_id": null, "tracking_link": "", "label": []},
                        "policy_options": []},
                    "can_cancel": false, "show_weight": true, "can_reorder": true, "is_pending_payment": false,
                    "pending_payment_ends_at": 0, "total_weight": "١ كجم",
                    "shipment_branch": [{"id": 1, "name": "b", "status": "active", "is_default": true, "type": "branch"}],
                    "customer": {"id": 225167971, "name": "Mohammed Ali", "mobile": "+966501806978",
                        "email": "usertest@gmail.com", "avatar": "https://x", "country": "السعودية", "city": "جدة"},
                    "items": [{"id": 70815337, "product_id": 720881993, "name": "بيتزا", "sku": "54534534",
                        "quantity": "2", "weight": 0.25,
                        "amounts": {"price_without_tax": {"amount": 93, "currency": "SAR"},
                                    "total_discount": {"amount": 0, "currency": "SAR"},
                                    "tax": {"percent": "15.00", "amount": {"amount": 27.9, "currency": "SAR"}},
                                    "total": {"amount": 213.9, "currency": "SAR"}}}],
                    "total": {"amount": 102.9, "currency": "SAR"}
                }
            }
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn order_status_updated_unwraps_the_order_and_keeps_the_status_name() {
        let event = parse(status_updated().to_string().as_bytes()).unwrap();
        assert_eq!(
            event.merchant(),
            MerchantId::new(1305146709),
            "merchant as a string"
        );
        let EventKind::OrderStatusUpdated {
            order,
            status_name,
            changed_at,
        } = event.into_kind()
        else {
            panic!()
        };
        assert_eq!(status_name, "تم التنفيذ");
        assert_eq!(changed_at, Some(datetime!(2022-06-26 12:29:58 +03:00)));
        assert_eq!(order.id, 2116149737);
        assert_eq!(
            order.status.as_ref().and_then(|s| s.slug.as_deref()),
            Some("completed")
        );
        let customer = order.customer.as_ref().unwrap();
        assert_eq!(customer.mobile.as_deref(), Some("+966501806978"));
        assert_eq!(customer.full_name.as_deref(), Some("Mohammed Ali"));
        assert_eq!(order.discount_total(), Some(money("126.00")));
        assert_eq!(order.tax.as_ref().map(|t| t.amount), Some(money("27.90")));
        assert_eq!(order.tax_percent, Some(money("15.00")));
        assert_eq!(order.total.as_ref().map(|t| t.amount), Some(money("102.9")));
        assert_eq!(order.items_count(), Some(2), "quantity as a string");
        assert_eq!(order.shipping_country.as_deref(), Some("SA"));
    }

    #[test]
    fn product_events_carry_only_their_fields() {
        let EventKind::ProductPatch(patch) = parsed("product.price.updated.json").into_kind()
        else {
            panic!()
        };
        assert_eq!(patch.product.id, 1462551237);
        assert_eq!(
            patch.product.price.as_ref().map(|p| p.amount),
            Some(money("150")),
            "bare number"
        );
        assert_eq!(
            patch.product.sale_price.as_ref().map(|p| p.amount),
            Some(money("85"))
        );
        assert_eq!(
            patch.product.sale_end,
            Some(time::macros::date!(2025 - 12 - 01))
        );
        assert_eq!(
            patch.product.cost_price.as_ref().map(|p| p.amount),
            Some(money("60"))
        );
        assert_eq!(patch.product.currency.as_deref(), Some("SAR"));
        assert!(patch.carries("price") && !patch.carries("status") && !patch.carries("name"));

        let EventKind::ProductPatch(patch) = parsed("product.status.updated.json").into_kind()
        else {
            panic!()
        };
        assert_eq!(patch.product.status.as_deref(), Some("hidden"));
        assert!(patch.carries("status") && !patch.carries("price"));

        let EventKind::ProductPatch(patch) = parsed("product.image.updated.json").into_kind()
        else {
            panic!()
        };
        assert!(
            patch
                .product
                .main_image
                .as_deref()
                .unwrap()
                .ends_with("CzIMHAh5m.png")
        );

        let EventKind::ProductPatch(patch) = parsed("product.brand.updated.json").into_kind()
        else {
            panic!()
        };
        assert_eq!(
            patch.product.brand,
            Some(json!({"id": 1972405558, "name": "Brand1"}))
        );

        let channels = json!({"event": "product.channels.changed", "merchant": 1,
            "data": {"id": 5, "channels": ["app", "Vendors"]}});
        let EventKind::ProductPatch(patch) =
            parse(channels.to_string().as_bytes()).unwrap().into_kind()
        else {
            panic!()
        };
        assert_eq!(patch.change, ProductChange::Channels);
        assert_eq!(patch.product.channels, ["app", "Vendors"]);

        let low = json!({"event": "product.quantity.low", "merchant": 1,
            "data": {"id": 5, "name": "Shirt", "quantity": "3", "price": {"amount": "20.00", "currency": "SAR"}}});
        let EventKind::ProductPatch(patch) = parse(low.to_string().as_bytes()).unwrap().into_kind()
        else {
            panic!()
        };
        assert_eq!(patch.change, ProductChange::QuantityLow);
        assert_eq!(patch.product.quantity, Some(3));
        assert_eq!(
            patch.product.price.as_ref().map(|p| p.amount),
            Some(money("20.00"))
        );
    }

    #[test]
    fn cart_events() {
        let EventKind::CartUpsert(cart) = parsed("abandoned.cart.json").into_kind() else {
            panic!()
        };
        assert_eq!(cart.total.as_ref().map(|t| t.amount), Some(money("100")));
        assert_eq!(cart.currency.as_deref(), Some("SAR"));
        assert_eq!(cart.coupon_code.as_deref(), Some("wizefriend"));
        assert_eq!(
            cart.coupon
                .as_ref()
                .and_then(|c| c.amount.as_ref())
                .map(|a| a.amount),
            Some(money("20"))
        );
        assert_eq!(cart.items_count(), Some(3));
        assert_eq!(
            cart.customer.as_ref().and_then(|c| c.mobile.as_deref()),
            Some("+977612917082")
        );
        assert_eq!(cart.updated_at, Some(datetime!(2025-01-21 17:09:39 +03:00)));

        let EventKind::CartUpsert(cart) = parsed("coupon.applied.json").into_kind() else {
            panic!()
        };
        let coupon = cart.coupon.as_ref().unwrap();
        assert_eq!(
            coupon.amount.as_ref().and_then(|a| a.currency.as_deref()),
            Some("SAR")
        );
        assert_eq!(
            coupon.minimum_amount.as_ref().map(|a| a.amount),
            Some(Money::ZERO)
        );
        assert_eq!(
            cart.subtotal.as_ref().map(|t| t.amount),
            Some(money("3000"))
        );

        let purchased = json!({"event": "abandoned.cart.purchased", "merchant": 935918575,
            "created_at": "Tue Mar 25 2025 12:00:00 GMT+0300",
            "data": {"id": 1305879817, "status": "purchased", "currency": "SAR",
                     "total": 34.99, "subtotal": 30.43, "total_discount": 0}});
        let kind = parse(purchased.to_string().as_bytes()).unwrap().into_kind();
        assert_eq!(
            kind,
            EventKind::CartPurchased {
                id: 1305879817,
                status: "purchased".into(),
                currency: Some("SAR".into()),
                total: Some(money("34.99")),
                subtotal: Some(money("30.43")),
                total_discount: Some(Money::ZERO),
            }
        );
    }

    #[test]
    fn envelope_tolerance() {
        let string_merchant = json!({"event": "customer.updated", "merchant": " 1029864349 ",
            "created_at": "2024-03-24T10:30:00Z", "extra": {"anything": true},
            "data": {"id": "42", "mobile": "0501806978", "mobile_code": "966"}});
        let event = parse(string_merchant.to_string().as_bytes()).unwrap();
        assert_eq!(event.merchant().to_string(), "1029864349");
        assert_eq!(event.created_at(), Some("2024-03-24T10:30:00Z"));
        let EventKind::CustomerUpsert(customer) = event.kind() else {
            panic!()
        };
        assert_eq!(customer.id, 42);
        assert_eq!(customer.mobile.as_deref(), Some("+966501806978"));

        let unknown = json!({"event": "store.branch.setDefault", "merchant": 1, "data": [1, 2]});
        assert_eq!(
            parse(unknown.to_string().as_bytes()).unwrap().kind(),
            &EventKind::Other
        );
        let no_data = json!({"event": "review.added", "merchant": 1});
        assert_eq!(
            parse(no_data.to_string().as_bytes()).unwrap().kind(),
            &EventKind::Other
        );
        let big_id =
            json!({"event": "order.deleted", "merchant": 1, "data": {"id": 8114012345u64}});
        assert_eq!(
            parse(big_id.to_string().as_bytes()).unwrap().into_kind(),
            EventKind::OrderDeleted { id: 8114012345 }
        );
    }

    #[test]
    fn what_is_not_an_event_is_an_error() {
        type Expect = fn(&EventError) -> bool;
        let cases: &[(&[u8], Expect)] = &[
            (b"", |e| matches!(e, EventError::MalformedJson(_))),
            (b"not json", |e| matches!(e, EventError::MalformedJson(_))),
            (b"[1,2]", |e| matches!(e, EventError::NotEnvelope(_))),
            (b"{\"merchant\":1,\"data\":{}}", |e| {
                matches!(e, EventError::NotEnvelope(_))
            }),
            (b"{\"event\":\"\",\"merchant\":1}", |e| {
                matches!(e, EventError::NotEnvelope(_))
            }),
            (b"{\"event\":\"order.created\",\"data\":{}}", |e| {
                matches!(e, EventError::NotEnvelope(_))
            }),
            (b"{\"event\":\"x\",\"merchant\":\"abc\"}", |e| {
                matches!(e, EventError::BadMerchant)
            }),
            (b"{\"event\":\"x\",\"merchant\":-5}", |e| {
                matches!(e, EventError::BadMerchant)
            }),
            (b"{\"event\":\"x\",\"merchant\":1.5}", |e| {
                matches!(e, EventError::BadMerchant)
            }),
            (b"{\"event\":\"x\",\"merchant\":0}", |e| {
                matches!(e, EventError::BadMerchant)
            }),
            (
                b"{\"event\":\"order.created\",\"merchant\":1,\"data\":null}",
                |e| {
                    matches!(
                        e,
                        EventError::BadData {
                            source: ModelError::NotAnObject,
                            ..
                        }
                    )
                },
            ),
            (
                b"{\"event\":\"order.created\",\"merchant\":1,\"data\":{\"id\":\"abc\"}}",
                |e| {
                    matches!(
                        e,
                        EventError::BadData {
                            source: ModelError::Field("id"),
                            ..
                        }
                    )
                },
            ),
            (
                b"{\"event\":\"product.deleted\",\"merchant\":1,\"data\":{}}",
                |e| {
                    matches!(
                        e,
                        EventError::BadData {
                            source: ModelError::Field("id"),
                            ..
                        }
                    )
                },
            ),
            (
                b"{\"event\":\"abandoned.cart.status.changed\",\"merchant\":1,\"data\":{\"id\":1}}",
                |e| {
                    matches!(
                        e,
                        EventError::BadData {
                            source: ModelError::Field("status"),
                            ..
                        }
                    )
                },
            ),
        ];
        for (body, expected) in cases {
            let error = parse(body).expect_err(&String::from_utf8_lossy(body));
            assert!(
                expected(&error),
                "{}: {error:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn truncated_and_corrupted_bodies_never_panic() {
        for name in webhook_fixtures() {
            let body = fixture(&name);
            let end = body.trim_ascii_end().len();
            for cut in (0..end).step_by(7) {
                assert!(parse(&body[..cut]).is_err(), "{name} cut at {cut}");
            }
            // Flipped bytes may still be JSON; whatever they are, parsing answers without panicking.
            for at in (0..body.len()).step_by(13) {
                let mut corrupted = body.clone();
                corrupted[at] ^= 0x55;
                let _ = parse(&corrupted);
            }
        }
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn every_known_event_survives_odd_data_shapes() {
        let names = [
            "app.store.authorize",
            "app.installed",
            "app.updated",
            "app.uninstalled",
            "app.trial.started",
            "app.subscription.renewed",
            "order.created",
            "order.status.updated",
            "order.deleted",
            "product.created",
            "product.price.updated",
            "product.deleted",
            "customer.login",
            "abandoned.cart",
            "coupon.applied",
            "abandoned.cart.status.changed",
            "abandoned.cart.purchased",
        ];
        let shapes = [
            json!(null),
            json!([]),
            json!({}),
            json!("x"),
            json!(1),
            json!({"id": {}}),
            json!({"id": 1, "status": {}, "customer": [], "amounts": "x", "items": {}, "total": [1],
                   "price": {"amount": "abc"}, "date": {"date": 5}, "order": 3, "cart": null}),
        ];
        for name in names {
            for data in &shapes {
                let body = json!({"event": name, "merchant": 7, "data": data});
                let _ = parse(body.to_string().as_bytes());
            }
        }
    }
}
