//! [`QueueRuntime`]: one queue's runtime around its apalis worker, with the batched ack
//! loop and the release (hand-back) loop that outlive the worker future.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use super::{HardenedBackend, Shared};
use crate::{
    runtime::{InFlight, QueueSpec},
    WorkerState,
};

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
