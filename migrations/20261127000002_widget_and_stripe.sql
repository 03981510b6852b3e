-- Secret keys are also kept encrypted (AES-256-GCM under MASTER_KEY) so customer tokens,
-- which tenants sign with their secret key, can be verified. Publishable keys are public.
ALTER TABLE api_keys ADD COLUMN secret_enc text;

-- Per-tenant Stripe settings, one row per mode; secrets encrypted under MASTER_KEY.
CREATE TABLE stripe_settings (
    tenant_id        uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode             text NOT NULL CHECK (mode IN ('test', 'live')),
    api_key_enc      text NOT NULL,
    api_key_last4    text NOT NULL,
    webhook_secrets_enc jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, mode)
);

-- What the customer chose, for the offer job and analytics.
ALTER TABLE cancel_sessions
    ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN accepted_offer jsonb,
    -- The Stripe parameters computed on the first attempt, reused by every retry so the
    -- idempotency key always carries the same parameters.
    ADD COLUMN offer_params jsonb,
    ADD COLUMN stripe_customer_id text,
    ADD COLUMN offer_applied_at timestamptz,
    ADD COLUMN cancel_state text CHECK (cancel_state IN ('pending', 'applied', 'failed', 'recorded')),
    ADD COLUMN cancel_error text;
CREATE INDEX cancel_sessions_tenant_subscription_idx ON cancel_sessions (tenant_id, subscription_id, created_at DESC);
