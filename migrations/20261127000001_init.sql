-- RetentionOS schema. Every tenant-owned row carries tenant_id and every index used per
-- tenant leads with it. The specification's required indexes are listed in
-- tests/tests/schema.rs, which fails if one is missing.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL DEFAULT 'UTC',
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes; the plaintext is shown once at creation.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('secret', 'publishable')),
    mode         text NOT NULL CHECK (mode IN ('test', 'live')),
    key_hash     bytea NOT NULL,
    -- First characters of the key (e.g. "sk_test_Ab3d"), to recognise it in listings.
    display      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode        text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live')),
    external_id text NOT NULL,
    email       text,
    plan        text,
    region      text,
    mrr_cents   bigint NOT NULL DEFAULT 0,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_tenant_external_id_key ON users (tenant_id, mode, external_id);
CREATE INDEX users_tenant_email_idx ON users (tenant_id, email);
CREATE INDEX users_tenant_plan_idx ON users (tenant_id, plan);
CREATE INDEX users_tenant_region_idx ON users (tenant_id, region);
CREATE INDEX users_tenant_created_idx ON users (tenant_id, created_at, id);

CREATE TABLE subscriptions (
    id                     uuid PRIMARY KEY,
    tenant_id              uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id                uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mode                   text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live')),
    stripe_subscription_id text NOT NULL,
    status                 text NOT NULL,
    plan                   text,
    price_id               text,
    billing_interval       text,
    mrr_cents              bigint NOT NULL DEFAULT 0,
    currency               text,
    current_period_start   timestamptz,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean NOT NULL DEFAULT false,
    pause_collection       jsonb,
    discounts              jsonb NOT NULL DEFAULT '[]'::jsonb,
    trial_end              timestamptz,
    canceled_at            timestamptz,
    churn_kind             text CHECK (churn_kind IN ('voluntary', 'involuntary')),
    stripe_updated_at      timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX subscriptions_stripe_subscription_id_key ON subscriptions (stripe_subscription_id);
CREATE INDEX subscriptions_tenant_user_idx ON subscriptions (tenant_id, user_id);
CREATE INDEX subscriptions_tenant_status_idx ON subscriptions (tenant_id, status);
CREATE INDEX subscriptions_tenant_created_idx ON subscriptions (tenant_id, created_at, id);

CREATE TABLE flows (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name              text NOT NULL,
    language          text NOT NULL DEFAULT 'en',
    ranking_score     integer NOT NULL DEFAULT 0,
    is_default        boolean NOT NULL DEFAULT false,
    draft             jsonb NOT NULL,
    published_version integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);
CREATE INDEX flows_tenant_language_idx ON flows (tenant_id, language);
CREATE INDEX flows_tenant_ranking_score_idx ON flows (tenant_id, ranking_score DESC);

-- Published versions are immutable; old versions are kept.
CREATE TABLE flow_versions (
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    flow_id      uuid NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    version      integer NOT NULL,
    definition   jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow_id, version)
);
CREATE INDEX flow_versions_tenant_idx ON flow_versions (tenant_id, flow_id);

CREATE TABLE cancel_sessions (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode             text NOT NULL CHECK (mode IN ('test', 'live')),
    user_id          uuid REFERENCES users(id) ON DELETE SET NULL,
    customer_id      text NOT NULL,
    subscription_id  text,
    flow_id          uuid REFERENCES flows(id) ON DELETE SET NULL,
    flow_version     integer,
    variant          text,
    holdout          boolean NOT NULL DEFAULT false,
    outcome          text CHECK (outcome IN ('saved', 'canceled', 'abandoned', 'deflected')),
    saved_offer_type text,
    reason_code      text,
    offer_state      text CHECK (offer_state IN ('pending', 'applied', 'failed')),
    offer_error      text,
    mrr_cents        bigint NOT NULL DEFAULT 0,
    validated_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE INDEX cancel_sessions_tenant_created_idx ON cancel_sessions (tenant_id, created_at, id);
CREATE INDEX cancel_sessions_tenant_customer_idx ON cancel_sessions (tenant_id, customer_id, created_at DESC);
CREATE INDEX cancel_sessions_tenant_outcome_idx ON cancel_sessions (tenant_id, outcome);

CREATE TABLE session_events (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    session_id      uuid NOT NULL REFERENCES cancel_sessions(id) ON DELETE CASCADE,
    client_event_id text NOT NULL,
    type            text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX session_events_client_event_key ON session_events (session_id, client_event_id);
CREATE INDEX session_events_tenant_created_idx ON session_events (tenant_id, created_at);

CREATE TABLE offer_events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     uuid,
    flow_id     uuid,
    session_id  uuid,
    variant     text,
    offer_id    text,
    offer_type  text NOT NULL,
    accepted    boolean NOT NULL DEFAULT false,
    mrr_cents   bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offer_events_tenant_user_idx ON offer_events (tenant_id, user_id);
CREATE INDEX offer_events_tenant_flow_idx ON offer_events (tenant_id, flow_id);
CREATE INDEX offer_events_tenant_created_idx ON offer_events (tenant_id, created_at);
CREATE INDEX offer_events_tenant_offer_type_idx ON offer_events (tenant_id, offer_type);
CREATE INDEX offer_events_tenant_accepted_idx ON offer_events (tenant_id, accepted);
-- Rollups find new and late-arriving events by ingestion time.
CREATE INDEX offer_events_ingested_idx ON offer_events (ingested_at);

CREATE TABLE churn_reasons (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     uuid,
    session_id  uuid,
    reason_code text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX churn_reasons_tenant_user_idx ON churn_reasons (tenant_id, user_id);
CREATE INDEX churn_reasons_tenant_reason_code_idx ON churn_reasons (tenant_id, reason_code);
CREATE INDEX churn_reasons_tenant_created_idx ON churn_reasons (tenant_id, created_at);
CREATE INDEX churn_reasons_ingested_idx ON churn_reasons (ingested_at);

-- Inbox: every Stripe delivery we acknowledged, stored before the 2xx.
CREATE TABLE stripe_events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    mode         text NOT NULL CHECK (mode IN ('test', 'live')),
    event_id     text NOT NULL,
    type         text NOT NULL,
    object_id    text,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE UNIQUE INDEX stripe_events_tenant_event_key ON stripe_events (tenant_id, event_id);
CREATE INDEX stripe_events_unprocessed_idx ON stripe_events (received_at) WHERE processed_at IS NULL;

-- Outbox of acknowledged work: a row per durable job, written in the same transaction as
-- the change that needs it. The reconciler re-enqueues rows that are not finished, so a
-- Redis restarted empty loses nothing.
CREATE TABLE job_outbox (
    id           uuid PRIMARY KEY,
    tenant_id    uuid REFERENCES tenants(id) ON DELETE CASCADE,
    queue        text NOT NULL,
    kind         text NOT NULL,
    payload      jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    run_after    timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX job_outbox_unfinished_idx ON job_outbox (created_at) WHERE status = 'pending';
CREATE INDEX job_outbox_tenant_idx ON job_outbox (tenant_id, created_at);

-- One row per scheduler duty run (rollup ticks, reconciler ticks): the audit trail that
-- proves a tick ran once cluster-wide.
CREATE TABLE scheduler_runs (
    id          bigserial PRIMARY KEY,
    duty        text NOT NULL,
    period      bigint NOT NULL,
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    detail      jsonb
);
CREATE INDEX scheduler_runs_duty_period_idx ON scheduler_runs (duty, period);

-- Probe jobs (ops canary): every execution, and the effect recorded once per job.
CREATE TABLE probe_runs (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL,
    worker     text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX probe_runs_job_idx ON probe_runs (job_id);
CREATE TABLE probe_effects (
    job_id     uuid PRIMARY KEY,
    worker     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Hourly rollup buckets per tenant (analytics reads these; daily derives from hourly).
CREATE TABLE rollup_hourly (
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    hour         timestamptz NOT NULL,
    offer_type   text NOT NULL DEFAULT '',
    shown        bigint NOT NULL DEFAULT 0,
    accepted     bigint NOT NULL DEFAULT 0,
    saved_mrr_cents bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, hour, offer_type)
);
CREATE TABLE rollup_reasons_hourly (
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    hour         timestamptz NOT NULL,
    reason_code  text NOT NULL,
    count        bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, hour, reason_code)
);
-- Watermark of ingested_at processed by the rollup.
CREATE TABLE rollup_state (
    name       text PRIMARY KEY,
    watermark  timestamptz NOT NULL
);
