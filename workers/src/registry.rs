//! Every queue of the platform with its concurrency, timeout and retry policy, and every
//! job kind with its handler. If it runs in the background, it is listed here.

use std::time::Duration;

use jobs::queues;

use crate::{
    handlers,
    runtime::{QueueSpec, Registry, RetryPolicy},
};

pub fn register_all(retry_base_override: Option<Duration>) -> Registry {
    let base = |d: Duration| retry_base_override.unwrap_or(d);
    Registry::default()
        // Stripe API calls: ~20 attempts over ~3 days (10 s doubling, capped at 8 h: the
        // nominal schedule sums to ~75 h), so a Stripe outage or a long 429 storm is ridden
        // out. Three lease expiries (crashes) and the task is dead-lettered.
        .queue(QueueSpec {
            name: queues::STRIPE,
            concurrency: 16,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 20,
                base: base(Duration::from_secs(10)),
                factor: 2.0,
                max_delay: Duration::from_secs(8 * 3600),
                jitter: 0.2,
            },
            max_crashes: 3,
        })
        // Webhook processing re-fetches from Stripe: same horizon as Stripe's own retries.
        .queue(QueueSpec {
            name: queues::WEBHOOKS,
            concurrency: 16,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 20,
                base: base(Duration::from_secs(5)),
                factor: 2.0,
                max_delay: Duration::from_secs(8 * 3600),
                jitter: 0.2,
            },
            max_crashes: 3,
        })
        // Rollups are heavy and idempotent: one at a time per process, a few retries.
        .queue(QueueSpec {
            name: queues::ANALYTICS,
            concurrency: 1,
            timeout: Duration::from_secs(600),
            retry: RetryPolicy {
                max_attempts: 8,
                base: base(Duration::from_secs(30)),
                factor: 2.0,
                max_delay: Duration::from_secs(1800),
                jitter: 0.2,
            },
            max_crashes: 3,
        })
        .queue(QueueSpec {
            name: queues::CACHE,
            concurrency: 8,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts: 6,
                base: base(Duration::from_secs(1)),
                factor: 2.0,
                max_delay: Duration::from_secs(60),
                jitter: 0.2,
            },
            max_crashes: 3,
        })
        // Ops: reconciler and session expiry ticks, probes.
        .queue(QueueSpec {
            name: queues::OPS,
            concurrency: 64,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy {
                max_attempts: 5,
                base: base(Duration::from_secs(2)),
                factor: 2.0,
                max_delay: Duration::from_secs(300),
                jitter: 0.2,
            },
            max_crashes: 3,
        })
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

    #[test]
    fn stripe_retries_span_about_three_days() {
        let r = register_all(None);
        let s = r.spec(queues::STRIPE).unwrap();
        assert_eq!(s.retry.max_attempts, 20);
        let hours = s.retry.total_nominal().as_secs_f64() / 3600.0;
        assert!((60.0..=90.0).contains(&hours), "{hours} h");
    }
}
