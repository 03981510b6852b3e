//! The worker runtime: per-queue fetch loops with bounded concurrency, per-job timeouts,
//! durable exponential-backoff retries with jitter, lease renewal, batched acks, and a
//! graceful shutdown that finishes running jobs and hands back the rest.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jobs::{
    queue::{Leased, Limits, Settled},
    Job, Queues,
};
use rand::Rng;
use tokio::{sync::Semaphore, task::JoinSet};
use uuid::Uuid;

use crate::WorkerState;

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

type BoxFut = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type HandlerFn = Arc<dyn Fn(Arc<WorkerState>, JobMeta, String) -> BoxFut + Send + Sync>;

/// Every queue and every handler of this worker.
#[derive(Default, Clone)]
pub struct Registry {
    pub specs: Vec<QueueSpec>,
    handlers: HashMap<&'static str, (&'static str, HandlerFn)>,
}

impl Registry {
    pub fn queue(mut self, spec: QueueSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Registers the handler of job type `J`.
    pub fn handle<J, F, Fut>(mut self, f: F) -> Self
    where
        J: Job,
        F: Fn(Arc<WorkerState>, JobMeta, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: HandlerFn = Arc::new(move |st, meta, payload| {
            let f = f.clone();
            Box::pin(async move {
                let job: J = serde_json::from_str(&payload).map_err(|e| {
                    JobError::permanent(anyhow::anyhow!("undecodable payload: {e}"))
                })?;
                f(st, meta, job).await
            })
        });
        self.handlers.insert(J::KIND, (J::QUEUE, h));
        self
    }

    pub fn spec(&self, queue: &str) -> Option<&QueueSpec> {
        self.specs.iter().find(|s| s.name == queue)
    }

    pub fn kinds(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.handlers.iter().map(|(k, (q, _))| (*k, *q))
    }
}

/// Tasks this process holds, for lease renewal and shutdown hand-back.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<Uuid, &'static str>>);

impl InFlight {
    fn insert(&self, id: Uuid, queue: &'static str) {
        self.0.lock().expect("lock").insert(id, queue);
    }
    fn remove(&self, id: &Uuid) {
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

/// Runs the fetch loop of one queue until `shutdown` fires, then drains.
pub async fn run_queue(
    st: Arc<WorkerState>,
    registry: Arc<Registry>,
    spec: QueueSpec,
    inflight: Arc<InFlight>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let concurrency = st
        .config
        .jobs
        .concurrency_override
        .unwrap_or(spec.concurrency)
        .max(1);
    let sem = Arc::new(Semaphore::new(concurrency));
    let limits = Limits {
        max_attempts: spec.retry.max_attempts,
        max_crashes: spec.max_crashes,
    };
    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel::<Uuid>();
    let acker = tokio::spawn(ack_loop(st.clone(), spec.name, ack_rx));
    let mut running: JoinSet<()> = JoinSet::new();
    let idle = Duration::from_millis(50);
    let mut backoff = idle;
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Wait for at least one free slot, then take as many tasks as there are free slots:
        // nothing is fetched that cannot start at once.
        let first = tokio::select! {
            p = sem.clone().acquire_owned() => p.expect("semaphore open"),
            _ = shutdown.changed() => break,
        };
        let free = 1 + sem.available_permits();
        let fetched = match st
            .queues
            .fetch(
                spec.name,
                &st.worker_name,
                free,
                st.config.jobs.lease,
                limits,
            )
            .await
        {
            Ok(f) => f,
            Err(e) => {
                drop(first);
                tracing::warn!(queue = spec.name, error = %e, "fetch failed; retrying");
                metrics::counter!("worker_fetch_errors_total", "queue" => spec.name).increment(1);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.changed() => break,
                }
                continue;
            }
        };
        if !fetched.dead.is_empty() {
            metrics::counter!("jobs_total", "queue" => spec.name, "kind" => "any", "outcome" => "dead")
                .increment(fetched.dead.len() as u64);
            mark_outbox_dead(
                &st,
                &fetched.dead,
                "dead-lettered by fetch (attempt or crash budget used up)",
            )
            .await;
        }
        if fetched.tasks.is_empty() {
            drop(first);
            backoff = if backoff < idle {
                idle
            } else {
                (backoff + idle).min(Duration::from_millis(250))
            };
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {},
                _ = shutdown.changed() => break,
            }
            continue;
        }
        backoff = Duration::ZERO;
        let mut first = Some(first);
        for task in fetched.tasks {
            let permit = match first.take() {
                Some(p) => p,
                None => sem.clone().acquire_owned().await.expect("semaphore open"),
            };
            inflight.insert(task.id, spec.name);
            let st = st.clone();
            let registry = registry.clone();
            let spec = spec.clone();
            let inflight = inflight.clone();
            let ack_tx = ack_tx.clone();
            running.spawn(async move {
                let id = task.id;
                let done = execute(&st, &registry, &spec, task).await;
                if done {
                    let _ = ack_tx.send(id);
                }
                inflight.remove(&id);
                drop(permit);
            });
        }
        // Reap finished handles so the set stays small.
        while running.try_join_next().is_some() {}
    }

    // Shutdown: stop fetching (done), let running jobs finish within the timeout, then hand
    // back whatever is still running so another worker picks it up at once.
    let deadline = st.config.shutdown_timeout;
    let drained = tokio::time::timeout(deadline, async {
        while running.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        running.abort_all();
        while running.join_next().await.is_some() {}
        let left = inflight.by_queue().remove(spec.name).unwrap_or_default();
        for id in left {
            match st.queues.release(spec.name, &st.worker_name, id).await {
                Ok(_) => tracing::info!(queue = spec.name, job_id = %id, "handed back on shutdown"),
                Err(e) => {
                    tracing::warn!(queue = spec.name, job_id = %id, error = %e, "hand-back failed; the lease will expire")
                }
            }
            inflight.remove(&id);
        }
    }
    drop(ack_tx);
    let _ = acker.await;
}

/// Batches acks: one script call completes every task finished since the last flush.
async fn ack_loop(
    st: Arc<WorkerState>,
    queue: &'static str,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Uuid>,
) {
    let mut buf = Vec::with_capacity(512);
    while rx.recv_many(&mut buf, 512).await > 0 {
        let mut tries = 0;
        loop {
            match st
                .queues
                .ack(queue, &st.worker_name, &buf, st.config.jobs.done_retention)
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(queue, error = %e, "ack failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => {
                    // The leases expire and the tasks run again; handlers are idempotent.
                    tracing::error!(queue, error = %e, count = buf.len(), "ack failed; tasks will be redelivered");
                    break;
                }
            }
        }
        buf.clear();
    }
}

/// Runs one task and settles failures. Returns true when it succeeded (ack pending).
async fn execute(
    st: &Arc<WorkerState>,
    registry: &Registry,
    spec: &QueueSpec,
    task: Leased,
) -> bool {
    let started = Instant::now();
    let kind = task.kind.clone();
    let meta = JobMeta {
        id: task.id,
        queue: spec.name,
        attempt: task.attempt,
        due_at_ms: task.ready_at_ms,
        previous_failure_at_ms: task.failed_at_ms,
    };
    let span = tracing::info_span!("job", queue = spec.name, kind = %kind, job_id = %task.id, attempt = task.attempt);
    let _enter = span.enter();
    drop(_enter);
    let result = match registry.handlers.get(kind.as_str()) {
        None => Err(JobError::permanent(anyhow::anyhow!(
            "no handler for kind {kind:?} on this worker"
        ))),
        Some((_, h)) => {
            let fut = h(st.clone(), meta.clone(), task.payload.clone());
            // A panicking handler is a failed attempt, not a lost task or a dead slot.
            let fut = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut));
            match tokio::time::timeout(
                spec.timeout,
                tracing::Instrument::instrument(fut, span.clone()),
            )
            .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(JobError::transient(anyhow::anyhow!(
                        "handler panicked: {msg}"
                    )))
                }
                Err(_) => Err(JobError::transient(anyhow::anyhow!(
                    "timed out after {:?}",
                    spec.timeout
                ))),
            }
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let kind_label = metrics_kind(registry, &kind);
    metrics::histogram!("job_duration_seconds", "queue" => spec.name, "kind" => kind_label)
        .record(elapsed);
    let outcome = match result {
        Ok(()) => {
            if task.durable {
                if let Err(e) = sqlx::query(
                    "UPDATE job_outbox SET status = 'done', attempts = $2, finished_at = now(), updated_at = now()
                     WHERE id = $1",
                )
                .bind(task.id)
                .bind(task.attempt as i32)
                .execute(&st.pools.primary)
                .await
                {
                    // Not acknowledged: the lease expires and the (idempotent) job runs again.
                    tracing::warn!(parent: &span, error = %e, "could not record completion; will be redelivered");
                    metrics::counter!("jobs_total", "queue" => spec.name, "kind" => kind_label, "outcome" => "unrecorded").increment(1);
                    return false;
                }
            }
            tracing::debug!(parent: &span, elapsed, "job done");
            metrics::counter!("jobs_total", "queue" => spec.name, "kind" => kind_label, "outcome" => "ok").increment(1);
            return true;
        }
        Err(JobError::Permanent(e)) => {
            let msg = format!("permanent: {e:#}");
            tracing::warn!(parent: &span, error = %msg, "job failed permanently; dead-lettered");
            (
                st.queues
                    .bury(spec.name, &st.worker_name, task.id, &msg)
                    .await,
                msg,
            )
        }
        Err(JobError::Transient(e)) => {
            let delay = spec.retry.delay(task.attempt);
            let msg = format!("{e:#}");
            tracing::info!(parent: &span, error = %msg, retry_in_ms = delay.as_millis() as u64, "job failed; retry scheduled");
            (
                st.queues
                    .retry_later(
                        spec.name,
                        &st.worker_name,
                        task.id,
                        delay,
                        &msg,
                        spec.retry.max_attempts,
                    )
                    .await,
                msg,
            )
        }
    };
    let (settled, msg) = outcome;
    let label = match &settled {
        Ok(Settled::Retry) => "retry",
        Ok(Settled::Dead) => "dead",
        Ok(Settled::Released) => "released",
        Ok(Settled::Lost) => "lost",
        Err(_) => "settle_error",
    };
    metrics::counter!("jobs_total", "queue" => spec.name, "kind" => kind_label, "outcome" => label)
        .increment(1);
    if task.durable {
        let status = if matches!(settled, Ok(Settled::Dead)) {
            "dead"
        } else {
            "pending"
        };
        let _ = sqlx::query(
            "UPDATE job_outbox SET status = $2, attempts = $3, last_error = $4, updated_at = now(),
                    finished_at = CASE WHEN $2 = 'dead' THEN now() END
             WHERE id = $1",
        )
        .bind(task.id)
        .bind(status)
        .bind(task.attempt as i32)
        .bind(&msg)
        .execute(&st.pools.primary)
        .await;
    }
    if let Err(e) = settled {
        tracing::error!(job_id = %task.id, error = %e, "could not settle a failed job; its lease will expire");
    }
    false
}

/// Kind names as metric labels (bounded: unknown kinds are grouped).
fn metrics_kind(registry: &Registry, kind: &str) -> &'static str {
    registry
        .handlers
        .get_key_value(kind)
        .map(|(k, _)| *k)
        .unwrap_or("unknown")
}

async fn mark_outbox_dead(st: &WorkerState, ids: &[Uuid], why: &str) {
    if let Err(e) = sqlx::query(
        "UPDATE job_outbox SET status = 'dead', last_error = $2, finished_at = now(), updated_at = now()
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind(ids)
    .bind(why)
    .execute(&st.pools.primary)
    .await
    {
        tracing::warn!(error = %e, "could not mark dead-lettered outbox rows");
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
