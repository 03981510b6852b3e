//! Typed jobs and the hardened queue they travel on.
//!
//! Every kind of background work has one payload type here with a stable kind name and
//! queue name ([`Job`]). The api enqueues through [`JobClient`]; the workers crate registers
//! one handler per kind (`workers::registry::register_all`). Work that was acknowledged to
//! a caller is *durable*: [`JobClient::enqueue_durable`] writes a `job_outbox` row inside the
//! caller's transaction, so PostgreSQL can rebuild the queue if Redis loses it.

pub mod kinds;
pub mod ops;
pub mod outbox;
pub mod queue;
pub mod sink;

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use kinds::*;
pub use queue::{QueueError, QueueStats, Queues};
pub use sink::{JobSink, SinkError, TaskSink, TaskSinkError};

/// Names of every queue. Stable: they are part of the Redis layout.
pub mod queues {
    pub const STRIPE: &str = "stripe";
    pub const WEBHOOKS: &str = "webhooks";
    pub const ANALYTICS: &str = "analytics";
    pub const CACHE: &str = "cache";
    pub const OPS: &str = "ops";
    pub const ALL: &[&str] = &[STRIPE, WEBHOOKS, ANALYTICS, CACHE, OPS];
}

/// A typed job payload.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable kind name (stored with every task).
    const KIND: &'static str;
    /// The queue this kind runs on.
    const QUEUE: &'static str;
}

/// Options for one enqueue.
#[derive(Clone, Debug, Default)]
pub struct EnqueueOpts {
    /// Run no earlier than this.
    pub delay: Option<Duration>,
    /// De-duplication key: a second enqueue with the same key is a no-op while the key lives
    /// (it always has a TTL, at least `idempotency_ttl`).
    pub idempotency_key: Option<String>,
}

/// Enqueues typed jobs.
#[derive(Clone, Debug)]
pub struct JobClient {
    pub queues: Queues,
    pub idempotency_ttl: Duration,
}

impl JobClient {
    pub fn new(queues: Queues, idempotency_ttl: Duration) -> Self {
        Self {
            queues,
            idempotency_ttl,
        }
    }

    fn task<J: Job>(
        &self,
        id: Uuid,
        job: &J,
        opts: &EnqueueOpts,
        durable: bool,
    ) -> Result<queue::NewTask, QueueError> {
        Ok(queue::NewTask {
            id,
            kind: J::KIND,
            payload: serde_json::to_string(job)?,
            run_at_ms: queue::now_ms() + opts.delay.map(|d| d.as_millis() as i64).unwrap_or(0),
            idempotency_key: opts.idempotency_key.clone(),
            durable,
        })
    }

    /// Enqueues a job that PostgreSQL does not need to remember (ticks, cache
    /// invalidation). Returns `(created, id)`.
    pub async fn enqueue<J: Job>(
        &self,
        job: &J,
        opts: EnqueueOpts,
    ) -> Result<(bool, Uuid), QueueError> {
        let t = self.task(Uuid::now_v7(), job, &opts, false)?;
        self.queues
            .enqueue(J::QUEUE, &t, self.idempotency_ttl)
            .await
    }

    /// Enqueues many jobs of one kind in pipelined batches; returns how many were created.
    pub async fn enqueue_many<J: Job>(&self, jobs: &[J]) -> Result<usize, QueueError> {
        Ok(self
            .enqueue_batch(jobs)
            .await?
            .iter()
            .filter(|(created, _)| *created)
            .count())
    }

    /// Enqueues many jobs of one kind, one pipelined round trip per
    /// [`queue::ENQUEUE_BATCH`]; `(created, id)` per job, in order.
    pub async fn enqueue_batch<J: Job>(&self, jobs: &[J]) -> Result<Vec<(bool, Uuid)>, QueueError> {
        let tasks = jobs
            .iter()
            .map(|j| self.task(Uuid::now_v7(), j, &EnqueueOpts::default(), false))
            .collect::<Result<Vec<_>, _>>()?;
        self.queues
            .enqueue_batch(J::QUEUE, &tasks, self.idempotency_ttl)
            .await
    }

    /// Step 1 of a durable enqueue: records the job in `job_outbox` inside the caller's
    /// transaction. Call [`JobClient::push_outbox`] after the commit; if the process dies in
    /// between, the reconciler enqueues it.
    pub async fn record_durable<J: Job>(
        conn: &mut PgConnection,
        tenant_id: Option<Uuid>,
        job: &J,
    ) -> Result<OutboxEntry, sqlx::Error> {
        let entry = Self::outbox_entry(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        outbox::insert(conn, tenant_id, &entry).await?;
        Ok(entry)
    }

    /// The outbox row of a job, for writers that insert it themselves (in one statement with
    /// the change that needs it, as the batched widget writes do).
    pub fn outbox_entry<J: Job>(job: &J) -> Result<OutboxEntry, serde_json::Error> {
        Ok(OutboxEntry {
            id: Uuid::now_v7(),
            queue: J::QUEUE,
            kind: J::KIND,
            payload: serde_json::to_string(job)?,
        })
    }

    /// Step 2 of a durable enqueue: pushes a committed outbox row to Redis (idempotent on
    /// the outbox id, so the reconciler and the api can both push it).
    pub async fn push_outbox(&self, entry: &OutboxEntry) -> Result<bool, QueueError> {
        Ok(self.push_outbox_many(std::slice::from_ref(entry)).await? == 1)
    }

    /// Step 2 for many committed outbox rows: one pipelined round trip per
    /// [`queue::ENQUEUE_BATCH`] rows of a queue. Returns how many were new to Redis.
    pub async fn push_outbox_many(&self, entries: &[OutboxEntry]) -> Result<usize, QueueError> {
        let mut by_queue: Vec<(&'static str, Vec<queue::NewTask>)> = Vec::new();
        let now = queue::now_ms();
        for e in entries {
            let t = queue::NewTask {
                id: e.id,
                kind: e.kind,
                payload: e.payload.clone(),
                run_at_ms: now,
                idempotency_key: None,
                durable: true,
            };
            match by_queue.iter_mut().find(|(q, _)| *q == e.queue) {
                Some((_, ts)) => ts.push(t),
                None => by_queue.push((e.queue, vec![t])),
            }
        }
        let mut created = 0;
        for (q, tasks) in by_queue {
            created += self
                .queues
                .enqueue_many(q, &tasks, self.idempotency_ttl)
                .await?;
        }
        Ok(created)
    }

    /// Durable enqueue of many jobs of one kind: one INSERT of every outbox row, then the
    /// bulk push (deferred to the reconciler if Redis is unavailable). Returns the ids.
    pub async fn enqueue_durable_many<J: Job>(
        &self,
        pool: &PgPool,
        tenant_id: Option<Uuid>,
        jobs: &[J],
    ) -> anyhow::Result<Vec<Uuid>> {
        let entries = jobs
            .iter()
            .map(Self::outbox_entry)
            .collect::<Result<Vec<_>, _>>()?;
        outbox::insert_many(pool, tenant_id, &entries).await?;
        if let Err(e) = self.push_outbox_many(&entries).await {
            tracing::warn!(count = entries.len(), error = %e, "bulk enqueue deferred to the reconciler");
        }
        Ok(entries.iter().map(|e| e.id).collect())
    }

    /// Both steps for callers without a transaction of their own.
    pub async fn enqueue_durable<J: Job>(
        &self,
        pool: &PgPool,
        tenant_id: Option<Uuid>,
        job: &J,
    ) -> anyhow::Result<Uuid> {
        let mut conn = pool.acquire().await?;
        let entry = Self::record_durable(&mut conn, tenant_id, job).await?;
        drop(conn);
        // If Redis is unavailable the job is still recorded: the reconciler pushes it later.
        if let Err(e) = self.push_outbox(&entry).await {
            tracing::warn!(job_id = %entry.id, error = %e, "enqueue deferred to the reconciler");
        }
        Ok(entry.id)
    }
}

/// A committed-or-about-to-commit outbox row.
#[derive(Clone, Debug)]
pub struct OutboxEntry {
    pub id: Uuid,
    pub queue: &'static str,
    pub kind: &'static str,
    pub payload: String,
}

/// Maps a kind name back to its static name and queue (for outbox rows read from SQL).
pub fn kind_info(kind: &str) -> Option<(&'static str, &'static str)> {
    kinds::ALL_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(k, q)| (*k, *q))
}
