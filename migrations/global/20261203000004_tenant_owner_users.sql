-- The identity provider's user who registered a tenant themselves (`tenancy.self_service = "clerk"`): the
-- provisioning `identity` step makes this existing user the owner of the new organization, instead of finding
-- or creating a user by the owner email. Written in the registration's transaction.
CREATE TABLE tenant_owner_users (
    tenant_id  uuid        PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);
