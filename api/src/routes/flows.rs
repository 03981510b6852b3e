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
use serde::Serialize;
use serde_json::Value;
use shared::flows::FlowDefinition;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, TenantAuth},
    routes::DataList,
    services::flows::{self, FlowRow, FlowVersion},
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

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_flows,
    create_flow,
    get_flow,
    update_flow,
    delete_flow,
    publish_flow,
    list_versions,
    copy_to_live::copy_to_live
))]
pub(crate) struct Doc;

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("flow"))
}

#[utoipa::path(
    post,
    path = "/v1/flows",
    operation_id = "create_flow",
    tag = "flows",
    summary = "Create a flow (draft)",
    description = "Creates a draft flow in the key's mode. Audited (flow.create).",
    security(("secretKey" = [])),
    request_body = FlowDefinition,
    responses(
        (status = 201, description = "The flow, with its draft", body = FlowRow),
        (status = 400, description = "The definition is invalid (param names the field)", body = ErrorEnvelope),
    )
)]
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

#[utoipa::path(
    get,
    path = "/v1/flows",
    operation_id = "list_flows",
    tag = "flows",
    summary = "List flows",
    description = "The flows of the key's mode (test or live) only.",
    security(("secretKey" = [])),
    responses((status = 200, description = "The flows", body = DataList<FlowRow>))
)]
async fn list_flows(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<DataList<FlowRow>>> {
    let data = flows::list(&st, (auth.tenant_id, auth.mode)).await?;
    Ok(Json(DataList { data }))
}

#[utoipa::path(
    get,
    path = "/v1/flows/{id}",
    operation_id = "get_flow",
    tag = "flows",
    summary = "Get a flow",
    description = "A flow of the key's mode; another mode's or tenant's flow is a 404 flow_not_found.",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "The flow", body = FlowRow))
)]
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
#[utoipa::path(
    put,
    path = "/v1/flows/{id}",
    operation_id = "update_flow",
    tag = "flows",
    summary = "Replace a flow's draft",
    description = "Replaces the draft of a flow of the key's mode; another mode's flow is a 404. Audited (flow.update, before/after summary).",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    request_body = FlowDefinition,
    responses(
        (status = 200, description = "The flow, with its new draft", body = FlowRow),
        (status = 400, description = "The definition is invalid (param names the field)", body = ErrorEnvelope),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/flows/{id}",
    operation_id = "delete_flow",
    tag = "flows",
    summary = "Delete a flow (versions are kept)",
    description = "Deletes a flow of the key's mode (versions are kept); another mode's flow is a 404. Audited (flow.delete).",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "Deleted", body = Deleted))
)]
async fn delete_flow(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    let id = parse_id(&id)?;
    flows::delete(&st, (auth.tenant_id, auth.mode), &meta.key_actor(&auth), id).await?;
    Ok(Json(Deleted { id, deleted: true }))
}

/// Publishes the draft as a new immutable version, atomically (one transaction; a default
/// flow takes the default role from the other flows of its mode).
#[utoipa::path(
    post,
    path = "/v1/flows/{id}/publish",
    operation_id = "publish_flow",
    tag = "flows",
    summary = "Publish the draft as a new version (atomic)",
    description = "Publishes the draft of a flow of the key's mode; a default flow takes the default role among that mode's flows. Only sessions of that mode see it. Another mode's flow is a 404. Audited (flow.publish).",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "The new version's number", body = Published))
)]
async fn publish_flow(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Published>> {
    let id = parse_id(&id)?;
    let published_version =
        flows::publish(&st, (auth.tenant_id, auth.mode), &meta.key_actor(&auth), id).await?;
    Ok(Json(Published {
        id,
        published_version,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/flows/{id}/versions",
    operation_id = "list_versions",
    tag = "flows",
    summary = "List published versions",
    description = "The published versions of a flow of the key's mode; another mode's flow is a 404.",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "Newest first", body = DataList<FlowVersion>))
)]
async fn list_versions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DataList<FlowVersion>>> {
    let id = parse_id(&id)?;
    let data = flows::versions(&st, (auth.tenant_id, auth.mode), id).await?;
    Ok(Json(DataList { data }))
}

/// `DELETE /v1/flows/{id}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct Deleted {
    id: Uuid,
    deleted: bool,
}

/// `POST /v1/flows/{id}/publish`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct Published {
    id: Uuid,
    /// The version just published.
    published_version: i32,
}
