-- The widget event write path (issue 15's throughput budget, issue 16's typed rows).
--
-- 1. A selected reason alone no longer moves `updated_at`. updated_at tells the hourly rollup
--    which sessions' figures moved (outcome, offer, validation); the reasons rollup reads
--    churn_reasons, never cancel_sessions.reason_code. Every `reason_selected` event updates
--    reason_code, and with updated_at (indexed) rewritten too that update could never be HOT:
--    each one added an entry to every index of the table (nine). Now it touches no indexed
--    column, and with free space on the page (fillfactor below) it is a heap-only update.
CREATE OR REPLACE FUNCTION cancel_sessions_touch() RETURNS trigger AS $$
BEGIN
    IF NEW.reason_code IS DISTINCT FROM OLD.reason_code
       AND (to_jsonb(NEW) - 'reason_code') = (to_jsonb(OLD) - 'reason_code') THEN
        RETURN NEW;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$ LANGUAGE plpgsql;

-- Room on each page for a session's updates while it is open (reason, then outcome), so they
-- stay on the page. Applies to pages written from now on.
ALTER TABLE cancel_sessions SET (fillfactor = 80);

-- 2. record_widget_events reads its batch as typed rows (`jsonb_to_recordset`, one column per
--    field of api::widget_batch::EventRow) instead of looking keys up by name in every
--    statement; sessions are locked in uuid order (the order every other writer uses).
--    Statuses and rules are those of migration 20261202000002, unchanged; a reason selected
--    again that is already the session's reason does not rewrite the row.
CREATE OR REPLACE FUNCTION record_widget_events(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    e        record;
    k        integer;
    n        bigint := jsonb_array_length(batch);
    results  text[] := array_fill(NULL::text, ARRAY[jsonb_array_length(batch)]);
    cur      text;
    cur_exp  timestamptz;
    rendered text[];
    cur_reason text;
    cus      text;
    wrote    boolean;
BEGIN
    FOR k IN
        SELECT DISTINCT rtos_customer_lock_key(x.tenant_id, x.mode, x.customer_id)
          FROM jsonb_to_recordset(batch) AS x(tenant_id uuid, mode text, customer_id text, type text)
         WHERE x.type = 'offer_accepted' AND x.customer_id IS NOT NULL
         ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(15001, k);
    END LOOP;
    FOR e IN
        SELECT * FROM ROWS FROM (jsonb_to_recordset(batch) AS (
                   id uuid, tenant_id uuid, mode text, session_id uuid, customer_id text,
                   client_event_id text, type text, payload jsonb, reason_code text, user_id uuid,
                   flow_id uuid, variant text, mrr_cents bigint, offer jsonb, cooldown_days integer,
                   outcome text, offer_state text, cancel_state text, job jsonb))
               WITH ORDINALITY AS x(id, tenant_id, mode, session_id, customer_id, client_event_id,
                   type, payload, reason_code, user_id, flow_id, variant, mrr_cents, offer,
                   cooldown_days, outcome, offer_state, cancel_state, job, ord)
         ORDER BY x.session_id, x.ord
    LOOP
        SELECT c.outcome, c.expires_at, c.rendered_offers, c.reason_code, c.customer_id
          INTO cur, cur_exp, rendered, cur_reason, cus
          FROM cancel_sessions c
         WHERE c.tenant_id = e.tenant_id AND c.id = e.session_id AND c.mode = e.mode FOR UPDATE;
        IF NOT FOUND THEN
            results[e.ord] := 'no_session';
            CONTINUE;
        END IF;
        PERFORM 1 FROM session_events WHERE session_id = e.session_id AND client_event_id = e.client_event_id;
        IF FOUND THEN
            results[e.ord] := 'duplicate';
            CONTINUE;
        END IF;
        IF cur IS NOT NULL THEN
            results[e.ord] := 'session_ended:' || cur;
            CONTINUE;
        END IF;
        IF cur_exp <= now() THEN
            results[e.ord] := 'session_expired';
            CONTINUE;
        END IF;
        IF e.type IN ('offer_shown', 'offer_accepted', 'offer_declined')
           AND NOT (e.offer->>'id' = ANY (rendered)) THEN
            results[e.ord] := 'offer_not_rendered';
            CONTINUE;
        END IF;
        -- Reason routing, as the widget does it: an offer limited to reason_codes is offered
        -- only once one of them is the selected reason (the latest reason_selected).
        IF e.type = 'offer_accepted'
           AND jsonb_array_length(coalesce(e.offer->'reason_codes', '[]'::jsonb)) > 0
           AND (cur_reason IS NULL OR NOT (e.offer->'reason_codes' ? cur_reason)) THEN
            results[e.ord] := 'offer_not_for_reason';
            CONTINUE;
        END IF;
        IF e.type = 'offer_accepted' AND e.cooldown_days IS NOT NULL THEN
            PERFORM 1 FROM cancel_sessions o
             WHERE o.tenant_id = e.tenant_id AND o.mode = e.mode AND o.customer_id = cus
               AND o.outcome = 'saved' AND o.saved_offer_type = e.offer->>'type'
               AND o.created_at > now() - make_interval(days => e.cooldown_days)
               AND o.id <> e.session_id;
            IF FOUND THEN
                results[e.ord] := 'offer_in_cooldown';
                CONTINUE;
            END IF;
        END IF;
        INSERT INTO session_events (id, tenant_id, session_id, client_event_id, type, payload)
        VALUES (e.id, e.tenant_id, e.session_id, e.client_event_id, e.type, e.payload);
        wrote := false;
        IF e.type = 'reason_selected' THEN
            INSERT INTO churn_reasons (tenant_id, user_id, session_id, reason_code, mode)
            VALUES (e.tenant_id, e.user_id, e.session_id, e.reason_code, e.mode);
            IF cur_reason IS DISTINCT FROM e.reason_code THEN
                UPDATE cancel_sessions SET reason_code = e.reason_code
                 WHERE tenant_id = e.tenant_id AND id = e.session_id;
            END IF;
        ELSIF e.type IN ('offer_shown', 'offer_accepted') THEN
            INSERT INTO offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id, offer_type, accepted, mrr_cents, mode)
            VALUES (e.tenant_id, e.user_id, e.flow_id, e.session_id, e.variant,
                    e.offer->>'id', e.offer->>'type', e.type = 'offer_accepted',
                    CASE WHEN e.type = 'offer_accepted' THEN e.mrr_cents ELSE 0 END, e.mode);
            IF e.type = 'offer_accepted' THEN
                UPDATE cancel_sessions
                   SET outcome = e.outcome, saved_offer_type = e.offer->>'type',
                       accepted_offer = e.offer->'definition', offer_state = e.offer_state, ended_at = now()
                 WHERE tenant_id = e.tenant_id AND id = e.session_id;
                wrote := e.job IS NOT NULL;
            END IF;
        ELSIF e.type = 'cancel_confirmed' THEN
            UPDATE cancel_sessions
               SET outcome = 'canceled', ended_at = now(), cancel_state = e.cancel_state
             WHERE tenant_id = e.tenant_id AND id = e.session_id;
            wrote := e.job IS NOT NULL;
        ELSIF e.type = 'abandoned' THEN
            UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
             WHERE tenant_id = e.tenant_id AND id = e.session_id;
        END IF;
        IF wrote THEN
            INSERT INTO job_outbox (id, tenant_id, queue, kind, payload)
            VALUES ((e.job->>'id')::uuid, e.tenant_id, e.job->>'queue', e.job->>'kind', e.job->'payload');
            results[e.ord] := 'ok_job';
        ELSE
            results[e.ord] := 'ok';
        END IF;
    END LOOP;
    IF n = 0 THEN
        RETURN '[]'::jsonb;
    END IF;
    RETURN to_jsonb(results);
END
$$;
