//! Scheduler duty. Every worker process runs this loop; each tick is pushed with an
//! idempotency key naming its period (`rollup:{period}`), so however many processes run,
//! the queue holds one job per period (apalis-cron 1.0 would enqueue one per process).
//!
//! A process that stalls past a period boundary (a loaded machine, a long GC-like pause of
//! the host, a Redis hiccup) pushes the periods it missed when it resumes, up to
//! `MAX_CATCH_UP` of them: the idempotency keys make that free when another process already
//! pushed them, and no period is skipped because every process happened to be slow at once.

use std::{sync::Arc, time::Duration};

use jobs::{EnqueueOpts, ExpireSessions, Job, Reconcile, RetentionSweep, Rollup};

use crate::WorkerState;

/// Most missed periods one process pushes when it resumes (older ones are left alone: the
/// rollup's watermark covers them, and a reconcile of the current period sees everything).
pub const MAX_CATCH_UP: i64 = 60;

/// The period index of `now` for a duty with the given interval.
pub fn period_of(now_ms: i64, interval: Duration) -> i64 {
    now_ms / (interval.as_millis().max(1) as i64)
}

/// The periods to push now: everything after `last` (the last period this process pushed)
/// up to `current`, at most `MAX_CATCH_UP` of them; only `current` on the first tick.
pub fn periods_to_push(last: Option<i64>, current: i64) -> std::ops::RangeInclusive<i64> {
    let from = match last {
        Some(l) => (l + 1).max(current - MAX_CATCH_UP + 1),
        None => current,
    };
    from..=current
}

/// One duty: its interval, the name in its idempotency key, and the job of a period.
struct Duty<J> {
    name: &'static str,
    interval: Duration,
    job: fn(i64) -> J,
    last: Option<i64>,
}

impl<J: Job> Duty<J> {
    /// Pushes every period due at `now_ms`; stops at the first failure so the next tick
    /// retries from there.
    async fn tick(&mut self, st: &WorkerState, now_ms: i64) {
        let current = period_of(now_ms, self.interval);
        for p in periods_to_push(self.last, current) {
            let opts = EnqueueOpts {
                idempotency_key: Some(format!("{}:{}:{p}", self.name, self.interval.as_secs())),
                ..Default::default()
            };
            if let Err(e) = st.jobs.enqueue(&(self.job)(p), opts).await {
                tracing::warn!(duty = self.name, period = p, error = %e, "could not push the tick");
                return;
            }
            self.last = Some(p);
        }
    }
}

pub async fn run(st: Arc<WorkerState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let rollup = st.config.jobs.rollup_interval;
    let reconcile = st.config.jobs.reconcile_interval;
    // Check often enough to fire within a fraction of the shortest interval.
    let check =
        (rollup.min(reconcile) / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut rollups = Duty {
        name: "rollup",
        interval: rollup,
        job: |period| Rollup { period },
        last: None,
    };
    let mut reconciles = Duty {
        name: "reconcile",
        interval: reconcile,
        job: |period| Reconcile { period },
        last: None,
    };
    let mut retention = Duty {
        name: "retention",
        interval: st.config.jobs.retention_interval,
        job: |period| RetentionSweep { period },
        last: None,
    };
    // Session expiry runs on the reconciler's period (a minute in production): an expired
    // session already refuses events, this only records it as abandoned.
    let mut expiries = Duty {
        name: "expire_sessions",
        interval: reconcile,
        job: |period| ExpireSessions { period },
        last: None,
    };
    loop {
        let now = jobs::queue::now_ms();
        rollups.tick(&st, now).await;
        reconciles.tick(&st, now).await;
        retention.tick(&st, now).await;
        expiries.tick(&st, now).await;
        tokio::select! {
            _ = tokio::time::sleep(check) => {},
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_tick_pushes_only_the_current_period() {
        assert_eq!(periods_to_push(None, 100), 100..=100);
    }

    #[test]
    fn a_tick_in_the_same_period_pushes_nothing() {
        assert!(periods_to_push(Some(100), 100).is_empty());
    }

    #[test]
    fn a_stalled_process_pushes_the_periods_it_missed() {
        assert_eq!(periods_to_push(Some(100), 104), 101..=104);
    }

    #[test]
    fn catch_up_is_bounded() {
        let r = periods_to_push(Some(0), 1_000);
        assert_eq!(r.clone().count() as i64, MAX_CATCH_UP);
        assert_eq!(*r.end(), 1_000);
    }
}
