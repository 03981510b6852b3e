-- Widget events are written in batches (group commit): the api validates each event, queues
-- it in process, and one call of this function records a whole batch in one statement (one
-- round trip, one commit). Each element is one event, already validated against the session's
-- flow; the result array says, in input order, what happened to each:
--   "ok"            recorded (with its analytics rows, session change and outbox job, if any)
--   "ok_job"        recorded, and the element's outbox job was written (the api pushes it)
--   "duplicate"     its client_event_id was recorded before: nothing changed
--   "session_ended" an offer_accepted for a session that already has an outcome: nothing changed
--   "no_session"    the session does not exist for this tenant and mode: nothing changed
-- Sessions are locked in ascending id order, so concurrent batches cannot deadlock and the
-- events of one session are applied one at a time (the "has an outcome" check is atomic).
CREATE FUNCTION record_widget_events(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    e        jsonb;
    idx      bigint;
    n        bigint := jsonb_array_length(batch);
    results  text[] := array_fill(NULL::text, ARRAY[jsonb_array_length(batch)]);
    t        uuid;
    s        uuid;
    m        text;
    kind     text;
    cur      text;
    ended    boolean;
    wrote    boolean;
    job      jsonb;
BEGIN
    FOR e, idx IN
        SELECT value, ordinality FROM jsonb_array_elements(batch) WITH ORDINALITY
         ORDER BY value->>'session_id', ordinality
    LOOP
        t := (e->>'tenant_id')::uuid;
        s := (e->>'session_id')::uuid;
        m := e->>'mode';
        kind := e->>'type';
        job := NULLIF(e->'job', 'null'::jsonb);
        SELECT outcome INTO cur FROM cancel_sessions
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
        ended := cur IS NOT NULL AND cur <> 'abandoned';
        IF kind = 'offer_accepted' AND ended THEN
            results[idx] := 'session_ended';
            CONTINUE;
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
            IF NOT ended THEN
                UPDATE cancel_sessions
                   SET outcome = 'canceled', ended_at = now(), cancel_state = e->>'cancel_state'
                 WHERE tenant_id = t AND id = s;
                wrote := job IS NOT NULL;
            END IF;
        ELSIF kind = 'abandoned' THEN
            UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now()
             WHERE tenant_id = t AND id = s AND outcome IS NULL;
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
