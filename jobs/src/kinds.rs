//! One payload type per kind of job.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{queues, Job};

/// Every kind with its queue (the registry in `workers` must handle each of them).
pub const ALL_KINDS: &[(&str, &str)] = &[
    (Probe::KIND, Probe::QUEUE),
    (Rollup::KIND, Rollup::QUEUE),
    (Reconcile::KIND, Reconcile::QUEUE),
    (RetentionSweep::KIND, RetentionSweep::QUEUE),
    (ExpireSessions::KIND, ExpireSessions::QUEUE),
    (InvalidateCache::KIND, InvalidateCache::QUEUE),
    (ApplyOffer::KIND, ApplyOffer::QUEUE),
    (CancelSubscription::KIND, CancelSubscription::QUEUE),
    (ProcessStripeEvent::KIND, ProcessStripeEvent::QUEUE),
];

/// Ops canary: proves the pipeline end to end (`POST /v1/ops/probes`). Each execution is
/// recorded in `probe_runs`, its effect once in `probe_effects`. The fault-injection fields
/// are honoured only by workers started with `ALLOW_FAULT_INJECTION=1` (tests, drills).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Sleep this long before applying the effect (at most an hour, [`Probe::MAX_SLEEP_MS`]).
    #[serde(default)]
    #[schema(maximum = 3_600_000)]
    pub sleep_ms: u64,
    /// Fail transiently on the first N attempts (at most [`Probe::MAX_FAIL_TIMES`]).
    #[serde(default)]
    #[schema(maximum = 1000)]
    pub fail_times: u32,
    /// Fail permanently.
    #[serde(default)]
    pub permanent_error: bool,
    /// Abort the worker process (simulates a task that crashes its process).
    #[serde(default)]
    pub crash: bool,
    /// Skip recording (pure throughput measurements).
    #[serde(default)]
    pub noop: bool,
    /// Hold the job (after recording its run, before its effect) until a row with this name
    /// exists in `probe_gates`: tests use it to keep work running at the moment of a fault.
    /// Counts as fault injection (a held job keeps a worker slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

impl Probe {
    pub const MAX_SLEEP_MS: u64 = 3_600_000;
    pub const MAX_FAIL_TIMES: u32 = 1000;
}

impl Job for Probe {
    const KIND: &'static str = "probe";
    const QUEUE: &'static str = queues::OPS;
}

/// The hourly analytics rollup for one tick period (`period` = unix time / interval).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rollup {
    pub period: i64,
}

impl Job for Rollup {
    const KIND: &'static str = "rollup";
    const QUEUE: &'static str = queues::ANALYTICS;
}

/// The reconciler tick: re-enqueues outbox work PostgreSQL records as unfinished.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reconcile {
    pub period: i64,
}

impl Job for Reconcile {
    const KIND: &'static str = "reconcile";
    const QUEUE: &'static str = queues::OPS;
}

/// The retention sweep tick: removes personal data past its retention.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RetentionSweep {
    pub period: i64,
}

impl Job for RetentionSweep {
    const KIND: &'static str = "retention_sweep";
    const QUEUE: &'static str = queues::OPS;
}

/// The session expiry tick: marks open cancel sessions past their `expires_at` abandoned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExpireSessions {
    pub period: i64,
}

impl Job for ExpireSessions {
    const KIND: &'static str = "expire_sessions";
    const QUEUE: &'static str = queues::OPS;
}

/// Drops cached figures of a tenant after the data under them changed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvalidateCache {
    pub tenant_id: Uuid,
    /// Cache namespace, e.g. `analytics` or `flows`.
    pub scope: String,
}

impl Job for InvalidateCache {
    const KIND: &'static str = "invalidate_cache";
    const QUEUE: &'static str = queues::CACHE;
}

/// Applies the offer a customer accepted in a cancel session to their Stripe subscription.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApplyOffer {
    pub session_id: Uuid,
}

impl Job for ApplyOffer {
    const KIND: &'static str = "apply_offer";
    const QUEUE: &'static str = queues::STRIPE;
}

/// Sets `cancel_at_period_end` after a confirmed cancel (tenants with
/// `cancel_mode = cancel_at_period_end`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CancelSubscription {
    pub session_id: Uuid,
}

impl Job for CancelSubscription {
    const KIND: &'static str = "cancel_subscription";
    const QUEUE: &'static str = queues::STRIPE;
}

/// Processes one stored Stripe webhook delivery (`stripe_events` row).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProcessStripeEvent {
    pub stripe_event_row: Uuid,
}

impl Job for ProcessStripeEvent {
    const KIND: &'static str = "process_stripe_event";
    const QUEUE: &'static str = queues::WEBHOOKS;
}
