-- Sessions change after they start (outcome, offer state, validation): updated_at lets the
-- rollup find the hours whose figures moved.
ALTER TABLE cancel_sessions ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX cancel_sessions_updated_idx ON cancel_sessions (updated_at);
CREATE FUNCTION cancel_sessions_touch() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER cancel_sessions_touch BEFORE UPDATE ON cancel_sessions
    FOR EACH ROW EXECUTE FUNCTION cancel_sessions_touch();

-- Test-mode traffic never mixes with live figures.
ALTER TABLE offer_events ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live'));
ALTER TABLE churn_reasons ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live'));

-- Offer performance per hour, offer and A/B variant ('' = no experiment).
DROP TABLE rollup_hourly;
DROP TABLE rollup_reasons_hourly;
CREATE TABLE rollup_reasons_hourly (
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode         text NOT NULL,
    hour         timestamptz NOT NULL,
    reason_code  text NOT NULL,
    count        bigint NOT NULL,
    PRIMARY KEY (tenant_id, mode, hour, reason_code)
);
CREATE TABLE rollup_offers_hourly (
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode            text NOT NULL,
    hour            timestamptz NOT NULL,
    variant         text NOT NULL,
    offer_id        text NOT NULL,
    offer_type      text NOT NULL,
    shown           bigint NOT NULL,
    accepted        bigint NOT NULL,
    saved_mrr_cents bigint NOT NULL,
    PRIMARY KEY (tenant_id, mode, hour, variant, offer_id, offer_type)
);

-- Session outcomes per hour (of the session's start), variant ('holdout' for the control)
-- and saved offer type.
CREATE TABLE rollup_sessions_hourly (
    tenant_id        uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode             text NOT NULL,
    hour             timestamptz NOT NULL,
    variant          text NOT NULL,
    outcome          text NOT NULL,
    saved_offer_type text NOT NULL,
    sessions         bigint NOT NULL,
    saved_mrr_cents  bigint NOT NULL,
    validated        bigint NOT NULL,
    PRIMARY KEY (tenant_id, mode, hour, variant, outcome, saved_offer_type)
);
