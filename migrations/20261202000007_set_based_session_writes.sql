-- record_widget_sessions, set-based: the customers' advisory locks in one statement (ascending
-- key, the order every writer uses), their open sessions found and row-locked (ascending id)
-- in a second, superseded and the batch inserted in the third and fourth. The first version
-- ran one lock call and one lookup per customer, which cost a quarter of the batch's time at
-- 32 starts. The lookup is a LATERAL probe per customer, so it is a parameterized scan of
-- cancel_sessions_open_customer_idx whatever the statistics say; the row locks are still
-- taken in id order in their own statement.
CREATE OR REPLACE FUNCTION record_widget_sessions(batch jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n        bigint;
    open_ids uuid[];
BEGIN
    PERFORM pg_advisory_xact_lock(15001, l.k)
       FROM (SELECT DISTINCT rtos_customer_lock_key(x.tenant_id, x.mode, x.customer_id) AS k
               FROM jsonb_to_recordset(batch) AS x(tenant_id uuid, mode text, customer_id text)
              ORDER BY 1) l;
    -- A new statement: its snapshot sees every session committed before the locks were ours.
    open_ids := ARRAY(
        SELECT o.id
          FROM (SELECT DISTINCT x.tenant_id, x.mode, x.customer_id
                  FROM jsonb_to_recordset(batch) AS x(tenant_id uuid, mode text, customer_id text)) x
         CROSS JOIN LATERAL (
               SELECT cs.id FROM cancel_sessions cs
                WHERE cs.tenant_id = x.tenant_id AND cs.mode = x.mode AND cs.customer_id = x.customer_id
                  AND cs.outcome IS NULL) o);
    IF cardinality(open_ids) > 0 THEN
        -- Rows locked in id order, like record_widget_events (no deadlock with an event
        -- batch); those an event ended meanwhile drop out.
        open_ids := ARRAY(
            SELECT id FROM cancel_sessions
             WHERE id = ANY (open_ids) AND coalesce(outcome, '') = ''
             ORDER BY id FOR UPDATE);
        UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
         WHERE id = ANY (open_ids);
    END IF;
    INSERT INTO cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version,
                                 variant, holdout, mrr_cents, attributes, rendered_offers, expires_at, outcome, ended_at)
    SELECT id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version, variant, holdout,
           mrr_cents, attributes, coalesce(rendered_offers, '{}'), now() + make_interval(secs => coalesce(ttl_secs, 86400)),
           CASE WHEN later THEN 'abandoned' END, CASE WHEN later THEN now() END
      FROM (SELECT x.*, row_number() OVER (PARTITION BY x.tenant_id, x.mode, x.customer_id ORDER BY x.ord DESC) > 1 AS later
              FROM ROWS FROM (jsonb_to_recordset(batch) AS (id uuid, tenant_id uuid, mode text, user_id uuid, customer_id text,
                       subscription_id text, flow_id uuid, flow_version integer, variant text, holdout boolean,
                       mrr_cents bigint, attributes jsonb, rendered_offers text[], ttl_secs double precision))
                   WITH ORDINALITY AS x(id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version,
                                        variant, holdout, mrr_cents, attributes, rendered_offers, ttl_secs, ord)) s;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
