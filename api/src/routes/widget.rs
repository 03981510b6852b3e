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
    session_cache::SessionMeta,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/widget/sessions",
            post(create_session).options(preflight),
        )
        .route(
            "/v1/widget/sessions/{id}/events",
            post(create_event).options(preflight),
        )
        .layer(axum::middleware::from_fn(cors))
        .route("/v1/widget_tokens", post(create_widget_token))
}

/// CORS for the widget routes. A preflight (`OPTIONS`, answered by [`preflight`]) carries
/// no key, so it is allowed only for an origin that some tenant allows (or our own); any
/// other origin gets no CORS headers and the browser blocks the request. The real request
/// is checked against its own tenant's `allowed_origins` by `WidgetAuth` (403 there, and no
/// `Access-Control-Allow-Origin` then).
async fn cors(req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
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

/// Answers a CORS preflight of the widget routes (see [`cors`]).
async fn preflight(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(o) = headers.get(header::ORIGIN) else {
        return res;
    };
    let Ok(origin) = o.to_str() else {
        return res;
    };
    let allowed = crate::extract::same_origin(origin, &headers)
        || match st
            .settings_cache
            .origin_allowed_by_some_tenant(&st.pools.primary, origin)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // No CORS headers: the browser does not send the request (fails closed).
                tracing::warn!(error = %e, "allowed origins unavailable for a preflight");
                false
            }
        };
    if allowed {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-customer-token, x-request-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    res
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    /// The browser's language (used when the token carries none); a string when present.
    #[serde(default, deserialize_with = "shared::text::some_string")]
    language: Option<String>,
}

/// What PostgreSQL knows of the customer, read in one query: the synced user and
/// subscription, and whether a recent save blocks a discount or a pause (the cooldowns).
pub struct CustomerRow {
    user_id: Option<Uuid>,
    user_plan: Option<String>,
    user_region: Option<String>,
    user_mrr: Option<i64>,
    user_created: Option<chrono::DateTime<chrono::Utc>>,
    user_attributes: Option<Value>,
    sub_status: Option<String>,
    sub_plan: Option<String>,
    sub_interval: Option<String>,
    sub_mrr: Option<i64>,
    sub_discounts: Option<Value>,
    recent_discount: bool,
    recent_pause: bool,
    recent_trial_extension: bool,
    recent_plan_change: bool,
}

/// The customer's attributes (the token's, signed by the tenant, over synced Stripe data),
/// their user id, MRR and guardrails.
struct Customer {
    attrs: Map<String, Value>,
    user_id: Option<Uuid>,
    mrr: i64,
    guard: Guardrails,
}

async fn customer(
    st: &AppState,
    auth: &WidgetAuth,
    settings: &shared::tenants::TenantSettings,
    lang: Option<&str>,
) -> ApiResult<Customer> {
    let lookup = json!({
        "t": auth.key.tenant_id, "m": auth.key.mode.as_str(), "c": auth.claims.cus,
        "s": auth.claims.sub, "dd": settings.discount_cooldown_days,
        "pd": settings.pause_cooldown_days, "td": settings.trial_extension_cooldown_days,
        "pcd": settings.plan_change_cooldown_days,
    });
    let row = st.customer_reads.submit(lookup.to_string()).await?;
    let mut attrs = Map::new();
    if let Some(p) = row.user_plan {
        attrs.insert("plan".into(), p.into());
    }
    if let Some(r) = row.user_region {
        attrs.insert("region".into(), r.into());
    }
    if let Some(mrr) = row.user_mrr {
        attrs.insert("mrr_cents".into(), mrr.into());
    }
    if let Some(created) = row.user_created {
        attrs.insert(
            "tenure_days".into(),
            (chrono::Utc::now() - created).num_days().into(),
        );
    }
    if let Some(custom) = row
        .user_attributes
        .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
    {
        attrs.insert("custom".into(), custom);
    }
    let mut active_coupon = false;
    if let Some(status) = row.sub_status {
        attrs.insert("status".into(), status.into());
        if let Some(p) = row.sub_plan {
            attrs.insert("plan".into(), p.into());
        }
        if let Some(i) = row.sub_interval {
            attrs.insert("billing_interval".into(), i.into());
        }
        attrs.insert("mrr_cents".into(), row.sub_mrr.unwrap_or(0).into());
        active_coupon = row
            .sub_discounts
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty());
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
    Ok(Customer {
        attrs,
        user_id: row.user_id,
        mrr,
        guard: Guardrails {
            discount_blocked: row.recent_discount || active_coupon,
            pause_blocked: row.recent_pause,
            trial_extension_blocked: row.recent_trial_extension,
            plan_change_blocked: row.recent_plan_change,
        },
    })
}

/// Starts a session: one read (customer, subscription, cooldowns), the flow from cache, one
/// batched insert that supersedes the customer's open session; 201 once it is committed.
async fn create_session(
    auth: WidgetAuth,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // The body is optional; when present it gets ApiJson's checks (control characters).
    let body: CreateSession = crate::extract::parse_optional_json(&body)?;
    let tenant = auth.key.tenant_id;
    let mode = auth.key.mode;
    let settings = st
        .settings_cache
        .get(&st.pools.primary, tenant, mode)
        .await?;
    let customer = customer(&st, &auth, &settings, body.language.as_deref()).await?;
    let published = st
        .flow_cache
        .published(&st.pools.primary, &st.redis, tenant, mode)
        .await?;
    let chosen = flows::choose_flow(&published, &customer.attrs);
    let session_id = Uuid::now_v7();
    let Some(flow) = chosen else {
        insert_session(&st, &auth, session_id, &customer, None).await?;
        let lang = customer
            .attrs
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
    let rendered = flows::render_for_customer(
        &flow.definition,
        variant.as_deref(),
        holdout,
        customer.guard,
    );
    insert_session(
        &st,
        &auth,
        session_id,
        &customer,
        Some(Started {
            id: flow.id,
            version: flow.version,
            variant: variant.as_deref(),
            holdout,
            offers: rendered.offers().map(|o| o.id.clone()).collect(),
        }),
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

/// Reads what session start needs of many customers in one query (see [`crate::batch`]): one
/// element `{t: tenant, m: mode, c: customer, s: subscription, dd/pd/td/pcd: cooldown days of
/// discounts, pauses, trial extensions and plan changes}` each,
/// one row each, in order.
pub async fn read_customers(
    pool: sqlx::PgPool,
    batch: String,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    sqlx::query_as!(
        CustomerRow,
        r#"SELECT u.id AS "user_id?", u.plan AS user_plan, u.region AS user_region, u.mrr_cents AS "user_mrr?",
                u.created_at AS "user_created?", u.attributes AS "user_attributes?",
                s.status AS "sub_status?", s.plan AS sub_plan, s.billing_interval AS sub_interval,
                s.mrr_cents AS "sub_mrr?", s.discounts AS "sub_discounts?",
                cd.recent_discount AS "recent_discount!", cd.recent_pause AS "recent_pause!",
                cd.recent_trial_extension AS "recent_trial_extension!", cd.recent_plan_change AS "recent_plan_change!"
           FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t uuid, m text, c text, s text, dd integer, pd integer, td integer, pcd integer))
                WITH ORDINALITY AS e(t, m, c, s, dd, pd, td, pcd, ord)
           CROSS JOIN LATERAL (
                SELECT coalesce(bool_or(cs.saved_offer_type = 'discount' AND cs.created_at > now() - make_interval(days => e.dd)), false) AS recent_discount,
                       coalesce(bool_or(cs.saved_offer_type = 'pause' AND cs.created_at > now() - make_interval(days => e.pd)), false) AS recent_pause,
                       coalesce(bool_or(cs.saved_offer_type = 'trial_extension' AND cs.created_at > now() - make_interval(days => e.td)), false) AS recent_trial_extension,
                       coalesce(bool_or(cs.saved_offer_type = 'plan_change' AND cs.created_at > now() - make_interval(days => e.pcd)), false) AS recent_plan_change
                  FROM cancel_sessions cs
                 WHERE cs.tenant_id = e.t AND cs.mode = e.m AND cs.customer_id = e.c AND cs.outcome = 'saved') cd
           LEFT JOIN LATERAL (SELECT * FROM users WHERE tenant_id = e.t AND mode = e.m AND external_id = e.c LIMIT 1) u ON true
           LEFT JOIN LATERAL (SELECT * FROM subscriptions WHERE tenant_id = e.t AND mode = e.m AND stripe_subscription_id = e.s LIMIT 1) s ON true
          ORDER BY e.ord"#,
        batch as _,
    )
    .fetch_all(&pool)
    .await
}

/// Writes batches of new sessions with `record_widget_sessions` (see [`crate::batch`]): one
/// element per session. Each start supersedes the customer's open session (it becomes
/// `abandoned`); the unique index `cancel_sessions_one_open_idx` keeps one open session per
/// customer however many starts race, in one batch or in several (migration
/// 20261202000007: a new customer's start is one plain insert).
pub async fn flush_sessions(pool: sqlx::PgPool, batch: String) -> Result<Vec<()>, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"SELECT record_widget_sessions($1::jsonb) AS "inserted!""#,
        batch as _,
    )
    .fetch_one(&pool)
    .await?;
    // One row per element (no conflict clause): the batcher checks the count.
    Ok(vec![(); inserted.max(0) as usize])
}

/// Writes batches of widget events with `record_widget_events` (one status per element).
pub async fn flush_events(pool: sqlx::PgPool, batch: String) -> Result<Vec<String>, sqlx::Error> {
    let statuses = sqlx::query_scalar!(
        r#"SELECT record_widget_events($1::jsonb) AS "statuses!: sqlx::types::Json<Vec<String>>""#,
        batch as _,
    )
    .fetch_one(&pool)
    .await?;
    Ok(statuses.0)
}

/// The flow a session started with, as rendered for its customer.
struct Started<'a> {
    id: Uuid,
    version: i32,
    variant: Option<&'a str>,
    holdout: bool,
    /// The offer ids rendered (after holdout, variant and guardrails): the only offers the
    /// session's events may name.
    offers: Vec<String>,
}

async fn insert_session(
    st: &AppState,
    auth: &WidgetAuth,
    id: Uuid,
    customer: &Customer,
    flow: Option<Started<'_>>,
) -> ApiResult<()> {
    let holdout = flow.as_ref().is_some_and(|f| f.holdout);
    let meta = SessionMeta {
        tenant_id: auth.key.tenant_id,
        mode: auth.key.mode.as_str().to_string(),
        customer_id: auth.claims.cus.clone(),
        user_id: customer.user_id,
        flow_id: flow.as_ref().map(|f| f.id),
        flow_version: flow.as_ref().map(|f| f.version),
        variant: flow.as_ref().and_then(|f| f.variant).map(str::to_string),
        mrr_cents: customer.mrr,
        rendered_offers: flow.map(|f| f.offers).unwrap_or_default(),
    };
    let row = json!({
        "id": id, "tenant_id": meta.tenant_id, "mode": meta.mode, "user_id": meta.user_id,
        "customer_id": meta.customer_id, "subscription_id": auth.claims.sub,
        "flow_id": meta.flow_id, "flow_version": meta.flow_version, "variant": meta.variant,
        "holdout": holdout, "mrr_cents": meta.mrr_cents,
        "attributes": customer.attrs, "rendered_offers": meta.rendered_offers,
        "ttl_secs": st.config.session_ttl.as_secs_f64(),
    });
    st.session_writes.submit(row.to_string()).await?;
    st.session_cache.insert(id, meta);
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    client_event_id: String,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default, deserialize_with = "shared::text::some_string")]
    reason_code: Option<String>,
    #[serde(default, deserialize_with = "shared::text::some_string")]
    offer_id: Option<String>,
    #[serde(default, deserialize_with = "shared::text::some_string")]
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

/// Records one widget event; 202 once it is committed (in a batch, see [`crate::batch`]).
/// A repeated `client_event_id` is acknowledged again and changes nothing. 409 and nothing
/// stored for an offer the session did not render, an acceptance not for the selected reason
/// or in cooldown (`offer_not_available`), an ended (`session_ended`) or expired
/// (`session_expired`) session.
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
    let mode = auth.key.mode.as_str();
    let session = st
        .session_cache
        .get(&st.pools.primary, tenant, mode, session_id)
        .await?
        .filter(|s| s.customer_id == auth.claims.cus)
        .ok_or_else(|| ApiError::not_found("session"))?;
    let def = match (session.flow_id, session.flow_version) {
        (Some(f), Some(v)) => {
            st.flow_cache
                .version(&st.pools.primary, tenant, auth.key.mode, f, v)
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
    // Only what the session rendered (after holdout, variant and guardrails) can be shown,
    // accepted or declined; the batched write checks it again with reason routing and the
    // cooldowns, under the session and customer locks.
    if let Some(o) = &offer {
        if !session.rendered_offers.contains(&o.id) {
            return Err(not_available("offer_not_rendered", &o.id));
        }
    }
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
    let settings = st
        .settings_cache
        .get(&st.pools.primary, tenant, auth.key.mode)
        .await?;

    // What an accepted offer or a confirmed cancellation changes, decided here; the batched
    // write applies it only if the session has no outcome yet (checked under its row lock).
    let mut outcome = Value::Null;
    let mut offer_state = Value::Null;
    let mut cancel_state = Value::Null;
    let mut job: Option<OutboxEntry> = None;
    let encode = |e: serde_json::Error| ApiError::internal(e);
    match ev.kind {
        EventType::OfferAccepted => {
            let o = offer.as_ref().expect("validated above");
            let (o_outcome, state) = match o.kind {
                OfferType::Redirect => ("deflected", None),
                OfferType::Custom => ("saved", None),
                _ => ("saved", Some("pending")),
            };
            outcome = o_outcome.into();
            if let Some(state) = state {
                offer_state = state.into();
                job = Some(JobClient::outbox_entry(&ApplyOffer { session_id }).map_err(encode)?);
            }
        }
        EventType::CancelConfirmed => {
            let performs = settings.cancel_mode == "cancel_at_period_end";
            cancel_state = if performs { "pending" } else { "recorded" }.into();
            if performs {
                job = Some(
                    JobClient::outbox_entry(&CancelSubscription { session_id }).map_err(encode)?,
                );
            }
        }
        _ => {}
    }
    let job_json = match &job {
        Some(j) => json!({
            "id": j.id, "queue": j.queue, "kind": j.kind,
            "payload": serde_json::from_str::<Value>(&j.payload).map_err(encode)?,
        }),
        None => Value::Null,
    };
    let cooldown_days = offer.as_ref().and_then(|o| match o.kind {
        OfferType::Discount => Some(settings.discount_cooldown_days),
        OfferType::Pause => Some(settings.pause_cooldown_days),
        OfferType::TrialExtension => Some(settings.trial_extension_cooldown_days),
        OfferType::PlanChange => Some(settings.plan_change_cooldown_days),
        OfferType::Redirect | OfferType::Custom => None,
    });
    let item = json!({
        "id": Uuid::now_v7(), "tenant_id": tenant, "mode": mode, "session_id": session_id,
        "customer_id": session.customer_id, "cooldown_days": cooldown_days,
        "client_event_id": ev.client_event_id, "type": ev.kind.as_str(),
        "payload": { "reason_code": ev.reason_code, "offer_id": ev.offer_id, "text": ev.text },
        "reason_code": ev.reason_code, "user_id": session.user_id, "flow_id": session.flow_id,
        "variant": session.variant, "mrr_cents": session.mrr_cents,
        "offer": offer.as_ref().map(|o| json!({
            "id": o.id, "type": o.kind.as_str(), "definition": o, "reason_codes": o.reason_codes,
        })),
        "outcome": outcome, "offer_state": offer_state, "cancel_state": cancel_state,
        "job": job_json,
    });
    let status = st.event_writes.submit(item.to_string()).await?;
    match status.as_str() {
        "duplicate" => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "accepted", "duplicate": true })),
        )),
        "no_session" => Err(ApiError::not_found("session")),
        "session_expired" => Err(ApiError::conflict(
            "session_expired",
            "This session has expired; start a new one.",
        )),
        "offer_not_rendered" | "offer_not_for_reason" | "offer_in_cooldown" => Err(not_available(
            &status,
            ev.offer_id.as_deref().unwrap_or_default(),
        )),
        ended if ended.starts_with("session_ended:") => {
            let outcome = &ended["session_ended:".len()..];
            Err(ApiError::conflict(
                "session_ended",
                format!(
                    "This session already ended with outcome {outcome:?}; nothing was recorded."
                ),
            ))
        }
        "ok" | "ok_job" => {
            if let (Some(entry), "ok_job") = (job, status.as_str()) {
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
        other => Err(ApiError::internal(anyhow::anyhow!(
            "record_widget_events returned {other:?}"
        ))),
    }
}

/// 409 `offer_not_available`: the offer exists in the flow but this session may not use it.
fn not_available(why: &str, offer_id: &str) -> ApiError {
    let message = match why {
        "offer_not_for_reason" => format!(
            "Offer {offer_id:?} is not offered for the reason this session selected."
        ),
        "offer_in_cooldown" => format!(
            "Offer {offer_id:?} is in its cooldown: this customer recently accepted an offer of that type."
        ),
        _ => format!("Offer {offer_id:?} was not shown in this session."),
    };
    ApiError::conflict("offer_not_available", message).with_param("offer_id")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWidgetToken {
    customer_id: String,
    #[serde(default, deserialize_with = "shared::text::some_string")]
    subscription_id: Option<String>,
    /// Lifetime in seconds (default 900, at most 86400).
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

/// Server-side helper: signs a customer token with the tenant's current signing secret of
/// the presented key's mode.
async fn create_widget_token(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
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
    // Read from the database, not the settings cache: right after a rotation without
    // grace, a cached old secret would sign tokens that no longer verify.
    let secrets =
        shared::signing_secrets::usable(&st.pools.primary, &st.master, auth.tenant_id, auth.mode)
            .await?;
    let key = secrets.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request",
            "token_signing_secret_missing",
            "This tenant has no customer-token signing secret for this mode yet: create one with POST /v1/token_signing_secrets/rotate.",
        )
    })?;
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
