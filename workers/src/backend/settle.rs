//! The settle step, the backend's own middleware ([`SettleLayer`], outside every other
//! layer): the only place a task is settled. Success: the outbox row first, then a batched
//! ack. Failure: retry later or dead-letter, as `policy` decides. A task whose future is
//! dropped unsettled is handed back by its guard.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use apalis_core::{
    error::BoxDynError,
    layers::{Layer, Service},
    task::Task,
};
use futures::{future::BoxFuture, FutureExt};
use jobs::queue::Settled;
use uuid::Uuid;

use super::{
    policy::{classify, Failure},
    Envelope, Lease, Shared,
};

/// The backend's middleware: settles every task (see the module docs).
#[derive(Clone)]
pub struct SettleLayer {
    pub(super) shared: Arc<Shared>,
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
            if let Err(e) =
                jobs::outbox::mark_done(&st.pools.primary, lease.id, lease.attempt as i32).await
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
        let dead = matches!(settled, Ok(Settled::Dead));
        let _ = jobs::outbox::mark_failed(
            &st.pools.primary,
            lease.id,
            dead,
            lease.attempt as i32,
            &msg,
        )
        .await;
    }
    if let Err(e) = settled {
        tracing::error!(job_id = %lease.id, error = %e, "could not settle a failed job; its lease will expire");
    }
}
