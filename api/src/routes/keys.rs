//! A tenant's API keys (list, rotate, revoke) and customer-token signing secrets (list,
//! rotate). A key manages keys and secrets of its own mode only; every change is audited.
//! The handlers parse the request and answer; the changes are [`crate::services::keys`].

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use shared::{
    signing_secrets::{IssuedSigningSecret, SigningSecretInfo},
    tenants::{ApiKeyInfo, IssuedKey, KeyKind},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, TenantAuth},
    routes::DataList,
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

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_keys,
    rotate_key,
    revoke_key,
    list_signing_secrets,
    rotate_signing_secret
))]
pub(crate) struct Doc;

#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "list_keys",
    tag = "keys",
    summary = "List the tenant's keys of the presented key's mode (never the plaintext)",
    description = "Every key of the key's mode, secret and publishable, usable or retired, newest first.",
    security(("secretKey" = [])),
    responses((status = 200, description = "The keys, newest first", body = DataList<ApiKeyInfo>))
)]
async fn list_keys(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<DataList<ApiKeyInfo>>> {
    let data: Vec<_> = shared::tenants::list_keys(&st.pools.primary, id.tenant_id)
        .await?
        .into_iter()
        .filter(|k| k.mode == id.mode.as_str())
        .collect();
    Ok(Json(DataList { data }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Which kind of key to issue (in the presented key's mode); the current keys of that
    /// kind and mode are retired.
    pub kind: KeyKind,
    /// Seconds the old key keeps working (0 = revoked at once). At most 7 days.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800, default = 0)]
    pub grace_seconds: i64,
}

/// `POST /v1/keys/rotate`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct RotatedKey {
    /// The new key (its plaintext shown this once).
    key: IssuedKey,
}

#[utoipa::path(
    post,
    path = "/v1/keys/rotate",
    operation_id = "rotate_key",
    tag = "keys",
    summary = "Issue a new key of a kind and retire the current ones (optionally after a grace period)",
    description = "Issues a key of `kind` in the presented key's mode and retires that kind's current keys of the mode: at once when grace_seconds is 0, otherwise when it ends (an earlier expiry is kept). Rotating the secret key with grace_seconds 0 revokes the key presenting the request too. Audited (api_key.rotate: retired keys by id and display, never the plaintext).",
    security(("secretKey" = [])),
    request_body = RotateKey,
    responses(
        (status = 201, description = "The new key, shown once", body = RotatedKey),
        (status = 400, description = "The body does not parse (malformed_json, unknown_field, missing_field, invalid_field), or parameter_invalid (param grace_seconds) outside 0..604800", body = ErrorEnvelope),
    )
)]
async fn rotate_key(
    TenantAuth(id): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RotateKey>,
) -> ApiResult<(StatusCode, Json<RotatedKey>)> {
    let key = keys::rotate(
        &st,
        (id.tenant_id, id.mode),
        &meta.key_actor(&id),
        body.kind,
        body.grace_seconds,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(RotatedKey { key })))
}

/// `DELETE /v1/keys/{id}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct RevokedKey {
    id: Uuid,
    /// Always true (revoking a revoked key again answers the same).
    revoked: bool,
}

#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    operation_id = "revoke_key",
    tag = "keys",
    summary = "Revoke a key",
    description = "Revokes a key of the presented key's mode at once (a key already revoked stays revoked and answers the same). A key revokes keys of its own mode only: another mode's or tenant's key, or an id that is not a UUID, is a 404 key_not_found. Audited (api_key.revoke).",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked", body = RevokedKey),
        (status = 404, description = "key_not_found: no such key in the key's mode", body = ErrorEnvelope),
    )
)]
async fn revoke_key(
    TenantAuth(id): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(key_id): Path<String>,
) -> ApiResult<Json<RevokedKey>> {
    let key_id = Uuid::parse_str(&key_id).map_err(|_| ApiError::not_found("key"))?;
    keys::revoke(&st, (id.tenant_id, id.mode), &meta.key_actor(&id), key_id).await?;
    Ok(Json(RevokedKey {
        id: key_id,
        revoked: true,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/token_signing_secrets",
    operation_id = "list_signing_secrets",
    tag = "keys",
    summary = "List the tenant's customer-token signing secrets of the presented key's mode (never the plaintext; newest, the one POST /v1/widget_tokens signs with, first)",
    security(("secretKey" = [])),
    responses((status = 200, description = "The signing secrets, newest first", body = DataList<SigningSecretInfo>))
)]
async fn list_signing_secrets(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<DataList<SigningSecretInfo>>> {
    let data = shared::signing_secrets::list(&st.pools.primary, id.tenant_id, id.mode).await?;
    Ok(Json(DataList { data }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningSecret {
    /// Seconds the old secret keeps verifying tokens (0 = at once). At most 7 days.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800, default = 0)]
    pub grace_seconds: i64,
}

/// `POST /v1/token_signing_secrets/rotate`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct RotatedSigningSecret {
    /// The new secret (its plaintext shown this once).
    token_signing_secret: IssuedSigningSecret,
}

/// Issues a new customer-token signing secret for the key's mode (shown once) and retires
/// the current one after `grace_seconds`.
#[utoipa::path(
    post,
    path = "/v1/token_signing_secrets/rotate",
    operation_id = "rotate_signing_secret",
    tag = "keys",
    summary = "Issue a new customer-token signing secret for the key's mode (tsk_test_… / tsk_live_…, shown once) and retire the current ones, at once or after grace_seconds",
    description = "During the grace period tokens signed with the old or the new secret verify; POST /v1/widget_tokens signs with the new one at once. Audited (token_signing_secret.rotate).",
    security(("secretKey" = [])),
    request_body = RotateSigningSecret,
    responses(
        (status = 201, description = "The new secret, shown once", body = RotatedSigningSecret),
        (status = 400, description = "The body does not parse (malformed_json, unknown_field, invalid_field), or parameter_invalid (param grace_seconds) outside 0..604800", body = ErrorEnvelope),
    )
)]
async fn rotate_signing_secret(
    TenantAuth(id): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RotateSigningSecret>,
) -> ApiResult<(StatusCode, Json<RotatedSigningSecret>)> {
    let token_signing_secret = keys::rotate_signing_secret(
        &st,
        (id.tenant_id, id.mode),
        &meta.key_actor(&id),
        body.grace_seconds,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedSigningSecret {
            token_signing_secret,
        }),
    ))
}
