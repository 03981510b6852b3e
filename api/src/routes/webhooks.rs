//! Stripe webhooks: verify the signature over the raw body, store the delivery (event id
//! unique per tenant, so duplicates are acknowledged and ignored), enqueue, answer 2xx.
//! Processing (re-fetching from Stripe) happens in the workers. Which event types are acted
//! on is [`crate::services::webhooks::HANDLED`].

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Json, Router,
};
use jobs::{JobClient, ProcessStripeEvent};
use serde::Serialize;
use serde_json::Value;
use shared::{stripe::webhook, tenants::Mode};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    services::webhooks::HANDLED,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/webhooks/stripe/{tenant_id}",
        post(receive_stripe_event),
    )
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive_stripe_event))]
pub(crate) struct Doc;

fn bad(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(code, message)
}

/// A delivery whose signature does not hold, counted by reason.
fn rejected(e: webhook::WebhookError) -> ApiError {
    metrics::counter!("stripe_webhooks_rejected_total", "reason" => format!("{e:?}")).increment(1);
    let code = match e {
        webhook::WebhookError::StaleTimestamp => "stale_signature",
        webhook::WebhookError::SignatureMismatch => "signature_mismatch",
        _ => "malformed_signature",
    };
    bad(code, e.to_string())
}

/// The webhook's answer (Stripe only looks at the status).
#[derive(Debug, Serialize, ToSchema)]
struct WebhookReceived {
    /// Always true.
    received: bool,
    /// Present (true) when the event's type is not one acted on: acknowledged, not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    ignored: Option<bool>,
    /// Present (true) when the event id was already received: acknowledged, not stored again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    duplicate: Option<bool>,
}

impl WebhookReceived {
    fn new() -> Self {
        WebhookReceived {
            received: true,
            ignored: None,
            duplicate: None,
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/stripe/{tenant_id}",
    operation_id = "receive_stripe_event",
    tag = "webhooks",
    summary = "Stripe webhook endpoint (verified with Stripe-Signature)",
    description = "Stripe's delivery as sent: the signature is an HMAC of the raw bytes, so the body is read as bytes (its Content-Type is not checked) and must be a JSON Stripe event with string `id` and `type`; `livemode` picks the mode whose webhook secrets verify it. The header's shape and the body are checked first; a delivery is then charged to the tenant's webhook bucket (RATE_LIMIT_WEBHOOK_PER_SECOND; 429 rate_limited with Retry-After when it is empty), never to the tenant's API or widget budget; then the signature is verified against the mode's webhook signing secrets (none stored: signature_mismatch). A verified event of a type acted on is stored and processed by the workers (re-fetched from Stripe); any other is acknowledged and ignored; a repeated event id is acknowledged once more and not stored again. No authentication: the signature is the proof.",
    params(
        ("tenant_id" = uuid::Uuid, Path, description = "The tenant whose endpoint this is (not a UUID: 404 tenant_not_found)"),
        ("Stripe-Signature" = String, Header, description = "Stripe's signature header: comma-separated `t=<unix seconds>` (exactly one) and `v1=<hex HMAC-SHA256>` items (one or more; `v0` and unknown schemes are ignored)"),
    ),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event object (`id`, `type`, `livemode`, `data.object`, ...), as Stripe signed it"),
    responses(
        (status = 200, description = "WebhookReceived (stored, ignored or a duplicate)", body = WebhookReceived),
        (status = 400, description = "missing_signature (no Stripe-Signature header, or not text), malformed_signature (only white space, not comma-separated key=value items with exactly one integer t, or no v1 item), malformed_event (the body is not JSON, or has no string id or type), signature_mismatch (no v1 signature matches a webhook secret of the event's mode), stale_signature (a v1 signature matches but t is more than 300 seconds from now, either way)", body = ErrorEnvelope),
        (status = 404, description = "tenant_not_found: tenant_id is not a UUID", body = ErrorEnvelope),
    )
)]
async fn receive_stripe_event(
    State(st): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<WebhookReceived>)> {
    let tenant = Uuid::parse_str(&tenant_id).map_err(|_| ApiError::not_found("tenant"))?;
    // Tenant ids are public (this URL, tokens), so everything a stranger can send is turned
    // away before it costs the tenant anything: the header's shape and the body are checked
    // first (free), then the delivery is charged to the tenant's webhook bucket, never to its
    // API or widget budget; only then are the secrets looked up and the signature checked.
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if header.is_empty() {
        return Err(bad(
            "missing_signature",
            "The Stripe-Signature header is missing.",
        ));
    }
    if let Err(e) = webhook::check_header_shape(header) {
        return Err(rejected(e));
    }
    let mut event: Value = serde_json::from_slice(&body)
        .map_err(|_| bad("malformed_event", "The body is not a JSON Stripe event."))?;
    // The stored copy has any NUL escaped (PostgreSQL cannot store it); the signature below
    // is still checked on the raw bytes.
    let escaped = webhook::make_storable(&mut event);
    let (Some(event_id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(bad("malformed_event", "The event has no id or type."));
    };
    let mode = if event["livemode"].as_bool() == Some(true) {
        Mode::Live
    } else {
        Mode::Test
    };
    st.overload
        .limiter
        .check(
            &format!("webhook:{tenant}"),
            st.config.limits.webhook_per_second,
        )
        .map_err(|wait| crate::overload::rate_limited("webhook endpoint", wait))?;
    let secrets = st
        .settings_cache
        .webhook_secrets(&st.pools.primary, &st.master, tenant, mode)
        .await?;
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    if let Err(e) = webhook::verify(
        header,
        &body,
        &refs,
        chrono::Utc::now().timestamp(),
        webhook::DEFAULT_TOLERANCE_SECS,
    ) {
        return Err(rejected(e));
    }
    if escaped {
        metrics::counter!("stripe_webhooks_escaped_total").increment(1);
        tracing::warn!(%tenant, event_id, "verified Stripe event carried NUL characters: stored with U+FFFD");
    }
    if !HANDLED.contains(&kind) {
        return Ok((
            StatusCode::OK,
            Json(WebhookReceived {
                ignored: Some(true),
                ..WebhookReceived::new()
            }),
        ));
    }
    let object_id = event["data"]["object"]["id"].as_str().map(str::to_string);
    // The delivery and its outbox job in one statement (atomic, one round trip): the job is
    // written only when the event id is new.
    let row_id = Uuid::now_v7();
    let entry = JobClient::outbox_entry(&ProcessStripeEvent {
        stripe_event_row: row_id,
    })
    .map_err(ApiError::internal)?;
    let stored = sqlx::query_scalar!(
        r#"WITH ev AS (
            INSERT INTO stripe_events (id, tenant_id, mode, event_id, type, object_id, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id
         ), job AS (
            INSERT INTO job_outbox (id, tenant_id, queue, kind, payload)
            SELECT $8, $2, $9, $10, $11::jsonb FROM ev RETURNING id
         )
         SELECT EXISTS (SELECT 1 FROM job) AS "stored!""#,
        row_id,
        tenant,
        mode.as_str(),
        event_id,
        kind,
        object_id.as_deref(),
        &event,
        entry.id,
        entry.queue,
        entry.kind,
        entry.payload as _,
    )
    .fetch_one(&st.pools.primary)
    .await?;
    if !stored {
        return Ok((
            StatusCode::OK,
            Json(WebhookReceived {
                duplicate: Some(true),
                ..WebhookReceived::new()
            }),
        ));
    }
    if let Err(e) = st.jobs.push_outbox(&entry).await {
        tracing::warn!(job_id = %entry.id, error = %e, "enqueue deferred to the reconciler");
    }
    Ok((StatusCode::OK, Json(WebhookReceived::new())))
}
