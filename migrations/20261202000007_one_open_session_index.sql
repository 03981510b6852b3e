-- One open session per customer, kept by a unique index instead of a lock and a lookup per
-- start (issue 15: the widget's session start lost 17-37 % of its throughput to them).
--
-- A session start is now one INSERT ... ON CONFLICT DO NOTHING on the partial unique index
-- below: a new customer (the common case) costs what a plain insert costs. Only the starts
-- that conflict (the customer has an open session) take the slow path: the advisory
-- customer lock (rtos_customer_lock_key, as record_widget_events takes it for acceptances),
-- then the open sessions' row locks in id order (the order record_widget_events locks
-- sessions in), abandon them, insert again.
--
-- Bulk loads (`retentionos-api seed`) write at most one open session per customer.

UPDATE cancel_sessions c SET outcome = 'abandoned', ended_at = coalesce(ended_at, now())
 WHERE outcome IS NULL
   AND EXISTS (SELECT 1 FROM cancel_sessions n
                WHERE n.tenant_id = c.tenant_id AND n.mode = c.mode AND n.customer_id = c.customer_id
                  AND n.outcome IS NULL AND (n.created_at, n.id) > (c.created_at, c.id));
DROP INDEX cancel_sessions_open_customer_idx;
CREATE UNIQUE INDEX cancel_sessions_one_open_idx
    ON cancel_sessions (tenant_id, mode, customer_id) WHERE outcome IS NULL;

-- Writes a batch of new sessions (one element each, in start order). Of several starts of
-- one customer in the batch, the last stays open and the earlier ones are inserted
-- abandoned; a customer's open session from before is abandoned. Returns the number of rows
-- inserted (one per element; fewer only if ten rounds of conflicts with concurrent starts
-- of the same customers did not settle, which the batcher reports as an error).
--
-- Lock order: inserts in (tenant, mode, customer) order, so two batches never wait on each
-- other's uncommitted inserts in a cycle; the slow path takes customer locks in ascending
-- key order, then session row locks in id order, like record_widget_events. A batch holds
-- its new-customer inserts while it waits for a customer lock, so a cycle through another
-- batch's slow path is possible in principle; PostgreSQL then aborts one batch (deadlock
-- detected) and the batcher replays it element by element: nothing acknowledged is lost.
CREATE OR REPLACE FUNCTION record_widget_sessions(batch jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    want     bigint := jsonb_array_length(batch);
    n        bigint := 0;
    pending  jsonb := batch;
    ins_ids  uuid[];
    open_ids uuid[];
    k        integer;
    ct       uuid;
    cm       text;
    cc       text;
BEGIN
    FOR round IN 1..10 LOOP
        WITH ins AS (
            INSERT INTO cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version,
                                         variant, holdout, mrr_cents, attributes, rendered_offers, expires_at, outcome, ended_at)
            SELECT id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version, variant, holdout,
                   mrr_cents, attributes, coalesce(rendered_offers, '{}'), now() + make_interval(secs => coalesce(ttl_secs, 86400)),
                   CASE WHEN later THEN 'abandoned' END, CASE WHEN later THEN now() END
              FROM (SELECT x.*, row_number() OVER (PARTITION BY x.tenant_id, x.mode, x.customer_id ORDER BY x.ord DESC) > 1 AS later
                      FROM ROWS FROM (jsonb_to_recordset(pending) AS (id uuid, tenant_id uuid, mode text, user_id uuid, customer_id text,
                               subscription_id text, flow_id uuid, flow_version integer, variant text, holdout boolean,
                               mrr_cents bigint, attributes jsonb, rendered_offers text[], ttl_secs double precision))
                           WITH ORDINALITY AS x(id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version,
                                                variant, holdout, mrr_cents, attributes, rendered_offers, ttl_secs, ord)) s
             ORDER BY tenant_id, mode, customer_id, ord
            ON CONFLICT (tenant_id, mode, customer_id) WHERE outcome IS NULL DO NOTHING
            RETURNING id)
        SELECT coalesce(array_agg(id), '{}') INTO ins_ids FROM ins;
        n := n + cardinality(ins_ids);
        IF n >= want THEN
            RETURN n;
        END IF;
        -- What is left: open starts of customers with an open session (one element per
        -- customer: the abandoned `later` rows never conflict).
        pending := (SELECT jsonb_agg(e ORDER BY o) FROM jsonb_array_elements(pending) WITH ORDINALITY AS x(e, o)
                     WHERE NOT ((e->>'id')::uuid = ANY (ins_ids)));
        -- The customer locks (ascending key; re-taking one we hold is free) serialise the
        -- slow paths of batches racing for one customer, so each round settles. Then one
        -- parameterized probe per customer (a new statement: its snapshot sees every start
        -- committed before the lock was ours; a join would let the planner scan every open
        -- session when statistics lag behind a fast-growing table), then the row locks in id
        -- order; those an event ended meanwhile drop out.
        open_ids := '{}';
        FOR k, ct, cm, cc IN
            SELECT DISTINCT rtos_customer_lock_key(x.tenant_id, x.mode, x.customer_id), x.tenant_id, x.mode, x.customer_id
              FROM jsonb_to_recordset(pending) AS x(tenant_id uuid, mode text, customer_id text)
             ORDER BY 1
        LOOP
            PERFORM pg_advisory_xact_lock(15001, k);
            open_ids := open_ids || ARRAY(
                SELECT id FROM cancel_sessions
                 WHERE tenant_id = ct AND mode = cm AND customer_id = cc AND outcome IS NULL);
        END LOOP;
        IF cardinality(open_ids) > 0 THEN
            open_ids := ARRAY(
                SELECT id FROM cancel_sessions
                 WHERE id = ANY (open_ids) AND coalesce(outcome, '') = ''
                 ORDER BY id FOR UPDATE);
            UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
             WHERE id = ANY (open_ids);
        END IF;
    END LOOP;
    RETURN n;
END
$$;
