-- The generated password of a tenant's Clerk owner user, on Clerk instances where password is a required
-- sign-in method (Clerk refuses users without one there). Sealed with `secrets::Keyring` (key_id names the
-- key), written before the user is created so that an attempt whose answer was lost reuses it.
CREATE TABLE clerk_owner_credentials (
    tenant_id  uuid        PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    key_id     text        NOT NULL,
    password   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
