//! A tenant's API keys (list, rotate, revoke) and customer-token signing secrets (list,
//! rotate). A key manages keys and secrets of its own mode only; every change is audited.
//! The handlers parse the request and answer; the changes are [`crate::services::keys`].

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
    audit::ReqMeta,
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    services::keys,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list_keys))
        .route("/v1/keys/rotate", post(rotate_key))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/token_signing_secrets", get(list_signing_secrets))
        .route(
            "/v1/token_signing_secrets/rotate",
            post(rotate_signing_secret),
        )
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
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RotateKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = keys::rotate(
        &st,
        (id.tenant_id, id.mode),
        &meta.key_actor(&id),
        body.kind,
        body.grace_seconds,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": key }))))
}

async fn revoke_key(
    TenantAuth(id): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(key_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let key_id = Uuid::parse_str(&key_id).map_err(|_| ApiError::not_found("key"))?;
    keys::revoke(&st, (id.tenant_id, id.mode), &meta.key_actor(&id), key_id).await?;
    Ok(Json(json!({ "id": key_id, "revoked": true })))
}

async fn list_signing_secrets(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    let secrets = shared::signing_secrets::list(&st.pools.primary, id.tenant_id, id.mode).await?;
    Ok(Json(json!({ "data": secrets })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningSecret {
    /// Seconds the old secret keeps verifying tokens (0 = at once). At most 7 days.
    #[serde(default)]
    pub grace_seconds: i64,
}

/// Issues a new customer-token signing secret for the key's mode (shown once) and retires
/// the current one after `grace_seconds`.
async fn rotate_signing_secret(
    TenantAuth(id): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RotateSigningSecret>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let secret = keys::rotate_signing_secret(
        &st,
        (id.tenant_id, id.mode),
        &meta.key_actor(&id),
        body.grace_seconds,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token_signing_secret": secret })),
    ))
}
