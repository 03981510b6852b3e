//! Cancel sessions as the tenant sees them (outcome, offer state and why).

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
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions/{id}", get(get_session))
}

async fn get_session(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("session"))?;
    let row: Option<(Value,)> = sqlx::query_as(
        "SELECT to_jsonb(s) - 'attributes' - 'offer_params' FROM cancel_sessions s WHERE tenant_id = $1 AND id = $2 AND mode = $3",
    )
    .bind(auth.tenant_id)
    .bind(id)
    .bind(auth.mode.as_str())
    .fetch_optional(&st.pools.primary)
    .await?;
    row.map(|r| Json(r.0))
        .ok_or_else(|| ApiError::not_found("session"))
}
