//! Analytics data generator for benchmarks and tests.
//!
//! [`run`] fills one or more tenants with realistic, deterministic (for a given
//! [`SeedOptions::seed`]) data: one published default cancel flow (survey, four offers, an
//! A/B experiment with a 10 % holdout), users with one subscription each, cancel sessions
//! spread uniformly over the last [`SeedOptions::days`] days, their `offer_events`
//! (exactly [`SeedOptions::events`] rows in total, split Zipf-like across tenants: the first
//! gets the most) and their `churn_reasons`.
//!
//! Rows are streamed with PostgreSQL `COPY ... FROM STDIN (FORMAT binary)`: a blocking
//! generator thread encodes chunks of a few MB into bounded channels, and one dedicated
//! connection per table (opened from the pool's connect options, so a small pool is never
//! exhausted) sends them. Nothing is held in memory beyond the users and a few chunks.
//! Those connections skip foreign-key triggers (`session_replication_role = replica`) when
//! the database role may (superuser): every reference is to a row this run committed
//! first. Each table is one `COPY` (one transaction); a failure aborts every open `COPY`,
//! but the tenants, flows and users written before the failing phase stay. `ANALYZE` runs
//! on the touched tables at the end.
//!
//! Shapes worth knowing when reading the numbers: holdout sessions (10 %) see no offer, so
//! their would-be saves are cancellations (overall saved ≈ 27 %); variant `b` shows only
//! `pause2`/`downgrade`, so its saves are pause or plan change; `disc20` is shown only to
//! `too_expensive` sessions, and discount saves carry that reason. Customers cancel in
//! cohorts: each has ~10 sessions within a few days of each other (customer numbers and
//! user ids follow the cohorts; sign-up dates do not), which keeps index maintenance local.
//!
//! Timestamps are relative to the start of the run: everything lies in the past, sessions
//! in `[now - days, now - 15 min)`, users' sign-ups in the two years before the session
//! window. Session ids are UUIDv7 of their `created_at` with random bits from the seeded
//! PRNG, written in time order.
//!
//! Layout: this file holds the options and the report; [`run`] (in `run`) the phases in
//! order; `flow` the seeded cancel flow; `rng` the PRNG; `clock` time units; `shapes` the
//! session shapes and the per-tenant event budgets; `copy` the binary `COPY` encoding and
//! streaming; `users` the users and subscriptions phase; `activity` the sessions, offer
//! events and churn reasons phase.

mod activity;
mod clock;
mod copy;
mod flow;
mod rng;
mod run;
mod shapes;
mod users;

use uuid::Uuid;

pub use flow::{flow_definition, parsed_flow, OFFERS, REASONS};
pub use run::run;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Number of new tenants to create (ignored when `tenant_ids` is non-empty).
    pub tenants: usize,
    /// Total number of `offer_events` rows across all tenants (exact).
    pub events: u64,
    /// Sessions are spread over this many past days (at least 1).
    pub days: u32,
    /// PRNG seed: the same seed and options give the same data (ids and timestamps move
    /// with the wall clock).
    pub seed: u64,
    /// Seed into these existing tenants instead of creating new ones when non-empty.
    pub tenant_ids: Vec<Uuid>,
    /// Stamp `ingested_at = now()` (new, unrolled data) instead of `= created_at` (and the
    /// sessions' `updated_at = now()` instead of their last change).
    pub ingested_now: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            tenants: 1,
            events: 10_000,
            days: 30,
            seed: 42,
            tenant_ids: Vec::new(),
            ingested_now: false,
        }
    }
}

/// What was written (no keys: new tenants' keys are discarded).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedReport {
    pub tenants: Vec<Uuid>,
    pub users: u64,
    pub sessions: u64,
    pub offer_events: u64,
    pub churn_reasons: u64,
    pub seconds: f64,
}
