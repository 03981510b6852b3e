//! Cancel sessions as the tenant sees them (outcome, offer state and why), and a session's
//! timeline: every widget event and the background jobs that applied its outcome to Stripe
//! (state, attempts, last error). `GET /v1/sessions/{id}`, `GET /v1/sessions/{id}/timeline`
//! and the dashboard's session page read these functions.

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// A session of a tenant's mode (404 `session` when it is another tenant's or mode's).
pub async fn session(st: &AppState, (tenant, mode): (Uuid, Mode), id: Uuid) -> ApiResult<Value> {
    sqlx::query_scalar!(
        r#"SELECT to_jsonb(s) - 'attributes' - 'offer_params' AS "session!" FROM cancel_sessions s WHERE tenant_id = $1 AND id = $2 AND mode = $3"#,
        tenant,
        id,
        mode.as_str(),
    )
    .fetch_optional(&st.pools.primary)
    .await?
    .ok_or_else(|| ApiError::not_found("session"))
}

/// `{events: [{type, client_event_id, payload, created_at}], jobs: [{kind, status, attempts,
/// last_error, created_at, finished_at}]}`, oldest first.
pub async fn timeline(st: &AppState, who: (Uuid, Mode), id: Uuid) -> ApiResult<Value> {
    // The session must be the caller's (tenant and mode) before anything of it is read.
    session(st, who, id).await?;
    let events = sqlx::query_scalar!(
        r#"SELECT coalesce(jsonb_agg(jsonb_build_object('type', type, 'client_event_id', client_event_id,
                'payload', payload, 'created_at', created_at) ORDER BY created_at, id), '[]'::jsonb) AS "events!"
           FROM session_events WHERE tenant_id = $1 AND session_id = $2"#,
        who.0,
        id,
    )
    .fetch_one(&st.pools.primary)
    .await?;
    let jobs = sqlx::query_scalar!(
        r#"SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'kind', kind, 'status', status,
                'attempts', attempts, 'last_error', last_error, 'created_at', created_at,
                'finished_at', finished_at) ORDER BY created_at, id), '[]'::jsonb) AS "jobs!"
           FROM job_outbox
          WHERE tenant_id = $1 AND kind IN ('apply_offer', 'cancel_subscription')
            AND payload->>'session_id' = $2::text
          -- job_outbox_session_idx"#,
        who.0,
        id as _,
    )
    .fetch_one(&st.pools.primary)
    .await?;
    Ok(json!({ "session_id": id, "events": events, "jobs": jobs }))
}
