-- Indexes the merchant app's screens need to answer fast on a store with 50k orders and 10k customers
-- (src/web/, src/dashboard/commerce/insights.rs; checked with EXPLAIN, see docs/merchant-app.md).

-- Customers, newest first (the Customers screen's default order, and /api/customers'): the listing walks this
-- index and stops at the page size instead of sorting every customer with its purchase aggregates.
CREATE INDEX customers_created_at_idx ON customers (created_at DESC, id DESC);

-- Home's abandoned-cart KPIs count carts started in a window (Salla's created_at, else when first seen).
CREATE INDEX abandoned_carts_started_idx ON abandoned_carts ((COALESCE(source_created_at, created_at)));

-- Orders filtered by payment method (the Orders screen's filter), newest first.
CREATE INDEX orders_payment_method_idx ON orders (payment_method, ordered_at DESC) WHERE payment_method IS NOT NULL;
