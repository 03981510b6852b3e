-- Customer tokens are signed with a per-tenant, per-mode signing secret (tsk_test_… /
-- tsk_live_…), no longer with the tenant's secret API key: API keys are now stored as
-- SHA-256 hashes only and their encrypted copies are dropped.
--
-- A signing secret must be recoverable to verify HMACs, so it is kept encrypted under
-- MASTER_KEY (envelope `v1.<kid>.…`, bound to column, tenant and mode). SQL cannot encrypt,
-- so existing tenants start with no signing secret: `retentionos-api secrets
-- issue-signing-secrets` gives every tenant and mode one (not printed: what
-- POST /v1/widget_tokens signs with), and a tenant that signs tokens itself rotates one to
-- see it (POST /v1/token_signing_secrets/rotate). Until then its customer tokens get 401.
-- This is a breaking change for tenants that signed tokens with their sk_ key (README).
CREATE TABLE token_signing_secrets (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode        text NOT NULL CHECK (mode IN ('test', 'live')),
    secret_enc  text NOT NULL,
    -- First characters (e.g. "tsk_test_Ab3d…"), to recognise it in listings and audit rows.
    display     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Set by a rotation with a grace period: the secret verifies tokens until then.
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX token_signing_secrets_tenant_idx
    ON token_signing_secrets (tenant_id, mode, created_at DESC) WHERE revoked_at IS NULL;

ALTER TABLE api_keys DROP COLUMN secret_enc;
