-- Twenty workspaces of tenants (DESIGN §4; shared/reference/twenty.md §3.1). Provisioning a workspace is a
-- sequence of calls that must survive a crash at any point without creating a second user or workspace, so
-- every sub-step's result is persisted here as soon as it is known. Credentials are sealed with
-- `secrets::Keyring` (key_id names the key): the owner's password (so the control plane can sign in again)
-- and the API key token (shown once by Twenty).
CREATE TABLE crm_workspaces (
    tenant_id          uuid        PRIMARY KEY REFERENCES tenants (id),
    -- The last sub-step completed: none, user_created, workspace_created, tokens_exchanged, activated,
    -- onboarding_cleared, api_key_created, ready.
    step               text        NOT NULL DEFAULT 'none',
    owner_email        text        NOT NULL,
    key_id             text,
    owner_password     bytea,
    user_id            text,
    workspace_id       text,
    -- The workspace's own URL (workspaceUrls.subdomainUrl): the `origin` of token exchanges.
    workspace_url      text,
    admin_role_id      text,
    api_key_id         text,
    api_key_token      bytea,
    api_key_expires_at timestamptz,
    -- Version of the data-model manifest applied to this workspace (0: none).
    manifest_version   integer     NOT NULL DEFAULT 0,
    manifest_error     text,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((owner_password IS NULL AND api_key_token IS NULL) OR key_id IS NOT NULL)
);

COMMENT ON TABLE crm_workspaces IS
    'Twenty workspace of each tenant: provisioning progress per sub-step, sealed owner password and API key, applied data-model version.';
