//! The analytics routes (`GET /v1/analytics/...`): summary, offers, time series and churn
//! reasons of the key's mode, from the hourly rollups. The handlers parse the query and
//! answer; the figures, their range rules and their cache are [`crate::services::analytics`].

use axum::{extract::State, routing::get, Json, Router};
use serde_json::Value;

use crate::{
    error::ApiResult,
    extract::{ApiQuery, TenantAuth},
    services::analytics::{self, schema, RangeQuery},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/analytics/summary", get(get_summary))
        .route("/v1/analytics/offers", get(get_offers))
        .route("/v1/analytics/timeseries", get(get_timeseries))
        .route("/v1/analytics/churn-reasons", get(get_churn_reasons))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_summary, get_offers, get_timeseries, get_churn_reasons))]
pub(crate) struct Doc;

/// `GET /v1/analytics/summary`: sessions by outcome, saves by offer type, save rate, saved
/// MRR and validated saves.
#[utoipa::path(
    get,
    path = "/v1/analytics/summary",
    operation_id = "get_summary",
    tag = "analytics",
    summary = "Sessions, saves by offer type, save rate, saved MRR, cancels, validated saves",
    security(("secretKey" = [])),
    params(schema::RangeParams),
    responses((status = 200, description = "OK", body = schema::Summary))
)]
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
#[utoipa::path(
    get,
    path = "/v1/analytics/offers",
    operation_id = "get_offers",
    tag = "analytics",
    summary = "Offer performance per offer, type and A/B variant, with lift against the holdout",
    security(("secretKey" = [])),
    params(schema::RangeParams),
    responses((status = 200, description = "OK", body = schema::OfferPerformance))
)]
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
#[utoipa::path(
    get,
    path = "/v1/analytics/timeseries",
    operation_id = "get_timeseries",
    tag = "analytics",
    summary = "Chart-ready series",
    security(("secretKey" = [])),
    params(schema::TimeseriesParams),
    responses((status = 200, description = "OK", body = schema::Timeseries))
)]
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
#[utoipa::path(
    get,
    path = "/v1/analytics/churn-reasons",
    operation_id = "get_churn_reasons",
    tag = "analytics",
    summary = "Churn reasons: counts, share and trend",
    security(("secretKey" = [])),
    params(schema::RangeParams),
    responses((status = 200, description = "OK", body = schema::ChurnReasons))
)]
async fn get_churn_reasons(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Value>> {
    analytics::churn_reasons(&st, auth.tenant_id, auth.mode, q.from, q.to)
        .await
        .map(Json)
}
