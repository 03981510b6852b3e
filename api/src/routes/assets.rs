//! The embeddable widget script (content-hashed, long-lived cache; the script and its hash
//! are [`crate::services::assets`]) and the demo page.

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde::Deserialize;
use shared::tenants::{KeyKind, Mode};

use crate::{
    error::{ApiError, ErrorEnvelope},
    services::assets::{widget_hash, WIDGET_JS},
    AppState,
};

const DEMO_HTML: &str = include_str!("../../../widget/demo.html");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(get_widget))
        .route("/widget/{file}", get(get_widget_versioned))
        .route("/demo", get(get_demo))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_widget, get_widget_versioned, get_demo))]
pub(crate) struct Doc;

fn script(immutable: bool, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", widget_hash());
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        // The unversioned URL must pick up new releases; the versioned one never changes.
        "public, max-age=300, stale-while-revalidate=86400"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8".to_string(),
            ),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::ETAG, etag),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_string()),
        ],
        WIDGET_JS,
    )
        .into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WidgetQuery {
    /// The script's content hash: the answer is cached as immutable when it is current.
    v: Option<String>,
}

/// `/widget.js` (short cache) or `/widget.js?v=<hash>` (immutable when the hash is current).
#[utoipa::path(
    get,
    path = "/widget.js",
    operation_id = "get_widget",
    tag = "widget",
    summary = "The embeddable widget script",
    params(WidgetQuery),
    responses(
        (status = 200, description = "The script", content_type = "application/javascript", body = String, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
    )
)]
async fn get_widget(Query(q): Query<WidgetQuery>, headers: HeaderMap) -> Response {
    script(q.v.as_deref() == Some(widget_hash()), &headers)
}

/// `/widget/widget.<hash>.js`: immutable.
#[utoipa::path(
    get,
    path = "/widget/{file}",
    operation_id = "get_widget_versioned",
    tag = "widget",
    summary = "The widget script by content hash (immutable)",
    params(("file" = String, Path)),
    responses(
        (status = 200, description = "The script (`widget.<hash>.js`)", content_type = "application/javascript", body = String, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 404, description = "asset_not_found: not the current script's name", body = ErrorEnvelope),
    )
)]
async fn get_widget_versioned(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file == format!("widget.{}.js", widget_hash()) {
        script(true, &headers)
    } else {
        ApiError::not_found("asset").into_response()
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DemoQuery {
    /// The demo tenant's test publishable key (`pk_test_...`).
    pk: String,
    /// `cus_demo` (default) or `cus_demo_<1-64 of [A-Za-z0-9_-]>`.
    #[serde(default = "demo_customer")]
    #[param(required = false, pattern = "^cus_demo(_[A-Za-z0-9_-]{1,64})?$")]
    customer: String,
    /// The subscription the demo's offers act on (default `sub_demo<suffix>`).
    #[serde(default)]
    subscription: Option<String>,
}

fn demo_customer() -> String {
    "cus_demo".into()
}

/// `cus_demo`, or `cus_demo_` and a short suffix (one demo visitor or browser test each).
fn is_demo_customer(c: &str) -> bool {
    c == "cus_demo"
        || c.strip_prefix("cus_demo_").is_some_and(|s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// The demo customer's subscription unless the page is given one: `cus_demo<suffix>` has
/// `sub_demo<suffix>`. `scripts/run` connects the demo tenant's test mode to the Stripe
/// sandbox (`rtos-stripe-sandbox`), which creates that subscription the first time it is
/// named, so an accepted offer is applied to it.
fn demo_subscription(customer: &str) -> String {
    format!(
        "sub_demo{}",
        customer.strip_prefix("cus_demo").unwrap_or_default()
    )
}

/// A fake account page with a Cancel button, for a test-mode publishable key. It signs a
/// customer token server-side, as a tenant's backend would. Off when `DEMO_ENABLED=0`.
#[utoipa::path(
    get,
    path = "/demo",
    operation_id = "get_demo",
    tag = "widget",
    summary = "Demo account page with a Cancel button (DEMO_ENABLED)",
    description = "Serves only a demo tenant's test publishable key (403 not_demo_tenant otherwise) and signs tokens only for cus_demo or cus_demo_<1-64 of [A-Za-z0-9_-]> (400 param customer otherwise). Off (404) with APP_ENV=production or a non-loopback API_ADDR/OPS_ADDR.",
    params(DemoQuery),
    responses(
        (status = 200, description = "The demo page", content_type = "text/html", body = String),
        (status = 400, description = "customer is not a demo customer, or the query does not parse", body = ErrorEnvelope),
        (status = 401, description = "invalid_api_key: not a valid test publishable key", body = ErrorEnvelope),
        (status = 403, description = "not_demo_tenant: the key is not the demo tenant's", body = ErrorEnvelope),
        (status = 404, description = "The demo is off (DEMO_ENABLED=0)", body = ErrorEnvelope),
    )
)]
async fn get_demo(
    State(st): State<AppState>,
    Query(q): Query<DemoQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !st.config.demo_enabled {
        return Err(ApiError::not_found("page"));
    }
    let id = st
        .auth_cache
        .authenticate(&st.pools.primary, &q.pk)
        .await?
        .filter(|k| k.kind == KeyKind::Publishable && k.mode == Mode::Test)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_api_key",
                "The demo needs a valid test-mode publishable key (pk_test_…).",
            )
        })?;
    // Only the demo tenant's own demo customers: with any other tenant's (public) pk_test_
    // key, or for a customer the caller picks, the demo would hand out customer tokens.
    let demo = sqlx::query_scalar!("SELECT demo FROM tenants WHERE id = $1", id.tenant_id)
        .fetch_optional(&st.pools.primary)
        .await?;
    if demo.is_none_or(|d| !d) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "not_demo_tenant",
            "The demo page serves the demo tenant only (`retentionos-api demo` prints its key).",
        ));
    }
    if !is_demo_customer(&q.customer) {
        return Err(ApiError::invalid_param(
            "customer",
            "the demo signs tokens for cus_demo or cus_demo_<1 to 64 letters, digits, _ or ->",
        ));
    }
    let secrets =
        shared::signing_secrets::usable(&st.pools.primary, &st.master, id.tenant_id, Mode::Test)
            .await?;
    let secret = secrets.first().ok_or_else(|| {
        ApiError::invalid(
            "token_signing_secret_missing",
            "The tenant has no test-mode customer-token signing secret.",
        )
    })?;
    let sub = q
        .subscription
        .unwrap_or_else(|| demo_subscription(&q.customer));
    let claims = shared::widget_token::Claims {
        tid: id.tenant_id,
        cus: q.customer,
        sub: Some(sub),
        exp: chrono::Utc::now().timestamp() + 3600,
        attrs: None,
    };
    let token = shared::widget_token::sign(&claims, secret);
    // The Host header ends up inside the page: only a plain host[:port] is used as is.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() < 256
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("127.0.0.1:8080");
    let base = if st.config.public_base_url.is_empty() {
        format!("http://{host}")
    } else {
        st.config.public_base_url.clone()
    };
    let html = DEMO_HTML
        .replace("{{PUBLISHABLE_KEY}}", &q.pk)
        .replace("{{CUSTOMER_TOKEN}}", &token)
        .replace("{{API_BASE}}", &base)
        .replace("{{WIDGET_HASH}}", widget_hash());
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response())
}
