-- Stripe saves a 500 answer against its idempotency key, so after a 500 that a re-fetch
-- shows was NOT applied, the next attempt must use a new key: the key carries this
-- generation number.
ALTER TABLE cancel_sessions
    ADD COLUMN offer_key_generation integer NOT NULL DEFAULT 0,
    ADD COLUMN cancel_key_generation integer NOT NULL DEFAULT 0;
