-- Session start looks up a customer's open sessions (`outcome IS NULL`) through
-- cancel_sessions_open_customer_idx. With statistics that lag behind a fast-growing table
-- (a new deployment, a burst before autoanalyze), the planner chose the older
-- (tenant_id, outcome) index for that lookup instead, and then filtered every open session
-- of the tenant per start: 300 ms for a batch of 32 starts at 60,000 open sessions, and
-- widget session starts fell to a fifth of their throughput in the `max` load test.
-- That index serves filters on a known outcome (listings, analytics); it no longer holds
-- open sessions, so it can never be chosen for an open-session lookup.
DROP INDEX cancel_sessions_tenant_outcome_idx;
CREATE INDEX cancel_sessions_tenant_outcome_idx ON cancel_sessions (tenant_id, outcome)
    WHERE outcome IS NOT NULL;
