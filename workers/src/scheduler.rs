//! Scheduler duty. Every worker process runs this loop; each tick is pushed with an
//! idempotency key naming its period (`rollup:{period}`), so however many processes run,
//! the queue holds one job per period (apalis-cron 1.0 would enqueue one per process).

use std::{sync::Arc, time::Duration};

use jobs::{EnqueueOpts, Reconcile, Rollup};

use crate::WorkerState;

/// The period index of `now` for a duty with the given interval.
pub fn period_of(now_ms: i64, interval: Duration) -> i64 {
    now_ms / (interval.as_millis().max(1) as i64)
}

pub async fn run(st: Arc<WorkerState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let rollup = st.config.jobs.rollup_interval;
    let reconcile = st.config.jobs.reconcile_interval;
    // Check often enough to fire within a fraction of the shortest interval.
    let check =
        (rollup.min(reconcile) / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let now = jobs::queue::now_ms();
        let p = period_of(now, rollup);
        if let Err(e) = st
            .jobs
            .enqueue(
                &Rollup { period: p },
                EnqueueOpts {
                    idempotency_key: Some(format!("rollup:{}:{p}", rollup.as_secs())),
                    ..Default::default()
                },
            )
            .await
        {
            tracing::warn!(error = %e, "could not push the rollup tick");
        }
        let p = period_of(now, reconcile);
        if let Err(e) = st
            .jobs
            .enqueue(
                &Reconcile { period: p },
                EnqueueOpts {
                    idempotency_key: Some(format!("reconcile:{}:{p}", reconcile.as_secs())),
                    ..Default::default()
                },
            )
            .await
        {
            tracing::warn!(error = %e, "could not push the reconcile tick");
        }
        tokio::select! {
            _ = tokio::time::sleep(check) => {},
            _ = shutdown.changed() => break,
        }
    }
}
