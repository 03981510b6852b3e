//! Tenants: created by ops (`POST /v1/tenants`), read by themselves (`GET /v1/tenant`).

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde::{Deserialize, Serialize};
use shared::tenants::{Mode, Tenant, TenantWithKeys};
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, OpsAuth, TenantAuth},
    routes::DataList,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenant", get(get_tenant))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_tenants, create_tenant, get_tenant))]
pub(crate) struct Doc;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The tenant's name: 1 to 200 characters once leading and trailing white space is
    /// trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// A demo tenant: `/demo` signs customer tokens for its `cus_demo…` customers.
    #[serde(default)]
    #[schema(default = false)]
    pub demo: bool,
}

/// Creates a tenant and returns its four keys and two token signing secrets (shown once).
#[utoipa::path(
    post,
    path = "/v1/tenants",
    operation_id = "create_tenant",
    tag = "tenants",
    summary = "Create a tenant; returns its four keys and its two customer-token signing secrets (token_signing_secrets, tsk_test_…/tsk_live_…), shown once",
    description = "Creates the tenant with a secret and a publishable key and a customer-token signing secret for test and for live mode, and the default settings of each mode. Audited (tenant.create: name and demo flag, never keys or secrets).",
    security(("opsToken" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant with its keys and signing secrets, shown once", body = TenantWithKeys),
        (status = 400, description = "The body does not parse (malformed_json, unknown_field, missing_field, invalid_field), or parameter_invalid (param name): blank or longer than 200 characters once trimmed", body = ErrorEnvelope),
    )
)]
async fn create_tenant(
    _ops: OpsAuth,
    meta: crate::audit::ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantWithKeys>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid_param(
            "name",
            "name must be 1 to 200 characters",
        ));
    }
    let created = shared::tenants::create_tenant_as(
        &st.pools.primary,
        &st.master,
        name,
        body.demo,
        Some(&meta.ops_actor()),
    )
    .await?;
    tracing::info!(tenant_id = %created.tenant.id, demo = body.demo, "tenant created");
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/tenants",
    operation_id = "list_tenants",
    tag = "tenants",
    summary = "List tenants",
    description = "Every tenant, oldest first.",
    security(("opsToken" = [])),
    responses((status = 200, description = "The tenants, oldest first", body = DataList<Tenant>))
)]
async fn list_tenants(
    _ops: OpsAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<DataList<Tenant>>> {
    let data = shared::tenants::list_tenants(&st.pools.primary).await?;
    Ok(Json(DataList { data }))
}

/// `GET /v1/tenant`'s answer.
#[derive(Debug, Serialize, ToSchema)]
struct TenantOfKey {
    tenant: Tenant,
    /// The presented key's mode.
    mode: Mode,
}

/// The tenant behind the presented key, and the key's mode.
#[utoipa::path(
    get,
    path = "/v1/tenant",
    operation_id = "get_tenant",
    tag = "tenants",
    summary = "The tenant behind the presented secret key, and the key's mode",
    security(("secretKey" = [])),
    responses(
        (status = 200, description = "The tenant and the key's mode", body = TenantOfKey),
        (status = 404, description = "tenant_not_found: the key's tenant is gone", body = ErrorEnvelope),
    )
)]
async fn get_tenant(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<TenantOfKey>> {
    let tenant = shared::tenants::get_tenant(&st.pools.primary, id.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(TenantOfKey {
        tenant,
        mode: id.mode,
    }))
}
