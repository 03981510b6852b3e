//! What a Stripe call fails with and how an answer is classified: [`StripeError`] (retry
//! with the same key, re-fetch to settle, or give up), the mapping of a non-2xx answer and
//! of transport errors onto it, and the response headers that mapping reads.

use std::time::Duration;

use reqwest::{header::HeaderMap, StatusCode};
use serde_json::Value;

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

/// Maps a non-2xx answer to a [`StripeError`]. Order matters: an explicit
/// `Stripe-Should-Retry: false` wins over the status (except for a 5xx, whose outcome stays
/// unknown whatever the header says); 429 and 409 keep their own variants; then an explicit
/// `Stripe-Should-Retry: true`; then the status.
pub(super) fn classify(
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

pub(super) fn transport_error(e: reqwest::Error) -> StripeError {
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

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
}
