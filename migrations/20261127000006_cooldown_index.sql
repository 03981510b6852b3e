-- Session start checks the customer's recent saves (discount and pause cooldowns) on every
-- widget open. This partial index holds only saved sessions and matches that lookup exactly,
-- so the plan stays a single index probe however the table's statistics look (a fast-growing
-- table before its first autoanalyze had the planner scan the tenant's sessions instead).
CREATE INDEX cancel_sessions_saved_customer_idx
    ON cancel_sessions (tenant_id, mode, customer_id, created_at)
    WHERE outcome = 'saved';
