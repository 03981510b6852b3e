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

fn session_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("session"))
}

async fn get_session(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    session(&st, (auth.tenant_id, auth.mode), session_id(&id)?)
        .await
        .map(Json)
}

async fn get_timeline(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    timeline(&st, (auth.tenant_id, auth.mode), session_id(&id)?)
        .await
        .map(Json)
}
