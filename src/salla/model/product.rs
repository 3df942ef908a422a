//! A product and its variants, as Salla sends them in product lists, product details and product webhooks.

use serde_json::Value;
use time::{Date, OffsetDateTime};

use super::ModelError;
use super::time::date_of;
use super::values::{Amount, Fields};

// ---------------------------------------------------------------------------------------------------------
// Product
// ---------------------------------------------------------------------------------------------------------

/// A product: `GET /products` items, product details, `product.created`/`product.updated` webhooks. Granular
/// `product.*.updated` events parse into the same type with only the fields they carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub name: Option<String>,
    /// `None` for Salla's `""` (no SKU).
    pub sku: Option<String>,
    pub mpn: Option<String>,
    pub gtin: Option<String>,
    /// Salla's `type`: product, service, group_products, codes, digital, food, donating, booking, …
    pub product_type: Option<String>,
    /// sale, hidden, out.
    pub status: Option<String>,
    pub is_available: Option<bool>,
    pub price: Option<Amount>,
    /// `None` when there is no sale (Salla sends `{amount: 0}` or `{}`).
    pub sale_price: Option<Amount>,
    /// `sale_end`, or `sale_price.expired_at` in `product.price.updated`.
    pub sale_end: Option<Date>,
    pub regular_price: Option<Amount>,
    /// `cost_price` (`"35"`), or `cost` in `product.price.updated`.
    pub cost_price: Option<Amount>,
    pub taxed_price: Option<Amount>,
    /// `price.currency`, else `currency`.
    pub currency: Option<String>,
    pub quantity: Option<i64>,
    pub unlimited_quantity: Option<bool>,
    pub sold_quantity: Option<i64>,
    /// The storefront URL: `url`, else `urls.customer`.
    pub url: Option<String>,
    /// The main image URL (a string in the API, `{url, …}` in `product.image.updated`).
    pub main_image: Option<String>,
    pub categories: Vec<Value>,
    pub tags: Vec<Value>,
    pub brand: Option<Value>,
    pub channels: Vec<String>,
    pub skus: Vec<ProductSku>,
    pub updated_at: Option<OffsetDateTime>,
    pub raw: Value,
}

/// A product variant (`skus[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSku {
    pub id: Option<i64>,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: Option<Amount>,
    /// `None` for `{}`.
    pub sale_price: Option<Amount>,
    pub regular_price: Option<Amount>,
    pub cost_price: Option<Amount>,
    /// `stock_quantity` (`"10"`).
    pub stock_quantity: Option<i64>,
    pub unlimited_quantity: Option<bool>,
}

impl Product {
    /// Reads a product object; only `id` is required.
    pub fn from_value(raw: Value) -> Result<Product, ModelError> {
        let f = Fields::of(&raw)?;
        let price = f.amount("price");
        let sale = f.get("sale_price");
        let product = Product {
            id: f.id("id")?,
            name: f.text("name"),
            sku: f.text("sku"),
            mpn: f.text("mpn"),
            gtin: f.text("gtin"),
            product_type: f.text("type"),
            status: f.text("status"),
            is_available: f.flag("is_available"),
            currency: price
                .as_ref()
                .and_then(|price| price.currency.clone())
                .or_else(|| f.text("currency")),
            price,
            sale_price: sale.and_then(Amount::from_json).and_then(Amount::nonzero),
            sale_end: f.date("sale_end").or_else(|| {
                sale.and_then(|sale| sale.get("expired_at"))
                    .and_then(date_of)
            }),
            regular_price: f.amount("regular_price"),
            cost_price: f.amount("cost_price").or_else(|| f.amount("cost")),
            taxed_price: f.amount("taxed_price"),
            quantity: f.int("quantity"),
            unlimited_quantity: f.flag("unlimited_quantity"),
            sold_quantity: f.int("sold_quantity"),
            url: f
                .text("url")
                .or_else(|| f.object("urls").and_then(|urls| urls.text("customer"))),
            main_image: f
                .text("main_image")
                .or_else(|| f.object("main_image").and_then(|image| image.text("url"))),
            categories: f.list("categories"),
            tags: f.list("tags"),
            brand: f.json("brand"),
            channels: f.strings("channels"),
            skus: f
                .array("skus")
                .map(|skus| skus.iter().filter_map(ProductSku::from_json).collect())
                .unwrap_or_default(),
            updated_at: f.time("updated_at"),
            raw: Value::Null,
        };
        Ok(Product { raw, ..product })
    }

    /// Units in stock; `None` when unlimited (`unlimited_quantity: true`) or unknown.
    pub fn stock(&self) -> Option<i64> {
        if self.unlimited_quantity == Some(true) {
            return None;
        }
        self.quantity
    }
}

impl ProductSku {
    fn from_json(value: &Value) -> Option<ProductSku> {
        let f = Fields::of(value).ok()?;
        Some(ProductSku {
            id: f.opt_id("id"),
            sku: f.text("sku"),
            barcode: f.text("barcode"),
            price: f.amount("price"),
            sale_price: f.amount("sale_price").and_then(Amount::nonzero),
            regular_price: f.amount("regular_price"),
            cost_price: f.amount("cost_price"),
            stock_quantity: f.int("stock_quantity"),
            unlimited_quantity: f.flag("unlimited_quantity"),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;
    use crate::salla::model::tests::{amount_of, fixture_data, money};

    #[test]
    fn api_product_details_parse() {
        let product = Product::from_value(fixture_data("api-product-details.json")).unwrap();
        assert_eq!(product.id, 1672932878);
        assert_eq!(product.sku.as_deref(), Some("23-TD23-32"));
        assert_eq!(amount_of(&product.price), Some(money("100")));
        assert_eq!(product.currency.as_deref(), Some("SAR"));
        assert_eq!(
            amount_of(&product.cost_price),
            Some(money("35")),
            "a string"
        );
        assert_eq!(product.sale_price, None, "amount 0 is no sale");
        assert_eq!(product.sale_end, Some(date!(2025 - 06 - 23)));
        assert_eq!(product.quantity, Some(0));
        assert_eq!(product.stock(), None, "unlimited");
        assert_eq!(
            product.updated_at,
            Some(datetime!(2024-03-06 13:50:32 +03:00))
        );
        assert_eq!(product.channels, ["web", "app"]);
        assert_eq!(product.skus.len(), 4);
        assert_eq!(product.skus[1].stock_quantity, Some(10), "a string");
        assert_eq!(product.skus[1].sale_price, None, "{{}}");
        assert_eq!(product.skus[1].barcode.as_deref(), Some("abc01"));
        assert!(product.main_image.is_some());
    }

    #[test]
    fn webhook_product_and_list_quirks() {
        let product = Product::from_value(fixture_data("product.created.json")).unwrap();
        assert_eq!(product.sku, None, "an empty SKU");
        assert_eq!(product.quantity, Some(20));
        assert_eq!(product.stock(), Some(20));
        assert_eq!(product.brand, None);
        assert_eq!(
            product.url.as_deref().map(|u| u.ends_with("p1025569331")),
            Some(true)
        );
        let listed = Product::from_value(json!({"id": "5", "name": "Shirt", "quantity": "50",
            "price": {"amount": "20.00", "currency": "SAR"}, "sale_price": {}, "cost_price": null,
            "urls": {"customer": "https://s/p5"}, "main_image": "https://i"}))
        .unwrap();
        assert_eq!(listed.quantity, Some(50));
        assert_eq!(listed.sale_price, None);
        assert_eq!(listed.cost_price, None);
        assert_eq!(listed.url.as_deref(), Some("https://s/p5"));
        assert!(Product::from_value(json!({"name": "no id"})).is_err());
        assert!(Product::from_value(json!([])).is_err());
    }
}
