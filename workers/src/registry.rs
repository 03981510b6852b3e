//! Every queue of the platform with its concurrency, timeout and retry policy, and every
//! job kind with its handler. If it runs in the background, it is listed here.

use std::time::Duration;

use jobs::queues;

use crate::{
    handlers,
    runtime::{QueueSpec, Registry, RetryPolicy},
};

/// A queue of `concurrency` slots and `timeout` per job, retried `attempts` times on the
/// platform's one schedule (exponential, doubling from `base` to at most `cap`, ±20 %
/// jitter), dead-lettered after three lease expiries (crashes).
fn spec(
    name: &'static str,
    concurrency: usize,
    timeout: Duration,
    attempts: u32,
    base: Duration,
    cap: Duration,
) -> QueueSpec {
    QueueSpec {
        name,
        concurrency,
        timeout,
        retry: RetryPolicy {
            max_attempts: attempts,
            base,
            factor: 2.0,
            max_delay: cap,
            jitter: 0.2,
        },
        max_crashes: 3,
    }
}

pub fn register_all(retry_base_override: Option<Duration>) -> Registry {
    let base = |d: Duration| retry_base_override.unwrap_or(d);
    let (secs, hours) = (Duration::from_secs, |h: u64| Duration::from_secs(h * 3600));
    Registry::default()
        // Stripe API calls: ~20 attempts over ~3 days (10 s doubling, capped at 8 h: the
        // nominal schedule sums to ~75 h), so a Stripe outage or a long 429 storm is ridden
        // out.
        .queue(spec(
            queues::STRIPE,
            16,
            secs(60),
            20,
            base(secs(10)),
            hours(8),
        ))
        // Webhook processing re-fetches from Stripe: same horizon as Stripe's own retries.
        .queue(spec(
            queues::WEBHOOKS,
            16,
            secs(60),
            20,
            base(secs(5)),
            hours(8),
        ))
        // Rollups are heavy and idempotent: one at a time per process, a few retries.
        .queue(spec(
            queues::ANALYTICS,
            1,
            secs(600),
            8,
            base(secs(30)),
            secs(1800),
        ))
        .queue(spec(queues::CACHE, 8, secs(10), 6, base(secs(1)), secs(60)))
        // Ops: reconciler and session expiry ticks, probes.
        .queue(spec(
            queues::OPS,
            64,
            secs(120),
            5,
            base(secs(2)),
            secs(300),
        ))
        .handle(handlers::probe::run)
        .handle(handlers::rollup::run)
        .handle(handlers::reconcile::run)
        .handle(handlers::retention::run)
        .handle(handlers::sessions::run)
        .handle(handlers::cache::run)
        .handle(handlers::offers::apply_offer)
        .handle(handlers::offers::cancel_subscription)
        .handle(handlers::stripe_events::run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_handler_and_every_queue_a_spec() {
        let r = register_all(None);
        let kinds: Vec<_> = r.kinds().collect();
        for (kind, queue) in jobs::ALL_KINDS {
            assert!(
                kinds.contains(&(*kind, *queue)),
                "{kind} on {queue} has no handler"
            );
        }
        for q in queues::ALL {
            assert!(r.spec(q).is_some(), "queue {q} has no spec");
        }
    }

    /// The policies as the README's job-platform table lists them.
    #[test]
    fn queue_policies_are_as_documented() {
        let r = register_all(None);
        let row = |q: &str| {
            let s = r.spec(q).unwrap();
            (
                s.concurrency,
                s.timeout.as_secs(),
                s.retry.max_attempts,
                s.retry.base.as_secs(),
                s.retry.max_delay.as_secs(),
                s.max_crashes,
            )
        };
        assert_eq!(row(queues::STRIPE), (16, 60, 20, 10, 8 * 3600, 3));
        assert_eq!(row(queues::WEBHOOKS), (16, 60, 20, 5, 8 * 3600, 3));
        assert_eq!(row(queues::ANALYTICS), (1, 600, 8, 30, 1800, 3));
        assert_eq!(row(queues::CACHE), (8, 10, 6, 1, 60, 3));
        assert_eq!(row(queues::OPS), (64, 120, 5, 2, 300, 3));
        let s = r.spec(queues::OPS).unwrap();
        assert_eq!((s.retry.factor, s.retry.jitter), (2.0, 0.2));
    }

    #[test]
    fn stripe_retries_span_about_three_days() {
        let r = register_all(None);
        let s = r.spec(queues::STRIPE).unwrap();
        assert_eq!(s.retry.max_attempts, 20);
        let hours = s.retry.total_nominal().as_secs_f64() / 3600.0;
        assert!((60.0..=90.0).contains(&hours), "{hours} h");
    }
}
