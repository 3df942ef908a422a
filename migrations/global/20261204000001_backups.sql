-- Backups (src/backup/, docs/backups.md): every backup set and the outcome of each database in it, so that a
-- tenant whose backup fails is visible (admin API, metrics), tenant restores awaiting confirmation, and the
-- restore drills' results. The sets themselves (dumps and manifest) live in the backup target.

CREATE TABLE backup_sets (
    id          text        PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- running → succeeded (every database) | partial (some failed) | failed (none stored)
    status      text        NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    target      text        NOT NULL,
    databases   int         NOT NULL DEFAULT 0,
    failures    int         NOT NULL DEFAULT 0,
    bytes       bigint      NOT NULL DEFAULT 0,
    pruned_at   timestamptz
);

CREATE TABLE backup_entries (
    set_id         text        NOT NULL REFERENCES backup_sets (id) ON DELETE CASCADE,
    scope          text        NOT NULL CHECK (scope IN ('global', 'tenant', 'crm')),
    -- 'global', the tenant id, or the CRM instance key
    name           text        NOT NULL,
    tenant_id      uuid,
    database       text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    error          text,
    object         text        NOT NULL,
    schema_version bigint,
    size_bytes     bigint      NOT NULL DEFAULT 0,
    sha256         text        NOT NULL DEFAULT '',
    duration_ms    bigint      NOT NULL DEFAULT 0,
    encrypted      boolean     NOT NULL DEFAULT false,
    key_id         text,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (set_id, scope, name)
);

-- "The tenant's last backup" and "tenants whose last backup failed".
CREATE INDEX backup_entries_tenant ON backup_entries (tenant_id, finished_at DESC) WHERE tenant_id IS NOT NULL;

-- A restored tenant keeps its previous database until an operator confirms (drops it) or aborts (swaps back).
CREATE TABLE tenant_restores (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    set_id       text        NOT NULL,
    old_db_name  text        NOT NULL,
    new_db_name  text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'confirmed', 'aborted')),
    actor        text        NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX tenant_restores_one_pending ON tenant_restores (tenant_id) WHERE status = 'pending';

CREATE TABLE backup_drills (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    tenant_id   uuid,
    set_id      text,
    outcome     text        NOT NULL CHECK (outcome IN ('passed', 'failed', 'skipped')),
    details     jsonb       NOT NULL DEFAULT '{}'
);

-- A restored tenant database is named after the one it replaces plus `_r<suffix>` (e.g. t_<32 hex>_r1764740000).
ALTER TABLE tenants DROP CONSTRAINT tenants_db_name_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_db_name_check
    CHECK (db_name ~ '^t_[0-9a-f]{32}(_r[0-9a-z]{1,20})?$');
