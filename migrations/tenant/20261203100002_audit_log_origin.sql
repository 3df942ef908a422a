-- Tenant audit log, readable (issue 16): how a write came in (`via`: api, app, crm_proxy, operator), from
-- where (client IP, user agent) and what it changed (before/after, never secrets). `subject` names the
-- resource acted on. Added here, not in 20261120100003 (which a test drops and re-runs).

ALTER TABLE audit_log
    ADD COLUMN via        text CHECK (via IN ('api', 'app', 'crm_proxy', 'operator', 'system')),
    ADD COLUMN ip         inet,
    ADD COLUMN user_agent text,
    ADD COLUMN before     jsonb,
    ADD COLUMN after      jsonb;

-- The audit API's filters; pages are newest first by id (the cursor).
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor, id DESC);
CREATE INDEX audit_log_action_id_idx ON audit_log (action, id DESC);
CREATE INDEX audit_log_subject_id_idx ON audit_log (subject, id DESC) WHERE subject IS NOT NULL;
