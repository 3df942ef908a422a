-- Webhook subscriptions through the Merchant API are read back and checked (src/salla/subscriptions.rs): when
-- that last happened, and the events not registered as they should be ([{event, problem}], empty when all are).
ALTER TABLE salla_stores
    ADD COLUMN webhooks_checked_at timestamptz,
    ADD COLUMN webhook_drift       jsonb;
