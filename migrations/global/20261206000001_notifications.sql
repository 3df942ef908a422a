-- Notifications (src/notify/, docs/notifications.md): one row per delivery of a notice to one recipient on one
-- channel, so an operator can see what was sent to whom, when, and why not. A notice that reaches nobody (off,
-- or no channel configured) still gets one `skipped` row on channel `none`, saying why.
CREATE TABLE notifications (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The notice's kind (tenant_ready, sync_failing, provisioning_failed, …) and who it is for.
    kind        text        NOT NULL,
    audience    text        NOT NULL CHECK (audience IN ('merchant', 'operator')),
    -- The tenant it concerns, if any (no foreign key: the record outlives a purged tenant).
    tenant_id   uuid,
    channel     text        NOT NULL CHECK (channel IN ('email', 'webhook', 'none')),
    -- An email address, the webhook's host, or '' on channel none.
    recipient   text        NOT NULL,
    locale      text        NOT NULL,
    -- The same notice for the same tenant and period (e.g. sync_failing:<tenant>:<day>) goes to a recipient once.
    dedupe_key  text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts    integer     NOT NULL DEFAULT 0,
    subject     text        NOT NULL DEFAULT '',
    -- What the templates are filled with (names, links, errors; never a credential).
    vars        jsonb       NOT NULL DEFAULT '{}',
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    UNIQUE (dedupe_key, channel, recipient)
);

CREATE INDEX notifications_tenant ON notifications (tenant_id, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX notifications_kind ON notifications (kind, id);

COMMENT ON TABLE notifications IS
    'Every delivery of a notification (email or operator webhook): recipient, status, attempts, error, dedupe key.';
