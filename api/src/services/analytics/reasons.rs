//! Churn reasons: each reason's count and share, against the previous period of the same
//! length (from the hourly reason rollups, cached 1 h), for
//! `GET /v1/analytics/churn-reasons` and the dashboard's overview.

use std::time::Duration;

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{cache::cached, range::range};
use crate::{error::ApiResult, AppState};

/// Churn reasons' counts and shares of a tenant's mode over `from`..`to`, with the previous
/// period of the same length (the API's rules, as [`summary`](super::summary)); the
/// dashboard reads it.
pub async fn churn_reasons(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Value> {
    let r = range(st, (tenant, mode), &from, &to).await?;
    let params = r.key();
    let (pool, mode_key) = (st.pools.read.clone(), mode);
    let mode = mode_key.as_str();
    cached(st, (tenant, mode_key), "churn_reasons", &params, Duration::from_secs(3600), || async move {
        // The trend compares with the previous period of the same length.
        let prev_from = r.from - (r.to - r.from);
        let rows = sqlx::query!(
            r#"SELECT reason_code,
                    coalesce(sum(count) FILTER (WHERE hour >= $2), 0)::bigint AS "count!",
                    coalesce(sum(count) FILTER (WHERE hour < $2), 0)::bigint AS "previous_count!"
               FROM rollup_reasons_hourly WHERE tenant_id = $1 AND mode = $5 AND hour >= $4 AND hour < $3
              GROUP BY reason_code"#,
            tenant,
            r.from,
            r.to,
            prev_from,
            mode,
        )
        .fetch_all(&pool)
        .await?;
        let total: i64 = rows.iter().map(|r| r.count).sum();
        let prev_total: i64 = rows.iter().map(|r| r.previous_count).sum();
        let mut reasons: Vec<Value> = rows
            .iter()
            .filter(|row| row.count > 0 || row.previous_count > 0)
            .map(|row| {
                let (code, n, p) = (&row.reason_code, row.count, row.previous_count);
                let share = if total > 0 { n as f64 / total as f64 } else { 0.0 };
                let prev_share = if prev_total > 0 { p as f64 / prev_total as f64 } else { 0.0 };
                json!({
                    "reason_code": code, "count": n, "share": (share * 10_000.0).round() / 10_000.0,
                    "previous_count": p, "previous_share": (prev_share * 10_000.0).round() / 10_000.0,
                    "share_change": ((share - prev_share) * 10_000.0).round() / 10_000.0,
                })
            })
            .collect();
        reasons.sort_by(|a, b| b["count"].as_i64().cmp(&a["count"].as_i64()).then_with(|| a["reason_code"].as_str().cmp(&b["reason_code"].as_str())));
        Ok(json!({ "from": r.from, "to": r.to, "total": total, "previous_total": prev_total, "reasons": reasons }))
    })
    .await
}
