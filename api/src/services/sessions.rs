//! Cancel sessions as the tenant sees them (outcome, offer state and why), and a session's
//! timeline: every widget event and the background jobs that applied its outcome to Stripe
//! (state, attempts, last error). `GET /v1/sessions/{id}`, `GET /v1/sessions/{id}/timeline`
//! and the dashboard's session page read these functions (SQL: `shared::db::sessions`,
//! `jobs::outbox`).

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// A session of a tenant's mode (404 `session` when it is another tenant's or mode's).
pub async fn session(st: &AppState, (tenant, mode): (Uuid, Mode), id: Uuid) -> ApiResult<Value> {
    shared::db::sessions::session_json(&st.pools.primary, tenant, mode.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

/// `{events: [{type, client_event_id, payload, created_at}], jobs: [{kind, status, attempts,
/// last_error, created_at, finished_at}]}`, oldest first.
pub async fn timeline(st: &AppState, who: (Uuid, Mode), id: Uuid) -> ApiResult<Value> {
    // The session must be the caller's (tenant and mode) before anything of it is read.
    session(st, who, id).await?;
    let events = shared::db::sessions::events_json(&st.pools.primary, who.0, id).await?;
    let jobs = jobs::outbox::session_jobs_json(&st.pools.primary, who.0, id).await?;
    Ok(json!({ "session_id": id, "events": events, "jobs": jobs }))
}
