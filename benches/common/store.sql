-- A large store for the merchant-app benchmark (and EXPLAIN checks): :orders orders over the last 400 days,
-- :customers customers, :products products, two items per order, a cart per 20 orders. Deterministic
-- (no random()): the same numbers every run. Run with psql -v orders=50000 -v customers=10000 -v products=5000,
-- or through benches/common/mod.rs `fill_store`, which substitutes the three counts.
INSERT INTO products (salla_id, name, sku, status, is_available, price, currency, quantity, raw)
SELECT 900000000 + p, 'منتج ' || p, 'SKU-' || p, 'sale', true, (10 + p % 490)::numeric, 'SAR', 100, '{}'::jsonb
FROM generate_series(1, :products) p;

INSERT INTO customers (salla_id, first_name, last_name, email, mobile, mobile_code, city, country, country_code,
                       currency, raw, created_at)
SELECT 800000000 + c, 'عميل' , 'رقم ' || c, 'customer' || c || '@example.sa', '+9665' || lpad(c::text, 8, '0'),
       '+966', (ARRAY['الرياض', 'جدة', 'الدمام', 'مكة'])[1 + c % 4], 'السعودية', 'SA', 'SAR', '{}'::jsonb,
       now() - make_interval(days => (c * 37) % 420)
FROM generate_series(1, :customers) c;

INSERT INTO orders (salla_id, reference_id, status_slug, status_name, customer_salla_id, customer_name,
                    customer_mobile, customer_email, total, sub_total, shipping_cost, discount, tax, currency,
                    payment_method, items_count, source, ordered_at, raw)
SELECT 700000000 + o, (10000 + o)::text,
       (ARRAY['completed', 'delivered', 'in_progress', 'payment_pending', 'canceled', 'shipped'])[1 + o % 6],
       (ARRAY['مكتمل', 'تم التوصيل', 'قيد التنفيذ', 'بانتظار الدفع', 'ملغي', 'تم الشحن'])[1 + o % 6],
       800000000 + 1 + (o * 7919) % :customers, 'عميل رقم ' || (1 + (o * 7919) % :customers),
       '+9665' || lpad((1 + (o * 7919) % :customers)::text, 8, '0'),
       'customer' || (1 + (o * 7919) % :customers) || '@example.sa',
       (50 + o % 950)::numeric, (45 + o % 900)::numeric, 15, 0, 7.5, 'SAR',
       (ARRAY['mada', 'credit_card', 'cod', 'apple_pay'])[1 + o % 4], 2, 'store',
       now() - make_interval(mins => (o * 11) % (400 * 1440)), '{}'::jsonb
FROM generate_series(1, :orders) o;

INSERT INTO order_items (salla_id, order_salla_id, product_salla_id, name, sku, quantity, price, total, currency, raw)
SELECT 600000000 + o * 2 + i, 700000000 + o, 900000000 + 1 + (o * 31 + i) % :products,
       'منتج ' || (1 + (o * 31 + i) % :products), 'SKU-' || (1 + (o * 31 + i) % :products), 1,
       (20 + o % 400)::numeric, (20 + o % 400)::numeric, 'SAR', '{}'::jsonb
FROM generate_series(1, :orders) o, generate_series(0, 1) i;

INSERT INTO abandoned_carts (salla_id, customer_salla_id, customer_name, total, subtotal, currency, items_count,
                             status, source_created_at, source_updated_at, raw)
SELECT 500000000 + k, 800000000 + 1 + (k * 13) % :customers, 'عميل رقم ' || (1 + (k * 13) % :customers),
       (80 + k % 700)::numeric, (80 + k % 700)::numeric, 'SAR', 1 + k % 4,
       (ARRAY['active', 'recovered', 'active', 'expired'])[1 + k % 4],
       now() - make_interval(hours => k * 3), now() - make_interval(hours => k * 3), '{}'::jsonb
FROM generate_series(1, greatest(:orders / 20, 1)) k;

ANALYZE;
