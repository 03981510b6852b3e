//! `POST /v1/widget/sessions`: choose and render the customer's flow (experiment variant,
//! holdout, guardrails) and insert the session through the batched writer (201 once
//! committed); the session is cached for its events.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{db::sessions::SessionRow, flows};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

use super::customer::{customer, Customer};
use crate::{error::ApiResult, extract::WidgetAuth, session_cache::SessionMeta, AppState};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateSession {
    /// The browser's language (used when the token carries none); a string when present.
    #[serde(default, deserialize_with = "shared::text::some_string")]
    #[schema(value_type = String, required = false)]
    language: Option<String>,
}

/// Starts a session: one read (customer, subscription, cooldowns), the flow from cache, one
/// batched insert that supersedes the customer's open session; 201 once it is committed.
#[tracing::instrument(name = "widget.session_start", skip_all, fields(session_id = tracing::field::Empty))]
#[utoipa::path(
    post,
    path = "/v1/widget/sessions",
    operation_id = "create_session",
    tag = "widget",
    summary = "Start a cancel session; returns the flow chosen for this customer",
    description = "A customer has one open session per tenant and mode: a new start supersedes the open one, which becomes abandoned and accepts no more events. The session stores the offers it rendered; it expires SESSION_TTL_SECS (default 24 h) after its start.",
    security(("publishableKey" = [], "customerToken" = [])),
    request_body(content = Option<CreateSession>, description = "Optional: an empty body means {}"),
    responses((status = 201, description = "The session and the flow rendered for this customer", body = SessionStarted))
)]
pub(super) async fn create_session(
    auth: WidgetAuth,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<SessionStarted>)> {
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
    tracing::Span::current().record("session_id", tracing::field::display(session_id));
    let Some(flow) = chosen else {
        insert_session(&st, &auth, session_id, &customer, None).await?;
        let lang = customer
            .attrs
            .get("language")
            .and_then(Value::as_str)
            .unwrap_or("en")
            .to_string();
        let strings = crate::strings::for_language(&lang, &Default::default());
        return Ok((
            StatusCode::CREATED,
            Json(SessionStarted {
                session_id,
                flow: None,
                variant: None,
                holdout: false,
                language: lang,
                strings,
            }),
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
        Json(SessionStarted {
            session_id,
            flow: Some(RenderedFlow {
                id: flow.id,
                version: flow.version,
                language: rendered.language.clone(),
                steps: rendered.steps,
            }),
            variant,
            holdout,
            language: rendered.language,
            strings,
        }),
    ))
}

/// `POST /v1/widget/sessions`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SessionStarted {
    session_id: Uuid,
    /// The flow chosen for this customer, rendered (null when no published flow matches).
    flow: Option<RenderedFlow>,
    /// The experiment variant the customer is in (null without an experiment).
    variant: Option<String>,
    /// The customer is in the experiment's holdout: the flow shows no offers.
    holdout: bool,
    language: String,
    /// The widget's UI strings in `language` (the flow's overrides applied).
    strings: HashMap<String, String>,
}

/// A flow as rendered for one customer: the steps after holdout, variant and guardrails.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RenderedFlow {
    id: Uuid,
    version: i32,
    language: String,
    steps: Vec<flows::Step>,
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
    let row = SessionRow {
        id,
        tenant_id: meta.tenant_id,
        mode: auth.key.mode.as_str(),
        user_id: meta.user_id,
        customer_id: meta.customer_id.clone(),
        subscription_id: auth.claims.sub.clone(),
        flow_id: meta.flow_id,
        flow_version: meta.flow_version,
        variant: meta.variant.clone(),
        holdout,
        mrr_cents: meta.mrr_cents,
        attributes: Value::Object(customer.attrs.clone()),
        rendered_offers: meta.rendered_offers.clone(),
        ttl_secs: st.config.session_ttl.as_secs_f64(),
    };
    st.session_writes.submit(row).await?;
    st.session_cache.insert(id, meta);
    Ok(())
}
