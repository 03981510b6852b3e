//! The worker runtime's policy and plumbing: durable exponential-backoff retries with
//! jitter, per-queue specs, the handler registry (typed handlers as apalis task functions),
//! the leases this process holds and their renewal. The queues run on apalis workers over
//! our queue as an apalis backend (see [`crate::backend`]).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use apalis_core::task::{data::Data, task_fn::task_fn};
use jobs::{Job, Queues};
use rand::Rng;
use uuid::Uuid;

use crate::{
    backend::{Route, Router},
    WorkerState,
};

/// Exponential backoff with jitter: attempt `n` (1-based) waits
/// `min(base * factor^(n-1), max_delay)`, scaled by a random factor in `1 ± jitter`.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub factor: f64,
    pub max_delay: Duration,
    pub jitter: f64,
}

impl RetryPolicy {
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (self.base.as_secs_f64() * exp).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal_delay(attempt).as_secs_f64();
        let j = self.jitter.clamp(0.0, 1.0);
        let scale = 1.0 - j + rand::rng().random::<f64>() * 2.0 * j;
        Duration::from_secs_f64(nominal * scale)
    }

    /// Sum of nominal delays across every retry (for documentation and tests).
    pub fn total_nominal(&self) -> Duration {
        (1..self.max_attempts).map(|a| self.nominal_delay(a)).sum()
    }
}

/// Per-queue execution settings; listed in one place by `registry::register_all`.
#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub name: &'static str,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Lease expiries (process crashes or hangs) after which a task is dead-lettered.
    pub max_crashes: u32,
}

/// How a job failed.
#[derive(Debug)]
pub enum JobError {
    /// Worth retrying later (network, 429, lock contention...).
    Transient(anyhow::Error),
    /// Retrying cannot help (validation, 4xx from Stripe...): dead-letter at once.
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn transient(e: impl Into<anyhow::Error>) -> Self {
        Self::Transient(e.into())
    }
    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(e.into())
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Transient(e) => write!(f, "{e:#}"),
            JobError::Permanent(e) => write!(f, "permanent: {e:#}"),
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JobError::Transient(e) | JobError::Permanent(e) => Some(e.as_ref()),
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(e.into())
    }
}

impl From<jobs::QueueError> for JobError {
    fn from(e: jobs::QueueError) -> Self {
        Self::Transient(e.into())
    }
}

/// What a handler knows about the task it runs.
#[derive(Clone, Debug)]
pub struct JobMeta {
    pub id: Uuid,
    pub queue: &'static str,
    pub attempt: u32,
    /// When this attempt became due (unix ms): its enqueue or scheduled time, or the time
    /// the retry schedule chose. `None` for tasks enqueued before this field existed.
    pub due_at_ms: Option<i64>,
    /// When the previous attempt failed (unix ms), `None` on a first attempt.
    pub previous_failure_at_ms: Option<i64>,
}

/// Every queue and every handler of this worker.
#[derive(Default, Clone)]
pub struct Registry {
    pub specs: Vec<QueueSpec>,
    handlers: HashMap<&'static str, (&'static str, Route)>,
}

impl Registry {
    pub fn queue(mut self, spec: QueueSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Registers the handler of job type `J`: an apalis task function of the decoded job,
    /// with the extractors `Data<Arc<WorkerState>>` (the worker's data) and [`JobMeta`].
    pub fn handle<J, F, Fut>(mut self, f: F) -> Self
    where
        J: Job,
        F: Fn(Arc<WorkerState>, JobMeta, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let svc = task_fn(move |job: J, st: Data<Arc<WorkerState>>, meta: JobMeta| {
            let f = f.clone();
            async move { f(Arc::clone(&*st), meta, job).await }
        });
        self.handlers
            .insert(J::KIND, (J::QUEUE, Router::route_for::<J, _>(svc)));
        self
    }

    pub fn spec(&self, queue: &str) -> Option<&QueueSpec> {
        self.specs.iter().find(|s| s.name == queue)
    }

    pub fn kinds(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.handlers.iter().map(|(k, (q, _))| (*k, *q))
    }

    /// The service of `queue`'s worker: a route per kind of that queue.
    pub fn router(&self, queue: &str) -> Router {
        let mut r = Router::default();
        for (kind, (q, route)) in &self.handlers {
            if *q == queue {
                r.insert(kind, route.clone());
            }
        }
        r
    }
}

/// Tasks this process holds, for lease renewal and shutdown hand-back.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<Uuid, &'static str>>);

impl InFlight {
    pub(crate) fn insert(&self, id: Uuid, queue: &'static str) {
        self.0.lock().expect("lock").insert(id, queue);
    }
    pub(crate) fn remove(&self, id: &Uuid) {
        self.0.lock().expect("lock").remove(id);
    }
    pub fn by_queue(&self) -> HashMap<&'static str, Vec<Uuid>> {
        let mut out: HashMap<&'static str, Vec<Uuid>> = HashMap::new();
        for (id, q) in self.0.lock().expect("lock").iter() {
            out.entry(q).or_default().push(*id);
        }
        out
    }
    pub fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Renews this process's leases and heartbeats the worker registry.
pub async fn heartbeat_loop(st: Arc<WorkerState>, inflight: Arc<InFlight>) {
    let period = st.config.jobs.lease / 3;
    loop {
        // Runs until the worker aborts it, after every queue loop has drained.
        tokio::time::sleep(period).await;
        for (queue, ids) in inflight.by_queue() {
            if let Err(e) = st
                .queues
                .renew(queue, &st.worker_name, &ids, st.config.jobs.lease)
                .await
            {
                tracing::warn!(queue, error = %e, "lease renewal failed");
            }
        }
        let _ = register_heartbeat(&st.queues, &st.worker_name).await;
    }
}

/// Records this worker in `P workers` (zset of last heartbeat, ms); entries older than an
/// hour are pruned.
pub async fn register_heartbeat(q: &Queues, worker: &str) -> redis::RedisResult<()> {
    let key = q.redis().key("workers");
    let now = jobs::queue::now_ms();
    let mut c = q.redis().conn.clone();
    redis::pipe()
        .zadd(&key, worker, now)
        .zrembyscore(&key, "-inf", now - 3_600_000)
        .query_async::<()>(&mut c)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_caps() {
        let p = RetryPolicy {
            max_attempts: 20,
            base: Duration::from_secs(10),
            factor: 2.0,
            max_delay: Duration::from_secs(8 * 3600),
            jitter: 0.2,
        };
        assert_eq!(p.nominal_delay(1), Duration::from_secs(10));
        assert_eq!(p.nominal_delay(2), Duration::from_secs(20));
        assert_eq!(p.nominal_delay(5), Duration::from_secs(160));
        assert_eq!(p.nominal_delay(19), Duration::from_secs(8 * 3600));
        for a in 1..20 {
            let d = p.delay(a).as_secs_f64();
            let n = p.nominal_delay(a).as_secs_f64();
            assert!(
                d >= n * 0.8 - 1e-9 && d <= n * 1.2 + 1e-9,
                "{a}: {d} vs {n}"
            );
        }
    }
}
