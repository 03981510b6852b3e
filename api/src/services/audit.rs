//! The audit log, read side: one page of rows (newest first, cursor pagination as in the
//! listings) under a filter. `GET /v1/audit_events`, `GET /v1/ops/audit_events` and the
//! dashboard's audit page read it; the rows are written by `shared::audit::record` in each
//! change's own transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    audit::{AuditEvent, Filter},
    tenants::Mode,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::listings::{decode_cursor, encode_cursor};
use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// An audit listing's query (the routes' query string; `GET /v1/ops/audit_events`' as
/// documented, `GET /v1/audit_events` documents [`TenantAuditQuery`]).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f]{32}$")]
    pub cursor: Option<String>,
    /// Only this action, exactly (e.g. `settings.update`, `flow.publish`, `api_key.rotate`,
    /// `dead_task.retry`).
    pub action: Option<String>,
    /// Only this actor type, exactly (`api_key`, `ops`, `dashboard_user`, `system`, `cli`;
    /// another value matches nothing).
    pub actor_type: Option<String>,
    /// Only this target, exactly (a flow id, a key id, a queue name, ...).
    pub target_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_gte: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_lt: Option<DateTime<Utc>>,
    /// Ops listing only: one tenant's rows.
    pub tenant_id: Option<Uuid>,
    /// Ops listing only: rows of this mode and rows of no mode.
    #[param(inline)]
    pub mode: Option<Mode>,
}

/// `GET /v1/audit_events`' query, for the document: [`AuditQuery`] less `tenant_id` and
/// `mode`, which a key may not give (400 `parameter_invalid`: a key lists its own tenant's
/// rows of its own mode).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the document only; the route parses `AuditQuery`
pub struct TenantAuditQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f]{32}$")]
    cursor: Option<String>,
    /// Only this action, exactly (e.g. `settings.update`, `flow.publish`, `api_key.rotate`).
    action: Option<String>,
    /// Only this actor type, exactly (`api_key`, `dashboard_user`, `system`, `cli`, `ops`;
    /// another value matches nothing).
    actor_type: Option<String>,
    /// Only this target, exactly (a flow id, a key id, ...).
    target_id: Option<String>,
    /// Created at or after (RFC 3339).
    created_gte: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    created_lt: Option<DateTime<Utc>>,
}

/// One page of the audit log: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEvent>,
    /// Whether older rows follow.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One page of the rows `f` selects, narrowed by the query's filters:
/// `{data, has_more, next_cursor}`. The query's `tenant_id` and `mode` are the caller's to
/// put into `f` (or refuse).
pub async fn page(st: &AppState, q: AuditQuery, mut f: Filter) -> ApiResult<AuditPage> {
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
    let next_cursor = has_more
        .then(|| rows.last().map(|r| encode_cursor(r.created_at, r.id)))
        .flatten();
    Ok(AuditPage {
        data: rows,
        has_more,
        next_cursor,
    })
}

/// One page (50, newest first) of a tenant's audit log as its key of `mode` sees it (the
/// dashboard's audit page), as JSON.
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
    serde_json::to_value(page(st, q, f).await?).map_err(ApiError::internal)
}
