//! Cancel sessions as the tenant sees them (outcome, offer state and why), and a session's
//! timeline: every widget event and the background jobs that applied its outcome to Stripe
//! (state, attempts, last error). The handlers parse the id and answer; the reads are
//! [`crate::services::sessions`] (the dashboard's session page reads the same functions).

use axum::{
    extract::{Path, State},
    routing::get,
    Json, Router,
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::TenantAuth,
    services::sessions::{session, timeline},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/sessions/{id}/timeline", get(get_timeline))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_session, get_timeline))]
pub(crate) struct Doc;

fn session_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("session"))
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    operation_id = "get_session",
    tag = "listings",
    summary = "A cancel session with its outcome and offer state",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "The session", body = Session))
)]
async fn get_session(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    session(&st, (auth.tenant_id, auth.mode), session_id(&id)?)
        .await
        .map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/timeline",
    operation_id = "get_timeline",
    tag = "listings",
    summary = "A cancel session's timeline: its widget events and the Stripe jobs that applied its outcome",
    description = "`{session_id, events: [{type, client_event_id, payload, created_at}], jobs: [{id, kind, status (pending|done|dead), attempts, last_error, created_at, finished_at}]}`, oldest first. 404 `session` for another tenant's or mode's session.",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "The timeline", body = Timeline))
)]
async fn get_timeline(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    timeline(&st, (auth.tenant_id, auth.mode), session_id(&id)?)
        .await
        .map(Json)
}

// The answers are built in SQL (`to_jsonb` of the row, `jsonb_build_object`); these types
// describe them for the OpenAPI document.

/// A cancel session: every column of the session but its customer attributes and offer
/// parameters (the listed ones always; later columns appear as they are added).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Session {
    id: Uuid,
    tenant_id: Uuid,
    /// `test` or `live`.
    mode: String,
    user_id: Option<Uuid>,
    customer_id: String,
    subscription_id: Option<String>,
    flow_id: Option<Uuid>,
    flow_version: Option<i32>,
    variant: Option<String>,
    holdout: bool,
    /// `saved`, `canceled`, `deflected`, `abandoned`, or null while open.
    outcome: Option<String>,
    saved_offer_type: Option<String>,
    reason_code: Option<String>,
    /// `pending`, `applied` or `failed` (an accepted offer's application to Stripe).
    offer_state: Option<String>,
    offer_error: Option<String>,
    cancel_state: Option<String>,
    mrr_cents: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A session's timeline, oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Timeline {
    session_id: Uuid,
    events: Vec<TimelineEvent>,
    jobs: Vec<TimelineJob>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TimelineEvent {
    /// The widget event's type (`reason_selected`, `offer_accepted`, ...).
    #[serde(rename = "type")]
    kind: String,
    client_event_id: String,
    #[schema(value_type = Object)]
    payload: Value,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TimelineJob {
    id: Uuid,
    /// `apply_offer` or `cancel_subscription`.
    kind: String,
    /// `pending`, `done` or `dead`.
    status: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}
