//! Salla's commerce objects (customers, products, orders, abandoned carts) and the values inside them (money,
//! dates, ids), read from webhook `data` and Merchant API list/detail items alike, which share these shapes
//! (shared/reference/salla.md §2.4, §2.5).
//!
//! Salla's shapes drift: numbers arrive as strings, `{amount, currency}` objects as bare numbers, and `{}`,
//! `[]`, `""` or the string `"null"` stand for nothing. So parsing requires only what identifies an object (its
//! id); any other field of an unexpected shape reads as absent instead of failing the whole payload (one odd
//! field must not stall a store's sync), and every object keeps its original JSON in `raw`, so nothing is lost.
//! Parsing is pure and never panics.

mod cart;
mod customer;
mod order;
mod product;
mod time;
mod values;

pub use self::time::{RIYADH, SallaTime, date_of, zone_offset};
pub use cart::{Cart, CartItem, Coupon};
pub use customer::Customer;
pub use order::{Order, OrderDiscount, OrderItem, OrderStatus};
pub use product::{Product, ProductSku};
pub use values::{
    Amount, Money, flag_of, id_of, int_of, international_mobile, mobile_code_of, text_of,
};

use serde_json::Value;

/// Why a JSON value is not the object it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("missing or invalid `{0}`")]
    Field(&'static str),
}

/// Parses every element of a Merchant API list's `data` with `parse`, keeping the ones that parse and the
/// errors of the others (with their index), so one odd item does not lose a page.
pub fn parse_items<T>(
    items: &[Value],
    parse: impl Fn(Value) -> Result<T, ModelError>,
) -> (Vec<T>, Vec<(usize, ModelError)>) {
    let mut parsed = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse(item.clone()) {
            Ok(value) => parsed.push(value),
            Err(error) => errors.push((index, error)),
        }
    }
    (parsed, errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(super) fn fixture_data(name: &str) -> Value {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/salla")
            .join(name);
        let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        body["data"].clone()
    }

    pub(super) fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    pub(super) fn amount_of(amount: &Option<Amount>) -> Option<Money> {
        amount.as_ref().map(|a| a.amount)
    }

    #[test]
    fn odd_text_never_panics() {
        let long = "9".repeat(200);
        let odd = [
            "-",
            ".",
            "+",
            "e5",
            "1e",
            "1e-",
            "1e99999999999999999999",
            "1e-99999",
            "+.e",
            long.as_str(),
            "0.00000000000000000000000000000001",
            "--1",
            "1..2",
            "١٢",
            "\u{0}",
            "2022-06-26 12:21:45.",
            "2022-06-26 12:21:45 +99:99",
            "2022-06-26T",
            "Sun",
            "Sun Jun",
            "Jun 99 2022",
            "Etc/GMT-128",
            "GMT+",
            "+",
            "-0",
            "UTC+99999",
            "2022-06-26 12:21:45.99999999999999",
        ];
        for text in odd {
            let _ = Money::parse(text);
            let _ = SallaTime::parse(text);
            let _ = zone_offset(text);
            let _ = date_of(&json!(text));
            let _ = int_of(&json!(text));
            let _ = international_mobile(&json!(text), Some(&json!(text)));
        }
        assert_eq!(zone_offset("Etc/GMT-128"), RIYADH);
    }

    #[test]
    fn odd_shapes_read_as_absent_not_as_errors() {
        let order = Order::from_value(json!({"id": 9, "status": [], "customer": {"name": "no id"},
            "amounts": {"total": {}, "discounts": [{"discount": "x"}, 3]}, "items": [{"quantity": "2"}, 7],
            "date": "not a date", "reference_id": true}))
        .unwrap();
        assert!(order.status.is_none() && order.customer.is_none() && order.total.is_none());
        assert!(order.date.is_none() && order.reference_id.is_none());
        assert_eq!(order.discount_total(), Some(Money::ZERO));
        assert_eq!(order.items_count(), Some(2));
        assert_eq!(
            Order::from_value(json!({"id": -1})),
            Err(ModelError::Field("id"))
        );
        assert_eq!(
            Customer::from_value(json!(null)),
            Err(ModelError::NotAnObject)
        );
        assert_eq!(id_of(&json!(2116149737u64)), Some(2116149737));
        assert_eq!(id_of(&json!(u64::MAX)), None, "beyond bigint");
        assert_eq!(int_of(&json!("50")), Some(50));
        assert_eq!(int_of(&json!(2.0)), Some(2));
        assert_eq!(int_of(&json!("2.5")), None);
        assert_eq!(flag_of(&json!("true")), Some(true));
    }
}
