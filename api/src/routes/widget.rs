//! The widget API (publishable key + customer token): start a cancel session with the flow
//! chosen for this customer, and record its events durably (202 once committed).

use axum::{
    extract::{Path, Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use jobs::{ApplyOffer, CancelSubscription, JobClient, OutboxEntry};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::{
    flows::{self, Guardrails, OfferType, Step},
    widget_token::Claims,
};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth, WidgetAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/widget/sessions", post(create_session))
        .route("/v1/widget/sessions/{id}/events", post(create_event))
        .layer(axum::middleware::from_fn(cors))
        .route("/v1/widget_tokens", post(create_widget_token))
}

/// CORS for the widget routes. Preflights carry no key, so they are answered generously;
/// the real request is checked against the tenant's `allowed_origins` by `WidgetAuth`.
async fn cors(req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if req.method() == Method::OPTIONS {
        let mut res = StatusCode::NO_CONTENT.into_response();
        if let Some(o) = origin {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "authorization, content-type, x-customer-token, x-request-id",
                ),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        return res;
    }
    let mut res = next.run(req).await;
    if let Some(o) = origin {
        if res.status() != StatusCode::FORBIDDEN {
            res.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    res
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    /// The browser's language (used when the token carries none).
    #[serde(default)]
    language: Option<String>,
}

/// Customer attributes: the token's (signed by the tenant) over synced Stripe data.
async fn customer_attributes(
    st: &AppState,
    auth: &WidgetAuth,
    lang: Option<&str>,
) -> ApiResult<(Map<String, Value>, Option<Uuid>, i64, bool)> {
    let mut attrs = Map::new();
    let user: Option<(Uuid, Option<String>, Option<String>, i64, chrono::DateTime<chrono::Utc>, Value)> = sqlx::query_as(
        "SELECT id, plan, region, mrr_cents, created_at, attributes FROM users WHERE tenant_id = $1 AND mode = $2 AND external_id = $3",
    )
    .bind(auth.key.tenant_id)
    .bind(auth.key.mode.as_str())
    .bind(&auth.claims.cus)
    .fetch_optional(&st.pools.primary)
    .await?;
    let mut user_id = None;
    if let Some((id, plan, region, mrr, created, custom)) = user {
        user_id = Some(id);
        if let Some(p) = plan {
            attrs.insert("plan".into(), p.into());
        }
        if let Some(r) = region {
            attrs.insert("region".into(), r.into());
        }
        attrs.insert("mrr_cents".into(), mrr.into());
        attrs.insert(
            "tenure_days".into(),
            (chrono::Utc::now() - created).num_days().into(),
        );
        if custom.as_object().is_some_and(|o| !o.is_empty()) {
            attrs.insert("custom".into(), custom);
        }
    }
    let mut active_coupon = false;
    if let Some(sub) = &auth.claims.sub {
        let row: Option<(String, Option<String>, Option<String>, i64, Value)> = sqlx::query_as(
            "SELECT status, plan, billing_interval, mrr_cents, discounts FROM subscriptions WHERE tenant_id = $1 AND stripe_subscription_id = $2",
        )
        .bind(auth.key.tenant_id)
        .bind(sub)
        .fetch_optional(&st.pools.primary)
        .await?;
        if let Some((status, plan, interval, mrr, discounts)) = row {
            attrs.insert("status".into(), status.into());
            if let Some(p) = plan {
                attrs.insert("plan".into(), p.into());
            }
            if let Some(i) = interval {
                attrs.insert("billing_interval".into(), i.into());
            }
            attrs.insert("mrr_cents".into(), mrr.into());
            active_coupon = discounts.as_array().is_some_and(|d| !d.is_empty());
        }
    }
    if let Some(token_attrs) = &auth.claims.attrs {
        for (k, v) in token_attrs {
            attrs.insert(k.clone(), v.clone());
        }
    }
    if !attrs.contains_key("language") {
        if let Some(l) = lang {
            attrs.insert(
                "language".into(),
                l.split(['-', '_']).next().unwrap_or("en").into(),
            );
        }
    }
    if attrs.get("has_active_discount").and_then(Value::as_bool) == Some(true) {
        active_coupon = true;
    }
    let mrr = attrs.get("mrr_cents").and_then(Value::as_i64).unwrap_or(0);
    Ok((attrs, user_id, mrr, active_coupon))
}

async fn create_session(
    auth: WidgetAuth,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: CreateSession = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSession::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?
    };
    let tenant = auth.key.tenant_id;
    let (attrs, user_id, mrr, active_coupon) =
        customer_attributes(&st, &auth, body.language.as_deref()).await?;
    let published = st
        .flow_cache
        .published(&st.pools.primary, &st.redis, tenant)
        .await?;
    let chosen = flows::choose_flow(&published, &attrs);
    let session_id = Uuid::now_v7();
    let Some(flow) = chosen else {
        insert_session(&st, &auth, session_id, user_id, None, mrr, &attrs).await?;
        let lang = attrs
            .get("language")
            .and_then(Value::as_str)
            .unwrap_or("en")
            .to_string();
        return Ok((
            StatusCode::CREATED,
            Json(json!({
                "session_id": session_id, "flow": null, "variant": null, "holdout": false,
                "language": lang, "strings": crate::strings::for_language(&lang, &Default::default()),
            })),
        ));
    };
    let (variant, holdout) = flows::assign(
        flow.definition.experiment.as_ref(),
        flow.id,
        &auth.claims.cus,
    );
    let settings = st.settings_cache.get(&st.pools.primary, tenant).await?;
    let (recent_discount, recent_pause): (bool, bool) = sqlx::query_as(
        "SELECT coalesce(bool_or(saved_offer_type = 'discount' AND created_at > now() - make_interval(days => $4)), false),
                coalesce(bool_or(saved_offer_type = 'pause' AND created_at > now() - make_interval(days => $5)), false)
           FROM cancel_sessions
          WHERE tenant_id = $1 AND mode = $2 AND customer_id = $3 AND outcome = 'saved'",
    )
    .bind(tenant)
    .bind(auth.key.mode.as_str())
    .bind(&auth.claims.cus)
    .bind(settings.discount_cooldown_days as i32)
    .bind(settings.pause_cooldown_days as i32)
    .fetch_one(&st.pools.primary)
    .await?;
    let guard = Guardrails {
        discount_blocked: recent_discount || active_coupon,
        pause_blocked: recent_pause,
    };
    let rendered = flows::render_for_customer(&flow.definition, variant.as_deref(), holdout, guard);
    insert_session(
        &st,
        &auth,
        session_id,
        user_id,
        Some((flow.id, flow.version, variant.as_deref(), holdout)),
        mrr,
        &attrs,
    )
    .await?;
    let strings = crate::strings::for_language(&rendered.language, &rendered.strings);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "session_id": session_id,
            "flow": { "id": flow.id, "version": flow.version, "language": rendered.language, "steps": rendered.steps },
            "variant": variant,
            "holdout": holdout,
            "language": rendered.language,
            "strings": strings,
        })),
    ))
}

async fn insert_session(
    st: &AppState,
    auth: &WidgetAuth,
    id: Uuid,
    user_id: Option<Uuid>,
    flow: Option<(Uuid, i32, Option<&str>, bool)>,
    mrr: i64,
    attrs: &Map<String, Value>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO cancel_sessions (id, tenant_id, mode, user_id, customer_id, subscription_id, flow_id, flow_version, variant, holdout, mrr_cents, attributes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(auth.key.tenant_id)
    .bind(auth.key.mode.as_str())
    .bind(user_id)
    .bind(&auth.claims.cus)
    .bind(&auth.claims.sub)
    .bind(flow.map(|f| f.0))
    .bind(flow.map(|f| f.1))
    .bind(flow.and_then(|f| f.2))
    .bind(flow.map(|f| f.3).unwrap_or(false))
    .bind(mrr)
    .bind(Value::Object(attrs.clone()))
    .execute(&st.pools.primary)
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    client_event_id: String,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default)]
    reason_code: Option<String>,
    #[serde(default)]
    offer_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum EventType {
    ReasonSelected,
    Feedback,
    OfferShown,
    OfferAccepted,
    OfferDeclined,
    CancelConfirmed,
    Abandoned,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::ReasonSelected => "reason_selected",
            EventType::Feedback => "feedback",
            EventType::OfferShown => "offer_shown",
            EventType::OfferAccepted => "offer_accepted",
            EventType::OfferDeclined => "offer_declined",
            EventType::CancelConfirmed => "cancel_confirmed",
            EventType::Abandoned => "abandoned",
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_id: Option<Uuid>,
    customer_id: String,
    flow_id: Option<Uuid>,
    flow_version: Option<i32>,
    variant: Option<String>,
    outcome: Option<String>,
    mrr_cents: i64,
}

/// Records one widget event; 202 once it is committed. A repeated `client_event_id` is
/// acknowledged again and changes nothing.
async fn create_event(
    auth: WidgetAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(ev): ApiJson<EventBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let session_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("session"))?;
    if ev.client_event_id.is_empty() || ev.client_event_id.len() > 100 {
        return Err(ApiError::invalid_param(
            "client_event_id",
            "client_event_id must be 1 to 100 characters",
        ));
    }
    if ev.text.as_ref().is_some_and(|t| t.chars().count() > 5000) {
        return Err(ApiError::invalid_param(
            "text",
            "text must be at most 5000 characters",
        ));
    }
    let tenant = auth.key.tenant_id;
    let session: SessionRow = sqlx::query_as(
        "SELECT user_id, customer_id, flow_id, flow_version, variant, outcome, mrr_cents FROM cancel_sessions
          WHERE tenant_id = $1 AND id = $2 AND mode = $3",
    )
    .bind(tenant)
    .bind(session_id)
    .bind(auth.key.mode.as_str())
    .fetch_optional(&st.pools.primary)
    .await?
    .filter(|s: &SessionRow| s.customer_id == auth.claims.cus)
    .ok_or_else(|| ApiError::not_found("session"))?;
    let def = match (session.flow_id, session.flow_version) {
        (Some(f), Some(v)) => {
            st.flow_cache
                .version(&st.pools.primary, tenant, f, v)
                .await?
        }
        _ => None,
    };
    // Validate references against the session's flow version.
    let offer = match (ev.kind, &ev.offer_id) {
        (EventType::OfferShown | EventType::OfferAccepted | EventType::OfferDeclined, None) => {
            return Err(ApiError::invalid_param(
                "offer_id",
                "offer events need offer_id",
            ));
        }
        (
            EventType::OfferShown | EventType::OfferAccepted | EventType::OfferDeclined,
            Some(oid),
        ) => Some(
            def.as_ref()
                .and_then(|d| d.offer(oid).cloned())
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "offer_id",
                        format!("the session's flow has no offer {oid:?}"),
                    )
                })?,
        ),
        _ => None,
    };
    if ev.kind == EventType::ReasonSelected {
        let code = ev.reason_code.as_deref().ok_or_else(|| {
            ApiError::invalid_param("reason_code", "reason_selected needs reason_code")
        })?;
        let known = def.as_ref().is_some_and(|d| {
            d.steps.iter().any(|s| matches!(s, Step::Survey(survey) if survey.reasons.iter().any(|r| r.code == code)))
        });
        if !known {
            return Err(ApiError::invalid_param(
                "reason_code",
                format!("the session's flow has no reason {code:?}"),
            ));
        }
    }
    let settings = st.settings_cache.get(&st.pools.primary, tenant).await?;

    let mut tx = st.pools.primary.begin().await?;
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO session_events (id, tenant_id, session_id, client_event_id, type, payload)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id, client_event_id) DO NOTHING RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(session_id)
    .bind(&ev.client_event_id)
    .bind(ev.kind.as_str())
    .bind(json!({ "reason_code": ev.reason_code, "offer_id": ev.offer_id, "text": ev.text }))
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        tx.rollback().await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "accepted", "duplicate": true })),
        ));
    }
    let ended = session.outcome.as_deref().is_some_and(|o| o != "abandoned");
    let mut outbox: Option<OutboxEntry> = None;
    match ev.kind {
        EventType::ReasonSelected => {
            sqlx::query("INSERT INTO churn_reasons (tenant_id, user_id, session_id, reason_code, mode) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant).bind(session.user_id).bind(session_id).bind(&ev.reason_code).bind(auth.key.mode.as_str())
                .execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE cancel_sessions SET reason_code = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(session_id)
            .bind(&ev.reason_code)
            .execute(&mut *tx)
            .await?;
        }
        EventType::OfferShown | EventType::OfferAccepted => {
            let o = offer.as_ref().expect("validated above");
            let accepted = ev.kind == EventType::OfferAccepted;
            if accepted && ended {
                return Err(ApiError::conflict(
                    "session_ended",
                    "This session already has an outcome.",
                ));
            }
            sqlx::query(
                "INSERT INTO offer_events (tenant_id, user_id, flow_id, session_id, variant, offer_id, offer_type, accepted, mrr_cents, mode)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(tenant).bind(session.user_id).bind(session.flow_id).bind(session_id).bind(&session.variant)
            .bind(&o.id).bind(o.kind.as_str()).bind(accepted).bind(if accepted { session.mrr_cents } else { 0 })
            .bind(auth.key.mode.as_str())
            .execute(&mut *tx).await?;
            if accepted {
                let (outcome, state) = match o.kind {
                    OfferType::Redirect => ("deflected", None),
                    OfferType::Custom => ("saved", None),
                    _ => ("saved", Some("pending")),
                };
                sqlx::query(
                    "UPDATE cancel_sessions SET outcome = $3, saved_offer_type = $4, accepted_offer = $5, offer_state = $6, ended_at = now()
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant).bind(session_id).bind(outcome).bind(o.kind.as_str())
                .bind(serde_json::to_value(o).map_err(ApiError::internal)?).bind(state)
                .execute(&mut *tx).await?;
                if state.is_some() {
                    outbox = Some(
                        JobClient::record_durable(
                            &mut tx,
                            Some(tenant),
                            &ApplyOffer { session_id },
                        )
                        .await?,
                    );
                }
            }
        }
        EventType::CancelConfirmed => {
            if !ended {
                let performs = settings.cancel_mode == "cancel_at_period_end";
                sqlx::query(
                    "UPDATE cancel_sessions SET outcome = 'canceled', ended_at = now(), cancel_state = $3 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant).bind(session_id).bind(if performs { "pending" } else { "recorded" })
                .execute(&mut *tx).await?;
                if performs {
                    outbox = Some(
                        JobClient::record_durable(
                            &mut tx,
                            Some(tenant),
                            &CancelSubscription { session_id },
                        )
                        .await?,
                    );
                }
            }
        }
        EventType::Abandoned => {
            sqlx::query("UPDATE cancel_sessions SET outcome = 'abandoned', ended_at = now() WHERE tenant_id = $1 AND id = $2 AND outcome IS NULL")
                .bind(tenant).bind(session_id)
                .execute(&mut *tx).await?;
        }
        EventType::Feedback | EventType::OfferDeclined => {}
    }
    tx.commit().await?;
    if let Some(entry) = outbox {
        if let Err(e) = st.jobs.push_outbox(&entry).await {
            // Committed: the reconciler enqueues it if Redis is unavailable now.
            tracing::warn!(job_id = %entry.id, error = %e, "enqueue deferred to the reconciler");
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "duplicate": false })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWidgetToken {
    customer_id: String,
    #[serde(default)]
    subscription_id: Option<String>,
    /// Lifetime in seconds (default 900, at most 86400).
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

/// Server-side helper: signs a customer token with the presented secret key.
async fn create_widget_token(
    TenantAuth(auth): TenantAuth,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<CreateWidgetToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.customer_id.is_empty() || body.customer_id.len() > 255 {
        return Err(ApiError::invalid_param(
            "customer_id",
            "customer_id must be 1 to 255 characters",
        ));
    }
    let ttl = body.expires_in.unwrap_or(900);
    if !(1..=shared::widget_token::MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::invalid_param(
            "expires_in",
            "expires_in must be between 1 and 86400 seconds",
        ));
    }
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let exp = chrono::Utc::now().timestamp() + ttl;
    let claims = Claims {
        tid: auth.tenant_id,
        cus: body.customer_id,
        sub: body.subscription_id,
        exp,
        attrs: body.attributes,
    };
    let token = shared::widget_token::sign(&claims, key);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "expires_at": exp })),
    ))
}
