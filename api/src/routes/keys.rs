//! A tenant's API keys: list, rotate, revoke. A key manages keys of its own mode only.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::tenants::KeyKind;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list_keys))
        .route("/v1/keys/rotate", post(rotate_key))
        .route("/v1/keys/{id}", delete(revoke_key))
}

async fn list_keys(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    let keys: Vec<_> = shared::tenants::list_keys(&st.pools.primary, id.tenant_id)
        .await?
        .into_iter()
        .filter(|k| k.mode == id.mode.as_str())
        .collect();
    Ok(Json(json!({ "data": keys })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    pub kind: KeyKind,
    /// Seconds the old key keeps working (0 = revoked at once). At most 7 days.
    #[serde(default)]
    pub grace_seconds: i64,
}

async fn rotate_key(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RotateKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !(0..=7 * 86_400).contains(&body.grace_seconds) {
        return Err(ApiError::invalid_param(
            "grace_seconds",
            "grace_seconds must be between 0 and 604800",
        ));
    }
    let key = shared::tenants::rotate_key(
        &st.pools.primary,
        &st.master,
        id.tenant_id,
        body.kind,
        id.mode,
        body.grace_seconds,
    )
    .await?;
    st.auth_cache.forget_tenant(id.tenant_id);
    st.settings_cache.forget(id.tenant_id);
    Ok((StatusCode::CREATED, Json(json!({ "key": key }))))
}

async fn revoke_key(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
    Path(key_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let key_id = Uuid::parse_str(&key_id).map_err(|_| ApiError::not_found("key"))?;
    let own_mode = shared::tenants::list_keys(&st.pools.primary, id.tenant_id)
        .await?
        .into_iter()
        .any(|k| k.id == key_id && k.mode == id.mode.as_str());
    if !own_mode || !shared::tenants::revoke_key(&st.pools.primary, id.tenant_id, key_id).await? {
        return Err(ApiError::not_found("key"));
    }
    st.auth_cache.forget_tenant(id.tenant_id);
    st.settings_cache.forget(id.tenant_id);
    Ok(Json(json!({ "id": key_id, "revoked": true })))
}
