//! An order with its status, discounts and lines, as Salla sends it in order lists, order details and order
//! webhooks.

use serde_json::Value;
use time::OffsetDateTime;

use super::ModelError;
use super::customer::Customer;
use super::values::{Amount, Fields, Money, text_of};

// ---------------------------------------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------------------------------------

/// An order: `GET /orders` items (thin: no `updated_at`, items without ids or amounts), order details, and the
/// order webhooks (`data`, or `data.order` in `order.status.updated`).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: i64,
    /// The order number shown to people (a number in Salla's JSON).
    pub reference_id: Option<String>,
    pub status: Option<OrderStatus>,
    pub customer: Option<Customer>,
    /// `amounts.total`, else the top-level `total` (List Orders).
    pub total: Option<Amount>,
    pub sub_total: Option<Amount>,
    pub shipping_cost: Option<Amount>,
    pub cash_on_delivery: Option<Amount>,
    /// `amounts.tax.amount`.
    pub tax: Option<Amount>,
    /// `amounts.tax.percent` (`"0.00"`).
    pub tax_percent: Option<Money>,
    /// `amounts.discounts[]`; `None` when the payload has no `amounts.discounts`.
    pub discounts: Option<Vec<OrderDiscount>>,
    /// `currency`, else the total's currency.
    pub currency: Option<String>,
    pub payment_method: Option<String>,
    pub source: Option<String>,
    pub source_device: Option<String>,
    /// `shipping.address.country`/`city`.
    pub shipping_country: Option<String>,
    pub shipping_city: Option<String>,
    /// Salla's order date (`date`).
    pub date: Option<OffsetDateTime>,
    /// `None` when the payload has no `items` (`format=light`).
    pub items: Option<Vec<OrderItem>>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

/// `status{id, name, slug, customized{id, name}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatus {
    pub id: Option<i64>,
    /// As shown to the merchant (Arabic by default).
    pub name: Option<String>,
    /// payment_pending, under_review, in_progress, completed, delivering, delivered, shipped, canceled,
    /// restored, restoring (custom statuses keep their original slug).
    pub slug: Option<String>,
    pub customized_id: Option<i64>,
    pub customized_name: Option<String>,
}

/// One `amounts.discounts[]` entry (`discount` is a string such as `"5.00"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDiscount {
    pub title: Option<String>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub amount: Option<Money>,
}

/// An order line. List Orders items are only `{name, quantity, thumbnail}`: no id, no amounts.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub id: Option<i64>,
    /// `product_id`, else `product.id`.
    pub product_id: Option<i64>,
    pub name: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<i64>,
    /// Unit price without tax (`amounts.price_without_tax`).
    pub price: Option<Amount>,
    pub discount: Option<Amount>,
    pub tax: Option<Amount>,
    pub total: Option<Amount>,
    pub currency: Option<String>,
    pub raw: Value,
}

impl Order {
    /// Reads an order object; only `id` is required.
    pub fn from_value(raw: Value) -> Result<Order, ModelError> {
        let f = Fields::of(&raw)?;
        let amounts = f.object("amounts");
        let tax = amounts.and_then(|a| a.get("tax"));
        let total = amounts
            .and_then(|a| a.amount("total"))
            .or_else(|| f.amount("total"));
        let address = f
            .object("shipping")
            .and_then(|shipping| shipping.object("address"));
        let order = Order {
            id: f.id("id")?,
            reference_id: f.text("reference_id"),
            status: f.get("status").and_then(OrderStatus::from_json),
            customer: f
                .get("customer")
                .and_then(|customer| Customer::from_value(customer.clone()).ok()),
            currency: f
                .text("currency")
                .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
            total,
            sub_total: amounts.and_then(|a| a.amount("sub_total")),
            shipping_cost: amounts.and_then(|a| a.amount("shipping_cost")),
            cash_on_delivery: amounts.and_then(|a| a.amount("cash_on_delivery")),
            tax: tax.and_then(Amount::from_json),
            tax_percent: tax
                .and_then(|tax| tax.get("percent"))
                .and_then(Money::from_json),
            discounts: amounts.and_then(|a| a.array("discounts")).map(|discounts| {
                discounts
                    .iter()
                    .filter_map(|discount| Fields::of(discount).ok())
                    .map(|d| OrderDiscount {
                        title: d.text("title"),
                        kind: d.text("type"),
                        code: d.text("code"),
                        amount: d.money("discount"),
                    })
                    .collect()
            }),
            payment_method: f.text("payment_method"),
            source: f.text("source"),
            source_device: f.text("source_device"),
            shipping_country: address
                .and_then(|a| a.text("country").or_else(|| a.text("country_code"))),
            shipping_city: address.and_then(|a| a.text("city")),
            date: f.time("date"),
            items: f
                .array("items")
                .map(|items| items.iter().filter_map(OrderItem::from_json).collect()),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Order { raw, ..order })
    }

    /// The sum of `amounts.discounts[].discount`; `None` when the payload has no discount list.
    pub fn discount_total(&self) -> Option<Money> {
        let discounts = self.discounts.as_ref()?;
        Some(Money(
            discounts
                .iter()
                .filter_map(|discount| discount.amount)
                .map(Money::decimal)
                .sum(),
        ))
    }

    /// Units ordered (the sum of item quantities); `None` when the payload has no items.
    pub fn items_count(&self) -> Option<i64> {
        let items = self.items.as_ref()?;
        Some(items.iter().filter_map(|item| item.quantity).sum())
    }

    /// The items when they are full lines (every one has an id: webhooks, order details), which replace the
    /// stored ones; `None` for List Orders' summaries or when there are no items.
    pub fn full_items(&self) -> Option<&[OrderItem]> {
        let items = self.items.as_deref()?;
        items.iter().all(|item| item.id.is_some()).then_some(items)
    }
}

impl OrderStatus {
    fn from_json(value: &Value) -> Option<OrderStatus> {
        match value {
            Value::Object(_) => {
                let f = Fields::of(value).ok()?;
                let customized = f.object("customized");
                Some(OrderStatus {
                    id: f.opt_id("id"),
                    name: f.text("name"),
                    slug: f.text("slug"),
                    customized_id: customized.and_then(|c| c.opt_id("id")),
                    customized_name: customized.and_then(|c| c.text("name")),
                })
            }
            // A bare status string: a slug when it looks like one (`completed`), else a display name.
            Value::String(_) => {
                let text = text_of(value)?;
                let is_slug = text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                Some(OrderStatus {
                    id: None,
                    name: (!is_slug).then(|| text.clone()),
                    slug: is_slug.then_some(text),
                    customized_id: None,
                    customized_name: None,
                })
            }
            _ => None,
        }
    }
}

impl OrderItem {
    fn from_json(value: &Value) -> Option<OrderItem> {
        let f = Fields::of(value).ok()?;
        let amounts = f.object("amounts");
        let total = amounts.and_then(|a| a.amount("total"));
        Some(OrderItem {
            id: f.opt_id("id"),
            product_id: f
                .opt_id("product_id")
                .or_else(|| f.object("product").and_then(|p| p.opt_id("id"))),
            name: f.text("name"),
            sku: f.text("sku"),
            quantity: f.int("quantity"),
            price: amounts.and_then(|a| a.amount("price_without_tax")),
            discount: amounts.and_then(|a| a.amount("total_discount")),
            tax: amounts.and_then(|a| a.amount("tax")),
            currency: f
                .text("currency")
                .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
            total,
            raw: value.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::salla::model::parse_items;
    use crate::salla::model::tests::{amount_of, fixture_data, money};

    #[test]
    fn api_orders_parse_as_thin_orders() {
        let page = fixture_data("api-list-orders.json");
        let (orders, errors) = parse_items(page.as_array().unwrap(), Order::from_value);
        assert!(errors.is_empty(), "{errors:?}");
        let first = &orders[0];
        assert_eq!(first.id, 1017120475);
        assert_eq!(first.reference_id.as_deref(), Some("40497536"));
        assert_eq!(amount_of(&first.total), Some(money("55")));
        assert_eq!(first.currency.as_deref(), Some("SAR"));
        assert_eq!(first.date, Some(datetime!(2022-06-16 14:48:20 +03:00)));
        assert_eq!(first.updated_at, None);
        assert_eq!(first.customer, None);
        assert_eq!(first.discount_total(), None);
        assert_eq!(first.items_count(), Some(1));
        assert_eq!(first.full_items(), None, "list items have no ids");
        assert_eq!(
            orders[1].status.as_ref().and_then(|s| s.slug.as_deref()),
            Some("canceled")
        );
        assert_eq!(orders[1].items_count(), Some(3));
        assert_eq!(orders[1].payment_method, None);
    }
}
