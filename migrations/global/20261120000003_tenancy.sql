-- Tenant registry (DESIGN §4, §5): who the tenants are, where their databases live, how they are reached
-- (domains, API keys), how their provisioning went, and what operators did to them.

CREATE TABLE tenants (
    id                 uuid        PRIMARY KEY,
    slug               text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{1,46})[a-z0-9]$'),
    display_name       text        NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'provisioning', 'ready', 'failed', 'suspended', 'deleting', 'deleted')),
    plan               text        NOT NULL DEFAULT 'free',
    -- Where the tenant database lives: a key of [[db.tenant_servers]] and a name derived from the id only.
    db_server          text        NOT NULL,
    db_name            text        NOT NULL UNIQUE CHECK (db_name ~ '^t_[0-9a-f]{32}$'),
    -- Version of the last tenant migration applied to the tenant database (0: none yet).
    schema_version     bigint      NOT NULL DEFAULT 0,
    -- Why the last fleet migration of this tenant failed; cleared when it succeeds.
    migration_error    text,
    clerk_org_id       text        UNIQUE,
    salla_merchant_id  bigint      UNIQUE,
    owner_email        text        NOT NULL,
    locale             text        NOT NULL,
    currency           text        NOT NULL,
    timezone           text        NOT NULL,
    suspended_reason   text,
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    ready_at           timestamptz,
    deleted_at         timestamptz,
    -- Optimistic concurrency: every update checks and bumps it.
    version            bigint      NOT NULL DEFAULT 1
);

CREATE INDEX tenants_status_idx ON tenants (status);
CREATE INDEX tenants_created_idx ON tenants (created_at DESC, id DESC);
CREATE INDEX tenants_server_idx ON tenants (db_server) WHERE status <> 'deleted';

CREATE TABLE tenant_domains (
    domain      text        PRIMARY KEY CHECK (domain = lower(domain)),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_domains_tenant_idx ON tenant_domains (tenant_id);

-- Only a SHA-256 of each key is stored; the key itself is shown once, at creation.
CREATE TABLE tenant_api_keys (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    -- The first characters of the key, to recognise it in listings ("wsl_3f9a1c2b…").
    prefix        text        NOT NULL,
    key_hash      bytea       NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX tenant_api_keys_tenant_idx ON tenant_api_keys (tenant_id);

-- One row per provisioning attempt chain; `retry` resumes the same run from its failed step.
CREATE TABLE provisioning_runs (
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX provisioning_runs_tenant_idx ON provisioning_runs (tenant_id, created_at DESC);
CREATE INDEX provisioning_runs_finished_idx ON provisioning_runs (finished_at DESC) WHERE status = 'succeeded';

CREATE TABLE provisioning_steps (
    run_id       uuid        NOT NULL REFERENCES provisioning_runs (id) ON DELETE CASCADE,
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
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, name)
);

-- Schema version of the template database on each tenant server.
CREATE TABLE tenant_templates (
    db_server       text        PRIMARY KEY,
    schema_version  bigint      NOT NULL,
    migrated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every operator and lifecycle action, with who did it and the request that caused it.
CREATE TABLE audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    tenant_id   uuid,
    request_id  text,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, at DESC) WHERE tenant_id IS NOT NULL;
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
