-- Commerce data imported from the merchant's Salla store (DESIGN §4; shared/reference/salla.md §2.4, §2.5):
-- bulk import through the Merchant API, then webhooks and periodic re-scans.
--
-- Conventions for every table here:
-- - salla_id is Salla's integer id (ids exceed i32); it is the upsert key. The surrogate id is ours.
-- - Money is numeric(14,2) (Salla sends numbers or numeric strings; never parse them as floats), in the
--   currency of the row's currency column.
-- - raw holds the latest full source payload (API item or webhook data) as received, so fields without a
--   column are never lost.
-- - source_updated_at is Salla's own updated_at when the payload has one: upserts skip payloads older than
--   the stored row. synced_at is when we last wrote the row from Salla.
-- - Salla's enumerations (statuses, types, gender) are stored as received and not CHECKed: an unknown
--   value from upstream must not stall the sync.
-- - Relations between Salla objects carry Salla ids without foreign keys (webhooks arrive in any order),
--   except order items, which only ever arrive with their order.

CREATE TABLE customers (
    id                        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    salla_id                  bigint      NOT NULL UNIQUE,
    first_name                text,
    last_name                 text,
    email                     text,
    -- Full international number, '+' then country code then number ('+966501806978'): Salla sends the
    -- number (without code, sometimes as a JSON number) and mobile_code ('966' or '+966') separately.
    mobile                    text,
    -- The country calling code as '+966'.
    mobile_code               text,
    gender                    text,
    birthday                  date,
    city                      text,
    -- Country name as Salla shows it (Arabic, or 'السعودية | Saudi Arabia'); country_code is ISO 3166 ('SA').
    country                   text,
    country_code              text,
    -- The customer's preferred currency.
    currency                  text,
    -- Salla's free-text address; its string 'null' is stored as NULL.
    location                  text,
    avatar                    text,
    -- Ids of the Salla customer groups the customer belongs to.
    groups                    jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(groups) = 'array'),
    is_notifications_enabled  boolean,
    raw                       jsonb       NOT NULL CHECK (jsonb_typeof(raw) = 'object'),
    source_updated_at         timestamptz,
    synced_at                 timestamptz NOT NULL DEFAULT now(),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX customers_email_idx ON customers (lower(email));
CREATE INDEX customers_mobile_idx ON customers (mobile);

COMMENT ON TABLE customers IS
    'Store customers from Salla: GET /customers and the customer.created/updated/login webhooks. One row per Salla customer id.';
COMMENT ON COLUMN customers.mobile IS
    'International form ''+<code><number>'' built from Salla''s mobile and mobile_code.';

CREATE TABLE products (
    id                 bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    salla_id           bigint        NOT NULL UNIQUE,
    name               text          NOT NULL,
    -- Salla sends '' for a product without SKU; stored as NULL.
    sku                text,
    mpn                text,
    gtin               text,
    -- Salla product type: product, service, group_products, codes, digital, food, donating, booking, ...
    type               text,
    -- Salla status: sale, hidden, out.
    status             text,
    is_available       boolean,
    price              numeric(14,2),
    -- NULL when there is no sale (Salla sends amount 0 or {}).
    sale_price         numeric(14,2),
    sale_end           date,
    regular_price      numeric(14,2),
    cost_price         numeric(14,2),
    currency           text,
    -- NULL means unlimited (Salla unlimited_quantity = true).
    quantity           integer,
    sold_quantity      integer,
    url                text,
    main_image         text,
    -- Salla categories (objects) and tags, as received.
    categories         jsonb         NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(categories) = 'array'),
    tags               jsonb         NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(tags) = 'array'),
    -- Salla brand object, or NULL.
    brand              jsonb,
    -- Set by product.deleted; the row stays so that order history keeps its product.
    deleted_at         timestamptz,
    raw                jsonb         NOT NULL CHECK (jsonb_typeof(raw) = 'object'),
    source_updated_at  timestamptz,
    synced_at          timestamptz   NOT NULL DEFAULT now(),
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX products_sku_idx ON products (sku) WHERE sku IS NOT NULL;

COMMENT ON TABLE products IS
    'Store products from Salla: GET /products, GET /products/{id} and the product.* webhooks. Variants (skus), options and images stay in raw.';
COMMENT ON COLUMN products.quantity IS 'Stock quantity; NULL means unlimited.';

CREATE TABLE orders (
    id                 bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    salla_id           bigint        NOT NULL UNIQUE,
    -- The order number the merchant and the customer see (Salla sends it as a number).
    reference_id       text,
    -- Salla status: id, slug (payment_pending, under_review, in_progress, completed, delivering, delivered,
    -- shipped, canceled, restored, restoring; custom statuses keep their original slug) and display name.
    status_id          bigint,
    status_slug        text,
    status_name        text,
    -- No foreign key: an order can arrive before its customer.
    customer_salla_id  bigint,
    -- The customer as recorded on the order, for listing orders without a join.
    customer_name      text,
    customer_mobile    text,
    customer_email     text,
    total              numeric(14,2),
    sub_total          numeric(14,2),
    shipping_cost      numeric(14,2),
    cash_on_delivery   numeric(14,2),
    -- Sum of amounts.discounts[].discount.
    discount           numeric(14,2),
    tax                numeric(14,2),
    currency           text,
    payment_method     text,
    -- Units ordered: the sum of item quantities.
    items_count        integer,
    -- Sales channel ('store', ...) and device.
    source             text,
    source_device      text,
    shipping_country   text,
    shipping_city      text,
    -- Salla's order date (data.date).
    ordered_at         timestamptz   NOT NULL,
    -- Set by order.deleted; the row stays for reporting.
    deleted_at         timestamptz,
    raw                jsonb         NOT NULL CHECK (jsonb_typeof(raw) = 'object'),
    -- NULL when only the list item was seen (List Orders has no updated_at).
    source_updated_at  timestamptz,
    synced_at          timestamptz   NOT NULL DEFAULT now(),
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX orders_ordered_at_idx ON orders (ordered_at DESC, id DESC);
CREATE INDEX orders_customer_idx ON orders (customer_salla_id, ordered_at DESC) WHERE customer_salla_id IS NOT NULL;
CREATE INDEX orders_status_idx ON orders (status_slug, ordered_at DESC);
CREATE INDEX orders_reference_idx ON orders (reference_id);

COMMENT ON TABLE orders IS
    'Store orders from Salla: GET /orders (and order details) and the order.* webhooks. One row per Salla order id.';
COMMENT ON COLUMN orders.status_name IS
    'Status name as shown to the merchant (Arabic by default); order.status.updated sends this as data.status.';

CREATE TABLE order_items (
    id                bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Salla's order item id (List Orders items have none: items come from order details or webhooks).
    salla_id          bigint        NOT NULL UNIQUE,
    order_salla_id    bigint        NOT NULL REFERENCES orders (salla_id) ON DELETE CASCADE,
    -- No foreign key: the product may be unknown or deleted.
    product_salla_id  bigint,
    name              text          NOT NULL,
    sku               text,
    quantity          integer       NOT NULL,
    -- Unit price without tax (amounts.price_without_tax).
    price             numeric(14,2),
    -- amounts.total_discount, amounts.tax.amount and amounts.total of the line.
    discount          numeric(14,2),
    tax               numeric(14,2),
    total             numeric(14,2),
    currency          text,
    raw               jsonb         NOT NULL CHECK (jsonb_typeof(raw) = 'object'),
    synced_at         timestamptz   NOT NULL DEFAULT now(),
    created_at        timestamptz   NOT NULL DEFAULT now(),
    updated_at        timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX order_items_order_idx ON order_items (order_salla_id);
CREATE INDEX order_items_product_idx ON order_items (product_salla_id) WHERE product_salla_id IS NOT NULL;

COMMENT ON TABLE order_items IS
    'Lines of Salla orders, from order details, GET /orders/items and the order.* webhooks; deleted with their order.';

CREATE TABLE abandoned_carts (
    id                 bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    salla_id           bigint        NOT NULL UNIQUE,
    customer_salla_id  bigint,
    -- The customer as recorded on the cart; mobile is already international ('+966…').
    customer_name      text,
    customer_mobile    text,
    customer_email     text,
    total              numeric(14,2),
    subtotal           numeric(14,2),
    total_discount     numeric(14,2),
    currency           text,
    -- Units in the cart: the sum of item quantities.
    items_count        integer,
    checkout_url       text,
    coupon_code        text,
    -- Salla cart status (abandoned.cart.status.changed, abandoned.cart.purchased), e.g. 'purchased'.
    status             text,
    -- Salla's created_at. Salla's age_in_minutes counts from it, so it is not stored: age is
    -- now() - source_created_at (for the legacy shape without created_at: synced_at - age_in_minutes).
    source_created_at  timestamptz,
    raw                jsonb         NOT NULL CHECK (jsonb_typeof(raw) = 'object'),
    -- Salla's updated_at: the last activity on the cart.
    source_updated_at  timestamptz,
    synced_at          timestamptz   NOT NULL DEFAULT now(),
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX abandoned_carts_customer_idx ON abandoned_carts (customer_salla_id) WHERE customer_salla_id IS NOT NULL;
CREATE INDEX abandoned_carts_activity_idx ON abandoned_carts (source_updated_at DESC);

COMMENT ON TABLE abandoned_carts IS
    'Abandoned carts from Salla: GET /carts/abandoned and the abandoned.cart* and coupon.applied webhooks. Items stay in raw.';

CREATE TABLE sync_state (
    resource             text        PRIMARY KEY
                         CHECK (resource IN ('customers', 'products', 'orders', 'abandoned_carts')),
    status               text        NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'running', 'done', 'failed')),
    -- The Merchant API page to fetch next when a full import resumes (Salla pages are numbered from 1).
    next_page            integer     CHECK (next_page >= 1),
    items_synced         bigint      NOT NULL DEFAULT 0 CHECK (items_synced >= 0),
    -- pagination.total of the last page read.
    total_expected       bigint      CHECK (total_expected >= 0),
    -- When the running (or last) full import started.
    started_at           timestamptz,
    last_full_import_at  timestamptz,
    -- When we last applied a webhook event to this resource (Salla's envelope created_at is unreliable).
    last_event_at        timestamptz,
    last_error           text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE sync_state IS
    'Progress of the Salla import per resource: full import paging and counts, last webhook event, last error.';
