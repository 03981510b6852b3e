//! The audit log, read side: `GET /v1/audit_events` (a tenant's own, its key's mode and
//! tenant-wide rows) and `GET /v1/ops/audit_events` (every tenant, ops token). Newest first,
//! cursor pagination as in the other listings. There is no write, update or delete route.

use axum::{extract::State, routing::get, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::{audit::Filter, tenants::Mode};
use uuid::Uuid;

use super::listings::{decode_cursor, encode_cursor};
use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiQuery, OpsAuth, TenantAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit_events", get(tenant_audit))
        .route("/v1/ops/audit_events", get(ops_audit))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    action: Option<String>,
    actor_type: Option<String>,
    target_id: Option<String>,
    created_gte: Option<DateTime<Utc>>,
    created_lt: Option<DateTime<Utc>>,
    /// Ops listing only.
    tenant_id: Option<Uuid>,
    /// Ops listing only.
    mode: Option<Mode>,
}

async fn page(st: &AppState, q: AuditQuery, mut f: Filter) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    f.action = q.action;
    f.actor_type = q.actor_type;
    f.target_id = q.target_id;
    f.since = q.created_gte;
    f.until = q.created_lt;
    f.before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows = shared::audit::list(&st.pools.primary, &f, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = has_more
        .then(|| rows.last().map(|r| encode_cursor(r.created_at, r.id)))
        .flatten();
    Ok(Json(json!({
        "data": rows, "has_more": has_more, "next_cursor": next,
    })))
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
    page(&st, q, f).await
}

/// One page (50, newest first) of a tenant's audit log as its key of `mode` sees it (the
/// dashboard's audit page).
pub async fn tenant_page(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    cursor: Option<String>,
) -> ApiResult<Json<Value>> {
    let f = Filter {
        tenant_id: Some(tenant),
        mode: Some(mode),
        ..Filter::default()
    };
    let q = AuditQuery {
        cursor,
        ..AuditQuery::default()
    };
    page(st, q, f).await
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
    page(&st, q, f).await
}
