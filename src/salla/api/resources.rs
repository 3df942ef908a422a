//! What the Merchant API speaks of: the lists the import walks and their pages, store info (whose `id` is a
//! [`MerchantId`]), and reading `data` and pagination out of an answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::SallaApiError;
use super::exchange::truncated;
use super::lenient;
use crate::tenancy::MerchantId;

/// The lists the import walks (reference §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Products,
    Orders,
    Customers,
    AbandonedCarts,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Self::Products,
        Self::Orders,
        Self::Customers,
        Self::AbandonedCarts,
    ];

    /// Path of the list under the API base.
    pub fn path(self) -> &'static str {
        match self {
            Self::Products => "/products",
            Self::Orders => "/orders",
            Self::Customers => "/customers",
            Self::AbandonedCarts => "/carts/abandoned",
        }
    }

    /// Stable name (metrics `endpoint` label, logs, job payloads).
    pub fn name(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Orders => "orders",
            Self::Customers => "customers",
            Self::AbandonedCarts => "abandoned_carts",
        }
    }
}

/// One page of a list. Walk with `page = 1, 2, …` while [`Page::has_more`].
#[derive(Debug, Clone)]
pub struct Page {
    /// The items as Salla sent them (shapes drift: parse them leniently).
    pub items: Vec<Value>,
    pub current_page: u32,
    pub total_pages: u32,
    /// Items in the whole list, when Salla said.
    pub total: Option<u64>,
    pub per_page: u32,
}

impl Page {
    pub fn has_more(&self) -> bool {
        self.current_page < self.total_pages
    }
}

/// `GET /store/info` (reference §2.6): what we keep of it; every field but the id is optional.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreInfo {
    #[serde(deserialize_with = "lenient::merchant_id")]
    pub id: MerchantId,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    /// `basic`, `plus`, `pro` or `special`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub plan: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub entity: Option<String>,
    /// `demo`, `development` or `live`.
    #[serde(rename = "type", default, deserialize_with = "lenient::opt_string")]
    pub store_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub avatar: Option<String>,
}

/// `data` of a success envelope (the whole body when there is no envelope).
pub(super) fn data(mut body: Value) -> Result<Value, SallaApiError> {
    if let Some(data) = body.get_mut("data") {
        return Ok(data.take());
    }
    if body.is_object() {
        return Err(SallaApiError::Decode("answer without `data`".into()));
    }
    Ok(body)
}

/// A list answer: `data` (an array; `null` is empty) and `pagination {count, total, perPage, currentPage,
/// totalPages, links}` with numbers or numeric strings. Without pagination the answer is the only page.
pub(super) fn parse_page(
    mut body: Value,
    requested: u32,
    per_page: u32,
) -> Result<Page, SallaApiError> {
    let items = match body.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(SallaApiError::Decode(format!(
                "list `data` is not an array: {}",
                truncated(&other.to_string())
            )));
        }
    };
    let pagination = body.get("pagination").filter(|p| p.is_object());
    let number = |key: &str| pagination.and_then(|p| lenient::as_u64(&p[key]));
    let current_page = number("currentPage").map_or(requested, saturating_u32);
    Ok(Page {
        items,
        current_page,
        total_pages: number("totalPages").map_or(current_page, saturating_u32),
        total: number("total"),
        per_page: number("perPage").map_or(per_page, saturating_u32),
    })
}

fn saturating_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_page_reads_salla_pagination_with_object_or_array_links_and_string_numbers() {
        let orders = json!({
            "status": 200, "success": true,
            "data": [{"id": 1017120475}, {"id": 1013578136}],
            "pagination": {"count": 2, "total": 122, "perPage": 60, "currentPage": 1, "totalPages": 3, "links": {}}
        });
        let page = parse_page(orders, 1, 60).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            (
                page.current_page,
                page.total_pages,
                page.total,
                page.per_page
            ),
            (1, 3, Some(122), 60)
        );
        assert!(page.has_more());

        let customers = json!({
            "data": [{"id": 2075683582}],
            "pagination": {"count": "1", "total": "121", "perPage": "60", "currentPage": "3", "totalPages": "3", "links": []}
        });
        let page = parse_page(customers, 3, 60).unwrap();
        assert_eq!(
            (page.current_page, page.total_pages, page.total),
            (3, 3, Some(121))
        );
        assert!(!page.has_more());
    }

    #[test]
    fn a_list_without_pagination_is_a_single_page_and_null_data_is_empty() {
        let page = parse_page(
            json!({"status": 200, "success": true, "data": [{"id": 1}]}),
            1,
            60,
        )
        .unwrap();
        assert_eq!(
            (
                page.items.len(),
                page.current_page,
                page.total_pages,
                page.total
            ),
            (1, 1, 1, None)
        );
        assert!(!page.has_more());
        let page = parse_page(
            json!({"data": null, "pagination": {"totalPages": 0}}),
            1,
            60,
        )
        .unwrap();
        assert!(page.items.is_empty());
        assert!(!page.has_more());
        assert!(matches!(
            parse_page(json!({"data": {"id": 1}}), 1, 60),
            Err(SallaApiError::Decode(_))
        ));
    }

    #[test]
    fn store_info_tolerates_numbers_as_strings_and_missing_fields() {
        let info: StoreInfo = serde_json::from_value(json!({
            "id": "1305146709", "name": "متجر", "plan": "pro", "type": "live", "currency": "SAR",
            "email": null, "licenses": {"tax_number": 1}
        }))
        .unwrap();
        assert_eq!(info.id, MerchantId::new(1_305_146_709));
        assert_eq!(info.plan.as_deref(), Some("pro"));
        assert_eq!(info.store_type.as_deref(), Some("live"));
        assert_eq!(info.email, None);
        assert_eq!(info.domain, None);
    }

    #[test]
    fn resources_have_salla_paths_and_stable_names() {
        let paths: Vec<_> = Resource::ALL.iter().map(|r| r.path()).collect();
        assert_eq!(
            paths,
            ["/products", "/orders", "/customers", "/carts/abandoned"]
        );
        assert_eq!(
            serde_json::to_value(Resource::AbandonedCarts).unwrap(),
            "abandoned_carts"
        );
        assert_eq!(Resource::AbandonedCarts.name(), "abandoned_carts");
    }
}
