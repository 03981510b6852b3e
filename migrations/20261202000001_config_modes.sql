-- Configuration belongs to a mode (issue 15): flows, their versions and tenant settings are
-- test or live, like users, subscriptions and sessions. A test key never reads or changes
-- live configuration.
--
-- Existing configuration applied to both modes, so it is kept as `live` and copied to `test`:
-- every flow (deleted ones too, for the sessions that name them) gets a test copy with a new
-- id and the same versions and `published_version`; existing test-mode sessions and offer
-- events are pointed at the copy. The live original records its test counterpart in
-- `copied_from`, so a later `POST /v1/flows/{test id}/copy_to_live` updates it.

ALTER TABLE flows ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live'));
-- On a live flow: the test flow it was copied from (one live counterpart per test flow).
ALTER TABLE flows ADD COLUMN copied_from uuid REFERENCES flows(id) ON DELETE SET NULL;
ALTER TABLE flows ALTER COLUMN mode DROP DEFAULT;
ALTER TABLE flows ADD CONSTRAINT flows_id_tenant_mode_key UNIQUE (id, tenant_id, mode);

ALTER TABLE flow_versions ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live'));
ALTER TABLE flow_versions ALTER COLUMN mode DROP DEFAULT;

CREATE TEMPORARY TABLE flow_mode_copy ON COMMIT DROP AS
    SELECT id AS live_id, gen_random_uuid() AS test_id FROM flows;

INSERT INTO flows (id, tenant_id, mode, name, language, ranking_score, is_default, draft,
                   published_version, created_at, updated_at, deleted_at)
SELECT c.test_id, f.tenant_id, 'test', f.name, f.language, f.ranking_score, f.is_default, f.draft,
       f.published_version, f.created_at, f.updated_at, f.deleted_at
  FROM flows f JOIN flow_mode_copy c ON c.live_id = f.id;

INSERT INTO flow_versions (tenant_id, flow_id, mode, version, definition, published_at)
SELECT v.tenant_id, c.test_id, 'test', v.version, v.definition, v.published_at
  FROM flow_versions v JOIN flow_mode_copy c ON c.live_id = v.flow_id;

UPDATE flows f SET copied_from = c.test_id FROM flow_mode_copy c WHERE f.id = c.live_id;

UPDATE cancel_sessions s SET flow_id = c.test_id
  FROM flow_mode_copy c WHERE s.mode = 'test' AND s.flow_id = c.live_id;
UPDATE offer_events e SET flow_id = c.test_id
  FROM flow_mode_copy c WHERE e.mode = 'test' AND e.flow_id = c.live_id;

-- A version belongs to its flow's tenant and mode.
ALTER TABLE flow_versions ADD CONSTRAINT flow_versions_flow_tenant_mode_fkey
    FOREIGN KEY (flow_id, tenant_id, mode) REFERENCES flows (id, tenant_id, mode) ON DELETE CASCADE;

-- A live flow names its test source; deleting it frees the link for a new copy.
CREATE UNIQUE INDEX flows_copied_from_key ON flows (copied_from) WHERE copied_from IS NOT NULL AND deleted_at IS NULL;

-- Tenant settings, one row per mode: the whole settings document (shared::tenants::
-- TenantSettings, time zone included; fields it lacks take their defaults).
CREATE TABLE tenant_settings (
    tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode       text NOT NULL CHECK (mode IN ('test', 'live')),
    settings   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, mode)
);

INSERT INTO tenant_settings (tenant_id, mode, settings)
SELECT t.id, m.mode,
       CASE WHEN jsonb_typeof(t.settings) = 'object' THEN t.settings ELSE '{}'::jsonb END
           || jsonb_build_object('timezone', t.timezone)
  FROM tenants t CROSS JOIN (VALUES ('test'), ('live')) AS m(mode);

ALTER TABLE tenants DROP COLUMN settings;
ALTER TABLE tenants DROP COLUMN timezone;
