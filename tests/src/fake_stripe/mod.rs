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
//!
//! Layout: this file holds the [`FakeStripe`] handle (start, bind, address) and the
//! constants; `store` the shared state; `server` the HTTP pipeline (auth, encoding,
//! faults, idempotency, answer) and `router` the endpoint table; one module per Stripe
//! resource (`customers`, `prices`, `subscriptions` with `subscription_update`,
//! `coupons`), each with its test-setup methods, endpoints and JSON rendering;
//! `fault` injected faults, `idempotency` idempotency keys, `requests` the request
//! log, `demo` sandbox mode, `events` webhook events and deliveries, `params` form
//! and bracket decoding, `helpers` clock and ids.

mod coupons;
mod customers;
mod demo;
mod events;
mod fault;
mod helpers;
mod idempotency;
mod params;
mod prices;
mod requests;
mod router;
mod server;
mod store;
mod subscription_update;
mod subscriptions;

use std::{net::SocketAddr, sync::Arc};

use axum::Router;

pub use events::{
    api_event, deliver, deliver_at, deliver_concurrently, deliver_raw, deliver_times, event,
    event_body, with_previous_attributes,
};
pub use fault::{Fault, Gate};
pub use requests::LoggedRequest;
pub use subscriptions::SubscriptionIds;

use server::handle;
use store::Shared;

/// The id `GET /v1/account` answers with, whatever the key.
pub const ACCOUNT_ID: &str = "acct_1FakeRetentionOS";

/// The price of the subscriptions sandbox mode creates ([`FakeStripe::enable_demo_objects`]).
pub const DEMO_PRICE: &str = "price_demo_pro_monthly";

/// The API version the fake speaks (and stamps on events).
pub const API_VERSION: &str = shared::stripe::client::API_VERSION;

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

    /// `http://127.0.0.1:PORT`, for `StripeClient::new`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
