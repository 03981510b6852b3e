//! The audit log, read side: `GET /v1/audit_events` (a tenant's own, its key's mode and
//! tenant-wide rows) and `GET /v1/ops/audit_events` (every tenant, ops token). Newest first,
//! cursor pagination as in the other listings. There is no write, update or delete route.
//! The handlers decide whose rows a caller sees; the page is [`crate::services::audit`].

use axum::{extract::State, routing::get, Json, Router};
use serde_json::Value;
use shared::audit::Filter;

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiQuery, OpsAuth, TenantAuth},
    services::audit::{self, AuditQuery},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit_events", get(tenant_audit))
        .route("/v1/ops/audit_events", get(ops_audit))
}

async fn tenant_audit(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
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

async fn ops_audit(
    _ops: OpsAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let f = Filter {
        tenant_id: q.tenant_id,
        mode: q.mode,
        ..Filter::default()
    };
    audit::page(&st, q, f).await.map(Json)
}
