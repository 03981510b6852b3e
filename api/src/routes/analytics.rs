//! The analytics routes (`GET /v1/analytics/...`): summary, offers, time series and churn
//! reasons of the key's mode, from the hourly rollups. The handlers parse the query and
//! answer; the figures, their range rules and their cache are [`crate::services::analytics`].

use axum::{extract::State, routing::get, Json, Router};
use serde_json::Value;

use crate::{
    error::ApiResult,
    extract::{ApiQuery, TenantAuth},
    services::analytics::{self, RangeQuery},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/analytics/summary", get(get_summary))
        .route("/v1/analytics/offers", get(get_offers))
        .route("/v1/analytics/timeseries", get(get_timeseries))
        .route("/v1/analytics/churn-reasons", get(get_churn_reasons))
}

/// `GET /v1/analytics/summary`: sessions by outcome, saves by offer type, save rate, saved
/// MRR and validated saves.
async fn get_summary(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    analytics::summary(&st, auth.tenant_id, auth.mode, q.from, q.to)
        .await
        .map(Json)
}

/// `GET /v1/analytics/offers`: offer performance by offer, type and variant, and the
/// experiment variants' save rates and lift over the holdout.
async fn get_offers(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let mut v = analytics::offers(&st, auth.tenant_id, auth.mode, q.from, q.to).await?;
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

/// `GET /v1/analytics/timeseries`: one metric's zero-filled series by hour, day or week in
/// the tenant's time zone.
async fn get_timeseries(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    analytics::timeseries(&st, auth.tenant_id, auth.mode, q)
        .await
        .map(Json)
}

/// `GET /v1/analytics/churn-reasons`: each churn reason's count and share, against the
/// previous period of the same length.
async fn get_churn_reasons(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    analytics::churn_reasons(&st, auth.tenant_id, auth.mode, q.from, q.to)
        .await
        .map(Json)
}
