//! The flow builder API (`/v1/flows`): drafts, atomic publishing, kept versions, and copying
//! a tested flow to live ([`copy_to_live`]). Every flow belongs to the mode of the key that
//! created it: a key reads and changes its own mode's flows only (another mode's flow is a
//! 404, like another tenant's). The handlers parse the request and answer; what they do is
//! [`crate::services::flows`] (every change audited in its own transaction).

mod copy_to_live;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    services::flows::{self, FlowRow},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/flows", get(list_flows).post(create_flow))
        .route(
            "/v1/flows/{id}",
            get(get_flow).put(update_flow).delete(delete_flow),
        )
        .route("/v1/flows/{id}/publish", post(publish_flow))
        .route("/v1/flows/{id}/versions", get(list_versions))
        .route(
            "/v1/flows/{id}/copy_to_live",
            post(copy_to_live::copy_to_live),
        )
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("flow"))
}

async fn create_flow(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(def): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<FlowRow>)> {
    let row = flows::create(
        &st,
        (auth.tenant_id, auth.mode),
        &meta.key_actor(&auth),
        def,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

async fn list_flows(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    let rows = flows::list(&st, (auth.tenant_id, auth.mode)).await?;
    Ok(Json(json!({ "data": rows })))
}

async fn get_flow(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowRow>> {
    let id = parse_id(&id)?;
    Ok(Json(
        flows::find(&st, (auth.tenant_id, auth.mode), id).await?,
    ))
}

/// Replaces the draft; the published version is untouched until the next publish.
async fn update_flow(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(def): ApiJson<Value>,
) -> ApiResult<Json<FlowRow>> {
    let id = parse_id(&id)?;
    let row = flows::update(
        &st,
        (auth.tenant_id, auth.mode),
        &meta.key_actor(&auth),
        id,
        def,
    )
    .await?;
    Ok(Json(row))
}

/// Removes the flow (and its published version) from the widget; versions are kept.
async fn delete_flow(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    flows::delete(&st, (auth.tenant_id, auth.mode), &meta.key_actor(&auth), id).await?;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// Publishes the draft as a new immutable version, atomically (one transaction; a default
/// flow takes the default role from the other flows of its mode).
async fn publish_flow(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let version =
        flows::publish(&st, (auth.tenant_id, auth.mode), &meta.key_actor(&auth), id).await?;
    Ok(Json(json!({ "id": id, "published_version": version })))
}

async fn list_versions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let data: Vec<Value> = flows::versions(&st, (auth.tenant_id, auth.mode), id)
        .await?
        .into_iter()
        .map(|v| json!({ "version": v.version, "definition": v.definition, "published_at": v.published_at }))
        .collect();
    Ok(Json(json!({ "data": data })))
}
