//! A thin Stripe API client over `reqwest`, for the handful of calls RetentionOS makes.
//!
//! # Why not `async-stripe`
//! `async-stripe` 1.0 (rc) builds here and can target any base URL, but for six endpoints a
//! generated SDK costs more than it gives:
//! - **Idempotency keys are ours to choose.** Every mutating call takes the key as a required
//!   argument, derived by the caller from its own ids (`offer:{session}:{offer}`), so a job
//!   retry replays instead of applying an offer twice. Nothing is generated behind our back.
//! - **Retry classification is the product.** Workers must tell "retry with the same key"
//!   (network, 429, 409, `Stripe-Should-Retry: true`) from "re-fetch to settle" (5xx) from
//!   "give up" (other 4xx, `Stripe-Should-Retry: false`). [`StripeError`] encodes exactly
//!   that, including `Retry-After`; the SDK's error type needs the same mapping on top.
//! - **Build time**: its shared crate alone takes ~40 s in a debug build on our 2-core
//!   machines; this module compiles in about a second on top of `reqwest`, which we already
//!   build.
//! - **Faithful to the wire**: parameters are the form-encoded bracket notation Stripe
//!   documents (`discounts[0][coupon]`), so what a test sees in the fake Stripe's request log
//!   is what Stripe receives, and the API version is pinned in one place ([`API_VERSION`]).
//!
//! Objects come back as `serde_json::Value`: we read a few fields of each and must not fail
//! on the fields Stripe adds every release.
//!
//! The client does **not** retry by itself: the job that called it owns the retry policy
//! (backoff with jitter, same idempotency key) and the per-account rate limit
//! ([`super::ratelimit::AccountRateLimiter`]).
//!
//! The error type and the classification of Stripe's answers live in `error` (re-exported
//! here as [`StripeError`]); this file holds the client, its endpoints and request checks.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

mod error;

pub use error::StripeError;
use error::{classify, header_str, transport_error};

/// The Stripe API version every request pins (`Stripe-Version`), whatever the account's
/// default is. Since 2025-03-31 discounts are set with `discounts[0][coupon]` (the singular
/// `coupon` parameter is gone) and `current_period_*` lives on `items.data[]`.
pub const API_VERSION: &str = "2025-03-31.basil";

/// Stripe's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// Stripe rejects longer idempotency keys.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The answer to a mutating call (POST or DELETE).
#[derive(Debug, Clone, PartialEq)]
pub struct StripeResponse {
    /// The object Stripe returned (the subscription, the coupon).
    pub body: Value,
    /// `Idempotent-Replayed: true`: Stripe had already executed this idempotency key and
    /// replayed the saved answer; nothing new was applied by this call.
    pub idempotent_replayed: bool,
    /// Stripe's `Request-Id` (`req_...`), for support tickets and logs.
    pub request_id: Option<String>,
}

/// A Stripe API client. Cheap to clone (one shared connection pool); the tenant's
/// restricted API key is passed on every call, so one client serves every tenant.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .finish()
    }
}

impl StripeClient {
    /// A client for `base_url` ([`DEFAULT_BASE_URL`] in production, the fake's address in
    /// tests); `timeout` bounds each whole request (connect, send, read the body).
    ///
    /// # Panics
    /// Like `reqwest::Client::new`, only if the TLS backend cannot be initialised.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // Stripe never redirects the API; a redirect means a misconfigured base URL, and
            // following it could resend the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("RetentionOS/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the rustls TLS backend initialises");
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_version: API_VERSION.to_string(),
        }
    }

    /// Pins another `Stripe-Version` (tests of version handling only).
    pub fn with_api_version(mut self, version: &str) -> Self {
        self.api_version = version.to_string();
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /v1/subscriptions/{id}?expand[]=discounts`. Discounts are expanded because,
    /// since API 2025-03-31, `discounts` is a list of `di_...` ids otherwise, and settling
    /// a discount offer needs `discounts[].coupon.id`.
    pub async fn get_subscription(&self, key: &str, id: &str) -> Result<Value, StripeError> {
        let path = object_path("subscriptions", id)?;
        self.send(
            "get_subscription",
            Method::GET,
            &path,
            key,
            &[("expand[]", "discounts")],
            None,
        )
        .await
        .map(|r| r.body)
    }

    /// `GET /v1/customers/{id}`.
    pub async fn get_customer(&self, key: &str, id: &str) -> Result<Value, StripeError> {
        let path = object_path("customers", id)?;
        self.send("get_customer", Method::GET, &path, key, &[], None)
            .await
            .map(|r| r.body)
    }

    /// `GET /v1/account`: the account the key belongs to (the dashboard's connection test).
    pub async fn get_account(&self, key: &str) -> Result<Value, StripeError> {
        self.send("get_account", Method::GET, "/v1/account", key, &[], None)
            .await
            .map(|r| r.body)
    }

    /// `POST /v1/subscriptions/{id}` with form `params` in Stripe's bracket notation, e.g.
    /// `[("discounts[0][coupon]", "SAVE20")]`, `[("pause_collection[behavior]", "void")]`,
    /// `[("pause_collection", "")]` (resume), `[("cancel_at_period_end", "true")]`.
    pub async fn update_subscription(
        &self,
        key: &str,
        id: &str,
        params: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<StripeResponse, StripeError> {
        let path = object_path("subscriptions", id)?;
        self.send(
            "update_subscription",
            Method::POST,
            &path,
            key,
            &[],
            Some((params, idempotency_key)),
        )
        .await
    }

    /// `POST /v1/coupons`: `percent_off` or `amount_off` + `currency`, `duration`
    /// (`once|repeating|forever`), `duration_in_months`, optionally `id` and `name`.
    pub async fn create_coupon(
        &self,
        key: &str,
        params: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<StripeResponse, StripeError> {
        self.send(
            "create_coupon",
            Method::POST,
            "/v1/coupons",
            key,
            &[],
            Some((params, idempotency_key)),
        )
        .await
    }

    /// `GET /v1/coupons/{id}`; `Ok(None)` when Stripe answers 404.
    pub async fn get_coupon(&self, key: &str, id: &str) -> Result<Option<Value>, StripeError> {
        let path = object_path("coupons", id)?;
        match self
            .send("get_coupon", Method::GET, &path, key, &[], None)
            .await
        {
            Ok(r) => Ok(Some(r.body)),
            Err(StripeError::Client { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /v1/subscriptions/{id}`: cancels now (Stripe sets `status: canceled`).
    pub async fn cancel_subscription(
        &self,
        key: &str,
        id: &str,
        idempotency_key: &str,
    ) -> Result<StripeResponse, StripeError> {
        let path = object_path("subscriptions", id)?;
        self.send(
            "cancel_subscription",
            Method::DELETE,
            &path,
            key,
            &[],
            Some((&[], idempotency_key)),
        )
        .await
    }

    /// One request. `mutation` carries the form parameters and the idempotency key of a
    /// POST or DELETE (required for those, never sent on a GET).
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
        mutation: Option<(&[(String, String)], &str)>,
    ) -> Result<StripeResponse, StripeError> {
        if key.is_empty() {
            return Err(StripeError::InvalidRequest("empty API key".into()));
        }
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base_url, path))
            .bearer_auth(key)
            .header("Stripe-Version", &self.api_version);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some((params, idempotency_key)) = mutation {
            validate_idempotency_key(idempotency_key)?;
            req = req.header("Idempotency-Key", idempotency_key);
            if !params.is_empty() {
                req = req.form(params);
            }
        }

        let started = Instant::now();
        let result = self.execute(req).await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(r) if r.idempotent_replayed => "replayed",
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!("stripe_requests_total", "op" => op, "outcome" => outcome).increment(1);
        metrics::histogram!("stripe_request_duration_seconds", "op" => op)
            .record(elapsed.as_secs_f64());
        match &result {
            Ok(r) => tracing::debug!(
                op,
                outcome,
                request_id = r.request_id.as_deref(),
                elapsed_ms = elapsed.as_millis() as u64,
                "stripe call"
            ),
            Err(e) => tracing::info!(
                op,
                outcome,
                error = %e,
                elapsed_ms = elapsed.as_millis() as u64,
                "stripe call failed"
            ),
        }
        result
    }

    async fn execute(&self, req: reqwest::RequestBuilder) -> Result<StripeResponse, StripeError> {
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(transport_error)?;
        let request_id = header_str(&headers, "request-id").map(str::to_string);
        if status.is_success() {
            let body: Value = serde_json::from_slice(&bytes)
                .map_err(|e| StripeError::Decode(format!("HTTP {status}: {e}")))?;
            if !body.is_object() {
                return Err(StripeError::Decode(format!(
                    "HTTP {status}: expected a JSON object"
                )));
            }
            return Ok(StripeResponse {
                body,
                idempotent_replayed: header_str(&headers, "idempotent-replayed")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                request_id,
            });
        }
        Err(classify(status, &headers, &bytes, request_id.as_deref()))
    }
}

fn validate_idempotency_key(key: &str) -> Result<(), StripeError> {
    if key.is_empty() {
        return Err(StripeError::InvalidRequest("empty idempotency key".into()));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(StripeError::InvalidRequest(format!(
            "idempotency key is {} characters; Stripe allows {MAX_IDEMPOTENCY_KEY_LEN}",
            key.len()
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StripeError::InvalidRequest(
            "idempotency key must be printable ASCII without spaces".into(),
        ));
    }
    Ok(())
}

/// `/v1/{resource}/{id}` with the id as exactly one path segment: ids come from webhooks and
/// tenants' data, so `/`, `?`, `#` or a `..` must not change which endpoint is called.
fn object_path(resource: &str, id: &str) -> Result<String, StripeError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(StripeError::InvalidRequest(format!(
            "invalid {resource} id {id:?}"
        )));
    }
    Ok(format!("/v1/{resource}/{}", urlencoding::encode(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_validation() {
        assert!(validate_idempotency_key("offer:0191f3:7").is_ok());
        assert!(validate_idempotency_key(&"k".repeat(255)).is_ok());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key("tab\there").is_err());
        assert!(validate_idempotency_key("é").is_err());
    }

    #[test]
    fn ids_stay_one_path_segment() {
        let p = |id| object_path("coupons", id);
        assert_eq!(p("SAVE20").unwrap(), "/v1/coupons/SAVE20");
        assert_eq!(
            p("../customers/x").unwrap(),
            "/v1/coupons/..%2Fcustomers%2Fx"
        );
        assert_eq!(p("a?b#c d").unwrap(), "/v1/coupons/a%3Fb%23c%20d");
        for bad in ["", ".", ".."] {
            assert!(
                matches!(p(bad), Err(StripeError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }
}
