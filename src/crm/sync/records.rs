//! Building CRM records from the CURRENT tenant rows, mapped to the manifest's objects and fields
//! (`config/crm-model.json`). Reading the row at push time, not at change time, is what makes pushes
//! idempotent and ordered: whatever happened in between, the latest state is what Twenty gets.

use crate::commerce::read::customer_orders;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The objects the outbox tracks: `name()` is both the outbox `object` and the manifest's `nameSingular`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncObject {
    Person,
    SallaProduct,
    SallaOrder,
    SallaCart,
}

impl SyncObject {
    pub const ALL: [Self; 4] = [
        Self::Person,
        Self::SallaProduct,
        Self::SallaOrder,
        Self::SallaCart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::SallaProduct => "sallaProduct",
            Self::SallaOrder => "sallaOrder",
            Self::SallaCart => "sallaCart",
        }
    }

    /// The REST path segment (`namePlural`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Person => "people",
            Self::SallaProduct => "sallaProducts",
            Self::SallaOrder => "sallaOrders",
            Self::SallaCart => "sallaCarts",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// `(external_id, record)` of the rows whose Salla id is in `$1` (bigint[]).
    fn query(self) -> &'static str {
        match self {
            Self::Person => PERSON,
            Self::SallaProduct => PRODUCT,
            Self::SallaOrder => ORDER,
            Self::SallaCart => CART,
        }
    }
}

/// customers → person. The aggregates count the customer's orders that are neither deleted nor canceled.
const PERSON: &str = concat!("\
SELECT c.salla_id::text, jsonb_build_object(
    'name', jsonb_build_object('firstName', coalesce(c.first_name, ''), 'lastName', coalesce(c.last_name, '')),
    'emails', jsonb_build_object('primaryEmail', c.email),
    'phones', jsonb_build_object(
        'primaryPhoneNumber', CASE WHEN c.mobile_code IS NOT NULL AND starts_with(c.mobile, c.mobile_code)
                                   THEN substr(c.mobile, length(c.mobile_code) + 1) ELSE c.mobile END,
        'primaryPhoneCallingCode', c.mobile_code,
        'primaryPhoneCountryCode', c.country_code),
    'city', c.city,
    'externalId', c.salla_id::text,
    'sallaCustomerId', c.salla_id::text,
    'totalSpent', coalesce(a.total_spent, 0)::float8,
    'ordersCount', coalesce(a.orders_count, 0),
    'lastOrderDate', a.last_order_at)
FROM customers c
LEFT JOIN LATERAL (", customer_orders!("c"), ") a ON true
WHERE c.salla_id = ANY($1)");

/// products → sallaProduct. The built-in `name` holds the product name; a deleted product is ARCHIVED.
const PRODUCT: &str = "\
SELECT p.salla_id::text, jsonb_build_object(
    'name', p.name,
    'externalId', p.salla_id::text,
    'sallaProductId', p.salla_id::text,
    'description', p.raw->>'description',
    'price', coalesce(p.sale_price, p.price)::float8,
    'comparePrice', (CASE WHEN p.sale_price IS NOT NULL THEN coalesce(p.regular_price, p.price) END)::float8,
    'stockQuantity', p.quantity,
    'sku', p.sku,
    'mainImage', p.main_image,
    'categories', p.categories,
    'brandId', p.brand->>'id',
    'canonicalUrl', p.url,
    'status', CASE WHEN p.deleted_at IS NOT NULL THEN 'ARCHIVED' WHEN p.status = 'hidden' THEN 'DRAFT' ELSE 'ACTIVE' END)
FROM products p
WHERE p.salla_id = ANY($1)";

/// orders (with their items) → sallaOrder.
const ORDER: &str = "\
SELECT o.salla_id::text, jsonb_build_object(
    'name', 'Order #' || coalesce(o.reference_id, o.salla_id::text),
    'externalId', o.salla_id::text,
    'orderId', o.salla_id::text,
    'orderNumber', o.reference_id,
    'customer', jsonb_build_object('id', o.customer_salla_id, 'name', o.customer_name,
                                   'mobile', o.customer_mobile, 'email', o.customer_email),
    'status', CASE
        WHEN o.deleted_at IS NOT NULL OR o.status_slug = 'canceled' THEN 'CANCELED'
        WHEN o.status_slug IN ('completed', 'delivered') THEN 'COMPLETED'
        WHEN o.status_slug IN ('restored', 'restoring') THEN 'REFUNDED'
        WHEN o.status_slug IS NULL OR o.status_slug IN ('payment_pending', 'under_review') THEN 'PENDING'
        ELSE 'CONFIRMED' END,
    'currencyCode', o.currency,
    'subtotal', o.sub_total::float8,
    'total', o.total::float8,
    'totalTax', o.tax::float8,
    'totalDiscount', o.discount::float8,
    'totalShipping', o.shipping_cost::float8,
    'lineItems', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'id', i.salla_id, 'productId', i.product_salla_id, 'name', i.name, 'sku', i.sku,
                      'quantity', i.quantity, 'price', i.price::float8, 'total', i.total::float8) ORDER BY i.id), '[]')
                    FROM order_items i WHERE i.order_salla_id = o.salla_id),
    'shippingAddress', jsonb_build_object('country', o.shipping_country, 'city', o.shipping_city),
    'paymentMethod', o.payment_method,
    'placedAt', o.ordered_at)
FROM orders o
WHERE o.salla_id = ANY($1)";

/// abandoned_carts → sallaCart. recoveryStatus is sent only once the cart is purchased, so that what the
/// merchant set in the CRM (CONTACTED, LOST) is not overwritten by every cart update.
const CART: &str = "\
SELECT c.salla_id::text, jsonb_build_object(
    'name', 'Cart ' || c.salla_id::text,
    'externalId', c.salla_id::text,
    'sallaCartId', c.salla_id::text,
    'customerId', c.customer_salla_id::text,
    'total', c.total::float8,
    'itemCount', c.items_count,
    'items', coalesce(c.raw->'items', '[]'::jsonb),
    'abandonedAt', coalesce(c.source_updated_at, c.source_created_at))
    || CASE WHEN c.status = 'purchased' THEN '{\"recoveryStatus\": \"RECOVERED\"}'::jsonb ELSE '{}'::jsonb END
FROM abandoned_carts c
WHERE c.salla_id = ANY($1)";

/// Namespace of the deterministic record ids (a UUIDv4 minted once for Wosool).
const RECORD_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2c3a_8e4b_4b7e_9a51_3c0d_7e2f_9a10);

/// The Twenty record id of a Salla record: UUIDv5 of (object, Salla id), stable across pushes.
pub fn record_id(object: SyncObject, external_id: &str) -> Uuid {
    uuid_v5(
        RECORD_NAMESPACE,
        format!("{}:{external_id}", object.name()).as_bytes(),
    )
}

/// The records of `object` whose external ids are given, built from the current rows with their `id`.
/// Ids that name no row (or are not Salla ids) are absent from the result.
pub async fn load(
    db: &PgPool,
    object: SyncObject,
    external_ids: &[String],
) -> Result<Vec<(String, Value)>, sqlx::Error> {
    let ids: Vec<i64> = external_ids
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let rows: Vec<(String, Value)> = sqlx::query_as(object.query())
        .bind(&ids)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(external_id, mut record)| {
            if let Value::Object(fields) = &mut record {
                fields.insert(
                    "id".into(),
                    Value::String(record_id(object, &external_id).to_string()),
                );
            }
            (external_id, record)
        })
        .collect())
}

/// RFC 9562 §5.5 name-based UUID (SHA-1). Hand-rolled because the `uuid` crate's `v5` feature is not enabled.
fn uuid_v5(namespace: Uuid, name: &[u8]) -> Uuid {
    let mut input = namespace.as_bytes().to_vec();
    input.extend_from_slice(name);
    let digest = sha1(&input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// SHA-1 (FIPS 180-4), only for UUIDv5: not used for anything security-related.
fn sha1(message: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
    for block in padded.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::model::Manifest;

    #[test]
    fn uuid_v5_matches_the_rfc_example() {
        // RFC 9562 Appendix A.4: www.example.com in the DNS namespace.
        let dns = Uuid::from_u128(0x6ba7_b810_9dad_11d1_80b4_00c0_4fd4_30c8);
        assert_eq!(
            uuid_v5(dns, b"www.example.com").to_string(),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
    }

    #[test]
    fn record_ids_are_deterministic_per_object() {
        let id = record_id(SyncObject::SallaOrder, "42");
        assert_eq!(id, record_id(SyncObject::SallaOrder, "42"));
        assert_ne!(id, record_id(SyncObject::SallaCart, "42"));
        assert_eq!(id.get_version_num(), 5);
    }

    #[test]
    fn objects_are_the_manifest_objects() {
        let manifest = Manifest::load().unwrap();
        for object in SyncObject::ALL {
            assert!(
                manifest
                    .fields_of(object.name())
                    .iter()
                    .any(|f| f.name == "externalId"),
                "{} has an externalId in the manifest",
                object.name()
            );
            if let Some(def) = manifest.object(object.name()) {
                assert_eq!(def.name_plural, object.plural());
            }
        }
    }
}
