//! Webhook events and deliveries: building `event` objects (automatic or caused by an API
//! request) and POSTing them signed, as Stripe does (once, repeatedly, concurrently, raw).

use std::{sync::OnceLock, time::Duration};

use serde_json::{json, Value};

use super::{
    helpers::{new_id, now},
    API_VERSION,
};

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

pub(super) fn build_event(kind: &str, object: Value, request: Value) -> Value {
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
pub(super) fn http() -> &'static reqwest::Client {
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
