-- Salla stores (DESIGN §4; shared/reference/salla.md §1.5): one row per merchant (store) that installed the app,
-- with its OAuth tokens sealed by `secrets::Keyring` (AES-256-GCM; key_id names the key), the install lifecycle
-- and the app subscription. The row is the per-store lock for token changes (SELECT … FOR UPDATE): refresh
-- tokens are single-use, so two refreshes must never race.
CREATE TABLE salla_stores (
    merchant_id            bigint      PRIMARY KEY,
    tenant_id              uuid        UNIQUE REFERENCES tenants (id),
    -- installed: tokens usable; needs_reinstall: Salla revoked the tokens (invalid_grant), nothing works until
    -- the merchant reinstalls; uninstalled: app removed (tokens deleted).
    status                 text        NOT NULL DEFAULT 'pending'
                                       CHECK (status IN ('pending', 'installed', 'needs_reinstall', 'uninstalled')),
    key_id                 text,
    access_token           bytea,
    refresh_token          bytea,
    access_expires_at      timestamptz,
    refresh_obtained_at    timestamptz,
    scope                  text,
    -- Bumped by every token change (authorize webhook or refresh): a refresh that read version N and finds
    -- N+1 under the lock reuses the newer tokens instead of spending the (now stale) refresh token.
    token_version          bigint      NOT NULL DEFAULT 0,
    last_refresh_at        timestamptz,
    last_refresh_error     text,
    -- From oauth2/user/info and store/info.
    store_name             text,
    store_domain           text,
    store_plan             text,
    owner_email            text,
    owner_name             text,
    -- Requests per minute the Merchant API allows this store (plan default, corrected from X-RateLimit-Limit).
    rate_limit_per_minute  integer,
    -- App subscription (app.trial.* / app.subscription.*): state, plan name and dates.
    subscription_status    text        CHECK (subscription_status IN ('trial', 'active', 'expired', 'canceled')),
    subscription_plan      text,
    subscription_started_at timestamptz,
    subscription_ends_at   timestamptz,
    subscription           jsonb,
    installed_at           timestamptz,
    -- When the first full import was enqueued (the onboarding chain does it once; re-scans are periodic).
    import_requested_at    timestamptz,
    -- Store webhooks registered through the API (salla.webhook_subscribe_url), once.
    webhooks_registered_at timestamptz,
    uninstalled_at         timestamptz,
    last_event_at          timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((access_token IS NULL) = (key_id IS NULL))
);

-- The proactive refresh sweep: installed stores whose access token expires soon.
CREATE INDEX salla_stores_expiring ON salla_stores (access_expires_at) WHERE status = 'installed';

COMMENT ON TABLE salla_stores IS
    'Salla stores that installed the app: sealed OAuth tokens (single-use rotating refresh token), install state, subscription.';

-- Salla deliveries whose signature verified but whose body is not a JSON event are kept for inspection.
ALTER TABLE webhook_inbox DROP CONSTRAINT webhook_inbox_status_check;
ALTER TABLE webhook_inbox ADD CONSTRAINT webhook_inbox_status_check
    CHECK (status IN ('pending', 'processed', 'ignored', 'failed', 'rejected'));
-- The raw body of a rejected delivery (payload then holds only what could be said about it).
ALTER TABLE webhook_inbox ADD COLUMN raw_body text;
-- A store's latest deliveries (admin: last webhook of a store).
CREATE INDEX webhook_inbox_salla_merchant ON webhook_inbox ((payload ->> 'merchant'), received_at)
    WHERE provider = 'salla';
