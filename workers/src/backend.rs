//! Our hardened queue (`jobs::queue`) as an apalis 1.0 backend, so every queue of this
//! process runs on an apalis `Worker` (built with `WorkerBuilder`, run by `Monitor`, with
//! apalis's timeout, catch-panic and tracing layers) while the queue keeps every guarantee:
//!
//! - **Fetch** (`Backend::poll_next`): leases only as many tasks as the worker has free slots
//!   (`concurrency - task_count()`; apalis polls the backend only when a slot is free). The
//!   attempt is counted by the queue at lease time and carried in the task as [`Lease`]. A
//!   Redis error is logged and backed off (apalis treats a backend error as fatal to the
//!   worker): `poll_next` never returns one.
//! - **Settle** ([`SettleLayer`], the backend's own middleware, which apalis places outside
//!   every other layer): the only place a task is settled. Success: the outbox row first,
//!   then a batched ack. `JobError::Permanent` or an undecodable payload: dead-letter.
//!   Anything else (`JobError::Transient`, a timeout, a caught panic): retry later on our
//!   durable exponential schedule. There is no apalis retry layer: ours is the only loop.
//! - **Leases**: [`crate::runtime::heartbeat_loop`] renews every task this process holds
//!   (buffered or running), from its own task, so renewal goes on while every slot is busy
//!   and during the shutdown drain (apalis stops polling the backend then).
//! - **Hand-back**: `poll_close` releases tasks fetched but never started; a task whose
//!   future is dropped unsettled (the Monitor's shutdown timeout) is released by its guard.
//!   A released task runs again at once elsewhere and is not counted as a crash.
//!
//! One worker per queue; its service is a [`Router`] that decodes the envelope into the
//! handler's typed job and calls the handler as an apalis task function (`task_fn`), with
//! the extractors `Data<Arc<WorkerState>>` and [`JobMeta`].

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use apalis::layers::catch_panic::PanicError;
use apalis_core::{
    backend::{finalize::Ephemeral, Backend, BackendConfig},
    error::{AbortError, BoxDynError},
    layers::{Layer, Service},
    task::{
        builder::TaskBuilder, data::MissingDataError, from_request::FromRequest, task_id::TaskId,
        Task,
    },
    worker::context::WorkerContext,
};
use futures::{future::BoxFuture, FutureExt};
use jobs::queue::{Fetched, Leased, Limits, Settled};
use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use crate::{
    runtime::{InFlight, JobError, JobMeta, QueueSpec},
    WorkerState,
};

/// What the worker sees as its `Args`: the raw record of our queue. The [`Router`] decodes
/// the payload into the handler's type, so a bad payload is a task failure (dead-letter),
/// not a backend error.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub kind: String,
    pub payload: String,
}

/// Our lease of a task, carried in the apalis task's data: read by [`SettleLayer`] and the
/// [`JobMeta`] extractor. The source of truth for the attempt (apalis counts its own).
#[derive(Clone, Debug)]
pub struct Lease {
    pub id: Uuid,
    pub queue: &'static str,
    pub kind: String,
    pub attempt: u32,
    pub durable: bool,
    pub ready_at_ms: Option<i64>,
    pub failed_at_ms: Option<i64>,
}

impl<Args: Sync> FromRequest<Task<Args>> for JobMeta {
    type Error = MissingDataError;
    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        let l = task.data().get_checked::<Lease>()?;
        Ok(JobMeta {
            id: l.id,
            queue: l.queue,
            attempt: l.attempt,
            due_at_ms: l.ready_at_ms,
            previous_failure_at_ms: l.failed_at_ms,
        })
    }
}

pub type Route =
    Arc<dyn Fn(Task<Envelope>) -> BoxFuture<'static, Result<(), BoxDynError>> + Send + Sync>;

/// The service of one queue's worker: one typed route per job kind.
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<&'static str, Route>,
}

impl Router {
    pub fn insert(&mut self, kind: &'static str, route: Route) {
        self.routes.insert(kind, route);
    }

    /// A route calling `svc` (an apalis task function of `J`) with the payload decoded.
    pub fn route_for<J, S>(svc: S) -> Route
    where
        J: serde::de::DeserializeOwned + Send + 'static,
        S: Service<Task<J>, Response = (), Error = BoxDynError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Arc::new(move |task: Task<Envelope>| {
            let svc = svc.clone();
            async move {
                // Keeps the execution context (id, attempt, data: the lease, Data<T>).
                let task = task
                    .try_map_args(|env| serde_json::from_str::<J>(&env.payload))
                    .map_err(|e| {
                        JobError::permanent(anyhow::anyhow!("undecodable payload: {e}"))
                    })?;
                tower::ServiceExt::oneshot(svc, task).await
            }
            .boxed()
        })
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }
}

impl Service<Task<Envelope>> for Router {
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Envelope>) -> Self::Future {
        match self.routes.get(task.args.kind.as_str()) {
            Some(route) => route(task),
            None => {
                let kind = task.args.kind.clone();
                async move {
                    Err(JobError::permanent(anyhow::anyhow!(
                        "no handler for kind {kind:?} on this worker"
                    ))
                    .into())
                }
                .boxed()
            }
        }
    }
}

/// What the backend, its settle layer and the queue's ack and release loops share.
pub struct Shared {
    st: Arc<WorkerState>,
    spec: QueueSpec,
    concurrency: usize,
    inflight: Arc<InFlight>,
    kinds: Vec<&'static str>,
    acks: mpsc::UnboundedSender<Uuid>,
    releases: mpsc::UnboundedSender<(Uuid, &'static str)>,
}

impl Shared {
    fn release(&self, id: Uuid, why: &'static str) {
        // The release loop forgets the lease once it is handed back.
        let _ = self.releases.send((id, why));
    }

    /// Kind names as metric labels (bounded: unknown kinds are grouped).
    fn kind_label(&self, kind: &str) -> &'static str {
        self.kinds
            .iter()
            .find(|k| **k == kind)
            .copied()
            .unwrap_or("unknown")
    }
}

/// One queue's runtime around its apalis worker: the batched ack loop and the release
/// loop, which outlive the worker future (hand-backs queued while the Monitor drops it
/// still happen). Call [`QueueRuntime::finish`] after the Monitor has returned.
pub struct QueueRuntime {
    shared: Arc<Shared>,
    loops: Vec<JoinHandle<()>>,
}

impl QueueRuntime {
    pub fn start(
        st: Arc<WorkerState>,
        spec: QueueSpec,
        kinds: Vec<&'static str>,
        inflight: Arc<InFlight>,
    ) -> Self {
        let concurrency = st
            .config
            .jobs
            .concurrency_override
            .unwrap_or(spec.concurrency)
            .max(1);
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let (releases, release_rx) = mpsc::unbounded_channel();
        let loops = vec![
            tokio::spawn(ack_loop(st.clone(), spec.name, inflight.clone(), ack_rx)),
            tokio::spawn(release_loop(
                st.clone(),
                spec.name,
                inflight.clone(),
                release_rx,
            )),
        ];
        Self {
            shared: Arc::new(Shared {
                st,
                spec,
                concurrency,
                inflight,
                kinds,
                acks,
                releases,
            }),
            loops,
        }
    }

    pub fn concurrency(&self) -> usize {
        self.shared.concurrency
    }

    /// Makes this queue's backend (the Monitor builds a worker again when it restarts one).
    pub fn backend_factory(&self) -> impl Fn() -> HardenedBackend + Clone + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || HardenedBackend {
            shared: shared.clone(),
            buf: VecDeque::new(),
            fetch: None,
            idle: None,
            backoff: Duration::ZERO,
        }
    }

    /// After the Monitor returned (every worker future dropped): the last acks and
    /// hand-backs are written, then the loops end.
    pub async fn finish(self) {
        let Self { shared, loops } = self;
        drop(shared);
        for l in loops {
            // Each loop ends when every sender (backends, settle layers) is gone.
            if tokio::time::timeout(Duration::from_secs(10), l)
                .await
                .is_err()
            {
                tracing::warn!("queue runtime loop did not finish in 10 s");
            }
        }
    }
}

/// Batches acks: one script call completes every task finished since the last flush.
async fn ack_loop(
    st: Arc<WorkerState>,
    queue: &'static str,
    inflight: Arc<InFlight>,
    mut rx: mpsc::UnboundedReceiver<Uuid>,
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
        for id in &buf {
            inflight.remove(id);
        }
        buf.clear();
    }
}

/// Hands tasks back (fetched but never started, or dropped unfinished at shutdown).
async fn release_loop(
    st: Arc<WorkerState>,
    queue: &'static str,
    inflight: Arc<InFlight>,
    mut rx: mpsc::UnboundedReceiver<(Uuid, &'static str)>,
) {
    while let Some((id, why)) = rx.recv().await {
        match st.queues.release(queue, &st.worker_name, id).await {
            Ok(_) => tracing::info!(queue, job_id = %id, why, "handed back"),
            Err(e) => {
                tracing::warn!(queue, job_id = %id, error = %e, "hand-back failed; the lease will expire")
            }
        }
        inflight.remove(&id);
    }
}

/// The error type of [`HardenedBackend`]'s polls. Never returned (a backend error stops an
/// apalis worker); it exists because the trait needs one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(String);

type FetchFut = BoxFuture<'static, Result<Fetched, jobs::QueueError>>;

/// The apalis backend over one queue (one per worker; see the module docs).
pub struct HardenedBackend {
    shared: Arc<Shared>,
    buf: VecDeque<Leased>,
    fetch: Option<FetchFut>,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    backoff: Duration,
}

impl HardenedBackend {
    fn to_task(&self, l: Leased) -> Task<Envelope> {
        let lease = Lease {
            id: l.id,
            queue: self.shared.spec.name,
            kind: l.kind.clone(),
            attempt: l.attempt,
            durable: l.durable,
            ready_at_ms: l.ready_at_ms,
            failed_at_ms: l.failed_at_ms,
        };
        TaskBuilder::new(Envelope {
            kind: l.kind,
            payload: l.payload,
        })
        .task_id(TaskId::from_uuid(l.id))
        // apalis adds one on the task's first poll: its Attempt then reads ours.
        .attempt(l.attempt.saturating_sub(1) as usize)
        .max_attempts(self.shared.spec.retry.max_attempts as usize)
        .data(lease)
        .build()
    }

    fn accept(&mut self, f: Fetched) {
        if !f.dead.is_empty() {
            metrics::counter!("jobs_total", "queue" => self.shared.spec.name, "kind" => "any", "outcome" => "dead")
                .increment(f.dead.len() as u64);
            let st = self.shared.st.clone();
            tokio::spawn(async move {
                mark_outbox_dead(
                    &st,
                    &f.dead,
                    "dead-lettered by fetch (attempt or crash budget used up)",
                )
                .await
            });
        }
        for t in &f.tasks {
            self.shared.inflight.insert(t.id, self.shared.spec.name);
        }
        self.buf.extend(f.tasks);
    }

    fn start_fetch(&mut self, worker: &WorkerContext) {
        let sh = &self.shared;
        let free = sh.concurrency.saturating_sub(worker.task_count()).max(1);
        let limits = Limits {
            max_attempts: sh.spec.retry.max_attempts,
            max_crashes: sh.spec.max_crashes,
        };
        let st = sh.st.clone();
        let queue = sh.spec.name;
        self.fetch = Some(
            async move {
                st.queues
                    .fetch(queue, &st.worker_name, free, st.config.jobs.lease, limits)
                    .await
            }
            .boxed(),
        );
    }
}

impl Backend for HardenedBackend {
    type Task = Task<Envelope>;
    type Error = BackendError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// Called only when the worker has a free slot.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        let queue = self.shared.spec.name;
        loop {
            if let Some(l) = self.buf.pop_front() {
                return Poll::Ready(Some(Ok(self.to_task(l))));
            }
            if let Some(idle) = self.idle.as_mut() {
                ready!(idle.as_mut().poll(cx));
                self.idle = None;
            }
            if self.fetch.is_none() {
                self.start_fetch(worker);
            }
            let res = ready!(self.fetch.as_mut().expect("fetch").poll_unpin(cx));
            self.fetch = None;
            let idle = Duration::from_millis(50);
            match res {
                Ok(f) if f.tasks.is_empty() => {
                    self.accept(f);
                    self.backoff = if self.backoff < idle {
                        idle
                    } else {
                        (self.backoff + idle).min(Duration::from_millis(250))
                    };
                    self.idle = Some(Box::pin(tokio::time::sleep(self.backoff)));
                }
                Ok(f) => {
                    self.backoff = Duration::ZERO;
                    self.accept(f);
                }
                Err(e) => {
                    tracing::warn!(queue, error = %e, "fetch failed; retrying");
                    metrics::counter!("worker_fetch_errors_total", "queue" => queue).increment(1);
                    self.backoff = (self.backoff * 2).clamp(idle, Duration::from_secs(2));
                    self.idle = Some(Box::pin(tokio::time::sleep(self.backoff)));
                }
            }
        }
    }

    /// Reached once every running task has finished: hands back what was fetched but never
    /// started (including a fetch still in flight).
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if let Some(f) = self.fetch.as_mut() {
            let res = ready!(f.poll_unpin(cx));
            self.fetch = None;
            if let Ok(f) = res {
                self.accept(f);
            }
        }
        for l in std::mem::take(&mut self.buf) {
            self.shared.release(l.id, "fetched, never started");
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for HardenedBackend {
    /// Dropped without `poll_close` (the Monitor's shutdown timeout): hand back what is
    /// buffered or being fetched. Running tasks are handed back by their settle guard.
    fn drop(&mut self) {
        for l in std::mem::take(&mut self.buf) {
            self.shared.release(l.id, "fetched, never started");
        }
        if let Some(f) = self.fetch.take() {
            let shared = self.shared.clone();
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    if let Ok(f) = f.await {
                        for t in f.tasks {
                            shared.release(t.id, "fetched while stopping");
                        }
                    }
                });
            }
        }
    }
}

impl BackendConfig for HardenedBackend {
    type Args = Envelope;
    type Id = Uuid;
    type Kind = Ephemeral;
    type Config = QueueSpec;
    type Layer = SettleLayer;

    fn config(&self) -> &Self::Config {
        &self.shared.spec
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        SettleLayer {
            shared: self.shared.clone(),
        }
    }
}

/// The backend's middleware: settles every task (see the module docs).
#[derive(Clone)]
pub struct SettleLayer {
    shared: Arc<Shared>,
}

impl<S> Layer<S> for SettleLayer {
    type Service = SettleService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SettleService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct SettleService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Hands the task back if its future is dropped before it was settled (shutdown timeout).
struct HandBack {
    shared: Arc<Shared>,
    id: Uuid,
    armed: bool,
}

impl Drop for HandBack {
    fn drop(&mut self) {
        if self.armed {
            self.shared
                .release(self.id, "running when the shutdown timeout expired");
        }
    }
}

enum Failure {
    Permanent(String),
    Transient(String),
}

/// Our policy for the final error of the stack: our `JobError` as the handler returned it;
/// apalis's timeout (`tower::timeout::error::Elapsed`) and caught panic (`AbortError` of a
/// `PanicError`) are transient; any other abort is permanent; anything else (an extractor
/// error) transient.
fn classify(e: &BoxDynError) -> Failure {
    if let Some(j) = e.downcast_ref::<JobError>() {
        return match j {
            JobError::Permanent(inner) => Failure::Permanent(format!("permanent: {inner:#}")),
            JobError::Transient(inner) => Failure::Transient(format!("{inner:#}")),
        };
    }
    if e.is::<tower::timeout::error::Elapsed>() {
        return Failure::Transient("timed out".into());
    }
    if let Some(a) = e.downcast_ref::<AbortError>() {
        if let Some(p) = std::error::Error::source(a).and_then(|s| s.downcast_ref::<PanicError>()) {
            return Failure::Transient(format!("handler panicked: {}", p.0));
        }
        return Failure::Permanent(format!("permanent: {a}"));
    }
    Failure::Transient(e.to_string())
}

impl<S> Service<Task<Envelope>> for SettleService<S>
where
    S: Service<Task<Envelope>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The concurrency limit's back-pressure reaches the worker loop through here.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Envelope>) -> Self::Future {
        let lease = task.data().get::<Lease>().cloned();
        let shared = self.shared.clone();
        let fut = self.inner.call(task);
        async move {
            let Some(lease) = lease else {
                return fut.await.map_err(Into::into);
            };
            let mut guard = HandBack {
                shared: shared.clone(),
                id: lease.id,
                armed: true,
            };
            let started = Instant::now();
            let res: Result<S::Response, BoxDynError> = fut.await.map_err(Into::into);
            settle(&shared, &lease, res.as_ref().err(), started).await;
            guard.armed = false;
            res
        }
        .boxed()
    }
}

/// Outbox row first, then ack (batched) / retry later / dead-letter, with the metrics.
async fn settle(sh: &Shared, lease: &Lease, err: Option<&BoxDynError>, started: Instant) {
    let st = &sh.st;
    let queue = sh.spec.name;
    let kind = sh.kind_label(&lease.kind);
    metrics::histogram!("job_duration_seconds", "queue" => queue, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    let span = tracing::info_span!("job", queue, kind = %lease.kind, job_id = %lease.id, attempt = lease.attempt);
    let Some(err) = err else {
        if lease.durable {
            if let Err(e) = sqlx::query!(
                "UPDATE job_outbox SET status = 'done', attempts = $2, finished_at = now(), updated_at = now()
                 WHERE id = $1",
                lease.id,
                lease.attempt as i32,
            )
            .execute(&st.pools.primary)
            .await
            {
                // Not acknowledged: the lease expires and the (idempotent) job runs again.
                tracing::warn!(parent: &span, error = %e, "could not record completion; will be redelivered");
                metrics::counter!("jobs_total", "queue" => queue, "kind" => kind, "outcome" => "unrecorded").increment(1);
                sh.inflight.remove(&lease.id);
                return;
            }
        }
        tracing::debug!(parent: &span, "job done");
        metrics::counter!("jobs_total", "queue" => queue, "kind" => kind, "outcome" => "ok")
            .increment(1);
        let _ = sh.acks.send(lease.id);
        return;
    };
    let (settled, msg) = match classify(err) {
        Failure::Permanent(msg) => {
            tracing::warn!(parent: &span, error = %msg, "job failed permanently; dead-lettered");
            (
                st.queues.bury(queue, &st.worker_name, lease.id, &msg).await,
                msg,
            )
        }
        Failure::Transient(msg) => {
            let delay = sh.spec.retry.delay(lease.attempt);
            tracing::info!(parent: &span, error = %msg, retry_in_ms = delay.as_millis() as u64, "job failed; retry scheduled");
            (
                st.queues
                    .retry_later(
                        queue,
                        &st.worker_name,
                        lease.id,
                        delay,
                        &msg,
                        sh.spec.retry.max_attempts,
                    )
                    .await,
                msg,
            )
        }
    };
    sh.inflight.remove(&lease.id);
    let label = match &settled {
        Ok(Settled::Retry) => "retry",
        Ok(Settled::Dead) => "dead",
        Ok(Settled::Released) => "released",
        Ok(Settled::Lost) => "lost",
        Err(_) => "settle_error",
    };
    metrics::counter!("jobs_total", "queue" => queue, "kind" => kind, "outcome" => label)
        .increment(1);
    if lease.durable {
        let status = if matches!(settled, Ok(Settled::Dead)) {
            "dead"
        } else {
            "pending"
        };
        let _ = sqlx::query!(
            "UPDATE job_outbox SET status = $2, attempts = $3, last_error = $4, updated_at = now(),
                    finished_at = CASE WHEN $2 = 'dead' THEN now() END
             WHERE id = $1",
            lease.id,
            status,
            lease.attempt as i32,
            &msg,
        )
        .execute(&st.pools.primary)
        .await;
    }
    if let Err(e) = settled {
        tracing::error!(job_id = %lease.id, error = %e, "could not settle a failed job; its lease will expire");
    }
}

async fn mark_outbox_dead(st: &WorkerState, ids: &[Uuid], why: &str) {
    if let Err(e) = sqlx::query!(
        "UPDATE job_outbox SET status = 'dead', last_error = $2, finished_at = now(), updated_at = now()
         WHERE id = ANY($1) AND status = 'pending'",
        ids,
        why,
    )
    .execute(&st.pools.primary)
    .await
    {
        tracing::warn!(error = %e, "could not mark dead-lettered outbox rows");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(kind: &str) -> Lease {
        Lease {
            id: Uuid::now_v7(),
            queue: "ops",
            kind: kind.into(),
            attempt: 3,
            durable: false,
            ready_at_ms: Some(1_000),
            failed_at_ms: Some(900),
        }
    }

    fn task(kind: &str, payload: &str) -> Task<Envelope> {
        let l = lease(kind);
        TaskBuilder::new(Envelope {
            kind: kind.into(),
            payload: payload.into(),
        })
        .task_id(TaskId::from_uuid(l.id))
        .attempt(2)
        .data(l)
        .build()
    }

    fn is_permanent(e: &BoxDynError) -> bool {
        matches!(classify(e), Failure::Permanent(_))
    }

    /// Our policy for what reaches the settle layer: the handler's own verdict, apalis's
    /// timeout and caught panic retried, any other abort dead-lettered.
    #[test]
    fn failures_are_classified_by_our_policy() {
        let permanent: BoxDynError = JobError::permanent(anyhow::anyhow!("4xx")).into();
        let transient: BoxDynError = JobError::transient(anyhow::anyhow!("429")).into();
        let timeout: BoxDynError = tower::timeout::error::Elapsed::new().into();
        let panic: BoxDynError = AbortError::new(PanicError("boom".into())).into();
        let abort: BoxDynError = AbortError::new("do not retry").into();
        let other: BoxDynError = "missing data".into();
        assert!(is_permanent(&permanent));
        assert!(!is_permanent(&transient));
        assert!(!is_permanent(&timeout));
        match classify(&panic) {
            Failure::Transient(m) => assert!(m.contains("handler panicked: boom"), "{m}"),
            Failure::Permanent(m) => panic!("a panic is retried: {m}"),
        }
        assert!(is_permanent(&abort));
        assert!(!is_permanent(&other));
    }

    #[derive(serde::Deserialize)]
    struct Echo {
        n: u32,
    }

    /// The router decodes the payload into the handler's type and hands the handler our
    /// lease as `JobMeta`; an undecodable payload or an unknown kind is a permanent failure.
    #[tokio::test]
    async fn the_router_decodes_typed_jobs_and_refuses_bad_ones() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let svc = apalis_core::task::task_fn::task_fn(move |job: Echo, meta: JobMeta| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push((job.n, meta.attempt, meta.due_at_ms));
                Ok::<(), JobError>(())
            }
        });
        let mut router = Router::default();
        router.insert("echo", Router::route_for::<Echo, _>(svc));
        router.call(task("echo", r#"{"n": 7}"#)).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(7, 3, Some(1_000))]);
        let bad = router.call(task("echo", "{")).await.unwrap_err();
        assert!(is_permanent(&bad), "{bad}");
        let unknown = router.call(task("nope", "{}")).await.unwrap_err();
        assert!(is_permanent(&unknown), "{unknown}");
        assert!(unknown.to_string().contains("no handler"), "{unknown}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
