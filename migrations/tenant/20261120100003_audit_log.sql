-- Tenant audit log (DESIGN §4): what members, API keys and the system did in this tenant.
-- Self-contained on purpose: a test drops audit_log and re-runs this migration, so nothing else may
-- depend on it and it creates nothing but the table and its index.

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    subject     text,
    request_id  text,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_at_idx ON audit_log (at DESC);

COMMENT ON TABLE audit_log IS 'Who did what in this tenant, newest first by at.';
