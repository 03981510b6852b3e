//! The audit log, read side: `GET /v1/audit_events` (a tenant's own, its key's mode and
//! tenant-wide rows) and `GET /v1/ops/audit_events` (every tenant, ops token). Newest first,
//! cursor pagination as in the other listings. There is no write, update or delete route.
//! The handlers decide whose rows a caller sees; the page is [`crate::services::audit`].

use axum::{extract::State, routing::get, Json, Router};
use shared::audit::Filter;

use crate::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiQuery, OpsAuth, TenantAuth},
    services::audit::{self, AuditPage, AuditQuery, TenantAuditQuery},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit_events", get(tenant_audit))
        .route("/v1/ops/audit_events", get(ops_audit))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(tenant_audit, ops_audit))]
pub(crate) struct Doc;

#[utoipa::path(
    get,
    path = "/v1/audit_events",
    operation_id = "tenant_audit",
    tag = "audit",
    summary = "The tenant's audit log: events of the key's mode and tenant-wide events (append-only; no write, update or delete route)",
    description = "Rows of the key's tenant: those of the key's mode and those of no mode (tenant-wide changes). `tenant_id` and `mode` are the ops listing's: a key giving either is a 400 parameter_invalid naming it.",
    security(("secretKey" = [])),
    params(TenantAuditQuery),
    responses(
        (status = 200, description = "One page, newest first", body = AuditPage),
        (status = 400, description = "invalid_query (an unknown parameter, a malformed limit or time: param names it), or parameter_invalid (param limit: outside 1..200; param cursor: not one this API returned; param tenant_id or mode: given)", body = ErrorEnvelope),
    )
)]
async fn tenant_audit(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    if q.tenant_id.is_some() || q.mode.is_some() {
        return Err(ApiError::invalid_param(
            if q.tenant_id.is_some() {
                "tenant_id"
            } else {
                "mode"
            },
            "a key lists its own tenant's audit events of its own mode",
        ));
    }
    let f = Filter {
        tenant_id: Some(auth.tenant_id),
        mode: Some(auth.mode),
        ..Filter::default()
    };
    audit::page(&st, q, f).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/ops/audit_events",
    operation_id = "ops_audit",
    tag = "ops",
    summary = "Every tenant's audit log and the platform's ops actions (ops token; served on OPS_ADDR when set)",
    description = "Every tenant's rows and the platform's (no tenant), narrowed by `tenant_id` and `mode` when given.",
    security(("opsToken" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "One page, newest first", body = AuditPage),
        (status = 400, description = "invalid_query (an unknown parameter, a malformed limit, time, tenant_id or mode: param names it), or parameter_invalid (param limit: outside 1..200; param cursor: not one this API returned)", body = ErrorEnvelope),
    )
)]
async fn ops_audit(
    _ops: OpsAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let f = Filter {
        tenant_id: q.tenant_id,
        mode: q.mode,
        ..Filter::default()
    };
    audit::page(&st, q, f).await.map(Json)
}
