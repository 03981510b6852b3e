//! Stripe: the few API calls a retention tool makes, webhook signature checks, and a
//! per-account rate limiter shared by every worker process.
//!
//! - [`client`]: a thin `reqwest` client (why not `async-stripe`: see its module docs) whose
//!   errors say what a caller may do next: retry with the same idempotency key, re-fetch to
//!   settle an unknown outcome, or give up.
//! - [`webhook`]: `Stripe-Signature` verification over the raw body, with secret rotation.
//! - [`ratelimit`]: a Redis GCRA limiter per Stripe account, plus a way to honour a 429.
//!
//! The facts these follow (API version, offer parameters, idempotency and retry rules) are
//! summarised in the team's Stripe notes; the integration tests run the client against a
//! stateful fake Stripe server (`tests/src/fake_stripe/`) and the verifier against
//! Stripe's official Node library (`tests/tests/stripe_signature.rs`).

pub mod client;
pub mod ratelimit;
pub mod webhook;

pub use client::{StripeClient, StripeError, StripeResponse};
pub use ratelimit::{AccountRateLimiter, RateLimits};
pub use webhook::WebhookError;
