-- The dashboard's accounts (owner: shared/src/accounts.rs, the only reader and writer).
--
-- dashboard_users: a tenant's people. An email belongs to one user (sign-in names no
-- tenant). password_hash is an argon2id PHC string, NULL until the user sets one through a
-- one-time link. failed_logins / locked_until: lockout after repeated failures.
CREATE TABLE dashboard_users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'analyst')),
    password_hash  text,
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dashboard_users_email_idx ON dashboard_users (email);
CREATE INDEX dashboard_users_tenant_idx ON dashboard_users (tenant_id);

-- Server-side sessions: the cookie holds a random token, only its SHA-256 is stored. A
-- session ends at expires_at (absolute) or after idle_expires_at (renewed on use); "sign
-- out everywhere" deletes every row of the user. csrf_token is the synchronizer token every
-- form of the session carries; mode is the header's test/live switch.
CREATE TABLE dashboard_sessions (
    token_hash       bytea PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES dashboard_users(id) ON DELETE CASCADE,
    csrf_token       text NOT NULL,
    mode             text NOT NULL DEFAULT 'test' CHECK (mode IN ('test', 'live')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    idle_expires_at  timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    ip               text,
    user_agent       text
);
CREATE INDEX dashboard_sessions_user_idx ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expiry_idx ON dashboard_sessions (expires_at);

-- One-time links (set a password, reset it, accept an invitation): only the SHA-256 of the
-- token is stored; used_at is set when it is redeemed (once).
CREATE TABLE dashboard_tokens (
    token_hash  bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES dashboard_users(id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('set_password', 'reset_password', 'invitation')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX dashboard_tokens_user_idx ON dashboard_tokens (user_id);

-- A session's timeline (GET /v1/sessions/{id}/timeline, the dashboard's session page)
-- finds the jobs that applied its outcome by the session id in their payload.
CREATE INDEX job_outbox_session_idx ON job_outbox (tenant_id, (payload->>'session_id'))
    WHERE kind IN ('apply_offer', 'cancel_subscription');
