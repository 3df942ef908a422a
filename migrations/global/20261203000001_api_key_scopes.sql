-- The scope of each tenant API key, chosen at creation: read (a viewer), write (a member) or admin. Keys that
-- existed before scopes keep the power they always had: admin.
ALTER TABLE tenant_api_keys
    ADD COLUMN scope text NOT NULL DEFAULT 'admin' CHECK (scope IN ('read', 'write', 'admin'));
-- New keys name their scope explicitly (the application defaults to read).
ALTER TABLE tenant_api_keys ALTER COLUMN scope DROP DEFAULT;
