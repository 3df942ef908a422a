-- Issue 16, items 6 and 7: an audit log you can read, operator impersonation and maintenance mode.
-- src/audit/ is the one home of `audit_log`, src/maintenance/ of `maintenance_mode`, src/admin/impersonation.rs
-- (through src/audit/impersonation.rs) of `impersonation_tickets`.

-- Where an action came from and what it changed. `via` is the door (operator, api, system, …); `resource`
-- names what was acted on (`tenant:<id>`, `api_key:<id>`, …); `before`/`after` hold the changed fields only,
-- never secrets.
ALTER TABLE audit_log
    ADD COLUMN via        text CHECK (via IN ('api', 'app', 'crm_proxy', 'operator', 'system')),
    ADD COLUMN ip         inet,
    ADD COLUMN user_agent text,
    ADD COLUMN resource   text,
    ADD COLUMN before     jsonb,
    ADD COLUMN after      jsonb;

-- The audit API's filters; pages are newest first by id (the cursor), so every index ends with id.
CREATE INDEX audit_log_id_tenant_idx ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, id DESC);
CREATE INDEX audit_log_resource_idx ON audit_log (resource, id DESC) WHERE resource IS NOT NULL;

-- A tenant in read-only mode (an operator's switch): reads are served, writes answer 503 tenant_read_only.
ALTER TABLE tenants
    ADD COLUMN read_only_reason text CHECK (read_only_reason <> ''),
    ADD COLUMN read_only_at     timestamptz,
    ADD CONSTRAINT tenants_read_only_set CHECK ((read_only_reason IS NULL) = (read_only_at IS NULL));

-- Global maintenance mode, switched at runtime by operators (one row; absent: the `[maintenance]` config).
CREATE TABLE maintenance_mode (
    singleton         boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    enabled           boolean     NOT NULL,
    message           text        NOT NULL,
    retry_after_secs  integer     NOT NULL CHECK (retry_after_secs BETWEEN 1 AND 86400),
    updated_by        text        NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Single-use links with which an operator opens a tenant's merchant app as one of its members. Only the
-- SHA-256 of the ticket is stored; consuming it is one conditional UPDATE (atomic, once).
CREATE TABLE impersonation_tickets (
    ticket_hash       bytea       PRIMARY KEY CHECK (length(ticket_hash) = 32),
    tenant_id         uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    member_id         uuid        NOT NULL,
    member_name       text,
    role              text        NOT NULL,
    operator          text        NOT NULL,
    reason            text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    session_ttl_secs  integer     NOT NULL CHECK (session_ttl_secs > 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    consumed_at       timestamptz
);
CREATE INDEX impersonation_tickets_expires_idx ON impersonation_tickets (expires_at);

-- Sessions minted from a ticket: who impersonates and why (shown on every screen), and the member's own role.
ALTER TABLE app_sessions
    ADD COLUMN impersonated_by      text,
    ADD COLUMN impersonation_reason text,
    DROP CONSTRAINT app_sessions_role_check,
    ADD CONSTRAINT app_sessions_role_check CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    ADD CONSTRAINT app_sessions_impersonation CHECK ((impersonated_by IS NULL) = (impersonation_reason IS NULL));
