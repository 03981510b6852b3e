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
//! the extractors `Data<Arc<WorkerState>>` and [`JobMeta`](crate::runtime::JobMeta).
//!
//! # Files
//! - `router`: the [`Router`] service and the [`JobMeta`](crate::runtime::JobMeta) extractor.
//! - `fetch`: [`HardenedBackend`], the fetch loop with its idle/error backoff, and the
//!   hand-back of tasks fetched but never started.
//! - `settle`: [`SettleLayer`] and the settle step (outbox row, ack, retry, dead-letter).
//! - `policy`: which failures are retried and which are dead-lettered.
//! - `queue_runtime`: [`QueueRuntime`], the per-queue batched ack loop and release loop.
//!
//! This file holds the types they share: the task's [`Envelope`] and [`Lease`], and
//! [`Shared`].

mod fetch;
mod policy;
mod queue_runtime;
mod router;
mod settle;

use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    runtime::{InFlight, QueueSpec},
    WorkerState,
};

pub use fetch::{BackendError, HardenedBackend};
pub use queue_runtime::QueueRuntime;
pub use router::{Route, Router};
pub use settle::{SettleLayer, SettleService};

/// What the worker sees as its `Args`: the raw record of our queue. The [`Router`] decodes
/// the payload into the handler's type, so a bad payload is a task failure (dead-letter),
/// not a backend error.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub kind: String,
    pub payload: String,
}

/// Our lease of a task, carried in the apalis task's data: read by [`SettleLayer`] and the
/// [`JobMeta`](crate::runtime::JobMeta) extractor. The source of truth for the attempt
/// (apalis counts its own).
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
