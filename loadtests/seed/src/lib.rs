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

use std::{io::Write as _, sync::Arc, time::Instant};

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use shared::{crypto::MasterKey, flows::FlowDefinition};
use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    Connection as _, PgPool,
};
use tokio::sync::mpsc;
use uuid::Uuid;

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

// ---------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------

/// Reason codes of the seeded survey (weights 30/15/20/12/10/13 %).
pub const REASONS: [&str; 6] = [
    "too_expensive",
    "missing_features",
    "not_using",
    "switching_competitor",
    "technical_issues",
    "other",
];
const REASON_LABELS: [&str; 6] = [
    "It's too expensive",
    "It's missing features I need",
    "I'm not using it enough",
    "I'm switching to another product",
    "I had technical issues",
    "Something else",
];
const REASON_WEIGHTS: [u32; 6] = [30, 15, 20, 12, 10, 13];

/// Offers of the seeded flow as `(offer_id, offer_type)`; the index is the offer number
/// used throughout (0 = discount, 1 = pause, 2 = plan change, 3 = trial extension).
pub const OFFERS: [(&str, &str); 4] = [
    ("disc20", "discount"),
    ("pause2", "pause"),
    ("downgrade", "plan_change"),
    ("trial14", "trial_extension"),
];
const DISCOUNT: u8 = 0;

/// The default flow every seeded tenant gets (published as version 1).
pub fn flow_definition() -> Value {
    let reasons: Vec<Value> = REASONS
        .iter()
        .zip(REASON_LABELS)
        .map(|(code, label)| json!({ "code": code, "label": label }))
        .collect();
    json!({
        "name": "Default cancel flow",
        "language": "en",
        "is_default": true,
        "experiment": {
            "holdout_percent": 10,
            "variants": [
                { "key": "a", "weight": 1 },
                { "key": "b", "weight": 1, "offer_ids": ["pause2", "downgrade"] }
            ]
        },
        "steps": [
            { "type": "survey", "id": "reason", "title": "Why are you canceling?", "reasons": reasons },
            { "type": "offer", "id": "offers", "title": "Before you go", "offers": [
                { "id": "disc20", "type": "discount", "title": "20% off for 3 months",
                  "description": "Stay and save 20% on your next three invoices.",
                  "reason_codes": ["too_expensive"],
                  "discount": { "percent_off": 20.0, "duration": "repeating", "duration_in_months": 3 } },
                { "id": "pause2", "type": "pause", "title": "Pause for 2 months",
                  "description": "Take a break; nothing is billed while paused.",
                  "pause": { "months": 2 } },
                { "id": "downgrade", "type": "plan_change", "title": "Switch to Basic",
                  "description": "Keep the essentials for less.",
                  "plan_change": { "price_id": "price_basic" } },
                { "id": "trial14", "type": "trial_extension", "title": "14 more days free",
                  "description": "Take two more weeks to decide.",
                  "trial_extension": { "days": 14 } }
            ] },
            { "type": "confirm", "id": "confirm", "title": "Confirm cancellation",
              "body": "Your subscription ends at the end of the current period." }
        ]
    })
}

/// The parsed and validated default flow.
pub fn parsed_flow() -> anyhow::Result<FlowDefinition> {
    let def = shared::flows::parse_flow(flow_definition())
        .map_err(|e| anyhow!("seed flow: {}: {}", e.param, e.message))?;
    def.validate()
        .map_err(|e| anyhow!("seed flow: {}: {}", e.param, e.message))?;
    Ok(def)
}

// ---------------------------------------------------------------------------------------
// PRNG and helpers
// ---------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, deterministic, good enough statistically for test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.below(total as u64) as u32;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// A UUIDv7 for a row created at `us` (Unix microseconds).
    fn uuid_v7(&mut self, us: i64) -> Uuid {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis((us / 1000).max(0) as u64, &b).into_uuid()
    }
}

fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

const SEC: i64 = 1_000_000;
const DAY: i64 = 86_400 * SEC;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800 * SEC;
/// Sessions end this long before `now` at the latest, so every derived timestamp is past.
const MARGIN: i64 = 15 * 60 * SEC;

/// Splits `events` across `n` tenants with weights `1/(i+1)`; the first tenant takes the
/// rounding remainder. Sums to `events` exactly.
fn split_events(events: u64, n: usize) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let w: Vec<f64> = (0..n).map(|i| 1.0 / (i + 1) as f64).collect();
    let total: f64 = w.iter().sum();
    let mut shares: Vec<u64> = w
        .iter()
        .map(|x| (events as f64 * x / total).floor() as u64)
        .collect();
    let assigned: u64 = shares.iter().sum();
    shares[0] += events.saturating_sub(assigned);
    // Floating point could (in theory) over-assign; take any excess from the largest.
    let mut excess = shares.iter().sum::<u64>().saturating_sub(events);
    for s in shares.iter_mut() {
        let take = excess.min(*s);
        *s -= take;
        excess -= take;
    }
    shares
}

// ---------------------------------------------------------------------------------------
// Session shapes (everything that decides the number of offer events)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Saved,
    Canceled,
    Abandoned,
    Deflected,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Saved => "saved",
            Outcome::Canceled => "canceled",
            Outcome::Abandoned => "abandoned",
            Outcome::Deflected => "deflected",
        }
    }
}

const VARIANTS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy)]
struct Shape {
    holdout: bool,
    /// Index into [`VARIANTS`]; meaningless for holdout sessions.
    variant: u8,
    /// `None`: still in progress.
    outcome: Option<Outcome>,
    reason: Option<u8>,
    /// The accepted offer (saved sessions only).
    accepted: Option<u8>,
    shown: [u8; 3],
    nshown: u8,
}

impl Shape {
    fn events(&self) -> u64 {
        self.nshown as u64 + self.accepted.is_some() as u64
    }
}

/// Draws one session's shape; `remaining` (≥ 1) is the tenant's unused event budget, and
/// the shape never needs more than that (the last session is trimmed).
fn draw_shape(rng: &mut Rng, remaining: u64) -> Shape {
    let holdout = rng.chance(0.10);
    let variant = if holdout { 0 } else { rng.below(2) as u8 };
    // saved 30 %, canceled 40 %, abandoned 20 %, deflected 5 %, in progress 5 %.
    let mut outcome = match rng.weighted(&[30, 40, 20, 5, 5]) {
        0 => Some(Outcome::Saved),
        1 => Some(Outcome::Canceled),
        2 => Some(Outcome::Abandoned),
        3 => Some(Outcome::Deflected),
        _ => None,
    };
    // The holdout sees no offer, so it cannot be saved by one.
    if holdout && outcome == Some(Outcome::Saved) {
        outcome = Some(Outcome::Canceled);
    }
    let mut accepted = (outcome == Some(Outcome::Saved)).then(|| {
        if variant == 0 {
            // discount 45 % / pause 30 % / plan change 15 % / trial extension 10 %.
            rng.weighted(&[45, 30, 15, 10]) as u8
        } else {
            // Variant b only offers pause2 and downgrade.
            1 + rng.weighted(&[30, 15]) as u8
        }
    });
    // The discount is shown only for too_expensive, so discount saves carry that reason.
    let reason = if accepted == Some(DISCOUNT) {
        Some(0)
    } else if rng.chance(0.9) {
        Some(rng.weighted(&REASON_WEIGHTS) as u8)
    } else {
        None
    };
    let mut shape = Shape {
        holdout,
        variant,
        outcome,
        reason,
        accepted,
        shown: [0; 3],
        nshown: 0,
    };
    if holdout {
        return shape;
    }
    let mut eligible = [0u8; 4];
    let mut ne = 0;
    let offers: &[u8] = if variant == 0 { &[0, 1, 2, 3] } else { &[1, 2] };
    for &o in offers {
        if o != DISCOUNT || reason == Some(0) {
            eligible[ne] = o;
            ne += 1;
        }
    }
    let mut k = (1 + rng.below(3) as usize).min(ne);
    // Trim to the budget.
    let need = k as u64 + accepted.is_some() as u64;
    if need > remaining {
        if accepted.is_some() && remaining >= 2 {
            k = remaining as usize - 1;
        } else {
            if accepted.is_some() {
                accepted = None;
                outcome = Some(Outcome::Canceled);
            }
            k = (remaining as usize).min(k);
        }
        shape.accepted = accepted;
        shape.outcome = outcome;
    }
    // Partial Fisher-Yates: the first k of `eligible` become the shown offers.
    for i in 0..k {
        let j = i + rng.below((ne - i) as u64) as usize;
        eligible.swap(i, j);
    }
    if let Some(a) = accepted {
        if !eligible[..k].contains(&a) {
            let slot = rng.below(k as u64) as usize;
            eligible[slot] = a;
        }
    }
    shape.shown[..k].copy_from_slice(&eligible[..k]);
    shape.nshown = k as u8;
    shape
}

/// The number of sessions needed to use `budget` events with shapes from `rng`.
fn count_sessions(mut rng: Rng, budget: u64) -> u64 {
    let mut remaining = budget;
    let mut n = 0;
    while remaining > 0 {
        remaining -= draw_shape(&mut rng, remaining).events();
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------
// Binary COPY encoding and streaming
// ---------------------------------------------------------------------------------------

const CHUNK: usize = 2 << 20;

enum Msg {
    Data(Vec<u8>),
    /// The generator finished: commit.
    Done,
}

/// A binary-`COPY` row encoder that hands full chunks to a consumer task.
struct Sink {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
    rows: u64,
}

impl Sink {
    fn new(tx: mpsc::Sender<Msg>) -> Self {
        let mut buf = Vec::with_capacity(CHUNK + 64 * 1024);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { tx, buf, rows: 0 }
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self.rows += 1;
    }

    fn len(&mut self, n: usize) {
        self.buf.extend_from_slice(&(n as i32).to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn uuid(&mut self, u: &Uuid) {
        self.len(16);
        self.buf.extend_from_slice(u.as_bytes());
    }

    fn text(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    fn text_fmt(&mut self, args: std::fmt::Arguments<'_>) {
        let at = self.buf.len();
        self.len(0);
        self.buf.write_fmt(args).expect("writing to a Vec");
        let n = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }

    fn int8(&mut self, v: i64) {
        self.len(8);
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn int4(&mut self, v: i32) {
        self.len(4);
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn boolean(&mut self, v: bool) {
        self.len(1);
        self.buf.push(v as u8);
    }

    /// `timestamptz` from Unix microseconds.
    fn ts(&mut self, us: i64) {
        self.int8(us - PG_EPOCH_US);
    }

    fn opt_ts(&mut self, us: Option<i64>) {
        match us {
            Some(us) => self.ts(us),
            None => self.null(),
        }
    }

    fn jsonb(&mut self, s: &str) {
        self.len(s.len() + 1);
        self.buf.push(1); // jsonb binary format version
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Hands the buffer to the consumer once it holds a full chunk.
    fn flush_if_full(&mut self) -> anyhow::Result<()> {
        if self.buf.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 64 * 1024));
            self.tx
                .blocking_send(Msg::Data(full))
                .map_err(|_| anyhow!("a COPY stream stopped"))?;
        }
        Ok(())
    }

    /// Sends the rest and the trailer, then tells the consumer to commit.
    fn finish(mut self) -> anyhow::Result<u64> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        let rest = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Msg::Data(rest))
            .and_then(|_| self.tx.blocking_send(Msg::Done))
            .map_err(|_| anyhow!("a COPY stream stopped"))?;
        Ok(self.rows)
    }
}

fn channel() -> (mpsc::Sender<Msg>, mpsc::Receiver<Msg>) {
    mpsc::channel(16)
}

/// Streams one table: sends chunks until the generator says `Done`, then commits.
/// `Ok(None)` when the generator stopped without finishing (the `COPY` is aborted).
async fn consume(
    opts: Arc<PgConnectOptions>,
    statement: String,
    mut rx: mpsc::Receiver<Msg>,
) -> anyhow::Result<Option<u64>> {
    let mut conn = PgConnection::connect_with(&opts)
        .await
        .context("seed: connecting for COPY")?;
    // Not macros (here and the ANALYZE at the end): utility statements, which PostgreSQL
    // cannot describe for the query macros.
    sqlx::raw_sql("SET statement_timeout = 0; SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    // Foreign-key checks are a third of the load time, and every reference is to a row
    // this run wrote (or verified) and committed: skip them when allowed (superuser).
    if let Err(e) = sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
    {
        tracing::debug!(error = %e, "seed: foreign-key checks stay on");
    }
    let mut copy = conn
        .copy_in_raw(&statement)
        .await
        .with_context(|| format!("seed: {statement}"))?;
    let rows = loop {
        match rx.recv().await {
            Some(Msg::Data(chunk)) => {
                copy.send(chunk)
                    .await
                    .with_context(|| format!("seed: {statement}"))?;
            }
            Some(Msg::Done) => {
                break Some(
                    copy.finish()
                        .await
                        .with_context(|| format!("seed: {statement}"))?,
                );
            }
            None => {
                let _ = copy.abort("seed generator stopped").await;
                break None;
            }
        }
    };
    let _ = conn.close().await;
    Ok(rows)
}

/// Runs a generator against its consumers; returns the generator's value and each
/// consumer's row count, preferring a database error over the generator's "stream
/// stopped" error.
async fn pump<T: Send + 'static>(
    opts: &Arc<PgConnectOptions>,
    statements: Vec<String>,
    generate: impl FnOnce(Vec<Sink>) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(T, Vec<u64>)> {
    let mut sinks = Vec::new();
    let mut consumers = Vec::new();
    for st in statements {
        let (tx, rx) = channel();
        sinks.push(Sink::new(tx));
        consumers.push(tokio::spawn(consume(opts.clone(), st, rx)));
    }
    let generated = tokio::task::spawn_blocking(move || generate(sinks)).await;
    let mut counts = Vec::new();
    let mut first_err = None;
    for c in consumers {
        match c.await {
            Ok(Ok(n)) => counts.push(n),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("seed: COPY task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let value = generated.map_err(|e| anyhow!("seed: generator panicked: {e}"))??;
    let counts = counts
        .into_iter()
        .map(|n| n.ok_or_else(|| anyhow!("seed: a COPY was aborted")))
        .collect::<anyhow::Result<Vec<u64>>>()?;
    Ok((value, counts))
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

const PLANS: [&str; 3] = ["basic", "pro", "team"];
const PLAN_WEIGHTS: [u32; 3] = [5, 3, 2];
const PLAN_MRR: [i64; 3] = [1900, 4900, 9900];
const REGIONS: [&str; 3] = ["us", "eu", "apac"];
const REGION_WEIGHTS: [u32; 3] = [5, 3, 2];
const INTERVALS: [&str; 2] = ["month", "year"];

#[derive(Debug, Clone)]
struct TenantPlan {
    id: Uuid,
    /// Unique per tenant; part of the Stripe subscription ids.
    short: String,
    flow_id: Uuid,
    budget: u64,
    users: u64,
    /// Users are numbered from `first_n + 1` (after any existing `cus_<n>`).
    first_n: u64,
    seed: u64,
}

#[derive(Debug, Clone, Copy)]
struct SeedUser {
    id: Uuid,
    n: u64,
    mrr: i64,
    plan: u8,
    region: u8,
    interval: u8,
    created: i64,
    updated: i64,
}

/// Users of every tenant (one sink); returns them for the later phases.
fn generate_users(
    plans: &[TenantPlan],
    now: i64,
    days: u32,
    mut sinks: Vec<Sink>,
) -> anyhow::Result<Vec<Vec<SeedUser>>> {
    let mut out = sinks.pop().expect("one sink");
    let mut all = Vec::with_capacity(plans.len());
    // Users sign up over the past two years, before the session window (so no session
    // precedes its user).
    let end = now - days as i64 * DAY - DAY;
    let start = (now - 730 * DAY).min(end - 30 * DAY);
    let span = end - start;
    for p in plans {
        let mut rng = Rng::new(mix(p.seed, 3));
        let mut list = Vec::with_capacity(p.users as usize);
        for i in 0..p.users {
            // Ids and customer numbers follow the cohort order (see `TenantSessions`);
            // sign-up times are independent of it.
            let order_at = start + ((i as f64 + 0.5) / p.users as f64 * span as f64) as i64;
            let created = start + rng.below(span as u64) as i64;
            let plan = rng.weighted(&PLAN_WEIGHTS) as u8;
            let u = SeedUser {
                id: rng.uuid_v7(order_at),
                n: p.first_n + i + 1,
                mrr: PLAN_MRR[plan as usize] + rng.range(-300, 300),
                plan,
                region: rng.weighted(&REGION_WEIGHTS) as u8,
                interval: rng.chance(0.25) as u8,
                created,
                updated: created + rng.below((now - MARGIN - created) as u64) as i64,
            };
            // users (id, tenant_id, mode, external_id, email, plan, region, mrr_cents,
            //        created_at, updated_at)
            out.row(10);
            out.uuid(&u.id);
            out.uuid(&p.id);
            out.text("live");
            out.text_fmt(format_args!("cus_{}", u.n));
            out.text_fmt(format_args!("customer{}@example.com", u.n));
            out.text(PLANS[u.plan as usize]);
            out.text(REGIONS[u.region as usize]);
            out.int8(u.mrr);
            out.ts(u.created);
            out.ts(u.updated);
            out.flush_if_full()?;
            list.push(u);
        }
        all.push(list);
    }
    out.finish()?;
    Ok(all)
}

/// One subscription per user (one sink), after the users are committed.
fn generate_subscriptions(
    plans: &[TenantPlan],
    users: &[Vec<SeedUser>],
    now: i64,
    mut sinks: Vec<Sink>,
) -> anyhow::Result<()> {
    let mut out = sinks.pop().expect("one sink");
    for (p, list) in plans.iter().zip(users) {
        let mut rng = Rng::new(mix(p.seed, 4));
        for u in list {
            let status =
                ["active", "trialing", "past_due", "canceled"][rng.weighted(&[82, 6, 4, 8])];
            let period = if u.interval == 0 { 30 * DAY } else { 365 * DAY };
            let period_start = (now - rng.below(period as u64) as i64).max(u.created);
            let canceled_at = (status == "canceled")
                .then(|| (now - MARGIN - rng.below(60 * DAY as u64) as i64).max(u.created + DAY));
            let churn_kind = canceled_at.map(|_| {
                if rng.chance(0.75) {
                    "voluntary"
                } else {
                    "involuntary"
                }
            });
            let trial_end = (status == "trialing").then(|| now + rng.range(1, 14) * DAY);
            let cancel_at_period_end = status == "active" && rng.chance(0.03);
            let updated = u.updated.max(canceled_at.unwrap_or(u.updated));
            let plan = PLANS[u.plan as usize];
            // subscriptions (id, tenant_id, user_id, mode, stripe_subscription_id, status,
            //   plan, price_id, billing_interval, mrr_cents, currency, current_period_start,
            //   current_period_end, cancel_at_period_end, trial_end, canceled_at, churn_kind,
            //   stripe_updated_at, created_at, updated_at)
            out.row(20);
            out.uuid(&rng.uuid_v7(u.created));
            out.uuid(&p.id);
            out.uuid(&u.id);
            out.text("live");
            out.text_fmt(format_args!("sub_{}_{}", p.short, u.n));
            out.text(status);
            out.text(plan);
            if u.interval == 0 {
                out.text_fmt(format_args!("price_{plan}"));
            } else {
                out.text_fmt(format_args!("price_{plan}_yearly"));
            }
            out.text(INTERVALS[u.interval as usize]);
            out.int8(if canceled_at.is_some() { 0 } else { u.mrr });
            out.text("usd");
            out.ts(period_start);
            out.ts(period_start + period);
            out.boolean(cancel_at_period_end);
            out.opt_ts(trial_end);
            out.opt_ts(canceled_at);
            out.opt_text(churn_kind);
            out.ts(updated);
            out.ts(u.created);
            out.ts(updated);
            out.flush_if_full()?;
        }
    }
    out.finish()?;
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
struct ActivityCounts {
    sessions: u64,
    offer_events: u64,
    churn_reasons: u64,
}

/// One generated session with its timeline.
#[derive(Debug, Clone, Copy)]
struct Pending {
    user: u32,
    id: Uuid,
    shape: Shape,
    created: i64,
    reason_at: i64,
    /// Offer event times: the shown offers, then the accepted one.
    event_at: [i64; 4],
    ended: Option<i64>,
    applied: Option<i64>,
    validated: Option<i64>,
}

/// Encodes the rows of one tenant's sessions; shared by every block.
struct ActivityWriter<'a> {
    plan: &'a TenantPlan,
    users: &'a [SeedUser],
    attributes: &'a [String],
    accepted_offers: &'a [String; 4],
    ingested_now: bool,
}

impl ActivityWriter<'_> {
    fn reason(&self, out: &mut Sink, s: &Pending) -> anyhow::Result<()> {
        let Some(r) = s.shape.reason else {
            return Ok(());
        };
        // churn_reasons (tenant_id, user_id, session_id, reason_code, created_at
        //                [, ingested_at])
        out.row(if self.ingested_now { 5 } else { 6 });
        out.uuid(&self.plan.id);
        out.uuid(&self.users[s.user as usize].id);
        out.uuid(&s.id);
        out.text(REASONS[r as usize]);
        out.ts(s.reason_at);
        if !self.ingested_now {
            out.ts(s.reason_at);
        }
        out.flush_if_full()
    }

    fn offer_events(&self, out: &mut Sink, s: &Pending) -> anyhow::Result<()> {
        let u = &self.users[s.user as usize];
        let variant = (!s.shape.holdout).then(|| VARIANTS[s.shape.variant as usize]);
        let events = s.shape.shown[..s.shape.nshown as usize]
            .iter()
            .map(|&o| (o, false))
            .chain(s.shape.accepted.map(|a| (a, true)));
        for ((o, accepted), at) in events.zip(s.event_at) {
            let (offer_id, offer_type) = OFFERS[o as usize];
            // offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id,
            //   offer_type, accepted, mrr_cents, created_at[, ingested_at])
            out.row(if self.ingested_now { 10 } else { 11 });
            out.uuid(&self.plan.id);
            out.uuid(&u.id);
            out.uuid(&self.plan.flow_id);
            out.uuid(&s.id);
            out.opt_text(variant);
            out.text(offer_id);
            out.text(offer_type);
            out.boolean(accepted);
            out.int8(if accepted { u.mrr } else { 0 });
            out.ts(at);
            if !self.ingested_now {
                out.ts(at);
            }
        }
        out.flush_if_full()
    }

    fn session(&self, out: &mut Sink, s: &Pending) -> anyhow::Result<()> {
        let u = &self.users[s.user as usize];
        let shape = &s.shape;
        // cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id,
        //   flow_id, flow_version, variant, holdout, outcome, saved_offer_type,
        //   reason_code, offer_state, mrr_cents, validated_at, created_at, ended_at,
        //   attributes, accepted_offer, offer_applied_at, cancel_state[, updated_at])
        out.row(if self.ingested_now { 22 } else { 23 });
        out.uuid(&s.id);
        out.uuid(&self.plan.id);
        out.text("live");
        out.uuid(&u.id);
        out.text_fmt(format_args!("cus_{}", u.n));
        out.text_fmt(format_args!("sub_{}_{}", self.plan.short, u.n));
        out.uuid(&self.plan.flow_id);
        out.int4(1);
        out.opt_text((!shape.holdout).then(|| VARIANTS[shape.variant as usize]));
        out.boolean(shape.holdout);
        out.opt_text(shape.outcome.map(Outcome::as_str));
        out.opt_text(shape.accepted.map(|a| OFFERS[a as usize].1));
        out.opt_text(shape.reason.map(|r| REASONS[r as usize]));
        out.opt_text(shape.accepted.map(|_| "applied"));
        out.int8(u.mrr);
        out.opt_ts(s.validated);
        out.ts(s.created);
        out.opt_ts(s.ended);
        out.jsonb(
            &self.attributes[u.plan as usize * 6 + u.region as usize * 2 + u.interval as usize],
        );
        match shape.accepted {
            Some(a) => out.jsonb(&self.accepted_offers[a as usize]),
            None => out.null(),
        }
        out.opt_ts(s.applied);
        out.opt_text((shape.outcome == Some(Outcome::Canceled)).then_some("recorded"));
        if !self.ingested_now {
            // Like `ingested_at`: the session's last change, not the load.
            let last = [s.ended, s.applied, s.validated]
                .into_iter()
                .flatten()
                .max();
            out.ts(last.unwrap_or(s.created).max(s.created));
        }
        out.flush_if_full()
    }
}

/// One tenant's session stream: sessions in time order, drawn from the tenant's own PRNG
/// streams.
struct TenantSessions<'a> {
    writer: ActivityWriter<'a>,
    shapes: Rng,
    rng: Rng,
    i: u64,
    n: u64,
    remaining: u64,
    start: i64,
    span: f64,
    now: i64,
    /// Customers with a session still in progress: a customer has at most one (the unique
    /// index `cancel_sessions_one_open_idx`), so a later in-progress draw is abandoned.
    open: std::collections::HashSet<u32>,
}

impl<'a> TenantSessions<'a> {
    fn new(writer: ActivityWriter<'a>, start: i64, span: f64, now: i64) -> Self {
        let p = writer.plan;
        let shapes = Rng::new(mix(p.seed, 1));
        Self {
            n: count_sessions(shapes.clone(), p.budget),
            shapes,
            rng: Rng::new(mix(p.seed, 2)),
            i: 0,
            remaining: p.budget,
            writer,
            start,
            span,
            now,
            open: Default::default(),
        }
    }

    /// The customer of the next session. Customers cancel in cohorts: the session at
    /// fraction `f` of the window belongs to a customer drawn uniformly from a window of
    /// 1/[`COHORTS`] of the customers around position `f` (wrapping). Every customer still
    /// gets about the same number of sessions, all within a few days of each other, and the
    /// customer-led indexes only ever change within a small slice (on a 10 M-event seed
    /// they otherwise outgrow `shared_buffers` and every insert misses the cache).
    fn pick_user(&mut self) -> u32 {
        let users = self.writer.users.len() as u64;
        let width = (users / COHORTS).max(users.min(16));
        let center = ((self.i as f64 + 0.5) / self.n as f64 * users as f64) as u64;
        ((center + users - width / 2 + self.rng.below(width)) % users) as u32
    }

    fn next(&mut self) -> Option<Pending> {
        if self.i == self.n {
            debug_assert_eq!(self.remaining, 0);
            return None;
        }
        let mut shape = draw_shape(&mut self.shapes, self.remaining);
        self.remaining -= shape.events();
        let user = self.pick_user();
        if shape.outcome.is_none() && !self.open.insert(user) {
            shape.outcome = Some(Outcome::Abandoned);
        }
        let rng = &mut self.rng;
        let created =
            self.start + ((self.i as f64 + rng.unit()) / self.n as f64 * self.span) as i64;
        self.i += 1;
        let id = rng.uuid_v7(created);
        let mut t = created;
        let mut reason_at = t;
        if shape.reason.is_some() {
            t += rng.range(2, 20) * SEC;
            reason_at = t;
        }
        let mut event_at = [0; 4];
        for at in event_at.iter_mut().take(shape.events() as usize) {
            t += rng.range(3, 40) * SEC;
            *at = t;
        }
        let ended = shape.outcome.map(|_| t + rng.range(10, 300) * SEC);
        let applied = ended
            .filter(|_| shape.accepted.is_some())
            .map(|e| e + rng.range(1, 30) * SEC);
        let validated = applied
            .filter(|_| rng.chance(0.7))
            .map(|a| a + rng.range(1, 7) * DAY + rng.below(DAY as u64) as i64)
            .filter(|v| *v < self.now);
        Some(Pending {
            user,
            id,
            shape,
            created,
            reason_at,
            event_at,
            ended,
            applied,
            validated,
        })
    }
}

/// See [`TenantSessions::pick_user`].
const COHORTS: u64 = 16;

/// Sessions, offer events and churn reasons of every tenant.
///
/// The row order is chosen for the indexes, whose maintenance is most of the load time
/// and grows sharply once they outgrow `shared_buffers`: tenant after tenant, each in time
/// order, so the indexes led by `(tenant_id, created_at)` only grow at one end and those
/// on time alone fill in one sweep per tenant, while the customer-led ones change within
/// one cohort's slice (see [`TenantSessions::pick_user`]). Measured at 3 M events on this
/// schema: merging tenants in time order cost 30 % more database CPU, and uniformly
/// random customers 25 % more (growing with the size).
fn generate_activity(
    plans: &[TenantPlan],
    users: &[Vec<SeedUser>],
    accepted_offers: &[String; 4],
    now: i64,
    days: u32,
    ingested_now: bool,
    mut sinks: Vec<Sink>,
) -> anyhow::Result<ActivityCounts> {
    let mut reasons_out = sinks.pop().expect("three sinks");
    let mut events_out = sinks.pop().expect("three sinks");
    let mut sessions_out = sinks.pop().expect("three sinks");
    let mut counts = ActivityCounts::default();
    let attributes: Vec<String> = (0..PLANS.len() * REGIONS.len() * INTERVALS.len())
        .map(|i| {
            json!({
                "plan": PLANS[i / 6],
                "region": REGIONS[i / 2 % 3],
                "billing_interval": INTERVALS[i % 2],
            })
            .to_string()
        })
        .collect();
    let window = days.max(1) as i64 * DAY;
    let start = now - window;
    let span = (window - MARGIN) as f64;
    for (plan, users) in plans.iter().zip(users) {
        let writer = ActivityWriter {
            plan,
            users,
            attributes: &attributes,
            accepted_offers,
            ingested_now,
        };
        let mut sessions = TenantSessions::new(writer, start, span, now);
        while let Some(s) = sessions.next() {
            let writer = &sessions.writer;
            writer.reason(&mut reasons_out, &s)?;
            writer.offer_events(&mut events_out, &s)?;
            writer.session(&mut sessions_out, &s)?;
            counts.sessions += 1;
            counts.churn_reasons += s.shape.reason.is_some() as u64;
            counts.offer_events += s.shape.events();
        }
    }
    sessions_out.finish()?;
    events_out.finish()?;
    reasons_out.finish()?;
    Ok(counts)
}

// ---------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------

fn to_datetime(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("timestamp in range")
}

/// Creates one published default live flow (version 1) for the tenant (the seeded data is
/// live); the tenant's other live flows lose the default role, as when publishing a default
/// flow.
async fn insert_flow(
    pool: &PgPool,
    tenant: Uuid,
    draft: &Value,
    created: DateTime<Utc>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE flows SET is_default = false WHERE tenant_id = $1 AND mode = 'live' AND is_default",
        tenant,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO flows (id, tenant_id, mode, name, language, ranking_score, is_default, draft, published_version, created_at, updated_at)
         VALUES ($1, $2, 'live', $3, 'en', 0, true, $4, 1, $5, $5)",
        id,
        tenant,
        draft["name"].as_str().unwrap_or("Default cancel flow"),
        draft,
        created,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO flow_versions (tenant_id, mode, flow_id, version, definition, published_at)
         VALUES ($1, 'live', $2, 1, $3, $4)",
        tenant,
        id,
        draft,
        created,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Seeds analytics data; see the module documentation.
pub async fn run(
    pool: &PgPool,
    master: &MasterKey,
    opts: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let now = Utc::now().timestamp_micros();
    let days = opts.days.max(1);
    let def = parsed_flow()?;
    let draft = serde_json::to_value(&def)?;
    let accepted_offers: [String; 4] = OFFERS.map(|(id, _)| {
        def.offer(id)
            .and_then(|o| serde_json::to_string(o).ok())
            .expect("the seed flow has every seeded offer")
    });

    // Tenants.
    let (tenants, first_n) = if opts.tenant_ids.is_empty() {
        if opts.tenants == 0 {
            bail!("seed: tenants must be at least 1 (or give tenant_ids)");
        }
        let mut ids = Vec::with_capacity(opts.tenants);
        for i in 0..opts.tenants {
            let name = format!("Seed tenant {} (seed {})", i + 1, opts.seed);
            let t = shared::tenants::create_tenant(pool, master, &name).await?;
            ids.push(t.tenant.id);
        }
        let n = ids.len();
        (ids, vec![0; n])
    } else {
        let ids = opts.tenant_ids.clone();
        let found = sqlx::query_scalar!("SELECT id FROM tenants WHERE id = ANY($1)", &ids)
            .fetch_all(pool)
            .await?;
        if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
            bail!("seed: tenant {missing} does not exist");
        }
        // Continue the numbering after existing `cus_<n>` customers.
        let existing = sqlx::query!(
            r#"SELECT tenant_id,
                      coalesce(max(substring(external_id from '^cus_([0-9]{1,18})$')::bigint), 0) AS "last_n!"
                 FROM users WHERE tenant_id = ANY($1) GROUP BY tenant_id"#,
            &ids,
        )
        .fetch_all(pool)
        .await?;
        let first_n = ids
            .iter()
            .map(|id| {
                existing
                    .iter()
                    .find(|e| e.tenant_id == *id)
                    .map_or(0, |e| e.last_n as u64)
            })
            .collect();
        (ids, first_n)
    };

    // Flows.
    let flow_created = to_datetime(now - days as i64 * DAY - DAY);
    let mut plans = Vec::with_capacity(tenants.len());
    for (i, (&id, budget)) in tenants
        .iter()
        .zip(split_events(opts.events, tenants.len()))
        .enumerate()
    {
        let flow_id = insert_flow(pool, id, &draft, flow_created).await?;
        let simple = id.simple().to_string();
        plans.push(TenantPlan {
            id,
            short: simple[simple.len() - 12..].to_string(),
            flow_id,
            budget,
            users: (budget / 20).max(10),
            first_n: first_n[i],
            seed: mix(opts.seed, i as u64 + 1),
        });
    }
    tracing::info!(
        tenants = plans.len(),
        events = opts.events,
        "seed: tenants and flows ready"
    );

    let conn_opts = pool.connect_options();

    // Users, then subscriptions (each COPY commits before the next phase, whose foreign
    // keys reference it).
    let user_plans = plans.clone();
    let (users, counts) = pump(
        &conn_opts,
        vec!["COPY users (id, tenant_id, mode, external_id, email, plan, region, mrr_cents, created_at, updated_at) FROM STDIN WITH (FORMAT binary)".into()],
        move |sinks| generate_users(&user_plans, now, days, sinks),
    )
    .await?;
    let user_count = counts[0];
    let users = Arc::new(users);
    let (sub_plans, sub_users) = (plans.clone(), users.clone());
    pump(
        &conn_opts,
        vec!["COPY subscriptions (id, tenant_id, user_id, mode, stripe_subscription_id, status, plan, price_id, billing_interval, mrr_cents, currency, current_period_start, current_period_end, cancel_at_period_end, trial_end, canceled_at, churn_kind, stripe_updated_at, created_at, updated_at) FROM STDIN WITH (FORMAT binary)".into()],
        move |sinks| generate_subscriptions(&sub_plans, &sub_users, now, sinks),
    )
    .await?;
    tracing::info!(users = user_count, "seed: users and subscriptions loaded");

    // Sessions, offer events, churn reasons.
    // `ingested_now`: leave `ingested_at` (and the sessions' `updated_at`, which the rollup
    // scans) to their `now()` defaults.
    let (ingested, updated) = if opts.ingested_now {
        ("", "")
    } else {
        (", ingested_at", ", updated_at")
    };
    let ingested_now = opts.ingested_now;
    // Not macros: COPY ... FROM STDIN (binary) streams through `copy_in_raw`, which the query
    // macros do not cover; the column lists are checked by COPY itself on the first row.
    let (generated, counts) = pump(
        &conn_opts,
        vec![
            format!("COPY cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version, variant, holdout, outcome, saved_offer_type, reason_code, offer_state, mrr_cents, validated_at, created_at, ended_at, attributes, accepted_offer, offer_applied_at, cancel_state{updated}) FROM STDIN WITH (FORMAT binary)"),
            format!("COPY offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id, offer_type, accepted, mrr_cents, created_at{ingested}) FROM STDIN WITH (FORMAT binary)"),
            format!("COPY churn_reasons (tenant_id, user_id, session_id, reason_code, created_at{ingested}) FROM STDIN WITH (FORMAT binary)"),
        ],
        move |sinks| {
            generate_activity(
                &plans,
                &users,
                &accepted_offers,
                now,
                days,
                ingested_now,
                sinks,
            )
        },
    )
    .await?;
    if counts[1] != opts.events || generated.offer_events != opts.events {
        bail!(
            "seed: wrote {} offer events, expected {}",
            counts[1],
            opts.events
        );
    }

    sqlx::raw_sql(
        "ANALYZE users, subscriptions, flows, flow_versions, cancel_sessions, offer_events, churn_reasons",
    )
    .execute(pool)
    .await?;

    let report = SeedReport {
        tenants,
        users: user_count,
        sessions: counts[0],
        offer_events: counts[1],
        churn_reasons: counts[2],
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        sessions = report.sessions,
        offer_events = report.offer_events,
        churn_reasons = report.churn_reasons,
        seconds = report.seconds,
        "seed: done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::flows::{OfferType, Step};

    #[test]
    fn flow_definition_parses_and_validates() {
        let def = parsed_flow().expect("valid seed flow");
        assert!(def.is_default);
        let exp = def.experiment.as_ref().expect("experiment");
        assert_eq!(exp.holdout_percent, 10);
        assert_eq!(exp.variants.len(), 2);
        assert_eq!(
            exp.variants[1].offer_ids.as_deref(),
            Some(&["pause2".to_string(), "downgrade".to_string()][..])
        );
        let survey = def
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Survey(s) => Some(s),
                _ => None,
            })
            .expect("survey step");
        let codes: Vec<&str> = survey.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, REASONS);
        assert!(matches!(def.steps.last(), Some(Step::Confirm(_))));
        // The generator's offer table matches the definition.
        let offers: Vec<(String, &str)> = def
            .offers()
            .map(|o| (o.id.clone(), o.kind.as_str()))
            .collect();
        assert_eq!(
            offers,
            OFFERS
                .iter()
                .map(|(id, t)| (id.to_string(), *t))
                .collect::<Vec<_>>()
        );
        let disc = def.offer("disc20").expect("disc20");
        assert_eq!(disc.kind, OfferType::Discount);
        assert_eq!(disc.reason_codes, vec!["too_expensive".to_string()]);
        let d = disc.discount.as_ref().expect("discount settings");
        assert_eq!(d.percent_off, Some(20.0));
        assert_eq!(d.duration.as_deref(), Some("repeating"));
        assert_eq!(d.duration_in_months, Some(3));
        assert_eq!(
            def.offer("pause2").unwrap().pause.as_ref().unwrap().months,
            2
        );
        assert_eq!(
            def.offer("downgrade")
                .unwrap()
                .plan_change
                .as_ref()
                .unwrap()
                .price_id,
            "price_basic"
        );
        assert_eq!(
            def.offer("trial14")
                .unwrap()
                .trial_extension
                .as_ref()
                .unwrap()
                .days,
            14
        );
        // Round-trips as stored (the draft is the serialized definition).
        let again = shared::flows::parse_flow(serde_json::to_value(&def).unwrap()).unwrap();
        assert_eq!(again, def);
    }

    #[test]
    fn events_split_exactly_and_unevenly() {
        for (events, n) in [(0, 1), (1, 5), (7, 3), (1_000_000, 5), (999_999_937, 17)] {
            let s = split_events(events, n);
            assert_eq!(s.len(), n);
            assert_eq!(s.iter().sum::<u64>(), events);
            assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
        }
        let s = split_events(1_000_000, 5);
        assert!(s[0] > 2 * s[2], "{s:?}");
    }

    #[test]
    fn shapes_use_the_budget_exactly_and_follow_the_flow() {
        for budget in (1..300).chain([10_000, 123_457]) {
            let mut rng = Rng::new(mix(7, budget));
            let n = count_sessions(rng.clone(), budget);
            let mut remaining = budget;
            for _ in 0..n {
                let s = draw_shape(&mut rng, remaining);
                assert!(s.events() <= remaining);
                remaining -= s.events();
                if s.holdout {
                    assert_eq!(s.events(), 0);
                    assert_ne!(s.outcome, Some(Outcome::Saved));
                } else {
                    assert!(s.nshown >= 1);
                }
                let shown = &s.shown[..s.nshown as usize];
                for (i, o) in shown.iter().enumerate() {
                    assert!(!shown[..i].contains(o), "distinct offers");
                    if s.variant == 1 {
                        assert!([1, 2].contains(o), "variant b shows pause2/downgrade");
                    }
                    if *o == DISCOUNT {
                        assert_eq!(s.reason, Some(0), "disc20 needs too_expensive");
                    }
                }
                assert_eq!(s.accepted.is_some(), s.outcome == Some(Outcome::Saved));
                if let Some(a) = s.accepted {
                    assert!(shown.contains(&a));
                }
            }
            assert_eq!(remaining, 0);
        }
    }

    #[test]
    fn shape_distribution_is_roughly_as_specified() {
        let mut rng = Rng::new(1);
        let n = 200_000;
        let (mut saved, mut canceled, mut open, mut holdout, mut reason) = (0, 0, 0, 0, 0);
        for _ in 0..n {
            let s = draw_shape(&mut rng, u64::MAX);
            saved += (s.outcome == Some(Outcome::Saved)) as u32;
            canceled += (s.outcome == Some(Outcome::Canceled)) as u32;
            open += s.outcome.is_none() as u32;
            holdout += s.holdout as u32;
            reason += s.reason.is_some() as u32;
        }
        let pct = |x: u32| x as f64 * 100.0 / n as f64;
        assert!((pct(holdout) - 10.0).abs() < 0.5);
        assert!((pct(saved) - 27.0).abs() < 0.7); // 30 % outside the holdout
        assert!((pct(canceled) - 43.0).abs() < 0.7);
        assert!((pct(open) - 5.0).abs() < 0.5);
        assert!((pct(reason) - 90.6).abs() < 0.7);
    }

    #[test]
    fn customers_cancel_in_cohorts_and_all_get_sessions() {
        let plan = TenantPlan {
            id: Uuid::nil(),
            short: "000000000000".into(),
            flow_id: Uuid::nil(),
            budget: 200_000,
            users: 10_000,
            first_n: 0,
            seed: 3,
        };
        let users: Vec<SeedUser> = (0..plan.users)
            .map(|n| SeedUser {
                id: Uuid::nil(),
                n,
                mrr: 0,
                plan: 0,
                region: 0,
                interval: 0,
                created: 0,
                updated: 0,
            })
            .collect();
        let attributes = vec![String::new(); 18];
        let offers: [String; 4] = Default::default();
        let writer = ActivityWriter {
            plan: &plan,
            users: &users,
            attributes: &attributes,
            accepted_offers: &offers,
            ingested_now: false,
        };
        let now = 1_800_000_000 * SEC;
        let mut sessions = TenantSessions::new(writer, now - 30 * DAY, 30.0 * DAY as f64, now);
        let mut per_user = vec![0u32; users.len()];
        let (mut first, mut last) = (vec![i64::MAX; users.len()], vec![0i64; users.len()]);
        let mut events = 0;
        let mut previous = 0;
        while let Some(s) = sessions.next() {
            assert!(s.created >= previous, "sessions come in time order");
            previous = s.created;
            let u = s.user as usize;
            per_user[u] += 1;
            first[u] = first[u].min(s.created);
            last[u] = last[u].max(s.created);
            events += s.shape.events();
        }
        assert_eq!(events, plan.budget);
        let total: u32 = per_user.iter().sum();
        let mean = total as f64 / users.len() as f64;
        assert!(
            per_user.iter().all(|&c| c > 0),
            "every customer has sessions"
        );
        assert!(*per_user.iter().max().unwrap() as f64 <= mean * 3.0);
        // Apart from the customers that wrap around the window's ends, a customer's
        // sessions lie within about 1/16 of the window (plus the slice they straddle).
        let spread: Vec<i64> = (1000..9000).map(|u| last[u] - first[u]).collect();
        assert!(
            spread.iter().all(|&d| d <= 30 * DAY / 8),
            "{:?}",
            spread.iter().max()
        );
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = {
            let mut r = Rng::new(99);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(99);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut r = Rng::new(5);
        let u = r.uuid_v7(1_700_000_000_000_000);
        assert_eq!(u.get_version_num(), 7);
    }
}
