//! The fake's state: every object, the idempotency keys, pending faults and the request
//! log, behind one mutex shared by the server and the [`FakeStripe`](super::FakeStripe)
//! handle.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use super::{
    coupons::Coupon, customers::Customer, fault::PendingFault, idempotency::IdemEntry,
    prices::Price, requests::LoggedRequest, subscriptions::Subscription,
};

#[derive(Debug, Default)]
pub(super) struct Store {
    pub(super) customers: BTreeMap<String, Customer>,
    pub(super) prices: BTreeMap<String, Price>,
    pub(super) subscriptions: BTreeMap<String, Subscription>,
    pub(super) coupons: BTreeMap<String, Coupon>,
    pub(super) idempotency: HashMap<(String, String), IdemEntry>,
    pub(super) faults: Vec<PendingFault>,
    pub(super) log: Vec<LoggedRequest>,
    pub(super) mutations: u64,
    pub(super) hang: Option<Duration>,
    /// Sandbox mode
    /// ([`FakeStripe::enable_demo_objects`](super::FakeStripe::enable_demo_objects)):
    /// unknown `cus_demo…` and `sub_demo…` ids are created on first use.
    pub(super) demo_objects: bool,
}

pub(super) type Shared = Arc<Mutex<Store>>;

pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    // A panicking test thread must not poison the fake for the other tests' assertions.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}
