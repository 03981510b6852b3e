-- The audit log: one row per configuration or ops action, written in the same transaction
-- as the change (shared/src/audit.rs is the only writer). Append-only: UPDATE is refused,
-- and DELETE only by the retention job, which sets `retentionos.audit_retention = 'on'` in
-- its own transaction (shared::audit::purge_older_than).
CREATE TABLE audit_events (
    id          uuid PRIMARY KEY,
    -- NULL for platform-level ops actions (dead-letter retry/purge of a whole queue).
    tenant_id   uuid,
    mode        text CHECK (mode IN ('test', 'live')),
    actor_type  text NOT NULL CHECK (actor_type IN ('api_key', 'ops', 'dashboard_user', 'system', 'cli')),
    -- The key id for api_key, the user id for dashboard_user, NULL for ops/system/cli.
    actor_id    text,
    action      text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target_type text NOT NULL,
    target_id   text,
    before      jsonb,
    after       jsonb,
    request_id  text,
    ip          text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_tenant_created_idx ON audit_events (tenant_id, created_at DESC, id DESC);
CREATE INDEX audit_events_created_idx ON audit_events (created_at DESC, id DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('retentionos.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
