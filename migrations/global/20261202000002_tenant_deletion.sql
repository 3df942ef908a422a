-- Deleting a tenant is a recorded, resumable pipeline like provisioning: each step's status, attempts, timing,
-- detail (e.g. the backup file) and error. One deletion per tenant (`deleted` is final), so the steps are keyed
-- by tenant. Steps: dump → drop_database → crm_workspace → identity → credentials → finalize.
CREATE TABLE tenant_deletion_steps (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position     smallint    NOT NULL,
    name         text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'succeeded', 'skipped', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    duration_ms  bigint,
    detail       text,
    error        text,
    PRIMARY KEY (tenant_id, name)
);

COMMENT ON TABLE tenant_deletion_steps IS
    'Steps of each tenant''s deletion (dump, drop database, CRM workspace, identity, credentials, finalize).';
