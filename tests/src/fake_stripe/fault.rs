//! Injected faults: [`Fault`], the [`Gate`] a held request waits on, the queue of pending
//! faults ([`FakeStripe::fail_next`]) and the hang time of timeouts.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::http::Method;

use super::{
    store::{lock, Shared},
    FakeStripe,
};

/// A fault injected into the next matching requests (see [`FakeStripe::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 `rate_limit`, before anything else (nothing saved for the idempotency key).
    Status429 { retry_after: Option<Duration> },
    /// 500 `api_error` without applying anything; saved for the idempotency key, so a retry
    /// with the same key gets the same 500 (Stripe does this).
    Status500,
    /// Applies the change, then answers 500 (saved): the "outcome unknown" case.
    Status500AfterApplying,
    /// Applies nothing and answers only after the hang time ([`FakeStripe::set_hang`],
    /// 30 s by default), longer than any client timeout; nothing is saved for the key.
    Timeout,
    /// Applies the change and saves the answer for the key, then hangs like `Timeout`:
    /// the client times out although Stripe applied the change.
    TimeoutAfterApplying,
    /// Waits this long (holding the idempotency key in flight), then proceeds normally.
    Slow(Duration),
    /// Holds the request (its idempotency key in flight, nothing applied) until the test
    /// opens the [`Gate`], then proceeds normally: an explicit synchronisation point for
    /// "while the request is in flight, ...", where a [`Fault::Slow`] delay only usually
    /// outlasts the test's next step.
    Held(Gate),
    /// 400 `invalid_request_error` with this code and message (not saved for the key).
    Status400 { code: String, message: String },
}

/// What a [`Fault::Held`] request waits on. Opening it releases every request held on it,
/// now and later; [`Gate::held`] says how many are waiting at it, so a test can wait for
/// "the request is at Stripe and holds its key" instead of guessing with a delay.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<GateInner>);

#[derive(Debug)]
struct GateInner {
    open: tokio::sync::watch::Sender<bool>,
    held: AtomicUsize,
}

impl Default for GateInner {
    fn default() -> Self {
        Self {
            open: tokio::sync::watch::Sender::new(false),
            held: AtomicUsize::new(0),
        }
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Releases every request held on the gate, and lets later ones through at once.
    pub fn open(&self) {
        self.0.open.send_replace(true);
    }

    /// How many requests are waiting at the gate right now (each has claimed its
    /// idempotency key and applied nothing yet). A request whose client went away stops
    /// waiting and is no longer counted.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::SeqCst)
    }

    pub(super) async fn pass(&self) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let mut open = self.0.open.subscribe();
        self.0.held.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.0.held);
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = open.wait_for(|open| *open).await;
    }
}

#[derive(Debug, Clone)]
pub(super) struct PendingFault {
    pub(super) method: Option<String>,
    pub(super) path_prefix: String,
    pub(super) remaining: u32,
    pub(super) fault: Fault,
}

impl FakeStripe {
    /// Makes the next `n` requests whose path starts with `path_prefix` fail with `fault`.
    /// The prefix may start with a method: `"POST /v1/subscriptions/sub_1"`. Faults are
    /// consumed in the order they were added, one per matching request, whether or not the
    /// request then executes (a replay or a 409 consumes it too).
    pub fn fail_next(&self, path_prefix: &str, n: u32, fault: Fault) {
        let (method, path_prefix) = match path_prefix.split_once(' ') {
            Some((m, p)) => (Some(m.to_ascii_uppercase()), p.to_string()),
            None => (None, path_prefix.to_string()),
        };
        lock(&self.store).faults.push(PendingFault {
            method,
            path_prefix,
            remaining: n,
            fault,
        });
    }

    /// How long [`Fault::Timeout`] and [`Fault::TimeoutAfterApplying`] hang (default 30 s).
    pub fn set_hang(&self, hang: Duration) {
        lock(&self.store).hang = Some(hang);
    }
}

pub(super) fn take_fault(store: &Shared, method: &Method, path: &str) -> Option<Fault> {
    let mut s = lock(store);
    let i = s.faults.iter().position(|f| {
        f.remaining > 0
            && path.starts_with(&f.path_prefix)
            && f.method.as_deref().is_none_or(|m| m == method.as_str())
    })?;
    let f = &mut s.faults[i];
    f.remaining -= 1;
    let fault = f.fault.clone();
    if f.remaining == 0 {
        s.faults.remove(i);
    }
    Some(fault)
}
