//! Typed enqueue through apalis: [`JobSink<J>`] is a `futures::Sink<Task<J>>` over our
//! hardened queue, so apalis-core's blanket `TaskSink<J, Ephemeral>` gives it `push`,
//! `push_bulk`, `push_stream`, `push_task` and `push_all`:
//!
//! ```text
//! use apalis_core::backend::TaskSink;
//! let mut sink = JobSink::<ApplyOffer>::durable(client, pool, Some(tenant_id));
//! sink.push(ApplyOffer { session_id }).await?;
//! ```
//!
//! What the apalis task carries is honoured: its `task_id` (a UUID) is our task id (so a
//! repeated push of the same task is a no-op), `run_at` (unix seconds) delays it and
//! `idempotency_key` is our de-duplication key. Tasks are buffered and flushed in one
//! pipelined round trip per [`crate::queue::ENQUEUE_BATCH`] (`poll_flush`, which `push*`
//! drive).
//!
//! A *durable* sink writes the `job_outbox` rows first (one INSERT per flush, idempotent on
//! the task id), then pushes them: what a flush acknowledged survives Redis restarting
//! empty, exactly like [`JobClient::enqueue_durable_many`]. Durable work runs at once and is
//! de-duplicated by its id, so a durable sink refuses `run_at` and idempotency keys.
//!
//! The sink is the enqueue side only: apalis's `TaskSink` requires a `Backend`, and its
//! `poll_next` ends at once. Tasks are consumed by the workers' backend
//! (`workers::backend::HardenedBackend`), which leases, settles and retries them.

use std::{
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use apalis_core::{
    backend::{finalize::Ephemeral, Backend, BackendConfig},
    layers::Identity,
    task::Task,
    worker::context::WorkerContext,
};
use futures::{future::BoxFuture, FutureExt};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{queue, Job, JobClient, OutboxEntry, QueueError};

/// apalis's typed enqueue trait, implemented for [`JobSink`] by apalis-core.
pub use apalis_core::backend::{TaskSink, TaskSinkError};

/// Why a flush failed. Nothing of a failed flush is acknowledged. (A durable flush whose
/// INSERT committed succeeds even if Redis is down: the reconciler pushes the rows.)
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("outbox: {0}")]
    Outbox(#[from] sqlx::Error),
    #[error("{0}")]
    Unsupported(&'static str),
}

type Flush = BoxFuture<'static, Result<Vec<Uuid>, SinkError>>;

/// The typed enqueue side of a queue (see the module docs).
pub struct JobSink<J: Job> {
    client: JobClient,
    durable: Option<(PgPool, Option<Uuid>)>,
    buf: Vec<queue::NewTask>,
    flush: Option<Flush>,
    pushed: Vec<Uuid>,
    _job: PhantomData<fn() -> J>,
}

impl<J: Job> JobSink<J> {
    /// A sink for work PostgreSQL need not remember (ticks, cache invalidation, probes).
    pub fn new(client: JobClient) -> Self {
        Self {
            client,
            durable: None,
            buf: Vec::new(),
            flush: None,
            pushed: Vec::new(),
            _job: PhantomData,
        }
    }

    /// A sink whose every task is recorded in `job_outbox` (for `tenant_id`) before Redis.
    pub fn durable(client: JobClient, pool: PgPool, tenant_id: Option<Uuid>) -> Self {
        Self {
            durable: Some((pool, tenant_id)),
            ..Self::new(client)
        }
    }

    /// Ids of every task flushed so far, in order (a de-duplicated task has the id of the
    /// task that was already queued).
    pub fn pushed(&self) -> &[Uuid] {
        &self.pushed
    }

    /// Takes the ids flushed so far.
    pub fn take_pushed(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.pushed)
    }

    fn encode(&self, task: Task<J>) -> Result<queue::NewTask, SinkError> {
        let run_at_ms = match task.ctx().run_at() {
            Some(secs) => (secs as i64).saturating_mul(1000),
            None => queue::now_ms(),
        };
        let idempotency_key = task.ctx().idempotency_key().map(str::to_owned);
        if self.durable.is_some() {
            if run_at_ms > queue::now_ms() {
                return Err(SinkError::Unsupported(
                    "a durable job runs at once: run_at is for non-durable sinks",
                ));
            }
            if idempotency_key.is_some() {
                return Err(SinkError::Unsupported(
                    "a durable job is de-duplicated by its task id, not an idempotency key",
                ));
            }
        }
        let id = task
            .ctx()
            .task_id()
            .and_then(|t| t.as_uuid())
            .unwrap_or_else(Uuid::now_v7);
        Ok(queue::NewTask {
            id,
            kind: J::KIND,
            payload: serde_json::to_string(&task.args).map_err(QueueError::from)?,
            run_at_ms,
            idempotency_key,
            durable: self.durable.is_some(),
        })
    }

    fn start_flush(&mut self) -> Flush {
        let tasks = std::mem::take(&mut self.buf);
        let client = self.client.clone();
        let durable = self.durable.clone();
        async move {
            match durable {
                None => Ok(client
                    .queues
                    .enqueue_batch(J::QUEUE, &tasks, client.idempotency_ttl)
                    .await?
                    .into_iter()
                    .map(|(_, id)| id)
                    .collect()),
                Some((pool, tenant_id)) => {
                    let entries: Vec<OutboxEntry> = tasks
                        .into_iter()
                        .map(|t| OutboxEntry {
                            id: t.id,
                            queue: J::QUEUE,
                            kind: J::KIND,
                            payload: t.payload,
                        })
                        .collect();
                    crate::outbox::insert_many(&pool, tenant_id, &entries).await?;
                    // Recorded is acknowledged: if Redis is unavailable the reconciler
                    // pushes the rows later.
                    if let Err(e) = client.push_outbox_many(&entries).await {
                        tracing::warn!(count = entries.len(), error = %e, "enqueue deferred to the reconciler");
                    }
                    Ok(entries.into_iter().map(|e| e.id).collect())
                }
            }
        }
        .boxed()
    }
}

impl<J: Job> futures::Sink<Task<J>> for JobSink<J> {
    type Error = SinkError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SinkError>> {
        if self.buf.len() >= queue::ENQUEUE_BATCH {
            return futures::Sink::poll_flush(self.as_mut(), cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, task: Task<J>) -> Result<(), SinkError> {
        let t = self.encode(task)?;
        self.buf.push(t);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SinkError>> {
        loop {
            if let Some(f) = self.flush.as_mut() {
                let res = futures::ready!(f.poll_unpin(cx));
                self.flush = None;
                match res {
                    Ok(ids) => self.pushed.extend(ids),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if self.buf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let f = self.start_flush();
            self.flush = Some(f);
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SinkError>> {
        futures::Sink::poll_flush(self, cx)
    }
}

impl<J: Job> Backend for JobSink<J> {
    type Task = Task<J>;
    type Error = SinkError;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), SinkError>> {
        Poll::Ready(Ok(()))
    }

    /// The enqueue side yields no tasks (see the module docs).
    fn poll_next(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Task<J>, SinkError>>> {
        Poll::Ready(None)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), SinkError>> {
        futures::Sink::poll_flush(Pin::new(self), cx)
    }
}

impl<J: Job> BackendConfig for JobSink<J> {
    type Args = J;
    type Id = Uuid;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Identity {
        Identity::new()
    }
}
