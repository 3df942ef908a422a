-- The durable webhook inbox (DESIGN §2 "Webhook path"), shared by every provider (Clerk, later Salla).
-- A delivery is stored here, after its signature is verified, in the same transaction that enqueues the job
-- processing it, so a 2xx answer means the delivery is durable. `(provider, dedupe_key)` makes redeliveries
-- (Svix keeps the same `svix-id`) no-ops.
CREATE TABLE webhook_inbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     text        NOT NULL,
    dedupe_key   text        NOT NULL,
    event_type   text        NOT NULL,
    -- The tenant the event turned out to concern, once processing knows it.
    tenant_id    uuid,
    payload      jsonb       NOT NULL,
    -- Relevant, non-secret delivery headers (message id, timestamp, user agent); never the signature.
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'processed', 'ignored', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    CONSTRAINT webhook_inbox_provider_dedupe_key_key UNIQUE (provider, dedupe_key)
);

-- Operators look for deliveries that are stuck or failed.
CREATE INDEX webhook_inbox_unfinished ON webhook_inbox (received_at) WHERE status IN ('pending', 'failed');
-- Event history of one tenant.
CREATE INDEX webhook_inbox_tenant ON webhook_inbox (tenant_id, received_at) WHERE tenant_id IS NOT NULL;
-- Order-independence checks look up earlier events about the same provider object (e.g. a Clerk org id).
CREATE INDEX webhook_inbox_object ON webhook_inbox (provider, event_type, (payload -> 'data' ->> 'id'));
