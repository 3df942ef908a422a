-- Staff of a Salla store who open the embedded app: members known by an external id (`salla:{merchant}:{user}`),
-- without an email (Salla gives none for staff), and when each member was last seen.
ALTER TABLE members ALTER COLUMN email DROP NOT NULL;
ALTER TABLE members ADD COLUMN external_id text CONSTRAINT members_external_id_key UNIQUE CHECK (external_id <> '');
ALTER TABLE members ADD COLUMN last_seen_at timestamptz;
-- Whether the member has a Clerk user in the tenant's organization: pending (a job is adding it), linked, or
-- refused (the Clerk instance requires an email; the member stays Wosool-only). NULL: not applicable.
ALTER TABLE members ADD COLUMN clerk_link text CHECK (clerk_link IN ('pending', 'linked', 'refused'));
ALTER TABLE members ADD COLUMN clerk_link_error text;
-- Every member is known by something.
ALTER TABLE members ADD CONSTRAINT members_identified
    CHECK (email IS NOT NULL OR external_id IS NOT NULL OR clerk_user_id IS NOT NULL);
