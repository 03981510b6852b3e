//! Analytics from the hourly rollups (read pool), cached in Redis per tenant under the
//! tenant's analytics generation, which every rollup bumps: a figure is never served from
//! a rollup that has since changed. Summary 1 h, offers 30 min, time series 30 min,
//! churn reasons 1 h.

use std::time::Duration;

use axum::{extract::State, routing::get, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiQuery, TenantAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/analytics/summary", get(get_summary))
        .route("/v1/analytics/offers", get(get_offers))
        .route("/v1/analytics/timeseries", get(get_timeseries))
        .route("/v1/analytics/churn-reasons", get(get_churn_reasons))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    metric: Option<String>,
    interval: Option<String>,
}

/// A validated range in UTC, with the tenant's time zone.
struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: String,
}

impl Range {
    /// The range's part of a cache key. Bounded key space: exact bounds are whole hours
    /// ([`to_hour`]), local-date bounds one instant per date, so a caller varying the seconds
    /// of `from`/`to` cannot mint new entries.
    fn key(&self) -> String {
        format!("{}:{}", self.from.timestamp(), self.to.timestamp())
    }
}

/// An exact bound widened to the rollups' granularity (whole UTC hours): `from` down, `to`
/// up, so the answer covers every hour the asked range touches and says so in its
/// `from`/`to`. A range of whole hours is unchanged; a partial hour at either end is counted
/// whole (an hourly rollup cannot be split).
fn to_hour(t: DateTime<Utc>, end: bool) -> DateTime<Utc> {
    let s = t.timestamp();
    let floor = s - s.rem_euclid(3600);
    let secs = if end && (floor != s || t.timestamp_subsec_nanos() != 0) {
        floor + 3600
    } else {
        floor
    };
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// A bound as given: an exact instant, or a local date (a whole day in the tenant's zone).
enum Bound {
    Exact(DateTime<Utc>),
    Local(chrono::NaiveDateTime),
}

fn parse_bound(param: &str, v: &str, end: bool) -> ApiResult<Bound> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Bound::Exact(to_hour(t.with_timezone(&Utc), end)));
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_param(
            param,
            format!("{param} must be a date (YYYY-MM-DD) or an RFC 3339 time"),
        )
    })?;
    // `to` includes its whole day.
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(Bound::Local(d.and_hms_opt(0, 0, 0).expect("midnight")))
}

async fn resolve(st: &AppState, b: Bound, tz: &str) -> ApiResult<DateTime<Utc>> {
    match b {
        Bound::Exact(t) => Ok(t),
        // PostgreSQL knows every IANA zone and its offsets at that date.
        Bound::Local(naive) => {
            let t =
                sqlx::query_scalar!(r#"SELECT $1::timestamp AT TIME ZONE $2 AS "t!""#, naive, tz)
                    .fetch_one(&st.pools.read)
                    .await?;
            Ok(t)
        }
    }
}

async fn range(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    from: &Option<String>,
    to: &Option<String>,
) -> ApiResult<Range> {
    let tz = st
        .settings_cache
        .get(&st.pools.primary, tenant, mode)
        .await?
        .timezone
        .clone();
    // Rollups are hourly: the default range ends at the next hour boundary, so it stays the
    // same (and cacheable) for a whole hour.
    let now = {
        let t = Utc::now().timestamp();
        DateTime::from_timestamp(t - t.rem_euclid(3600) + 3600, 0).unwrap_or_else(Utc::now)
    };
    let from = match from {
        Some(v) => resolve(st, parse_bound("from", v, false)?, &tz).await?,
        None => now - chrono::Duration::days(30),
    };
    let to = match to {
        Some(v) => resolve(st, parse_bound("to", v, true)?, &tz).await?,
        None => now,
    };
    if from >= to {
        return Err(ApiError::invalid_param("from", "from must be before to"));
    }
    if to - from > chrono::Duration::days(732) {
        return Err(ApiError::invalid_param(
            "to",
            "a range covers at most 2 years",
        ));
    }
    Ok(Range { from, to, tz })
}

/// Reads through the tenant's generation-keyed cache (per mode: test and live figures
/// never share an entry).
async fn cached<F, Fut>(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    name: &str,
    params: &str,
    ttl: Duration,
    compute: F,
) -> ApiResult<Json<Value>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<Value>>,
{
    let params = format!("{}:{params}", mode.as_str());
    let mut conn = st.redis.conn.clone();
    let gen_key = st.redis.key(&format!("cache:{tenant}:analytics:gen"));
    let gen: Option<i64> = redis::cmd("GET")
        .arg(&gen_key)
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    let gen = gen.unwrap_or(0);
    let key = st
        .redis
        .key(&format!("cache:{tenant}:analytics:{name}:g{gen}:{params}"));
    let hit: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    if let Some(v) = hit.and_then(|h| serde_json::from_str::<Value>(&h).ok()) {
        metrics::counter!("analytics_cache_total", "result" => "hit").increment(1);
        return Ok(Json(v));
    }
    metrics::counter!("analytics_cache_total", "result" => "miss").increment(1);
    let v = compute().await?;
    let _: Result<(), _> = redis::cmd("SET")
        .arg(&key)
        .arg(v.to_string())
        .arg("EX")
        .arg(ttl.as_secs())
        .query_async(&mut conn)
        .await;
    Ok(Json(v))
}

fn rate(num: i64, den: i64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!(((num as f64 / den as f64) * 10_000.0).round() / 10_000.0)
    }
}

async fn get_summary(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    summary(&st, auth.tenant_id, auth.mode, q.from, q.to).await
}

/// The summary of a tenant's mode over `from`..`to` (the API's rules: default last 30 days,
/// local dates in the tenant's time zone); the dashboard's overview reads it too.
pub async fn summary(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Json<Value>> {
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

async fn get_offers(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let Json(mut v) = offers(&st, auth.tenant_id, auth.mode, q.from, q.to).await?;
    // `decided` (each variant's saved + canceled + deflected, the denominator the
    // dashboard's confidence intervals need) is not part of this route's answer.
    if let Some(rows) = v.get_mut("variants").and_then(Value::as_array_mut) {
        for row in rows {
            if let Some(o) = row.as_object_mut() {
                o.remove("decided");
            }
        }
    }
    Ok(Json(v))
}

/// Offer performance and experiment variants of a tenant's mode over `from`..`to` (the
/// API's rules, as [`summary`]); each variant row also carries `decided` (the save rate's
/// denominator), which `GET /v1/analytics/offers` leaves out. The dashboard reads it.
pub async fn offers(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Json<Value>> {
    let r = range(st, (tenant, mode), &from, &to).await?;
    let params = r.key();
    let (pool, mode_key) = (st.pools.read.clone(), mode);
    let mode = mode_key.as_str();
    cached(st, (tenant, mode_key), "offers", &params, Duration::from_secs(1800), || async move {
        let offers = sqlx::query!(
            r#"SELECT offer_id, offer_type, variant, sum(shown)::bigint AS "shown!", sum(accepted)::bigint AS "accepted!",
                      sum(saved_mrr_cents)::bigint AS "saved_mrr_cents!"
               FROM rollup_offers_hourly WHERE tenant_id = $1 AND mode = $4 AND hour >= $2 AND hour < $3
              GROUP BY offer_id, offer_type, variant ORDER BY offer_id, variant"#,
            tenant,
            r.from,
            r.to,
            mode,
        )
        .fetch_all(&pool)
        .await?;
        let variants = sqlx::query!(
            r#"SELECT variant, sum(sessions)::bigint AS "sessions!",
                    coalesce(sum(sessions) FILTER (WHERE outcome = 'saved'), 0)::bigint AS "saved!",
                    coalesce(sum(sessions) FILTER (WHERE outcome IN ('saved', 'canceled', 'deflected')), 0)::bigint AS "decided!"
               FROM rollup_sessions_hourly WHERE tenant_id = $1 AND mode = $4 AND hour >= $2 AND hour < $3
              GROUP BY variant ORDER BY variant"#,
            tenant,
            r.from,
            r.to,
            mode,
        )
        .fetch_all(&pool)
        .await?;
        let mut by_offer = std::collections::BTreeMap::<(String, String), (i64, i64, i64, Vec<Value>)>::new();
        let mut by_type = std::collections::BTreeMap::<String, (i64, i64, i64)>::new();
        for o in offers {
            let (shown, accepted, mrr) = (o.shown, o.accepted, o.saved_mrr_cents);
            let e = by_offer.entry((o.offer_id, o.offer_type.clone())).or_default();
            e.0 += shown;
            e.1 += accepted;
            e.2 += mrr;
            e.3.push(json!({ "variant": o.variant, "shown": shown, "accepted": accepted, "acceptance_rate": rate(accepted, shown), "saved_mrr_cents": mrr }));
            let t = by_type.entry(o.offer_type).or_default();
            t.0 += shown;
            t.1 += accepted;
            t.2 += mrr;
        }
        let holdout_rate = variants.iter().find(|v| v.variant == "holdout").and_then(|v| (v.decided > 0).then(|| v.saved as f64 / v.decided as f64));
        let variant_rows: Vec<Value> = variants
            .iter()
            .map(|v| {
                let (saved, decided) = (v.saved, v.decided);
                let save_rate = (decided > 0).then(|| saved as f64 / decided as f64);
                let lift = match (save_rate, holdout_rate, v.variant.as_str()) {
                    (_, _, "holdout") => Value::Null,
                    (Some(s), Some(h), _) => json!(((s - h) * 10_000.0).round() / 10_000.0),
                    _ => Value::Null,
                };
                json!({ "variant": if v.variant.is_empty() { "none" } else { v.variant.as_str() }, "sessions": v.sessions, "saved": saved,
                        "decided": decided, "save_rate": rate(saved, decided), "lift_vs_holdout": lift })
            })
            .collect();
        Ok(json!({
            "from": r.from, "to": r.to,
            "offers": by_offer.into_iter().map(|((id, kind), (shown, acc, mrr, vars))| json!({
                "offer_id": id, "offer_type": kind, "shown": shown, "accepted": acc,
                "acceptance_rate": rate(acc, shown), "saved_mrr_cents": mrr, "by_variant": vars,
            })).collect::<Vec<_>>(),
            "by_offer_type": by_type.into_iter().map(|(kind, (shown, acc, mrr))| json!({
                "offer_type": kind, "shown": shown, "accepted": acc, "acceptance_rate": rate(acc, shown), "saved_mrr_cents": mrr,
            })).collect::<Vec<_>>(),
            "variants": variant_rows,
            "definitions": { "lift_vs_holdout": "variant save_rate minus the holdout's save_rate (absolute)" },
        }))
    })
    .await
}

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

async fn get_timeseries(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    timeseries(&st, auth.tenant_id, auth.mode, q).await
}

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
) -> ApiResult<Json<Value>> {
    let q = RangeQuery {
        from,
        to,
        metric: Some(metric.to_string()),
        interval: Some(interval.to_string()),
    };
    timeseries(st, tenant, mode, q).await
}

async fn timeseries(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    q: RangeQuery,
) -> ApiResult<Json<Value>> {
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

async fn get_churn_reasons(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    churn_reasons(&st, auth.tenant_id, auth.mode, q.from, q.to).await
}

/// Churn reasons' counts and shares of a tenant's mode over `from`..`to`, with the previous
/// period of the same length (the API's rules, as [`summary`]); the dashboard reads it.
pub async fn churn_reasons(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Json<Value>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(from: &str, to: &str) -> String {
        let exact = |v: &str, end| match parse_bound("x", v, end) {
            Ok(Bound::Exact(t)) => t,
            _ => panic!("{v} is exact"),
        };
        Range {
            from: exact(from, false),
            to: exact(to, true),
            tz: "UTC".into(),
        }
        .key()
    }

    /// Every second of an hour (and sub-second instants) gives the same cache key: the key
    /// space grows with hours, not with seconds a caller can vary.
    #[test]
    fn cache_keys_are_bounded_to_whole_hours() {
        let mut keys = std::collections::HashSet::new();
        for s in 0..3600 {
            let (m, sec) = (s / 60, s % 60);
            keys.insert(key_of(
                &format!("2026-03-01T10:{m:02}:{sec:02}Z"),
                &format!("2026-03-02T09:{m:02}:{sec:02}.5+00:00"),
            ));
        }
        assert_eq!(keys.len(), 1, "{keys:?}");
        let from = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap();
        let to = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z").unwrap();
        assert_eq!(
            keys.into_iter().next().unwrap(),
            format!("{}:{}", from.timestamp(), to.timestamp())
        );
        // Whole hours stay as they are (`to` is exclusive); offsets are normalised to UTC.
        assert_eq!(
            key_of("2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z"),
            key_of("2026-03-01T11:00:00+01:00", "2026-03-01T11:59:59Z")
        );
        assert_ne!(
            key_of("2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z"),
            key_of("2026-03-01T10:00:00Z", "2026-03-01T12:00:01Z")
        );
    }
}
