-- CRM record sync outbox (DESIGN §2 crm; shared/reference/twenty.md §3.3): which records of this tenant must be
-- pushed to its Twenty workspace.
--
-- Why triggers: customers, products, orders, order items and carts are written by many paths (bulk import with
-- COPY, webhooks, re-scans, admin fixes) and will be by more. A trigger records the change in the same
-- transaction as the write, by construction: a change can neither commit without its outbox row nor be
-- recorded without committing, and no writer has to remember to do it.
--
-- Why one row per record: the row names the record ((object, external_id): the manifest object and the Salla
-- id), not the change. Repeated writes coalesce into one pending row, and the sync job builds the record from
-- the CURRENT tenant row, so the latest state is what gets pushed and versions never reorder. changed_at moves
-- on every write; the job deletes a row it pushed only if changed_at is still what it read, so a write during
-- a push is pushed again. pending_since keeps the first unsynced change, for lag.
--
-- A person carries aggregates of the customer's orders (total spent, orders count, last order date), so order
-- writes that can change them also mark the customer's person. Salla records are soft-deleted (deleted_at), so
-- DELETE is not tracked. Rows already present when this migration runs are backfilled.

CREATE TABLE crm_outbox (
    object         text        NOT NULL CHECK (object IN ('person', 'sallaProduct', 'sallaOrder', 'sallaCart')),
    external_id    text        NOT NULL CHECK (external_id <> ''),
    pending_since  timestamptz NOT NULL DEFAULT clock_timestamp(),
    changed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts       integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error     text,
    last_attempt_at timestamptz,
    PRIMARY KEY (object, external_id)
);

CREATE INDEX crm_outbox_changed_idx ON crm_outbox (changed_at);

COMMENT ON TABLE crm_outbox IS
    'Records to push to the CRM, one pending row per record (coalesced), written by triggers on the commerce tables.';

-- Statement-level triggers with transition tables: a bulk COPY of 50k orders marks its records in one
-- INSERT … SELECT per statement rather than one call per row. clock_timestamp(), not now(), so that two
-- writes in one transaction get different changed_at values.

-- customers, products, abandoned_carts: the rows themselves (TG_ARGV[0] is the manifest object).
CREATE FUNCTION crm_outbox_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_outbox (object, external_id)
    SELECT DISTINCT TG_ARGV[0], salla_id::text FROM changed_rows
    ON CONFLICT (object, external_id) DO UPDATE SET changed_at = clock_timestamp();
    RETURN NULL;
END
$$;

-- orders: the orders, and the persons whose aggregates they can change (a new order; an update of the
-- customer, total, status, deletion or date; both the old and the new customer when it moves).
CREATE FUNCTION crm_outbox_orders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_outbox (object, external_id)
    SELECT DISTINCT 'sallaOrder', salla_id::text FROM changed_rows
    ON CONFLICT (object, external_id) DO UPDATE SET changed_at = clock_timestamp();
    IF TG_OP = 'INSERT' THEN
        INSERT INTO crm_outbox (object, external_id)
        SELECT DISTINCT 'person', customer_salla_id::text FROM changed_rows WHERE customer_salla_id IS NOT NULL
        ON CONFLICT (object, external_id) DO UPDATE SET changed_at = clock_timestamp();
    ELSE
        INSERT INTO crm_outbox (object, external_id)
        SELECT DISTINCT 'person', c.customer::text
          FROM changed_rows n JOIN previous_rows o ON o.id = n.id
         CROSS JOIN LATERAL (VALUES (n.customer_salla_id), (o.customer_salla_id)) AS c (customer)
         WHERE c.customer IS NOT NULL
           AND (n.customer_salla_id IS DISTINCT FROM o.customer_salla_id
                OR n.total IS DISTINCT FROM o.total
                OR n.status_slug IS DISTINCT FROM o.status_slug
                OR n.deleted_at IS DISTINCT FROM o.deleted_at
                OR n.ordered_at IS DISTINCT FROM o.ordered_at)
        ON CONFLICT (object, external_id) DO UPDATE SET changed_at = clock_timestamp();
    END IF;
    RETURN NULL;
END
$$;

-- order_items: the line items are part of their order's record.
CREATE FUNCTION crm_outbox_order_items() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_outbox (object, external_id)
    SELECT DISTINCT 'sallaOrder', order_salla_id::text FROM changed_rows
    ON CONFLICT (object, external_id) DO UPDATE SET changed_at = clock_timestamp();
    RETURN NULL;
END
$$;

-- A trigger with transition tables has one event, hence one trigger per table and event.
CREATE TRIGGER crm_outbox_customers_insert AFTER INSERT ON customers REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_rows('person');
CREATE TRIGGER crm_outbox_customers_update AFTER UPDATE ON customers REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_rows('person');
CREATE TRIGGER crm_outbox_products_insert AFTER INSERT ON products REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_rows('sallaProduct');
CREATE TRIGGER crm_outbox_products_update AFTER UPDATE ON products REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_rows('sallaProduct');
CREATE TRIGGER crm_outbox_abandoned_carts_insert AFTER INSERT ON abandoned_carts
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_rows('sallaCart');
CREATE TRIGGER crm_outbox_abandoned_carts_update AFTER UPDATE ON abandoned_carts
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_rows('sallaCart');
CREATE TRIGGER crm_outbox_orders_insert AFTER INSERT ON orders REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_orders();
CREATE TRIGGER crm_outbox_orders_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS previous_rows NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_orders();
CREATE TRIGGER crm_outbox_order_items_insert AFTER INSERT ON order_items REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_order_items();
CREATE TRIGGER crm_outbox_order_items_update AFTER UPDATE ON order_items REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_order_items();
CREATE TRIGGER crm_outbox_order_items_delete AFTER DELETE ON order_items REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_order_items();

-- Backfill: everything written before this migration is pending.
INSERT INTO crm_outbox (object, external_id)
SELECT 'person', salla_id::text FROM customers
UNION ALL SELECT 'sallaProduct', salla_id::text FROM products
UNION ALL SELECT 'sallaOrder', salla_id::text FROM orders
UNION ALL SELECT 'sallaCart', salla_id::text FROM abandoned_carts;
