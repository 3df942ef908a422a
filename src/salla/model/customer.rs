//! A store customer, as Salla sends it in customer lists, `customer.*` webhooks, orders and carts.

use serde_json::Value;
use time::{Date, OffsetDateTime};

use super::ModelError;
use super::values::{Fields, id_of, international_mobile, mobile_code_of, text_not_null};

// ---------------------------------------------------------------------------------------------------------
// Customer
// ---------------------------------------------------------------------------------------------------------

/// A store customer: `GET /customers` items (also in extra-fields mode), `customer.*` webhooks, and the
/// customer inside orders and carts (there only `{id, name, mobile: "+966…", email, …}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `full_name` (extra-fields mode) or `name` (orders and carts).
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// International form `+<code><number>` (see [`international_mobile`]).
    pub mobile: Option<String>,
    /// `+966`.
    pub mobile_code: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<Date>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub currency: Option<String>,
    /// Free-text address; Salla's `"null"` reads as `None`.
    pub location: Option<String>,
    pub avatar: Option<String>,
    /// Ids of the customer's groups.
    pub groups: Vec<i64>,
    pub is_notifications_enabled: Option<bool>,
    pub lang: Option<String>,
    pub is_blocked: Option<bool>,
    pub block_reason: Option<String>,
    pub is_inactive: Option<bool>,
    pub created_at: Option<OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

impl Customer {
    /// Reads a customer object; only `id` is required.
    pub fn from_value(raw: Value) -> Result<Customer, ModelError> {
        let f = Fields::of(&raw)?;
        let customer = Customer {
            id: f.id("id")?,
            first_name: f.text("first_name"),
            last_name: f.text("last_name"),
            full_name: f.text("full_name").or_else(|| f.text("name")),
            email: f.text("email"),
            mobile: f
                .get("mobile")
                .and_then(|mobile| international_mobile(mobile, f.get("mobile_code"))),
            mobile_code: f.get("mobile_code").and_then(mobile_code_of),
            gender: f.text("gender"),
            birthday: f.date("birthday"),
            city: f.text("city"),
            country: f.text("country"),
            country_code: f.text("country_code"),
            currency: f.text("currency"),
            location: f.get("location").and_then(text_not_null),
            avatar: f.text("avatar"),
            groups: f
                .array("groups")
                .map(|groups| {
                    groups
                        .iter()
                        .filter_map(|group| {
                            id_of(group).or_else(|| group.get("id").and_then(id_of))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            is_notifications_enabled: f.flag("is_notifications_enabled"),
            lang: f.text("lang"),
            is_blocked: f.flag("is_blocked"),
            block_reason: f.text("block_reason"),
            is_inactive: f.flag("is_inactive"),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Customer { raw, ..customer })
    }

    /// The name to show: `full_name`/`name`, else first and last name.
    pub fn display_name(&self) -> Option<String> {
        if let Some(name) = &self.full_name {
            return Some(name.clone());
        }
        let joined = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;
    use crate::salla::model::parse_items;
    use crate::salla::model::tests::fixture_data;

    #[test]
    fn api_customers_parse() {
        let page = fixture_data("api-list-customers.json");
        let (customers, errors) = parse_items(page.as_array().unwrap(), Customer::from_value);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(customers.len(), 2);
        let first = &customers[0];
        assert_eq!(first.id, 2075683582);
        assert_eq!(first.mobile.as_deref(), Some("+967777777777"));
        assert_eq!(first.mobile_code.as_deref(), Some("+967"));
        assert_eq!(first.groups, [11323141, 11323142]);
        assert_eq!(
            first.updated_at,
            Some(datetime!(2020-04-02 22:43:26 +03:00))
        );
        assert_eq!(
            first.location.as_deref(),
            Some("Alaziziah Street, building number 5")
        );
        assert_eq!(first.raw, page[0]);
        let second = &customers[1];
        assert_eq!(second.location, None, "the string \"null\"");
        assert!(second.raw.get("urls").is_none());
        assert_eq!(second.birthday, None);
    }

    #[test]
    fn api_pages_with_either_links_shape_parse() {
        for links in [
            json!([]),
            json!({}),
            json!({"next": "https://api.salla.dev/admin/v2/customers?page=2"}),
        ] {
            let page = json!({"status": 200, "success": true,
                "data": [{"id": 1, "mobile": 5, "mobile_code": "966"}, {"name": "no id"}],
                "pagination": {"count": 2, "total": 2, "perPage": 15, "currentPage": 1, "totalPages": 1, "links": links}});
            let (customers, errors) =
                parse_items(page["data"].as_array().unwrap(), Customer::from_value);
            assert_eq!(customers.len(), 1);
            assert_eq!(
                errors,
                [(1, ModelError::Field("id"))],
                "one odd item does not lose the page"
            );
        }
    }

    #[test]
    fn customer_in_extra_fields_mode() {
        let customer = Customer::from_value(json!({
            "id": 2075683582, "first_name": "Ahmed", "last_name": "Ali", "full_name": "Ahmed Ali",
            "mobile": "555555555", "mobile_code": "+966", "email": "a@b.c", "avatar": "https://x",
            "gender": "male", "birthday": null, "city": "Riyadh", "country": "السعودية | Saudi Arabia",
            "location": "null", "lang": "ar",
            "created_at": {"date": "2021-01-02 03:04:05.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
            "updated_at": {"date": "2022-01-02 03:04:05.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
            "block_reason": null, "is_blocked": false, "is_inactive": "0", "is_notifications_enabled": 1,
            "total_points": 5, "custom_fields": [], "groups": []
        }))
        .unwrap();
        assert_eq!(customer.full_name.as_deref(), Some("Ahmed Ali"));
        assert_eq!(customer.lang.as_deref(), Some("ar"));
        assert_eq!(
            customer.created_at,
            Some(datetime!(2021-01-02 03:04:05 +03:00))
        );
        assert_eq!(customer.block_reason, None);
        assert_eq!(
            (customer.is_blocked, customer.is_inactive),
            (Some(false), Some(false))
        );
        assert_eq!(customer.is_notifications_enabled, Some(true));
        assert_eq!(customer.birthday, None);
        assert_eq!(customer.country.as_deref(), Some("السعودية | Saudi Arabia"));
        assert_eq!(customer.mobile.as_deref(), Some("+966555555555"));
    }

    #[test]
    fn webhook_customer_has_a_birthday() {
        let customer = Customer::from_value(fixture_data("customer.login.json")).unwrap();
        assert_eq!(customer.birthday, Some(date!(1997 - 06 - 03)));
        assert_eq!(customer.mobile.as_deref(), Some("+966555555555"));
        assert_eq!(customer.is_notifications_enabled, Some(true));
        assert_eq!(customer.display_name().as_deref(), Some("User Mohammed"));
    }
}
