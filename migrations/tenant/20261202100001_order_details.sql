-- Imports at Salla's real rate limits (src/salla/details.rs): the lists are walked first, so totals, customers
-- and carts are complete early; order details (line items, amounts, customer) come afterwards, newest orders
-- first. An order whose details are still to fetch is marked, which is also the details walk's checkpoint.
ALTER TABLE orders ADD COLUMN details_needed boolean NOT NULL DEFAULT false;
CREATE INDEX orders_details_needed_idx ON orders (ordered_at DESC, salla_id DESC) WHERE details_needed;

-- The details walk has its progress row like the lists, and every walk records the rate it measured (items
-- per minute), which gives each an ETA.
ALTER TABLE sync_state DROP CONSTRAINT sync_state_resource_check;
ALTER TABLE sync_state ADD CONSTRAINT sync_state_resource_check
    CHECK (resource IN ('customers', 'products', 'orders', 'abandoned_carts', 'order_details'));
ALTER TABLE sync_state ADD COLUMN items_per_minute double precision CHECK (items_per_minute >= 0);

-- Tenants provisioned before this migration get the row too (idle: nothing to fetch until their next import).
INSERT INTO sync_state (resource) VALUES ('order_details') ON CONFLICT (resource) DO NOTHING;
