-- Twenty instances and the placement of each tenant's workspace (shared/reference/twenty.md "Workspace cap").
-- Self-hosted Twenty refuses more than MAX_WORKSPACES_WITHOUT_ENTERPRISE_KEY workspaces per instance (5 in
-- v2.30-v2.43), so workspaces are capacity, like tenant database servers: each instance has a cap, each
-- workspace is placed on one instance and stays there, and a tenant with no room anywhere waits.
CREATE TABLE crm_instances (
    -- The key of `[[crm.instances]]` ("default" for the crm.base_url shorthand). Rows are synced from the
    -- config at start and never deleted: an instance removed from the config keeps its workspaces' history.
    key                  text        PRIMARY KEY,
    base_url             text        NOT NULL,
    max_workspaces       integer     NOT NULL CHECK (max_workspaces > 0),
    configured           boolean     NOT NULL DEFAULT true,
    -- When the instance refused a workspace at its cap, and how many of ours it held then: until
    -- `capacity_recheck_secs` later (or a change of max_workspaces) it counts as full at that number.
    cap_reached_at       timestamptz,
    cap_reached_at_count integer,
    -- What the last check found: Twenty's appVersion, its /metadata capabilities, or why it failed.
    version              text,
    capabilities         jsonb,
    checked_at           timestamptz,
    check_error          text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE crm_workspaces
    -- Where the workspace lives (NULL: not placed yet, or waiting for capacity).
    ADD COLUMN instance      text REFERENCES crm_instances (key),
    -- Set while no instance had room: the tenant is ready without its CRM, and is placed oldest first.
    ADD COLUMN waiting_since timestamptz,
    -- Tenant deletion: where the workspace was, once it is deleted and unplaced (its owner user goes next).
    ADD COLUMN deleted_instance text;

-- Workspaces provisioned before instances existed live on the crm.base_url instance.
INSERT INTO crm_instances (key, base_url, max_workspaces, configured)
SELECT 'default', '', 5, false WHERE EXISTS (SELECT 1 FROM crm_workspaces WHERE step <> 'none');
UPDATE crm_workspaces SET instance = 'default' WHERE step <> 'none';

CREATE INDEX crm_workspaces_by_instance ON crm_workspaces (instance) WHERE instance IS NOT NULL;
CREATE INDEX crm_workspaces_waiting ON crm_workspaces (waiting_since) WHERE waiting_since IS NOT NULL;
