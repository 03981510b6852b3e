//! Cross-cutting HTTP layers: request ids, metrics (labelled by [`endpoint_class`]), request
//! timeout, and the fallback that wraps any non-JSON error response (405, 413 from lower
//! layers...) in the envelope.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, state::AppState};

pub const REQUEST_ID: &str = "x-request-id";

/// Accepts a sane incoming `x-request-id` or generates one; echoes it on the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).expect("validated header value");
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, value);
    res
}

/// Security headers on every response (API, widget script, demo page, errors and sheds):
/// `nosniff`, `Referrer-Policy: strict-origin-when-cross-origin`, framing refused
/// (`X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: nothing we serve is meant to be
/// framed; the widget is a script that renders into the tenant's own page), and HSTS when
/// `PUBLIC_BASE_URL` is https (only then is it known that clients reach us over TLS).
/// A header a handler set itself is left as it is.
pub async fn security_headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "strict-origin-when-cross-origin");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'");
    if st.config.public_base_url.starts_with("https://") {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    res
}

/// Latency histogram by route and status, and in-flight gauge.
pub async fn metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let gauge = metrics::gauge!("http_requests_in_flight");
    gauge.increment(1.0);
    let res = next.run(req).await;
    gauge.decrement(1.0);
    let class = endpoint_class(&route);
    metrics::histogram!(
        "http_request_duration_seconds",
        "route" => route,
        "method" => method,
        "status" => res.status().as_u16().to_string(),
        "class" => class,
    )
    .record(started.elapsed().as_secs_f64());
    res
}

/// The endpoint class of a route (metrics label, SLOs and alert rules use it).
pub fn endpoint_class(route: &str) -> &'static str {
    if route.starts_with("/v1/widget") {
        "widget"
    } else if route.starts_with("/v1/webhooks") {
        "webhook"
    } else if route.starts_with("/v1/analytics") {
        "analytics"
    } else if route.starts_with("/v1/ops") || route == "/v1/tenants" {
        "ops"
    } else if route.starts_with("/app") {
        "dashboard"
    } else if route.starts_with("/v1/") {
        "admin"
    } else {
        "system"
    }
}

/// Fails a request that runs longer than `REQUEST_TIMEOUT_MS` with 503 and `Retry-After`.
pub async fn timeout(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let limit: Duration = st.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            ApiError::unavailable(
                "request_timeout",
                "The request took too long; retry shortly.",
            )
            .into_response()
        }
    }
}

/// Wraps error responses that lower layers produced without a JSON body (the dashboard's
/// HTML pages, which render their own errors, pass as they are).
pub async fn envelope_fallback(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if status.as_u16() < 400 {
        return res;
    }
    let own_body = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if own_body {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let mut new = ApiError::for_status(status).into_response();
    // Keep headers such as Allow and Retry-After.
    for (k, v) in parts.headers.drain().filter_map(|(k, v)| k.map(|k| (k, v))) {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            new.headers_mut().insert(k, v);
        }
    }
    *new.status_mut() = status;
    new
}

pub async fn fallback_404() -> ApiError {
    ApiError::for_status(StatusCode::NOT_FOUND)
}

/// Handler panics become a 500 envelope instead of a dropped connection.
pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}
