-- Issue 17, part 4: moving a tenant's database to another tenant server. src/provisioning/moves/ is the one
-- home of `tenant_moves`.
--
-- One row per move, a durable state machine run by the `tenant.move` job (a crash resumes at the recorded
-- state; each step is idempotent):
--   prepared -> read_only -> copied -> verified -> switched -> source_dropped
-- and, before the switch, -> failed (a step failed: rolled back) or -> aborted (an operator's --abort).
CREATE TABLE tenant_moves (
    id                     uuid        PRIMARY KEY,
    tenant_id              uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source_server          text        NOT NULL,
    target_server          text        NOT NULL CHECK (target_server <> source_server),
    db_name                text        NOT NULL,
    state                  text        NOT NULL DEFAULT 'prepared'
                           CHECK (state IN ('prepared', 'read_only', 'copied', 'verified', 'switched',
                                            'source_dropped', 'failed', 'aborted')),
    requested_by           text        NOT NULL,
    -- The tenant's own read-only reason before the move (an operator's), restored when the move ends.
    prior_read_only_reason text,
    -- Set when a step failed (the job rolls back to `failed`) or an operator aborted (`aborted`).
    error                  text,
    abort_requested_by     text,
    -- When the tenant stopped and started accepting writes again (the read-only window).
    read_only_started_at   timestamptz,
    read_only_ended_at     timestamptz,
    copy_ms                bigint,
    source_bytes           bigint,
    -- Exact rows per table, equal on both servers (the `verified` step), and the tenant migration version.
    row_counts             jsonb,
    schema_version         bigint,
    drop_source_at         timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    finished_at            timestamptz
);

-- At most one move of a tenant before its switch (a second one is refused with 409 move_in_progress).
CREATE UNIQUE INDEX tenant_moves_one_active ON tenant_moves (tenant_id)
    WHERE state IN ('prepared', 'read_only', 'copied', 'verified');
CREATE INDEX tenant_moves_tenant_idx ON tenant_moves (tenant_id, created_at DESC);
