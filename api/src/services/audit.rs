//! The audit log, read side: one page of rows (newest first, cursor pagination as in the
//! listings) under a filter. `GET /v1/audit_events`, `GET /v1/ops/audit_events` and the
//! dashboard's audit page read it; the rows are written by `shared::audit::record` in each
//! change's own transaction.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::{audit::Filter, tenants::Mode};
use uuid::Uuid;

use super::listings::{decode_cursor, encode_cursor};
use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// An audit listing's query (the routes' query string).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub action: Option<String>,
    pub actor_type: Option<String>,
    pub target_id: Option<String>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lt: Option<DateTime<Utc>>,
    /// Ops listing only.
    pub tenant_id: Option<Uuid>,
    /// Ops listing only.
    pub mode: Option<Mode>,
}

/// One page of the rows `f` selects, narrowed by the query's filters:
/// `{data, has_more, next_cursor}`. The query's `tenant_id` and `mode` are the caller's to
/// put into `f` (or refuse).
pub async fn page(st: &AppState, q: AuditQuery, mut f: Filter) -> ApiResult<Value> {
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
    Ok(json!({
        "data": rows, "has_more": has_more, "next_cursor": next,
    }))
}

/// One page (50, newest first) of a tenant's audit log as its key of `mode` sees it (the
/// dashboard's audit page).
pub async fn tenant_page(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    cursor: Option<String>,
) -> ApiResult<Value> {
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
