-- Embedded app ("Open App" in Salla's dashboard): who installed each store, and the app's own sessions.

-- The Salla user who installed the app (oauth2/user/info at onboarding): "Open App" by this user is the owner,
-- anyone else is staff. NULL for stores installed before this was recorded (then nobody is known as the owner).
ALTER TABLE salla_stores
    ADD COLUMN installer_user_id bigint,
    ADD COLUMN installer_name    text,
    ADD COLUMN installer_email   text;

-- Wosool sessions minted from a verified Salla embedded token (src/embedded/session.rs is their one home).
-- Only the SHA-256 of the `wss_` token is stored; the primary key is the lookup, so verifying never compares
-- secrets byte by byte.
CREATE TABLE app_sessions (
    token_hash        bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    tenant_id         uuid        NOT NULL REFERENCES tenants (id),
    -- Who: the owner's Clerk user id (when known), else the staff external id `salla:{merchant}:{user}`.
    person            text        NOT NULL CHECK (person <> ''),
    kind              text        NOT NULL CHECK (kind IN ('owner', 'staff')),
    -- The tenant `members` row of the person (NULL for an owner whose member row is not linked yet).
    member_id         uuid,
    display_name      text,
    salla_merchant_id bigint      NOT NULL,
    salla_user_id     bigint      NOT NULL,
    role              text        NOT NULL CHECK (role IN ('owner', 'member')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    -- Absolute end of the session (embedded.session_absolute_secs after creation).
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    revoked_reason    text,
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);

-- Revoking every live session of a tenant (uninstall, suspension, deletion).
CREATE INDEX app_sessions_tenant_live ON app_sessions (tenant_id) WHERE revoked_at IS NULL;
-- The periodic prune of ended sessions.
CREATE INDEX app_sessions_expires_at ON app_sessions (expires_at);

COMMENT ON TABLE app_sessions IS
    'Embedded-app sessions (wss_ tokens, stored as SHA-256): tenant, person, Salla ids, role, absolute and idle lifetime, revocation.';
