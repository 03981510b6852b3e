//! Tenants: created by ops (`POST /v1/tenants`), read by themselves (`GET /v1/tenant`).

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, OpsAuth, TenantAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenant", get(get_tenant))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    /// A demo tenant: `/demo` signs customer tokens for its `cus_demo…` customers.
    #[serde(default)]
    pub demo: bool,
}

/// Creates a tenant and returns its four keys and two token signing secrets (shown once).
async fn create_tenant(
    _ops: OpsAuth,
    meta: crate::audit::ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant": created.tenant,
            "keys": created.keys,
            "token_signing_secrets": created.token_signing_secrets,
        })),
    ))
}

async fn list_tenants(_ops: OpsAuth, State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let tenants = shared::tenants::list_tenants(&st.pools.primary).await?;
    Ok(Json(json!({ "data": tenants })))
}

/// The tenant behind the presented key, and the key's mode.
async fn get_tenant(
    TenantAuth(id): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    let tenant = shared::tenants::get_tenant(&st.pools.primary, id.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(json!({ "tenant": tenant, "mode": id.mode })))
}
