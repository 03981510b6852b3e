-- Probe jobs (ops canary) can be held at a gate and record when each attempt was due, so the
-- job-platform tests put work in a known state (running, not yet done) before a fault, and
-- check the retry schedule from the values the queue recorded rather than from wall-clock
-- gaps (tests/tests/jobs.rs).
--
-- A probe with `gate: "g"` waits, after recording its run, until a row named "g" exists here.
CREATE TABLE probe_gates (
    name      text PRIMARY KEY,
    opened_at timestamptz NOT NULL DEFAULT now()
);
-- When the attempt became due and when the previous attempt failed (from the queue's task
-- record: `Leased::ready_at_ms`, `Leased::failed_at_ms`).
ALTER TABLE probe_runs
    ADD COLUMN attempt           integer,
    ADD COLUMN due_at            timestamptz,
    ADD COLUMN prev_failed_at    timestamptz;
