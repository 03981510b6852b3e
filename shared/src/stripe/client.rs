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

use std::time::{Duration, Instant};

use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::Value;

/// The Stripe API version every request pins (`Stripe-Version`), whatever the account's
/// default is. Since 2025-03-31 discounts are set with `discounts[0][coupon]` (the singular
/// `coupon` parameter is gone) and `current_period_*` lives on `items.data[]`.
pub const API_VERSION: &str = "2025-03-31.basil";

/// Stripe's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// Stripe rejects longer idempotency keys.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What a Stripe call can fail with, classified by what the caller may do next:
///
/// | variant | [`is_retryable`](Self::is_retryable) | [`is_permanent`](Self::is_permanent) | [`outcome_unknown`](Self::outcome_unknown) |
/// |---|---|---|---|
/// | `Network`, `RateLimited`, `Conflict`, `ShouldRetry` | yes (same idempotency key, backoff) | no | no |
/// | `OutcomeUnknown`, `Decode` | no | no | yes: re-fetch the object to settle |
/// | `Client`, `InvalidRequest` | no | yes | no |
///
/// `Network` covers timeouts too: a timed-out POST may have been applied, which is why
/// every POST carries an idempotency key and is retried with the same one. Retrying a
/// request that got a 5xx with the same key only replays the saved 5xx (Stripe stores 500
/// results), hence "re-fetch" rather than "retry".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Connection refused or reset, DNS, timeout, a body cut short.
    #[error("network error talking to Stripe: {0}")]
    Network(String),
    /// HTTP 429. `retry_after` is the server's `Retry-After`, when it sent one.
    #[error("rate limited by Stripe (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// HTTP 409: another request with the same idempotency key is still in flight (or a
    /// lock conflict on the object).
    #[error("conflict: a request with the same idempotency key is in flight")]
    Conflict,
    /// `Stripe-Should-Retry: true` on an error not covered above.
    #[error("Stripe asked for a retry (HTTP {status}): {message}")]
    ShouldRetry { status: u16, message: String },
    /// HTTP 5xx: Stripe may or may not have applied the change. Re-fetch to settle.
    #[error("outcome unknown (HTTP {status}): re-fetch the object to settle")]
    OutcomeUnknown { status: u16 },
    /// Any other 4xx (or `Stripe-Should-Retry: false`, or a redirect): permanent.
    /// `kind` is Stripe's `error.type` (`invalid_request_error`, `idempotency_error`,
    /// `card_error`, ...); `code` and `param` say what to fix.
    #[error("Stripe rejected the request (HTTP {status}, {kind}, code {code:?}, param {param:?}): {message}")]
    Client {
        status: u16,
        kind: String,
        code: Option<String>,
        message: String,
        param: Option<String>,
    },
    /// A 2xx whose body is not a JSON object. For a POST the change was applied: re-fetch.
    #[error("undecodable Stripe response: {0}")]
    Decode(String),
    /// Rejected before sending: an idempotency key that is empty, too long or not printable
    /// ASCII, or an API key that cannot be sent as a header. A bug on our side.
    #[error("invalid Stripe request: {0}")]
    InvalidRequest(String),
}

impl StripeError {
    /// Retry the same call, with the same idempotency key, after a backoff (for
    /// `RateLimited`, at least [`retry_after`](Self::retry_after)).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Network(_) | Self::RateLimited { .. } | Self::Conflict | Self::ShouldRetry { .. }
        )
    }

    /// Retrying cannot help: record the failure (e.g. the offer could not be applied).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Client { .. } | Self::InvalidRequest(_))
    }

    /// Stripe may have applied the change: re-fetch the object and compare before deciding.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. } | Self::Decode(_))
    }

    /// The server's `Retry-After` for a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Stripe's `error.code` for a permanent error (`resource_missing`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Client { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Network(_) => "network",
            Self::RateLimited { .. } => "rate_limited",
            Self::Conflict => "conflict",
            Self::ShouldRetry { .. } => "should_retry",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::Client { .. } => "client_error",
            Self::Decode(_) => "decode",
            Self::InvalidRequest(_) => "invalid_request",
        }
    }
}

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

/// Maps a non-2xx answer to a [`StripeError`]. Order matters: an explicit
/// `Stripe-Should-Retry: false` wins over the status (except for a 5xx, whose outcome stays
/// unknown whatever the header says); 429 and 409 keep their own variants; then an explicit
/// `Stripe-Should-Retry: true`; then the status.
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    request_id: Option<&str>,
) -> StripeError {
    let should_retry =
        header_str(headers, "stripe-should-retry").map(|v| v.eq_ignore_ascii_case("true"));
    let err = ErrorBody::parse(body);
    let code = status.as_u16();
    if status.is_server_error() && should_retry != Some(true) {
        tracing::warn!(
            status = code,
            request_id,
            message = %err.message,
            "Stripe answered 5xx: outcome unknown"
        );
        return StripeError::OutcomeUnknown { status: code };
    }
    match (status, should_retry) {
        (_, Some(false)) => err.into_client(code),
        (StatusCode::TOO_MANY_REQUESTS, _) => StripeError::RateLimited {
            retry_after: retry_after(headers),
        },
        (StatusCode::CONFLICT, _) => StripeError::Conflict,
        (_, Some(true)) => StripeError::ShouldRetry {
            status: code,
            message: err.message,
        },
        _ => err.into_client(code),
    }
}

/// Stripe's error envelope: `{"error": {"type", "code", "message", "param"}}`.
struct ErrorBody {
    kind: String,
    code: Option<String>,
    message: String,
    param: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let field = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match error {
            Some(_) => Self {
                kind: field("type").unwrap_or_else(|| "unknown".into()),
                code: field("code"),
                message: field("message").unwrap_or_default(),
                param: field("param"),
            },
            // Not Stripe's envelope (a proxy's HTML page, an empty body): keep a short,
            // printable excerpt for the logs.
            None => Self {
                kind: "unknown".into(),
                code: None,
                message: String::from_utf8_lossy(&body[..body.len().min(200)])
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect(),
                param: None,
            },
        }
    }

    fn into_client(self, status: u16) -> StripeError {
        StripeError::Client {
            status,
            kind: self.kind,
            code: self.code,
            message: self.message,
            param: self.param,
        }
    }
}

fn transport_error(e: reqwest::Error) -> StripeError {
    if e.is_builder() {
        // The only builder inputs that vary are the API key and the idempotency key (already
        // validated); never echo the key itself.
        return StripeError::InvalidRequest(
            "request could not be built (API key not a valid header value?)".into(),
        );
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    // `reqwest::Error`'s Display includes the URL, which holds no secret (the key travels
    // in a header), and the underlying cause.
    StripeError::Network(format!("{kind}: {e}"))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After` as delta-seconds (an integer, or a decimal as some proxies send). The
/// HTTP-date form is not used by Stripe and is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = header_str(headers, "retry-after")?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
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
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    const ERR: &[u8] = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such coupon: 'X'","param":"discounts[0][coupon]"}}"#;

    #[test]
    fn classification_table() {
        let c = |status: u16, h: &[(&'static str, &'static str)]| {
            classify(
                StatusCode::from_u16(status).unwrap(),
                &headers(h),
                ERR,
                None,
            )
        };
        assert_eq!(c(429, &[]), StripeError::RateLimited { retry_after: None });
        assert_eq!(
            c(429, &[("retry-after", "2")]).retry_after(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            c(429, &[("retry-after", "0.5")]).retry_after(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(c(409, &[]), StripeError::Conflict);
        assert_eq!(c(500, &[]), StripeError::OutcomeUnknown { status: 500 });
        assert_eq!(
            c(503, &[("stripe-should-retry", "false")]),
            StripeError::OutcomeUnknown { status: 503 }
        );
        assert!(matches!(
            c(503, &[("stripe-should-retry", "true")]),
            StripeError::ShouldRetry { status: 503, .. }
        ));
        assert!(matches!(
            c(400, &[("stripe-should-retry", "true")]),
            StripeError::ShouldRetry { status: 400, .. }
        ));
        assert!(matches!(
            c(409, &[("stripe-should-retry", "false")]),
            StripeError::Client { status: 409, .. }
        ));
        assert!(matches!(
            c(429, &[("stripe-should-retry", "false")]),
            StripeError::Client { status: 429, .. }
        ));
        assert_eq!(
            c(400, &[]),
            StripeError::Client {
                status: 400,
                kind: "invalid_request_error".into(),
                code: Some("resource_missing".into()),
                message: "No such coupon: 'X'".into(),
                param: Some("discounts[0][coupon]".into()),
            }
        );
        assert!(matches!(
            c(302, &[]),
            StripeError::Client { status: 302, .. }
        ));
    }

    #[test]
    fn retryable_permanent_and_unknown_are_disjoint() {
        let all = [
            StripeError::Network("x".into()),
            StripeError::RateLimited { retry_after: None },
            StripeError::Conflict,
            StripeError::ShouldRetry {
                status: 500,
                message: String::new(),
            },
            StripeError::OutcomeUnknown { status: 500 },
            StripeError::Client {
                status: 400,
                kind: "k".into(),
                code: None,
                message: String::new(),
                param: None,
            },
            StripeError::Decode("x".into()),
            StripeError::InvalidRequest("x".into()),
        ];
        for e in &all {
            let flags = [e.is_retryable(), e.is_permanent(), e.outcome_unknown()];
            assert_eq!(flags.iter().filter(|f| **f).count(), 1, "{e:?}");
        }
    }

    #[test]
    fn non_stripe_error_bodies_are_kept_short_and_printable() {
        let body = format!("<html>\n{}</html>", "x".repeat(500));
        let e = classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body.as_bytes(),
            None,
        );
        let StripeError::Client { kind, message, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(kind, "unknown");
        assert!(message.len() <= 200 && !message.contains('\n'));
    }

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
