//! Time series: one metric's zero-filled series by hour, day or week in the tenant's time
//! zone (cached 30 min), for `GET /v1/analytics/timeseries` and the dashboard's charts. The
//! one query built at run time, from a fixed table of metrics.

use std::time::Duration;

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{cache::cached, range::range, RangeQuery};
use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

const METRICS: &[&str] = &[
    "sessions",
    "saves",
    "cancels",
    "abandoned",
    "save_rate",
    "saved_mrr",
    "offers_shown",
    "offers_accepted",
];

/// One metric's series for a tenant's mode over `from`..`to` (`metric` and `interval`
/// checked as the route checks them); the dashboard's overview charts read it.
pub async fn timeseries_of(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    metric: &str,
    interval: &str,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Value> {
    let q = RangeQuery {
        from,
        to,
        metric: Some(metric.to_string()),
        interval: Some(interval.to_string()),
    };
    timeseries(st, tenant, mode, q).await
}

/// One metric's series for a tenant's mode as `GET /v1/analytics/timeseries` asks for it
/// (`metric` defaults to `sessions`, `interval` to `day`; both checked against the fixed
/// lists).
pub async fn timeseries(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    q: RangeQuery,
) -> ApiResult<Value> {
    let auth = (tenant, mode);
    let metric = q.metric.clone().unwrap_or_else(|| "sessions".into());
    if !METRICS.contains(&metric.as_str()) {
        return Err(ApiError::invalid_param(
            "metric",
            format!("metric must be one of {}", METRICS.join(", ")),
        ));
    }
    let interval = q.interval.clone().unwrap_or_else(|| "day".into());
    if !["hour", "day", "week"].contains(&interval.as_str()) {
        return Err(ApiError::invalid_param(
            "interval",
            "interval must be hour, day or week",
        ));
    }
    let r = range(st, auth, &q.from, &q.to).await?;
    if interval == "hour" && r.to - r.from > chrono::Duration::days(31) {
        return Err(ApiError::invalid_param(
            "interval",
            "hourly series cover at most 31 days",
        ));
    }
    let params = format!("{metric}:{interval}:{}", r.key());
    let (pool, mode) = (st.pools.read.clone(), mode.as_str());
    cached(st, auth, "timeseries", &params, Duration::from_secs(1800), || async move {
        let (source, num, den) = match metric.as_str() {
            "sessions" => ("rollup_sessions_hourly", "sum(sessions)", None),
            "saves" => ("rollup_sessions_hourly", "sum(sessions) FILTER (WHERE outcome = 'saved')", None),
            "cancels" => ("rollup_sessions_hourly", "sum(sessions) FILTER (WHERE outcome = 'canceled')", None),
            "abandoned" => ("rollup_sessions_hourly", "sum(sessions) FILTER (WHERE outcome = 'abandoned')", None),
            "saved_mrr" => ("rollup_sessions_hourly", "sum(saved_mrr_cents)", None),
            "save_rate" => (
                "rollup_sessions_hourly",
                "sum(sessions) FILTER (WHERE outcome = 'saved')",
                Some("sum(sessions) FILTER (WHERE outcome IN ('saved', 'canceled', 'deflected'))"),
            ),
            "offers_shown" => ("rollup_offers_hourly", "sum(shown)", None),
            _ => ("rollup_offers_hourly", "sum(accepted)", None),
        };
        // Buckets are in the tenant's time zone, zero-filled.
        let sql = format!(
            "WITH b AS (
               SELECT date_trunc($4, hour AT TIME ZONE $5) AS bucket, coalesce({num}, 0)::float8 AS n, {den}::float8 AS d
                 FROM {source} WHERE tenant_id = $1 AND mode = $6 AND hour >= $2 AND hour < $3 GROUP BY 1
             ), s AS (
               SELECT generate_series(date_trunc($4, $2 AT TIME ZONE $5), date_trunc($4, ($3 - interval '1 microsecond') AT TIME ZONE $5), ('1 ' || $4)::interval) AS bucket
             )
             SELECT s.bucket, coalesce(b.n, 0), b.d FROM s LEFT JOIN b USING (bucket) ORDER BY s.bucket",
            den = den.unwrap_or("NULL")
        );
        // Not a macro: the table and aggregate expressions come from the fixed metric table above.
        let rows: Vec<(chrono::NaiveDateTime, f64, Option<f64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(r.from)
            .bind(r.to)
            .bind(&interval)
            .bind(&r.tz)
            .bind(mode)
            .fetch_all(&pool)
            .await?;
        let points: Vec<Value> = rows
            .into_iter()
            .map(|(bucket, n, d)| {
                let value = if metric == "save_rate" {
                    match d {
                        Some(d) if d > 0.0 => json!(((n / d) * 10_000.0).round() / 10_000.0),
                        _ => Value::Null,
                    }
                } else {
                    json!(n as i64)
                };
                json!({ "t": bucket.format("%Y-%m-%dT%H:%M:%S").to_string(), "value": value })
            })
            .collect();
        Ok(json!({ "metric": metric, "interval": interval, "timezone": r.tz, "from": r.from, "to": r.to, "points": points }))
    })
    .await
}
