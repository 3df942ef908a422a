-- Durable job queue (DESIGN §6). Modelled on River/Oban: rows are fetched with FOR UPDATE SKIP LOCKED,
-- leased while running, retried with backoff, and pruned after a retention period.

CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind <> ''),
    payload       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Every tenant job names its tenant; NULL only for fleet-wide work (sweeps, pruning).
    tenant_id     uuid,
    state         text        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'succeeded', 'discarded', 'cancelled')),
    priority      smallint    NOT NULL DEFAULT 0,
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer     NOT NULL CHECK (max_attempts >= 1),
    run_at        timestamptz NOT NULL DEFAULT now(),
    -- Lease: which worker runs the job and until when; renewed while the job runs.
    locked_by     text,
    locked_until  timestamptz,
    last_error    text,
    unique_key    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    CHECK ((state = 'running') = (locked_until IS NOT NULL))
);

-- The fetch path: due pending jobs in priority then time order.
CREATE INDEX jobs_fetch_idx ON jobs (priority DESC, run_at, id) WHERE state = 'pending';
-- The rescue path: running jobs whose lease has expired.
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE state = 'running';
-- The prune path and the admin listing of finished jobs.
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE state IN ('succeeded', 'discarded', 'cancelled');
CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, id) WHERE tenant_id IS NOT NULL;
-- Idempotent enqueue: one live (pending or running) job per kind, tenant and unique key.
CREATE UNIQUE INDEX jobs_unique_live_idx ON jobs (kind, tenant_id, unique_key) NULLS NOT DISTINCT
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'running');

-- Periodic jobs: one row per schedule. A worker enqueues the job only by moving next_run_at forward in the
-- same transaction, so across any number of replicas each interval fires once.
CREATE TABLE periodic_jobs (
    name         text        PRIMARY KEY,
    kind         text        NOT NULL,
    interval_ms  bigint      NOT NULL CHECK (interval_ms > 0),
    next_run_at  timestamptz NOT NULL,
    last_run_at  timestamptz,
    last_job_id  bigint
);
