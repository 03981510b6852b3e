//! [`HardenedBackend`], the apalis backend over one queue: the fetch loop (`poll_next`,
//! leasing only as many tasks as the worker has free slots, backing off when idle or on a
//! Redis error), and the hand-back of tasks fetched but never started (`poll_close`, drop).

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use apalis_core::{
    backend::{finalize::Ephemeral, Backend, BackendConfig},
    task::{builder::TaskBuilder, task_id::TaskId, Task},
    worker::context::WorkerContext,
};
use futures::{future::BoxFuture, FutureExt};
use jobs::queue::{Fetched, Leased, Limits};
use uuid::Uuid;

use super::{settle::SettleLayer, Envelope, Lease, Shared};
use crate::{runtime::QueueSpec, WorkerState};

/// The error type of [`HardenedBackend`]'s polls. Never returned (a backend error stops an
/// apalis worker); it exists because the trait needs one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(String);

pub(super) type FetchFut = BoxFuture<'static, Result<Fetched, jobs::QueueError>>;

/// The apalis backend over one queue (one per worker; see the module docs).
pub struct HardenedBackend {
    pub(super) shared: Arc<Shared>,
    pub(super) buf: VecDeque<Leased>,
    pub(super) fetch: Option<FetchFut>,
    pub(super) idle: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) backoff: Duration,
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

async fn mark_outbox_dead(st: &WorkerState, ids: &[Uuid], why: &str) {
    if let Err(e) = jobs::outbox::mark_dead_if_pending(&st.pools.primary, ids, why).await {
        tracing::warn!(error = %e, "could not mark dead-lettered outbox rows");
    }
}
