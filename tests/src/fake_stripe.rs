//! A stateful fake of the slice of Stripe's API that RetentionOS uses, served on
//! `127.0.0.1:0`, plus helpers to build and deliver signed webhook events.
//!
//! Why a fake: no official Stripe mock installs offline, and `localstripe` rejects the
//! parameters our offers send (`discounts`, `pause_collection`, `proration_behavior`).
//!
//! What it models, as Stripe documents it (API version 2025-03-31):
//! - customers, prices, subscriptions (one item; `current_period_*` on the item), coupons;
//! - `POST /v1/subscriptions/{id}` with the offer parameters (`discounts[0][coupon]`,
//!   `pause_collection[..]` or an empty `pause_collection` to resume, `items[0][id|price]` +
//!   `proration_behavior`, `trial_end`, `cancel_at_period_end`, `metadata[..]`),
//!   `DELETE /v1/subscriptions/{id}`, `GET` of each object, `POST /v1/coupons`,
//!   `GET /v1/account` (one fixed account);
//! - form-encoded bodies only; **unknown parameters are rejected with 400
//!   `parameter_unknown`**, like Stripe, so a typo in our code fails a test;
//! - Stripe's error envelope `{"error": {"type", "code", "message", "param"}}`, `Request-Id`;
//! - idempotency keys per API key: same key and parameters replay the saved answer with
//!   `Idempotent-Replayed: true`; a concurrent duplicate gets 409 (`idempotency_key_in_use`,
//!   `Stripe-Should-Retry: true`); the same key with other parameters gets 400
//!   `idempotency_error`. As at Stripe, successes and 500s are saved, validation errors (4xx)
//!   and rate-limited requests are not; GET ignores the header;
//! - injected faults ([`Fault`]) and a request log ([`FakeStripe::requests`]).
//!
//! What it does not model: invoices, proration amounts, billing-cycle advancement, objects
//! scoped per account (any well-formed key sees every object), HTTP Basic auth (Bearer only).

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, OnceLock,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use chrono::{Months, Utc};
use rand::{distr::Alphanumeric, Rng};
use serde_json::{json, Map, Value};

/// The id `GET /v1/account` answers with, whatever the key.
pub const ACCOUNT_ID: &str = "acct_1FakeRetentionOS";

/// The price of the subscriptions sandbox mode creates ([`FakeStripe::enable_demo_objects`]).
pub const DEMO_PRICE: &str = "price_demo_pro_monthly";

/// The API version the fake speaks (and stamps on events).
pub const API_VERSION: &str = shared::stripe::client::API_VERSION;

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

    async fn pass(&self) {
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

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// Query-string parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Form-body parameters, decoded, in order.
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// The API key from `Authorization: Bearer ...`.
    pub api_key: Option<String>,
    pub stripe_version: Option<String>,
    pub request_id: String,
    /// The status answered; `None` while in flight (or if the client went away first).
    pub status: Option<u16>,
    /// Whether the answer was an idempotent replay.
    pub replayed: bool,
}

/// Ids of a subscription made with [`FakeStripe::create_subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionIds {
    pub id: String,
    /// Its single item (`si_...`), for `items[0][id]`.
    pub item_id: String,
}

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    email: Option<String>,
    created: i64,
}

#[derive(Debug, Clone)]
struct Price {
    id: String,
    unit_amount: i64,
    currency: String,
    interval: String,
    created: i64,
}

#[derive(Debug, Clone)]
struct Discount {
    id: String,
    coupon: String,
    start: i64,
}

#[derive(Debug, Clone)]
struct Subscription {
    id: String,
    customer: String,
    status: String,
    item_id: String,
    price: String,
    current_period_start: i64,
    current_period_end: i64,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    /// (behavior, resumes_at)
    pause_collection: Option<(String, Option<i64>)>,
    discounts: Vec<Discount>,
    trial_start: Option<i64>,
    trial_end: Option<i64>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    cancellation_reason: Option<String>,
    metadata: BTreeMap<String, String>,
    created: i64,
}

#[derive(Debug, Clone)]
struct Coupon {
    id: String,
    percent_off: Option<f64>,
    amount_off: Option<i64>,
    currency: Option<String>,
    duration: String,
    duration_in_months: Option<i64>,
    name: Option<String>,
    max_redemptions: Option<i64>,
    redeem_by: Option<i64>,
    times_redeemed: i64,
    metadata: BTreeMap<String, String>,
    created: i64,
}

/// An answer saved for an idempotency key.
#[derive(Debug, Clone)]
struct Saved {
    status: u16,
    body: Value,
    request_id: String,
}

#[derive(Debug, Clone)]
enum IdemState {
    InFlight,
    Done(Saved),
}

#[derive(Debug, Clone)]
struct IdemEntry {
    fingerprint: (String, String, Vec<(String, String)>),
    state: IdemState,
}

#[derive(Debug, Clone)]
struct PendingFault {
    method: Option<String>,
    path_prefix: String,
    remaining: u32,
    fault: Fault,
}

#[derive(Debug, Default)]
struct Store {
    customers: BTreeMap<String, Customer>,
    prices: BTreeMap<String, Price>,
    subscriptions: BTreeMap<String, Subscription>,
    coupons: BTreeMap<String, Coupon>,
    idempotency: HashMap<(String, String), IdemEntry>,
    faults: Vec<PendingFault>,
    log: Vec<LoggedRequest>,
    mutations: u64,
    hang: Option<Duration>,
    /// Sandbox mode ([`FakeStripe::enable_demo_objects`]): unknown `cus_demo…` and
    /// `sub_demo…` ids are created on first use.
    demo_objects: bool,
}

type Shared = Arc<Mutex<Store>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    // A panicking test thread must not poison the fake for the other tests' assertions.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running fake. Dropping it stops the server.
pub struct FakeStripe {
    addr: SocketAddr,
    store: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeStripe {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> Self {
        let store: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Stripe");
        let addr = listener.local_addr().expect("fake Stripe address");
        let app = Router::new().fallback(handle).with_state(store.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Stripe serves");
        });
        Self {
            addr,
            store,
            server,
        }
    }

    /// Like [`FakeStripe::start`] on a chosen address (the development sandbox,
    /// `rtos-stripe-sandbox`): an error instead of a panic when the address is taken.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let store: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(store.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake Stripe stopped serving: {e}");
            }
        });
        Ok(Self {
            addr,
            store,
            server,
        })
    }

    /// Sandbox mode, off unless called (no test relies on it): the first request naming an
    /// unknown `sub_demo…` subscription (or `cus_demo…` customer) creates it, so every demo
    /// visitor has a subscription without any setup, even after the sandbox restarted.
    /// `sub_demo<suffix>` belongs to `cus_demo<suffix>`, on [`DEMO_PRICE`] ($49.00 a month,
    /// as the demo page shows), active, its current period starting when it is created.
    pub fn enable_demo_objects(&self) {
        let mut s = lock(&self.store);
        s.demo_objects = true;
        if !s.prices.contains_key(DEMO_PRICE) {
            let created = now();
            s.prices.insert(
                DEMO_PRICE.to_string(),
                Price {
                    id: DEMO_PRICE.to_string(),
                    unit_amount: 4900,
                    currency: "usd".into(),
                    interval: "month".into(),
                    created,
                },
            );
        }
    }

    /// Requests received after the first `n` (in arrival order), for a log that follows
    /// the fake without copying everything each time.
    pub fn requests_since(&self, n: usize) -> Vec<LoggedRequest> {
        lock(&self.store).log.iter().skip(n).cloned().collect()
    }

    /// `http://127.0.0.1:PORT`, for `StripeClient::new`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

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

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.store).log.clone()
    }

    /// Requests whose `"METHOD path"` starts with `prefix` (e.g. `"POST /v1/subscriptions"`).
    pub fn requests_to(&self, prefix: &str) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| format!("{} {}", r.method, r.path).starts_with(prefix))
            .collect()
    }

    /// How many idempotency keys a request is executing under right now (claimed and not
    /// yet answered, nor released because the request failed or its client went away).
    /// Tests wait for 0 before retrying with the same key when the first attempt was cut
    /// short on the client's side.
    pub fn keys_in_flight(&self) -> usize {
        lock(&self.store)
            .idempotency
            .values()
            .filter(|e| matches!(e.state, IdemState::InFlight))
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.store).log.clear();
    }

    /// How many changes were applied (successful POST/DELETE executions; replays and
    /// rejected requests do not count).
    pub fn mutations(&self) -> u64 {
        lock(&self.store).mutations
    }

    /// A customer (`cus_...`).
    pub fn create_customer(&self, email: &str) -> String {
        let id = new_id("cus");
        lock(&self.store).customers.insert(
            id.clone(),
            Customer {
                id: id.clone(),
                email: Some(email.to_string()),
                created: now(),
            },
        );
        id
    }

    /// A recurring price (`interval`: day, week, month or year); replaces one with that id.
    pub fn create_price(&self, id: &str, unit_amount: i64, currency: &str, interval: &str) {
        assert!(
            matches!(interval, "day" | "week" | "month" | "year"),
            "interval {interval}"
        );
        lock(&self.store).prices.insert(
            id.to_string(),
            Price {
                id: id.to_string(),
                unit_amount,
                currency: currency.to_string(),
                interval: interval.to_string(),
                created: now(),
            },
        );
    }

    /// A subscription of `customer` to `price` (created in USD if it does not exist yet),
    /// in `status` (`active`, `trialing` with a 14-day trial, `past_due`, ...), whose current
    /// period starts now.
    pub fn create_subscription(
        &self,
        customer: &str,
        price: &str,
        amount: i64,
        interval: &str,
        status: &str,
    ) -> SubscriptionIds {
        if !lock(&self.store).prices.contains_key(price) {
            self.create_price(price, amount, "usd", interval);
        }
        let mut store = lock(&self.store);
        assert!(
            store.customers.contains_key(customer),
            "unknown customer {customer}"
        );
        let start = now();
        let ids = SubscriptionIds {
            id: new_id("sub"),
            item_id: new_id("si"),
        };
        let trial = status == "trialing";
        store.subscriptions.insert(
            ids.id.clone(),
            Subscription {
                id: ids.id.clone(),
                customer: customer.to_string(),
                status: status.to_string(),
                item_id: ids.item_id.clone(),
                price: price.to_string(),
                current_period_start: start,
                current_period_end: period_end(start, interval),
                cancel_at_period_end: false,
                cancel_at: None,
                pause_collection: None,
                discounts: Vec::new(),
                trial_start: trial.then_some(start),
                trial_end: trial.then_some(start + 14 * 86_400),
                canceled_at: None,
                ended_at: None,
                cancellation_reason: None,
                metadata: BTreeMap::new(),
                created: start,
            },
        );
        ids
    }

    /// A coupon, as `POST /v1/coupons` would make it (for test setup).
    pub fn create_coupon_percent(&self, id: &str, percent_off: f64, duration: &str) {
        let mut store = lock(&self.store);
        store.coupons.insert(
            id.to_string(),
            Coupon {
                id: id.to_string(),
                percent_off: Some(percent_off),
                amount_off: None,
                currency: None,
                duration: duration.to_string(),
                duration_in_months: (duration == "repeating").then_some(3),
                name: None,
                max_redemptions: None,
                redeem_by: None,
                times_redeemed: 0,
                metadata: BTreeMap::new(),
                created: now(),
            },
        );
    }

    /// The subscription as `GET /v1/subscriptions/{id}` answers without `expand`
    /// (`discounts` are `di_...` ids), which is also how event payloads carry it.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        let store = lock(&self.store);
        store
            .subscriptions
            .get(id)
            .map(|s| render_subscription(&store, s, false))
    }

    /// The subscription with `discounts` expanded (discount objects with their coupon).
    pub fn subscription_expanded(&self, id: &str) -> Option<Value> {
        let store = lock(&self.store);
        store
            .subscriptions
            .get(id)
            .map(|s| render_subscription(&store, s, true))
    }

    pub fn customer(&self, id: &str) -> Option<Value> {
        lock(&self.store).customers.get(id).map(render_customer)
    }

    pub fn coupon(&self, id: &str) -> Option<Value> {
        lock(&self.store).coupons.get(id).map(render_coupon)
    }

    /// Changes a subscription's status as Stripe would on its own (a failed renewal makes
    /// it `past_due`, ...). Not an API request: not logged, not counted as a mutation.
    pub fn set_subscription_status(&self, id: &str, status: &str) {
        let mut store = lock(&self.store);
        let sub = store.subscriptions.get_mut(id).expect("known subscription");
        sub.status = status.to_string();
    }

    /// Cancels a subscription the way Stripe does after failed payments (involuntary churn:
    /// `cancellation_details.reason = payment_failed`; its event has `request: null`).
    pub fn cancel_subscription_automatically(&self, id: &str) {
        let mut store = lock(&self.store);
        let sub = store.subscriptions.get_mut(id).expect("known subscription");
        let t = now();
        sub.status = "canceled".into();
        sub.canceled_at = Some(t);
        sub.ended_at = Some(t);
        sub.cancellation_reason = Some("payment_failed".into());
    }

    /// A `customer.subscription.*` event carrying the subscription's current state, with
    /// `request: null` (a change Stripe made on its own). For a change made through the API,
    /// use [`api_event`] with the `request_id` from [`FakeStripe::requests`].
    pub fn subscription_event(&self, kind: &str, id: &str) -> Value {
        event(kind, self.subscription(id).expect("known subscription"))
    }
}

// ---------------------------------------------------------------------------------------
// Events and deliveries

/// A Stripe event of type `kind` about `object`, with a fresh `evt_...` id, `created` now,
/// `livemode` copied from the object (false if absent) and `request: null` (automatic).
pub fn event(kind: &str, object: Value) -> Value {
    build_event(kind, object, Value::Null)
}

/// An event caused by an API request (`request: {id, idempotency_key}`), e.g. a
/// `customer.subscription.deleted` after our own `DELETE`.
pub fn api_event(
    kind: &str,
    object: Value,
    request_id: &str,
    idempotency_key: Option<&str>,
) -> Value {
    build_event(
        kind,
        object,
        json!({"id": request_id, "idempotency_key": idempotency_key}),
    )
}

/// Adds `data.previous_attributes` (what `*.updated` events carry).
pub fn with_previous_attributes(mut event: Value, previous: Value) -> Value {
    event["data"]["previous_attributes"] = previous;
    event
}

fn build_event(kind: &str, object: Value, request: Value) -> Value {
    let livemode = object
        .get("livemode")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    json!({
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now(),
        "data": {"object": object},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": request,
        "type": kind,
    })
}

/// One delivery client for the whole test binary. It keeps no idle connections: a pooled
/// connection belongs to the runtime of the test that opened it, and every `#[tokio::test]`
/// has its own runtime, so a connection reused by a later test (a port the OS handed out
/// again) would fail with "runtime dropped the dispatch task" or hang until the timeout.
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("delivery client")
    })
}

/// The bytes Stripe would POST for `event`: pretty-printed JSON, as Stripe sends it (so a
/// receiver that verifies a re-serialised body instead of the raw bytes fails).
pub fn event_body(event: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(event).expect("event serialises")
}

/// POSTs `event` to `url` signed with `secret` at the current time, as Stripe does.
pub async fn deliver(url: &str, event: &Value, secret: &str) -> reqwest::Response {
    deliver_at(url, event, secret, now()).await
}

/// Like [`deliver`] with a chosen signature timestamp (a stale or future `t`).
pub async fn deliver_at(url: &str, event: &Value, secret: &str, t: i64) -> reqwest::Response {
    let body = event_body(event);
    let header = shared::stripe::webhook::sign(&body, secret, t);
    deliver_raw(url, body, Some(&header)).await
}

/// Delivers the same event `n` times one after the other (Stripe's at-least-once retries).
pub async fn deliver_times(
    url: &str,
    event: &Value,
    secret: &str,
    n: usize,
) -> Vec<reqwest::Response> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(deliver(url, event, secret).await);
    }
    out
}

/// Delivers the same event `n` times at once (duplicates racing each other).
pub async fn deliver_concurrently(
    url: &str,
    event: &Value,
    secret: &str,
    n: usize,
) -> Vec<reqwest::Response> {
    futures::future::join_all((0..n).map(|_| deliver(url, event, secret))).await
}

/// POSTs raw bytes with an arbitrary `Stripe-Signature` (or none).
pub async fn deliver_raw(url: &str, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .body(body);
    if let Some(sig) = signature {
        req = req.header("stripe-signature", sig);
    }
    req.send()
        .await
        .expect("webhook delivery reaches the receiver")
}

// ---------------------------------------------------------------------------------------
// The server

/// A Stripe-shaped error answer.
#[derive(Debug, Clone)]
struct ApiError {
    status: u16,
    kind: &'static str,
    code: Option<String>,
    message: String,
    param: Option<String>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    fn unknown_param(name: &str) -> Self {
        Self::invalid(format!("Received unknown parameter: {name}"), Some(name))
            .with_code("parameter_unknown")
    }

    fn missing(kind: &str, id: &str) -> Self {
        Self {
            status: 404,
            ..Self::invalid(format!("No such {kind}: '{id}'"), Some("id"))
        }
        .with_code("resource_missing")
    }

    fn body(&self) -> Value {
        json!({"error": {
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }})
    }
}

type ApiResult = Result<Value, ApiError>;

struct Request {
    method: Method,
    path: String,
    /// Query and form parameters together (Stripe reads both).
    params: Vec<(String, String)>,
}

/// Removes the idempotency key's in-flight marker if the request ends without saving an
/// answer (it failed validation, it hung, or the client went away and hyper dropped us).
struct InFlight {
    store: Shared,
    key: Option<(String, String)>,
}

impl InFlight {
    fn finish(mut self, saved: Option<Saved>) {
        if let Some(key) = self.key.take() {
            let mut store = lock(&self.store);
            match saved {
                Some(saved) => {
                    if let Some(entry) = store.idempotency.get_mut(&key) {
                        entry.state = IdemState::Done(saved);
                    }
                }
                None => {
                    store.idempotency.remove(&key);
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.store).idempotency.remove(&key);
        }
    }
}

async fn handle(
    State(store): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_id("req");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = uri.path().to_string();
    let query = decode_form(uri.query().unwrap_or("").as_bytes());
    let form = decode_form(&body);
    let idempotency_key = header("idempotency-key");
    let api_key = header("authorization")
        .and_then(|a| a.strip_prefix("Bearer ").map(|k| k.trim().to_string()));
    let log_index = {
        let mut s = lock(&store);
        s.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone().unwrap_or_default(),
            form: form.clone().unwrap_or_default(),
            idempotency_key: idempotency_key.clone(),
            api_key: api_key.clone(),
            stripe_version: header("stripe-version"),
            request_id: request_id.clone(),
            status: None,
            replayed: false,
        });
        s.log.len() - 1
    };
    let finish = |status: u16, replayed: bool| {
        let mut s = lock(&store);
        if let Some(entry) = s.log.get_mut(log_index) {
            entry.status = Some(status);
            entry.replayed = replayed;
        }
    };
    let respond = |status: u16, body: Value, extra: &[(&'static str, String)]| {
        finish(
            status,
            extra.iter().any(|(k, _)| *k == "idempotent-replayed"),
        );
        reply(status, body, &request_id, extra)
    };

    // Authentication, content type and encoding come first, as at Stripe.
    let Some(api_key) = api_key.filter(|k| valid_api_key(k)) else {
        let e = ApiError {
            status: 401,
            ..ApiError::invalid(
                "You did not provide a valid API key. Provide it as a Bearer token.",
                None,
            )
        };
        return respond(401, e.body(), &[]);
    };
    if !body.is_empty()
        && !header("content-type")
            .unwrap_or_default()
            .starts_with("application/x-www-form-urlencoded")
    {
        let e = ApiError::invalid(
            "Invalid request: Stripe takes application/x-www-form-urlencoded bodies.",
            None,
        );
        return respond(400, e.body(), &[]);
    }
    let (Some(query), Some(form)) = (query, form) else {
        let e = ApiError::invalid("Invalid form encoding.", None);
        return respond(400, e.body(), &[]);
    };
    let mut params = query;
    params.extend(form);
    let req = Request {
        method: method.clone(),
        path: path.clone(),
        params,
    };

    let fault = take_fault(&store, &method, &path);
    if let Some(Fault::Status429 { retry_after }) = &fault {
        let e = ApiError {
            status: 429,
            kind: "invalid_request_error",
            code: Some("rate_limit".into()),
            message: "Too many requests hit the API too quickly.".into(),
            param: None,
        };
        let mut extra = vec![("stripe-should-retry", "true".to_string())];
        if let Some(d) = retry_after {
            extra.push(("retry-after", format_secs(*d)));
        }
        return respond(429, e.body(), &extra);
    }
    let hang = lock(&store).hang.unwrap_or(Duration::from_secs(30));

    let mutating = method == Method::POST || method == Method::DELETE;
    let mut in_flight = match (mutating, &idempotency_key) {
        (true, Some(key)) => match claim_key(&store, &req, &api_key, key) {
            Claim::Claimed(guard) => Some(guard),
            Claim::Answer(status, body, extra) => return respond(status, body, &extra),
        },
        _ => None,
    };

    let server_error = || {
        ApiError {
            status: 500,
            kind: "api_error",
            code: None,
            message: "An unknown error occurred on Stripe's end (injected by the fake).".into(),
            param: None,
        }
        .body()
    };
    let outcome = |result: ApiResult| match result {
        Ok(body) => (200, body),
        Err(e) => (e.status, e.body()),
    };
    let (status, body) = match fault {
        Some(Fault::Status500) => (500, server_error()),
        Some(Fault::Status400 { code, message }) => (
            400,
            ApiError::invalid(message, None).with_code(&code).body(),
        ),
        Some(Fault::Timeout) => {
            tokio::time::sleep(hang).await;
            // Never executed: release the key unsaved.
            drop(in_flight.take());
            (500, server_error())
        }
        Some(Fault::Status500AfterApplying) => match execute(&store, &req) {
            Ok(_) => (500, server_error()),
            Err(e) => (e.status, e.body()),
        },
        Some(Fault::TimeoutAfterApplying) => {
            let (status, body) = outcome(execute(&store, &req));
            settle(in_flight.take(), status, &body, &request_id);
            tokio::time::sleep(hang).await;
            (status, body)
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            outcome(execute(&store, &req))
        }
        Some(Fault::Held(gate)) => {
            gate.pass().await;
            outcome(execute(&store, &req))
        }
        Some(Fault::Status429 { .. }) | None => outcome(execute(&store, &req)),
    };
    settle(in_flight, status, &body, &request_id);
    respond(status, body, &[])
}

/// What [`claim_key`] decided for a POST/DELETE with an idempotency key.
enum Claim {
    /// The key is ours while the request runs.
    Claimed(InFlight),
    /// Answer now: a replay, a 409 (in flight), or a 400 (too long, other parameters).
    Answer(u16, Value, Vec<(&'static str, String)>),
}

fn claim_key(store: &Shared, req: &Request, api_key: &str, key: &str) -> Claim {
    if key.len() > 255 {
        let e = ApiError::invalid(
            "Idempotency-Key is too long: keys are at most 255 characters.",
            None,
        )
        .with_code("idempotency_key_too_long");
        return Claim::Answer(400, e.body(), Vec::new());
    }
    // Stripe compares the parsed parameters, not their order.
    let mut sorted = req.params.clone();
    sorted.sort();
    let fingerprint = (req.method.to_string(), req.path.clone(), sorted);
    let map_key = (api_key.to_string(), key.to_string());
    let mut s = lock(store);
    match s.idempotency.get(&map_key) {
        Some(entry) if entry.fingerprint != fingerprint => {
            let e = ApiError {
                kind: "idempotency_error",
                ..ApiError::invalid(
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                    None,
                )
            };
            Claim::Answer(400, e.body(), Vec::new())
        }
        Some(IdemEntry {
            state: IdemState::InFlight,
            ..
        }) => {
            let e = ApiError {
                status: 409,
                kind: "idempotency_error",
                ..ApiError::invalid(
                    "There is currently another in-progress request using this \
                     Idempotency-Key. Please try again later.",
                    None,
                )
            }
            .with_code("idempotency_key_in_use");
            Claim::Answer(409, e.body(), vec![("stripe-should-retry", "true".into())])
        }
        Some(IdemEntry {
            state: IdemState::Done(saved),
            ..
        }) => Claim::Answer(
            saved.status,
            saved.body.clone(),
            vec![
                ("idempotent-replayed", "true".into()),
                ("original-request", saved.request_id.clone()),
            ],
        ),
        None => {
            s.idempotency.insert(
                map_key.clone(),
                IdemEntry {
                    fingerprint,
                    state: IdemState::InFlight,
                },
            );
            Claim::Claimed(InFlight {
                store: store.clone(),
                key: Some(map_key),
            })
        }
    }
}

/// Ends a claimed key: Stripe saves successes and 5xx answers for replay, and nothing for
/// 4xx (validation failed, so the request never executed).
fn settle(in_flight: Option<InFlight>, status: u16, body: &Value, request_id: &str) {
    let Some(guard) = in_flight else { return };
    let saved = (!(400..500).contains(&status)).then(|| Saved {
        status,
        body: body.clone(),
        request_id: request_id.to_string(),
    });
    guard.finish(saved);
}

fn reply(status: u16, body: Value, request_id: &str, extra: &[(&'static str, String)]) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        "request-id",
        HeaderValue::from_str(request_id).expect("ascii id"),
    );
    h.insert("stripe-version", HeaderValue::from_static(API_VERSION));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    resp
}

fn take_fault(store: &Shared, method: &Method, path: &str) -> Option<Fault> {
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

/// Routes and runs one request against the store (all-or-nothing: every parameter is
/// validated before anything changes).
fn execute(store: &Shared, req: &Request) -> ApiResult {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let mut s = lock(store);
    if s.demo_objects {
        create_demo_objects(&mut s, &segments);
    }
    let result = match (&req.method, segments.as_slice()) {
        (&Method::GET, ["v1", "account"]) => get_account(req),
        (&Method::GET, ["v1", "customers", id]) => get_customer(&s, req, id),
        (&Method::GET, ["v1", "subscriptions", id]) => get_subscription(&s, req, id),
        (&Method::POST, ["v1", "subscriptions", id]) => update_subscription(&mut s, req, id),
        (&Method::DELETE, ["v1", "subscriptions", id]) => cancel_subscription(&mut s, req, id),
        (&Method::POST, ["v1", "coupons"]) => create_coupon(&mut s, req),
        (&Method::GET, ["v1", "coupons", id]) => get_coupon(&s, req, id),
        _ => Err(ApiError {
            status: 404,
            ..ApiError::invalid(
                format!(
                    "Unrecognized request URL ({}: {}). (The fake Stripe serves only the \
                     endpoints RetentionOS uses.)",
                    req.method, req.path
                ),
                None,
            )
        }),
    };
    if result.is_ok() && (req.method == Method::POST || req.method == Method::DELETE) {
        s.mutations += 1;
    }
    result
}

/// Sandbox mode: creates the `cus_demo…` customer or `sub_demo…` subscription (and its
/// customer) a request names, if unknown. Any other id is left to answer 404 as usual.
fn create_demo_objects(s: &mut Store, segments: &[&str]) {
    let id = match segments {
        ["v1", "customers" | "subscriptions", id] => decode_segment(id),
        _ => return,
    };
    let Some(suffix) = id
        .strip_prefix("sub_demo")
        .or_else(|| id.strip_prefix("cus_demo"))
    else {
        return;
    };
    let customer = format!("cus_demo{suffix}");
    let t = now();
    s.customers
        .entry(customer.clone())
        .or_insert_with(|| Customer {
            id: customer.clone(),
            email: Some(format!("{customer}@demo.retentionos.test")),
            created: t,
        });
    let subscription = format!("sub_demo{suffix}");
    if s.subscriptions.contains_key(&subscription) {
        return;
    }
    s.subscriptions.insert(
        subscription.clone(),
        Subscription {
            id: subscription,
            customer,
            status: "active".into(),
            item_id: new_id("si"),
            price: DEMO_PRICE.into(),
            current_period_start: t,
            current_period_end: period_end(t, "month"),
            cancel_at_period_end: false,
            cancel_at: None,
            pause_collection: None,
            discounts: Vec::new(),
            trial_start: None,
            trial_end: None,
            canceled_at: None,
            ended_at: None,
            cancellation_reason: None,
            metadata: BTreeMap::new(),
            created: t,
        },
    );
}

/// Only `expand[]` is accepted on GETs; returns whether `discounts` is expanded.
fn check_get_params(req: &Request) -> Result<bool, ApiError> {
    let mut expand_discounts = false;
    for (k, v) in &req.params {
        match k.as_str() {
            "expand[]" => expand_discounts |= v == "discounts",
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    Ok(expand_discounts)
}

/// `GET /v1/account`: one fixed account for every key (objects are not scoped per account).
fn get_account(req: &Request) -> ApiResult {
    check_get_params(req)?;
    Ok(json!({
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {"name": "Fake Stripe account"},
        "settings": {"dashboard": {"display_name": "Fake Stripe account"}},
        "charges_enabled": true,
        "country": "US",
        "default_currency": "usd",
    }))
}

fn get_customer(s: &Store, req: &Request, id: &str) -> ApiResult {
    check_get_params(req)?;
    let c = s
        .customers
        .get(&decode_segment(id))
        .ok_or_else(|| ApiError::missing("customer", id))?;
    Ok(render_customer(c))
}

fn get_subscription(s: &Store, req: &Request, id: &str) -> ApiResult {
    let expand = check_get_params(req)?;
    let id = decode_segment(id);
    let sub = s
        .subscriptions
        .get(&id)
        .ok_or_else(|| ApiError::missing("subscription", &id))?;
    Ok(render_subscription(s, sub, expand))
}

fn get_coupon(s: &Store, req: &Request, id: &str) -> ApiResult {
    check_get_params(req)?;
    let id = decode_segment(id);
    let c = s
        .coupons
        .get(&id)
        .ok_or_else(|| ApiError::missing("coupon", &id))?;
    Ok(render_coupon(c))
}

/// What a `POST /v1/subscriptions/{id}` asks for, validated.
#[derive(Default)]
struct SubscriptionUpdate {
    /// `Some(list)` replaces the discounts (an empty `discounts` clears them).
    discounts: Option<BTreeMap<usize, String>>,
    /// `Some(None)`: resume; `Some(Some(..))`: pause.
    pause: Option<Option<(Option<String>, Option<i64>)>>,
    item_id: Option<String>,
    item_price: Option<String>,
    trial_end: Option<TrialEnd>,
    cancel_at_period_end: Option<bool>,
    metadata: Vec<(String, Option<String>)>,
    clear_metadata: bool,
    expand_discounts: bool,
}

enum TrialEnd {
    Now,
    At(i64),
}

fn parse_update(req: &Request) -> Result<SubscriptionUpdate, ApiError> {
    let mut u = SubscriptionUpdate::default();
    for (k, v) in &req.params {
        let (base, idx) = split_brackets(k);
        match (base, idx.as_slice(), v.as_str()) {
            ("discounts", [], "") => u.discounts = Some(BTreeMap::new()),
            ("discounts", [i, "coupon"], coupon) => {
                let i: usize = i.parse().map_err(|_| ApiError::unknown_param(k))?;
                if coupon.is_empty() {
                    return Err(ApiError::invalid(
                        format!("Invalid empty string for {k}"),
                        Some(k),
                    )
                    .with_code("parameter_invalid_empty"));
                }
                u.discounts
                    .get_or_insert_with(BTreeMap::new)
                    .insert(i, coupon.to_string());
            }
            ("pause_collection", [], "") => u.pause = Some(None),
            ("pause_collection", ["behavior"], b) => {
                if !matches!(b, "void" | "keep_as_draft" | "mark_uncollectible") {
                    return Err(ApiError::invalid(
                        format!(
                            "Invalid {k}: must be one of keep_as_draft, mark_uncollectible, or void"
                        ),
                        Some(k),
                    ));
                }
                pause_mut(&mut u).0 = Some(b.to_string());
            }
            ("pause_collection", ["resumes_at"], t) => {
                let t = parse_int(k, t)?;
                if t <= now() {
                    return Err(ApiError::invalid(
                        format!("Invalid {k}: must be in the future"),
                        Some(k),
                    ));
                }
                pause_mut(&mut u).1 = Some(t);
            }
            ("items", ["0", "id"], id) => u.item_id = Some(id.to_string()),
            ("items", ["0", "price"], price) => u.item_price = Some(price.to_string()),
            ("proration_behavior", [], b) => {
                if !matches!(b, "create_prorations" | "always_invoice" | "none") {
                    return Err(ApiError::invalid(
                        "Invalid proration_behavior: must be one of always_invoice, \
                         create_prorations, or none",
                        Some(k),
                    ));
                }
            }
            ("trial_end", [], "now") => u.trial_end = Some(TrialEnd::Now),
            ("trial_end", [], t) => {
                let t = parse_int(k, t)?;
                if t <= now() {
                    return Err(ApiError::invalid(
                        "Invalid timestamp: must be an integer Unix timestamp in the future.",
                        Some(k),
                    )
                    .with_code("invalid_timestamp"));
                }
                u.trial_end = Some(TrialEnd::At(t));
            }
            ("cancel_at_period_end", [], b) => u.cancel_at_period_end = Some(parse_bool(k, b)?),
            ("metadata", [], "") => u.clear_metadata = true,
            ("metadata", [key], value) => u.metadata.push((
                key.to_string(),
                (!value.is_empty()).then(|| value.to_string()),
            )),
            ("expand", [""], what) => u.expand_discounts |= what == "discounts",
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    if let Some(Some((None, _))) = &u.pause {
        return Err(ApiError::invalid(
            "Missing required param: pause_collection[behavior].",
            Some("pause_collection[behavior]"),
        )
        .with_code("parameter_missing"));
    }
    if u.item_price.is_some() && u.item_id.is_none() {
        return Err(ApiError::invalid(
            "The fake Stripe only changes the price of an existing item: send items[0][id] \
             with items[0][price].",
            Some("items[0][id]"),
        ));
    }
    Ok(u)
}

fn pause_mut(u: &mut SubscriptionUpdate) -> &mut (Option<String>, Option<i64>) {
    if !matches!(u.pause, Some(Some(_))) {
        u.pause = Some(Some((None, None)));
    }
    match &mut u.pause {
        Some(Some(p)) => p,
        _ => unreachable!("set above"),
    }
}

fn update_subscription(s: &mut Store, req: &Request, id: &str) -> ApiResult {
    let id = decode_segment(id);
    let u = parse_update(req)?;
    let sub = s
        .subscriptions
        .get(&id)
        .ok_or_else(|| ApiError::missing("subscription", &id))?
        .clone();
    let only_metadata = u.discounts.is_none()
        && u.pause.is_none()
        && u.item_id.is_none()
        && u.trial_end.is_none()
        && u.cancel_at_period_end.is_none();
    if sub.status == "canceled" && !only_metadata {
        return Err(ApiError::invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
            None,
        ));
    }
    if let Some(discounts) = &u.discounts {
        for (i, coupon) in discounts {
            if !s.coupons.contains_key(coupon) {
                let param = format!("discounts[{i}][coupon]");
                return Err(
                    ApiError::invalid(format!("No such coupon: '{coupon}'"), Some(&param))
                        .with_code("resource_missing"),
                );
            }
        }
    }
    if let Some(item) = &u.item_id {
        if *item != sub.item_id {
            return Err(ApiError::invalid(
                format!("Invalid subscription_item id: {item}"),
                Some("items[0][id]"),
            )
            .with_code("resource_missing"));
        }
    }
    if let Some(price) = &u.item_price {
        if !s.prices.contains_key(price) {
            return Err(ApiError::invalid(
                format!("No such price: '{price}'"),
                Some("items[0][price]"),
            )
            .with_code("resource_missing"));
        }
    }

    // Everything is valid: apply.
    let t = now();
    let mut sub = sub;
    if let Some(discounts) = u.discounts {
        let mut next = Vec::new();
        for coupon in discounts.into_values() {
            match sub.discounts.iter().find(|d| d.coupon == coupon) {
                Some(existing) => next.push(existing.clone()),
                None => {
                    if let Some(c) = s.coupons.get_mut(&coupon) {
                        c.times_redeemed += 1;
                    }
                    next.push(Discount {
                        id: new_id("di"),
                        coupon,
                        start: t,
                    });
                }
            }
        }
        sub.discounts = next;
    }
    if let Some(pause) = u.pause {
        sub.pause_collection = pause.map(|(b, r)| (b.unwrap_or_default(), r));
    }
    if let Some(price) = u.item_price {
        sub.price = price;
    }
    match u.trial_end {
        Some(TrialEnd::Now) => {
            sub.trial_end = Some(t);
            if sub.status == "trialing" {
                sub.status = "active".into();
            }
        }
        Some(TrialEnd::At(end)) => {
            sub.trial_start.get_or_insert(t);
            sub.trial_end = Some(end);
            if sub.status == "active" {
                sub.status = "trialing".into();
            }
        }
        None => {}
    }
    if let Some(c) = u.cancel_at_period_end {
        sub.cancel_at_period_end = c;
        sub.cancel_at = c.then_some(sub.current_period_end);
    }
    if u.clear_metadata {
        sub.metadata.clear();
    }
    for (k, v) in u.metadata {
        match v {
            Some(v) => sub.metadata.insert(k, v),
            None => sub.metadata.remove(&k),
        };
    }
    let body = render_subscription(s, &sub, u.expand_discounts);
    s.subscriptions.insert(id, sub);
    Ok(body)
}

fn cancel_subscription(s: &mut Store, req: &Request, id: &str) -> ApiResult {
    let id = decode_segment(id);
    let mut expand = false;
    for (k, v) in &req.params {
        match k.as_str() {
            "invoice_now" | "prorate" => {
                parse_bool(k, v)?;
            }
            "cancellation_details[comment]" | "cancellation_details[feedback]" => {}
            "expand[]" => expand |= v == "discounts",
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    let sub = s
        .subscriptions
        .get_mut(&id)
        .filter(|sub| sub.status != "canceled")
        // Stripe treats a canceled subscription as gone for this call.
        .ok_or_else(|| ApiError::missing("subscription", &id))?;
    let t = now();
    sub.status = "canceled".into();
    sub.canceled_at = Some(t);
    sub.ended_at = Some(t);
    sub.cancellation_reason = Some("cancellation_requested".into());
    let sub = sub.clone();
    Ok(render_subscription(s, &sub, expand))
}

fn create_coupon(s: &mut Store, req: &Request) -> ApiResult {
    let mut c = Coupon {
        id: String::new(),
        percent_off: None,
        amount_off: None,
        currency: None,
        duration: "once".into(),
        duration_in_months: None,
        name: None,
        max_redemptions: None,
        redeem_by: None,
        times_redeemed: 0,
        metadata: BTreeMap::new(),
        created: now(),
    };
    let mut id = None;
    for (k, v) in &req.params {
        let (base, idx) = split_brackets(k);
        match (base, idx.as_slice()) {
            ("id", []) => id = Some(v.clone()),
            ("percent_off", []) => {
                let p: f64 = v.parse().map_err(|_| {
                    ApiError::invalid(format!("Invalid decimal: {v}"), Some(k))
                        .with_code("parameter_invalid_decimal")
                })?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(ApiError::invalid(
                        "percent_off must be greater than 0 and at most 100.",
                        Some(k),
                    ));
                }
                c.percent_off = Some(p);
            }
            ("amount_off", []) => {
                let a = parse_int(k, v)?;
                if a <= 0 {
                    return Err(ApiError::invalid("amount_off must be positive.", Some(k)));
                }
                c.amount_off = Some(a);
            }
            ("currency", []) => {
                if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(ApiError::invalid(format!("Invalid currency: {v}"), Some(k)));
                }
                c.currency = Some(v.to_ascii_lowercase());
            }
            ("duration", []) => {
                if !matches!(v.as_str(), "once" | "repeating" | "forever") {
                    return Err(ApiError::invalid(
                        "Invalid duration: must be one of forever, once, or repeating",
                        Some(k),
                    ));
                }
                c.duration = v.clone();
            }
            ("duration_in_months", []) => c.duration_in_months = Some(parse_int(k, v)?),
            ("name", []) => c.name = Some(v.clone()),
            ("max_redemptions", []) => c.max_redemptions = Some(parse_int(k, v)?),
            ("redeem_by", []) => c.redeem_by = Some(parse_int(k, v)?),
            ("metadata", [key]) => {
                c.metadata.insert(key.to_string(), v.clone());
            }
            ("expand", [""]) => {}
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    match (c.percent_off, c.amount_off) {
        (None, None) => {
            return Err(ApiError::invalid(
                "You must pass either percent_off or amount_off.",
                None,
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may only pass one of percent_off and amount_off.",
                Some("amount_off"),
            ))
        }
        (None, Some(_)) if c.currency.is_none() => {
            return Err(ApiError::invalid(
                "You must pass currency when passing amount_off.",
                Some("currency"),
            )
            .with_code("parameter_missing"))
        }
        _ => {}
    }
    match (c.duration.as_str(), c.duration_in_months) {
        ("repeating", None) => {
            return Err(ApiError::invalid(
                "Missing required param: duration_in_months.",
                Some("duration_in_months"),
            )
            .with_code("parameter_missing"))
        }
        ("repeating", Some(m)) if m <= 0 => {
            return Err(ApiError::invalid(
                "duration_in_months must be positive.",
                Some("duration_in_months"),
            ))
        }
        ("once" | "forever", Some(_)) => {
            return Err(ApiError::invalid(
                "duration_in_months can only be set when duration is repeating.",
                Some("duration_in_months"),
            ))
        }
        _ => {}
    }
    c.id = id.unwrap_or_else(|| random_chars(8).to_ascii_uppercase());
    if s.coupons.contains_key(&c.id) {
        return Err(ApiError::invalid("Coupon already exists.", Some("id"))
            .with_code("resource_already_exists"));
    }
    let body = render_coupon(&c);
    s.coupons.insert(c.id.clone(), c);
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// Rendering (Stripe's JSON shapes, API 2025-03-31)

fn render_customer(c: &Customer) -> Value {
    json!({
        "id": c.id,
        "object": "customer",
        "email": c.email,
        "name": null,
        "created": c.created,
        "livemode": false,
        "metadata": {},
    })
}

fn render_price(p: &Price) -> Value {
    json!({
        "id": p.id,
        "object": "price",
        "active": true,
        "currency": p.currency,
        "unit_amount": p.unit_amount,
        "recurring": {"interval": p.interval, "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring",
        "product": format!("prod_{}", p.id.trim_start_matches("price_")),
        "created": p.created,
        "livemode": false,
    })
}

fn render_coupon(c: &Coupon) -> Value {
    json!({
        "id": c.id,
        "object": "coupon",
        "percent_off": c.percent_off,
        "amount_off": c.amount_off,
        "currency": c.currency,
        "duration": c.duration,
        "duration_in_months": c.duration_in_months,
        "name": c.name,
        "max_redemptions": c.max_redemptions,
        "redeem_by": c.redeem_by,
        "times_redeemed": c.times_redeemed,
        "valid": true,
        "metadata": c.metadata,
        "created": c.created,
        "livemode": false,
    })
}

fn render_subscription(s: &Store, sub: &Subscription, expand_discounts: bool) -> Value {
    let price = s
        .prices
        .get(&sub.price)
        .map(render_price)
        .unwrap_or(Value::Null);
    let currency = price.get("currency").cloned().unwrap_or(Value::Null);
    let discounts: Vec<Value> = sub
        .discounts
        .iter()
        .map(|d| {
            if expand_discounts {
                json!({
                    "id": d.id,
                    "object": "discount",
                    "coupon": s.coupons.get(&d.coupon).map(render_coupon),
                    "customer": sub.customer,
                    "subscription": sub.id,
                    "start": d.start,
                    "end": null,
                })
            } else {
                Value::String(d.id.clone())
            }
        })
        .collect();
    let mut v = Map::new();
    let mut put = |k: &str, val: Value| {
        v.insert(k.to_string(), val);
    };
    put("id", json!(sub.id));
    put("object", json!("subscription"));
    put("customer", json!(sub.customer));
    put("status", json!(sub.status));
    put("currency", currency);
    put(
        "items",
        json!({
            "object": "list",
            "data": [{
                "id": sub.item_id,
                "object": "subscription_item",
                "price": price,
                "quantity": 1,
                "subscription": sub.id,
                "current_period_start": sub.current_period_start,
                "current_period_end": sub.current_period_end,
                "created": sub.created,
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={}", sub.id),
        }),
    );
    put("cancel_at_period_end", json!(sub.cancel_at_period_end));
    put("cancel_at", json!(sub.cancel_at));
    put("canceled_at", json!(sub.canceled_at));
    put("ended_at", json!(sub.ended_at));
    put(
        "cancellation_details",
        json!({"comment": null, "feedback": null, "reason": sub.cancellation_reason}),
    );
    put(
        "pause_collection",
        match &sub.pause_collection {
            Some((behavior, resumes_at)) => json!({"behavior": behavior, "resumes_at": resumes_at}),
            None => Value::Null,
        },
    );
    put("discounts", Value::Array(discounts));
    put("trial_start", json!(sub.trial_start));
    put("trial_end", json!(sub.trial_end));
    put("metadata", json!(sub.metadata));
    put("collection_method", json!("charge_automatically"));
    put("billing_cycle_anchor", json!(sub.created));
    put("start_date", json!(sub.created));
    put("created", json!(sub.created));
    put("latest_invoice", Value::Null);
    put("livemode", json!(false));
    Value::Object(v)
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn now() -> i64 {
    Utc::now().timestamp()
}

fn period_end(start: i64, interval: &str) -> i64 {
    let start_dt = chrono::DateTime::from_timestamp(start, 0).expect("valid timestamp");
    let end = match interval {
        "day" => start_dt + chrono::Duration::days(1),
        "week" => start_dt + chrono::Duration::weeks(1),
        "year" => start_dt + Months::new(12),
        _ => start_dt + Months::new(1),
    };
    end.timestamp()
}

fn random_chars(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `{prefix}_` + 14 random alphanumerics, like Stripe's ids.
fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_chars(14))
}

fn valid_api_key(key: &str) -> bool {
    ["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
        .iter()
        .any(|p| key.starts_with(p) && key.len() > p.len())
}

fn format_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}

/// `discounts[0][coupon]` → `("discounts", ["0", "coupon"])`; `expand[]` →
/// `("expand", [""])`; `metadata[a]` → `("metadata", ["a"])`. A name that is not bracket
/// notation comes back whole with no indices (and is then an unknown parameter).
fn split_brackets(name: &str) -> (&str, Vec<&str>) {
    let Some(open) = name.find('[') else {
        return (name, Vec::new());
    };
    let base = &name[..open];
    let mut rest = &name[open..];
    let mut parts = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            return (name, Vec::new());
        };
        parts.push(&stripped[..close]);
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        return (name, Vec::new());
    }
    (base, parts)
}

fn parse_int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse().map_err(|_| {
        ApiError::invalid(format!("Invalid integer: {v}"), Some(name))
            .with_code("parameter_invalid_integer")
    })
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(
            format!("Invalid boolean: {v}"),
            Some(name),
        )),
    }
}

fn decode_segment(s: &str) -> String {
    percent_decode(s.as_bytes(), false).unwrap_or_else(|| s.to_string())
}

/// `application/x-www-form-urlencoded` (or a query string) into ordered pairs; `None` if a
/// percent escape or the UTF-8 is invalid.
fn decode_form(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Some(out)
}

fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hex = input.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets() {
        assert_eq!(
            split_brackets("discounts[0][coupon]"),
            ("discounts", vec!["0", "coupon"])
        );
        assert_eq!(split_brackets("expand[]"), ("expand", vec![""]));
        assert_eq!(split_brackets("trial_end"), ("trial_end", vec![]));
        assert_eq!(split_brackets("a[b]c"), ("a[b]c", vec![]));
        assert_eq!(split_brackets("a[b"), ("a[b", vec![]));
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            decode_form(b"discounts%5B0%5D%5Bcoupon%5D=SAVE+20%25&pause_collection=").unwrap(),
            vec![
                ("discounts[0][coupon]".to_string(), "SAVE 20%".to_string()),
                ("pause_collection".to_string(), String::new()),
            ]
        );
        assert!(decode_form(b"a=%zz").is_none());
        assert!(decode_form(b"a=%2").is_none());
    }

    /// Sandbox mode is opt-in: without it a `sub_demo…` id is unknown like any other.
    #[tokio::test]
    async fn demo_objects_are_created_on_first_use_only_in_sandbox_mode() {
        let fake = FakeStripe::start().await;
        let c = reqwest::Client::new();
        let get = |path: &str| {
            let req = c
                .get(format!("{}{path}", fake.base_url()))
                .bearer_auth("sk_test_sandbox");
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        assert_eq!(get("/v1/subscriptions/sub_demo_v1").await.0, 404);
        assert!(fake.subscription("sub_demo_v1").is_none());

        fake.enable_demo_objects();
        let (status, sub) = get("/v1/subscriptions/sub_demo_v1").await;
        assert_eq!(status, 200, "{sub}");
        assert_eq!(sub["customer"], "cus_demo_v1");
        assert_eq!(sub["status"], "active");
        assert_eq!(sub["items"]["data"][0]["price"]["id"], DEMO_PRICE);
        assert_eq!(sub["items"]["data"][0]["price"]["unit_amount"], 4900);
        let (status, cus) = get("/v1/customers/cus_demo_v1").await;
        assert_eq!((status, cus["id"].as_str()), (200, Some("cus_demo_v1")));
        // The same subscription the next time (changes stick), a customer alone creates its
        // subscription too, and other ids stay unknown.
        let r = c
            .post(format!("{}/v1/subscriptions/sub_demo_v1", fake.base_url()))
            .bearer_auth("sk_test_sandbox")
            .form(&[("cancel_at_period_end", "true")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            get("/v1/subscriptions/sub_demo_v1").await.1["cancel_at_period_end"],
            true
        );
        assert_eq!(get("/v1/customers/cus_demo").await.0, 200);
        assert_eq!(
            fake.subscription("sub_demo").unwrap()["customer"],
            "cus_demo"
        );
        assert_eq!(get("/v1/subscriptions/sub_other").await.0, 404);
        assert_eq!(get("/v1/customers/cus_other").await.0, 404);
    }
}
