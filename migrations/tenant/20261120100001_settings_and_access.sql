-- Tenant settings, access control (roles, permissions, members) and CRM pipelines (DESIGN §4).
-- Schema only: the provisioning seed step upserts the settings row, the system roles with their permissions,
-- the owner member and the default sales pipeline.

-- Exactly one row: the primary key can only be true.
CREATE TABLE settings (
    id                       boolean     PRIMARY KEY DEFAULT true CHECK (id),
    -- Same bounds as tenants.display_name in the global registry, which it is seeded from.
    organization_name        text        NOT NULL CHECK (length(organization_name) BETWEEN 1 AND 200),
    locale                   text        NOT NULL DEFAULT 'ar-SA'
                             CHECK (locale ~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    currency                 text        NOT NULL DEFAULT 'SAR' CHECK (currency ~ '^[A-Z]{3}$'),
    -- An IANA zone name; validated by the application (a CHECK cannot consult pg_timezone_names).
    timezone                 text        NOT NULL DEFAULT 'Asia/Riyadh' CHECK (timezone <> ''),
    -- Set by seeding so that no first-time setup wizard ever appears.
    onboarding_completed_at  timestamptz,
    -- Free-form preferences that do not deserve a column yet.
    extra                    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(extra) = 'object'),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE settings IS
    'The tenant''s settings: exactly one row (id = true), seeded at provisioning from the global tenant registry.';

CREATE TABLE roles (
    key          text        PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    name         text        NOT NULL CHECK (name <> ''),
    description  text,
    -- System roles (owner, admin, member, viewer) are seeded and kept in step by provisioning.
    is_system    boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE roles IS
    'Roles a member can hold, e.g. owner, admin, member, viewer. System roles are seeded at provisioning.';

-- Permissions are dotted strings defined in code ('tenant.manage', 'members.manage', 'api_keys.manage',
-- 'crm.read', 'crm.write', 'commerce.read', 'settings.manage', 'billing.manage'). Only their form is checked
-- here, so adding a permission needs no migration.
CREATE TABLE role_permissions (
    role_key    text NOT NULL REFERENCES roles (key) ON DELETE CASCADE,
    permission  text NOT NULL CHECK (permission ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    PRIMARY KEY (role_key, permission)
);

COMMENT ON TABLE role_permissions IS 'Which permissions each role grants.';

CREATE TABLE members (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL until the member's Clerk user exists (the owner can be seeded before Clerk is called).
    clerk_user_id  text        UNIQUE CHECK (clerk_user_id <> ''),
    email          text        NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    display_name   text,
    -- No cascade: a role cannot be deleted while members hold it.
    role_key       text        NOT NULL REFERENCES roles (key),
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('invited', 'active', 'disabled')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One member per address, whatever its case.
CREATE UNIQUE INDEX members_email_key ON members (lower(email));
CREATE INDEX members_role_key_idx ON members (role_key);

COMMENT ON TABLE members IS
    'People who can use the tenant: Clerk users (kept in sync from Clerk membership webhooks) and their role.';

CREATE TABLE pipelines (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    key         text        NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    name        text        NOT NULL CHECK (name <> ''),
    is_default  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- At most one default pipeline.
CREATE UNIQUE INDEX pipelines_one_default_idx ON pipelines (is_default) WHERE is_default;

COMMENT ON TABLE pipelines IS 'CRM sales pipelines; provisioning seeds a default sales pipeline.';

CREATE TABLE pipeline_stages (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id  uuid        NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    key          text        NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    name         text        NOT NULL CHECK (name <> ''),
    position     integer     NOT NULL CHECK (position >= 0),
    -- Likelihood (percent) that a deal in this stage closes.
    probability  integer     NOT NULL DEFAULT 0 CHECK (probability BETWEEN 0 AND 100),
    is_won       boolean     NOT NULL DEFAULT false,
    is_lost      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT (is_won AND is_lost)),
    -- The arbiter for seed upserts: ON CONFLICT (pipeline_id, key).
    UNIQUE (pipeline_id, key),
    -- Deferred so that stages can be reordered by swapping positions inside one transaction. A deferrable
    -- constraint cannot be an ON CONFLICT arbiter: even a bare ON CONFLICT DO NOTHING fails on this table.
    UNIQUE (pipeline_id, position) DEFERRABLE INITIALLY DEFERRED
);

COMMENT ON TABLE pipeline_stages IS 'The ordered stages of each pipeline, with win probability and won/lost flags.';
