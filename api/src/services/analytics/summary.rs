//! The summary: sessions by outcome, saves by offer type, save rate, saved MRR and validated
//! saves (from the hourly session rollups, cached 1 h), for `GET /v1/analytics/summary` and
//! the dashboard's overview.

use std::time::Duration;

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{cache::cached, range::range, rate};
use crate::{error::ApiResult, AppState};

/// The summary of a tenant's mode over `from`..`to` (the API's rules: default last 30 days,
/// local dates in the tenant's time zone); the dashboard's overview reads it too.
pub async fn summary(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Value> {
    let r = range(st, (tenant, mode), &from, &to).await?;
    let params = r.key();
    let pool = st.pools.read.clone();
    cached(st, (tenant, mode), "summary", &params, Duration::from_secs(3600), || async move {
        let rows = sqlx::query!(
            r#"SELECT outcome, saved_offer_type, sum(sessions)::bigint AS "sessions!",
                      sum(saved_mrr_cents)::bigint AS "saved_mrr_cents!", sum(validated)::bigint AS "validated!"
               FROM rollup_sessions_hourly WHERE tenant_id = $1 AND mode = $4 AND hour >= $2 AND hour < $3
              GROUP BY outcome, saved_offer_type"#,
            tenant,
            r.from,
            r.to,
            mode.as_str(),
        )
        .fetch_all(&pool)
        .await?;
        let mut by_outcome = std::collections::BTreeMap::<String, i64>::new();
        let mut saves_by_type = serde_json::Map::new();
        let (mut saved_mrr, mut validated, mut sessions) = (0i64, 0i64, 0i64);
        for row in rows {
            let n = row.sessions;
            sessions += n;
            *by_outcome.entry(row.outcome.clone()).or_default() += n;
            if row.outcome == "saved" {
                saved_mrr += row.saved_mrr_cents;
                validated += row.validated;
                let e = saves_by_type.entry(row.saved_offer_type).or_insert(json!(0));
                *e = json!(e.as_i64().unwrap_or(0) + n);
            }
        }
        let get = |k: &str| by_outcome.get(k).copied().unwrap_or(0);
        let (saved, canceled, deflected) = (get("saved"), get("canceled"), get("deflected"));
        let decided = saved + canceled + deflected;
        Ok(json!({
            "from": r.from, "to": r.to, "timezone": r.tz,
            "sessions": sessions,
            "saved": saved,
            "saves_by_offer_type": saves_by_type,
            "canceled": canceled,
            "deflected": deflected,
            "abandoned": get("abandoned"),
            "in_progress": get("in_progress"),
            "save_rate": rate(saved, decided),
            "saved_mrr_cents": saved_mrr,
            "validated_saves": validated,
            "validated_save_rate": rate(validated, saved),
            "definitions": {
                "save_rate": "saved / (saved + canceled + deflected); abandoned and in-progress sessions are never counted as saved",
            },
        }))
    })
    .await
}
