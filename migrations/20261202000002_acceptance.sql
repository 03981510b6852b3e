-- Acceptance = what was rendered (issue 15 item 2).
--
-- A session remembers the offers it rendered (after holdout, A/B variant and guardrails);
-- offer events for anything else are refused. A session expires (`expires_at`: the
-- database's now() plus the api's SESSION_TTL_SECS, sent as `ttl_secs`); a job marks expired
-- open sessions `abandoned`. A customer has at most one open session per tenant and mode: a
-- new start supersedes (abandons) the open one.
-- Guardrails (cooldowns of every offer type) are re-checked at acceptance under a
-- per-customer advisory lock, the same lock a session start takes.
--
-- Advisory lock keys: pg_advisory_xact_lock(15001, hashtext(tenant || '/' || mode || '/' ||
-- customer)), always taken before any row lock of the statement, in ascending key order,
-- so the session writer, the event writer and each other can never deadlock.

ALTER TABLE cancel_sessions
    -- Sessions started before this migration rendered nothing we know of: they accept no
    -- offer (a customer reopening the widget gets a new session that does).
    ADD COLUMN rendered_offers text[] NOT NULL DEFAULT '{}',
    ADD COLUMN expires_at timestamptz;
UPDATE cancel_sessions SET expires_at = created_at + interval '24 hours';
ALTER TABLE cancel_sessions
    ALTER COLUMN expires_at SET DEFAULT now() + interval '24 hours',
    ALTER COLUMN expires_at SET NOT NULL;

-- At most one open session per customer: older duplicates are abandoned first. The rule is
-- kept by record_widget_sessions under the customer lock (every session the api starts goes
-- through it), not by a unique index: bulk loads (api seed, backfills) write history with
-- sessions that never ended, and a unique index would refuse them.
UPDATE cancel_sessions c SET outcome = 'abandoned', ended_at = coalesce(ended_at, now())
 WHERE outcome IS NULL
   AND EXISTS (SELECT 1 FROM cancel_sessions n
                WHERE n.tenant_id = c.tenant_id AND n.mode = c.mode AND n.customer_id = c.customer_id
                  AND n.outcome IS NULL AND (n.created_at, n.id) > (c.created_at, c.id));
-- A session start's lookup of the customer's open sessions.
CREATE INDEX cancel_sessions_open_customer_idx
    ON cancel_sessions (tenant_id, mode, customer_id) WHERE outcome IS NULL;
-- The expiry job's scan: open sessions by expiry. The `< 'infinity'` term is there so that
-- only a query that names it (the job's) can use this index: with `outcome IS NULL` alone it
-- would also match the session start's lookup of a customer's open sessions, and a planner
-- with stale statistics (a fast-growing table before autoanalyze) then scans every open
-- session here instead of probing cancel_sessions_open_customer_idx.
CREATE INDEX cancel_sessions_open_expiry_idx ON cancel_sessions (expires_at)
    WHERE outcome IS NULL AND expires_at < 'infinity';

-- The customer lock (see above), as one function so every writer uses the same key.
CREATE FUNCTION rtos_customer_lock_key(t uuid, m text, c text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext(t::text || '/' || m || '/' || c) $$;

-- Writes a batch of new sessions (one element each, in start order) in one statement per
-- step: lock the customers, abandon their open sessions, insert. Of several starts of one
-- customer in the batch, the last stays open and the earlier ones are inserted abandoned.
-- Returns the number of rows inserted (one per element).
CREATE FUNCTION record_widget_sessions(batch jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    k        integer;
    n        bigint;
    ct       uuid;
    cm       text;
    cc       text;
    open_ids uuid[] := '{}';
BEGIN
    -- Customers in ascending lock key order: lock, then (a new statement, whose snapshot sees
    -- every session committed before the lock was ours, and no other start of this customer
    -- can commit while we hold it) find their open sessions. Only advisory locks are taken
    -- in this loop, so the order rule holds. One parameterized index probe per customer: a
    -- join would let the planner scan every open session when the statistics lag behind a
    -- fast-growing table.
    FOR k, ct, cm, cc IN
        SELECT DISTINCT rtos_customer_lock_key(x.tenant_id, x.mode, x.customer_id), x.tenant_id, x.mode, x.customer_id
          FROM jsonb_to_recordset(batch) AS x(tenant_id uuid, mode text, customer_id text)
         ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(15001, k);
        open_ids := open_ids || ARRAY(
            SELECT id FROM cancel_sessions
             WHERE tenant_id = ct AND mode = cm AND customer_id = cc AND outcome IS NULL);
    END LOOP;
    IF cardinality(open_ids) > 0 THEN
        -- Rows locked in id order, like record_widget_events: no deadlock with an event
        -- batch. Those an event ended meanwhile drop out (the lock rechecks the condition,
        -- written so that it is a filter on the primary key probe, not a reason to scan
        -- the open-sessions index).
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

-- record_widget_events, now also refusing what the session did not render. Statuses, in
-- input order (besides "ok", "ok_job", "duplicate", "no_session" as before):
--   "session_ended:<outcome>"  the session has an outcome (saved, canceled, abandoned,
--                              deflected): any new event is refused, nothing changed
--   "session_expired"          past expires_at: nothing changed
--   "offer_not_rendered"       an offer event for an offer the session did not render
--   "offer_not_for_reason"     offer_accepted for an offer limited to reason_codes when the
--                              session's selected reason is not one of them
--   "offer_in_cooldown"        offer_accepted while another session of the customer saved
--                              with an offer of that type within its cooldown
-- Elements carry what the api decided: `customer_id`, `offer.reason_codes` and
-- `cooldown_days` (the tenant's cooldown for the offer's type, null when none applies).
-- Customers with an acceptance in the batch are locked first (ascending key), then sessions
-- in ascending id order, so concurrent batches cannot deadlock; the cooldown check and the
-- write happen under both locks.
CREATE OR REPLACE FUNCTION record_widget_events(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    e        jsonb;
    idx      bigint;
    k        integer;
    n        bigint := jsonb_array_length(batch);
    results  text[] := array_fill(NULL::text, ARRAY[jsonb_array_length(batch)]);
    t        uuid;
    s        uuid;
    m        text;
    kind     text;
    cur      text;
    cur_exp  timestamptz;
    rendered text[];
    cur_reason text;
    cus      text;
    wrote    boolean;
    job      jsonb;
BEGIN
    FOR k IN
        SELECT DISTINCT rtos_customer_lock_key((value->>'tenant_id')::uuid, value->>'mode', value->>'customer_id')
          FROM jsonb_array_elements(batch)
         WHERE value->>'type' = 'offer_accepted' AND value->>'customer_id' IS NOT NULL
         ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(15001, k);
    END LOOP;
    FOR e, idx IN
        SELECT value, ordinality FROM jsonb_array_elements(batch) WITH ORDINALITY
         ORDER BY value->>'session_id', ordinality
    LOOP
        t := (e->>'tenant_id')::uuid;
        s := (e->>'session_id')::uuid;
        m := e->>'mode';
        kind := e->>'type';
        job := NULLIF(e->'job', 'null'::jsonb);
        SELECT outcome, expires_at, rendered_offers, reason_code, customer_id
          INTO cur, cur_exp, rendered, cur_reason, cus
          FROM cancel_sessions
         WHERE tenant_id = t AND id = s AND mode = m FOR UPDATE;
        IF NOT FOUND THEN
            results[idx] := 'no_session';
            CONTINUE;
        END IF;
        PERFORM 1 FROM session_events WHERE session_id = s AND client_event_id = e->>'client_event_id';
        IF FOUND THEN
            results[idx] := 'duplicate';
            CONTINUE;
        END IF;
        IF cur IS NOT NULL THEN
            results[idx] := 'session_ended:' || cur;
            CONTINUE;
        END IF;
        IF cur_exp <= now() THEN
            results[idx] := 'session_expired';
            CONTINUE;
        END IF;
        IF kind IN ('offer_shown', 'offer_accepted', 'offer_declined')
           AND NOT (e#>>'{offer,id}' = ANY (rendered)) THEN
            results[idx] := 'offer_not_rendered';
            CONTINUE;
        END IF;
        -- Reason routing, as the widget does it: an offer limited to reason_codes is offered
        -- only once one of them is the selected reason (the latest reason_selected).
        IF kind = 'offer_accepted'
           AND jsonb_array_length(coalesce(e#>'{offer,reason_codes}', '[]'::jsonb)) > 0
           AND (cur_reason IS NULL OR NOT (e#>'{offer,reason_codes}' ? cur_reason)) THEN
            results[idx] := 'offer_not_for_reason';
            CONTINUE;
        END IF;
        IF kind = 'offer_accepted' AND (e->>'cooldown_days') IS NOT NULL THEN
            PERFORM 1 FROM cancel_sessions o
             WHERE o.tenant_id = t AND o.mode = m AND o.customer_id = cus AND o.outcome = 'saved'
               AND o.saved_offer_type = e#>>'{offer,type}'
               AND o.created_at > now() - make_interval(days => (e->>'cooldown_days')::integer)
               AND o.id <> s;
            IF FOUND THEN
                results[idx] := 'offer_in_cooldown';
                CONTINUE;
            END IF;
        END IF;
        INSERT INTO session_events (id, tenant_id, session_id, client_event_id, type, payload)
        VALUES ((e->>'id')::uuid, t, s, e->>'client_event_id', kind, e->'payload');
        wrote := false;
        IF kind = 'reason_selected' THEN
            INSERT INTO churn_reasons (tenant_id, user_id, session_id, reason_code, mode)
            VALUES (t, (e->>'user_id')::uuid, s, e->>'reason_code', m);
            UPDATE cancel_sessions SET reason_code = e->>'reason_code' WHERE tenant_id = t AND id = s;
        ELSIF kind IN ('offer_shown', 'offer_accepted') THEN
            INSERT INTO offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id, offer_type, accepted, mrr_cents, mode)
            VALUES (t, (e->>'user_id')::uuid, (e->>'flow_id')::uuid, s, e->>'variant',
                    e#>>'{offer,id}', e#>>'{offer,type}', kind = 'offer_accepted',
                    CASE WHEN kind = 'offer_accepted' THEN (e->>'mrr_cents')::bigint ELSE 0 END, m);
            IF kind = 'offer_accepted' THEN
                UPDATE cancel_sessions
                   SET outcome = e->>'outcome', saved_offer_type = e#>>'{offer,type}',
                       accepted_offer = e#>'{offer,definition}', offer_state = e->>'offer_state', ended_at = now()
                 WHERE tenant_id = t AND id = s;
                wrote := job IS NOT NULL;
            END IF;
        ELSIF kind = 'cancel_confirmed' THEN
            UPDATE cancel_sessions
               SET outcome = 'canceled', ended_at = now(), cancel_state = e->>'cancel_state'
             WHERE tenant_id = t AND id = s;
            wrote := job IS NOT NULL;
        ELSIF kind = 'abandoned' THEN
            UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
             WHERE tenant_id = t AND id = s;
        END IF;
        IF wrote THEN
            INSERT INTO job_outbox (id, tenant_id, queue, kind, payload)
            VALUES ((job->>'id')::uuid, t, job->>'queue', job->>'kind', job->'payload');
            results[idx] := 'ok_job';
        ELSE
            results[idx] := 'ok';
        END IF;
    END LOOP;
    IF n = 0 THEN
        RETURN '[]'::jsonb;
    END IF;
    RETURN to_jsonb(results);
END
$$;
