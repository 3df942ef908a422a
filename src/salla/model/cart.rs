//! An abandoned cart with its coupon and items, in the current and the legacy shape.

use serde_json::Value;
use time::OffsetDateTime;

use super::ModelError;
use super::customer::Customer;
use super::values::{Amount, Fields};

// ---------------------------------------------------------------------------------------------------------
// Abandoned cart
// ---------------------------------------------------------------------------------------------------------

/// An abandoned cart: `GET /carts/abandoned` items, `abandoned.cart`, `coupon.applied`'s `data.cart`, and the
/// legacy list shape `{id, subtotal: "15.00", currency: "SAR", total: "50.14", coupon_code, customer}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cart {
    pub id: i64,
    pub customer: Option<Customer>,
    pub total: Option<Amount>,
    pub subtotal: Option<Amount>,
    pub total_discount: Option<Amount>,
    /// `currency` (legacy), else the total's currency.
    pub currency: Option<String>,
    pub checkout_url: Option<String>,
    pub age_in_minutes: Option<i64>,
    pub coupon: Option<Coupon>,
    /// `coupon.code`, else `coupon_code` (legacy).
    pub coupon_code: Option<String>,
    /// e.g. `purchased` (cart details from 2.10.42).
    pub status: Option<String>,
    /// `None` when the payload has no items (legacy).
    pub items: Option<Vec<CartItem>>,
    pub created_at: Option<OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

/// The coupon on a cart; `amount` is a number in `abandoned.cart` and `{amount, currency}` elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Coupon {
    pub id: Option<i64>,
    pub code: Option<String>,
    pub status: Option<String>,
    /// percentage, fixed, …
    pub kind: Option<String>,
    pub amount: Option<Amount>,
    pub minimum_amount: Option<Amount>,
    pub expiry_date: Option<OffsetDateTime>,
    pub free_shipping: Option<bool>,
}

/// `items[{id, product_id, quantity}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartItem {
    pub id: Option<i64>,
    pub product_id: Option<i64>,
    pub quantity: Option<i64>,
}

impl Cart {
    /// Reads a cart object (current or legacy shape); only `id` is required.
    pub fn from_value(raw: Value) -> Result<Cart, ModelError> {
        let f = Fields::of(&raw)?;
        let total = f.amount("total");
        let coupon = f.get("coupon").and_then(Coupon::from_json);
        let cart = Cart {
            id: f.id("id")?,
            customer: f
                .get("customer")
                .and_then(|customer| Customer::from_value(customer.clone()).ok()),
            currency: f
                .text("currency")
                .or_else(|| total.as_ref().and_then(|total| total.currency.clone())),
            total,
            subtotal: f.amount("subtotal"),
            total_discount: f.amount("total_discount"),
            checkout_url: f.text("checkout_url"),
            age_in_minutes: f.int("age_in_minutes"),
            coupon_code: coupon
                .as_ref()
                .and_then(|coupon| coupon.code.clone())
                .or_else(|| f.text("coupon_code")),
            coupon,
            status: f.text("status"),
            items: f.array("items").map(|items| {
                items
                    .iter()
                    .filter_map(|item| Fields::of(item).ok())
                    .map(|item| CartItem {
                        id: item.opt_id("id"),
                        product_id: item.opt_id("product_id"),
                        quantity: item.int("quantity"),
                    })
                    .collect()
            }),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Cart { raw, ..cart })
    }

    /// Units in the cart (the sum of item quantities); `None` when the payload has no items.
    pub fn items_count(&self) -> Option<i64> {
        let items = self.items.as_ref()?;
        Some(items.iter().filter_map(|item| item.quantity).sum())
    }
}

impl Coupon {
    fn from_json(value: &Value) -> Option<Coupon> {
        let f = Fields::of(value).ok()?;
        Some(Coupon {
            id: f.opt_id("id"),
            code: f.text("code"),
            status: f.text("status"),
            kind: f.text("type"),
            amount: f.amount("amount"),
            minimum_amount: f.amount("minimum_amount"),
            expiry_date: f.time("expiry_date"),
            free_shipping: f.flag("free_shipping"),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::salla::model::tests::{amount_of, fixture_data, money};

    #[test]
    fn legacy_and_current_carts() {
        let legacy = Cart::from_value(json!({
            "id": 1097962121, "subtotal": "15.00", "currency": "SAR", "total": "50.14", "coupon_code": null,
            "customer": {"id": 225167971, "avatar": "https://x", "name": "User Name", "mobile": "+966555555555"}
        }))
        .unwrap();
        assert_eq!(amount_of(&legacy.total), Some(money("50.14")));
        assert_eq!(amount_of(&legacy.subtotal), Some(money("15.00")));
        assert_eq!(legacy.currency.as_deref(), Some("SAR"));
        assert_eq!(legacy.coupon_code, None);
        assert_eq!(legacy.items_count(), None);
        assert_eq!(legacy.created_at, None);
        let customer = legacy.customer.as_ref().unwrap();
        assert_eq!(
            (customer.id, customer.full_name.as_deref()),
            (225167971, Some("User Name"))
        );

        let current = Cart::from_value(fixture_data("abandoned.cart.json")).unwrap();
        assert_eq!(amount_of(&current.total_discount), Some(money("10")));
        assert_eq!(current.age_in_minutes, Some(83));
        assert_eq!(
            current.created_at,
            Some(datetime!(2025-01-21 17:09:39 +03:00))
        );
        assert_eq!(current.items.as_ref().map(Vec::len), Some(2));
    }
}
