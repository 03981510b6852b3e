//! The analytics answers' shapes, for the OpenAPI document. The answers themselves are JSON
//! built by the figures' modules and cached as JSON ([`super::cache`]), so these types
//! describe them rather than build them; every one refuses unknown fields
//! (`additionalProperties: false`; `Serialize` is derived for the
//! serde attributes the schema derive reads, never called), so a field added to an answer and not here fails the API
//! fuzzer's response-schema check (`tests/api-fuzz/run.sh`).
#![allow(dead_code)] // fields are read by the schema derive only

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

/// The range of an analytics route: `from` and `to` are a date (YYYY-MM-DD, a whole day in
/// the tenant's time zone; `to` includes its day) or an RFC 3339 time (rounded to the hour);
/// `from` must be before `to` and the range at most 2 years (400 otherwise). Default: the
/// last 30 days.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// Start (inclusive): YYYY-MM-DD or RFC 3339.
    #[param(schema_with = date_or_time)]
    from: Option<String>,
    /// End (exclusive; a date includes its whole day): YYYY-MM-DD or RFC 3339.
    #[param(schema_with = date_or_time)]
    to: Option<String>,
}

/// The range and the time series' metric and bucket size.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesParams {
    /// Start (inclusive): YYYY-MM-DD or RFC 3339.
    #[param(schema_with = date_or_time)]
    from: Option<String>,
    /// End (exclusive; a date includes its whole day): YYYY-MM-DD or RFC 3339.
    #[param(schema_with = date_or_time)]
    to: Option<String>,
    /// Default `sessions`.
    #[param(inline)]
    metric: Option<Metric>,
    /// Default `day`; `hour` covers at most 31 days.
    #[param(inline)]
    interval: Option<Interval>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Sessions,
    Saves,
    Cancels,
    Abandoned,
    SaveRate,
    SavedMrr,
    OffersShown,
    OffersAccepted,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Hour,
    Day,
    Week,
}

/// A date (`format: date`) or an RFC 3339 time (`format: date-time`).
fn date_or_time() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let string = |f| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(f)))
    };
    AnyOfBuilder::new()
        .item(string(KnownFormat::Date))
        .item(string(KnownFormat::DateTime))
        .into()
}

/// `GET /v1/analytics/summary`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The tenant's IANA time zone (dates are its days).
    timezone: String,
    sessions: i64,
    saved: i64,
    /// Saves by the accepted offer's type (`discount`, `pause`, ...).
    saves_by_offer_type: HashMap<String, i64>,
    canceled: i64,
    deflected: i64,
    abandoned: i64,
    in_progress: i64,
    /// saved / (saved + canceled + deflected), 4 decimals; null without decided sessions.
    save_rate: Option<f64>,
    saved_mrr_cents: i64,
    /// Saves still paying 30 days later.
    validated_saves: i64,
    validated_save_rate: Option<f64>,
    /// What the rates mean, in words.
    definitions: HashMap<String, String>,
}

/// `GET /v1/analytics/offers`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferPerformance {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    offers: Vec<OfferRow>,
    by_offer_type: Vec<OfferTypeRow>,
    variants: Vec<VariantRow>,
    definitions: HashMap<String, String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferRow {
    offer_id: String,
    offer_type: String,
    shown: i64,
    accepted: i64,
    /// accepted / shown, 4 decimals; null when never shown.
    acceptance_rate: Option<f64>,
    saved_mrr_cents: i64,
    by_variant: Vec<OfferVariantRow>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferVariantRow {
    /// The experiment variant (empty without an experiment).
    variant: String,
    shown: i64,
    accepted: i64,
    acceptance_rate: Option<f64>,
    saved_mrr_cents: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferTypeRow {
    offer_type: String,
    shown: i64,
    accepted: i64,
    acceptance_rate: Option<f64>,
    saved_mrr_cents: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantRow {
    /// The variant's key, `holdout`, or `none` without an experiment.
    variant: String,
    sessions: i64,
    saved: i64,
    save_rate: Option<f64>,
    /// save_rate minus the holdout's (absolute); null for the holdout or without one.
    lift_vs_holdout: Option<f64>,
}

/// `GET /v1/analytics/timeseries`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeseries {
    #[schema(inline)]
    metric: Metric,
    #[schema(inline)]
    interval: Interval,
    timezone: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Zero-filled: one point per bucket.
    points: Vec<Point>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// The bucket's start, local time in the tenant's zone (YYYY-MM-DDTHH:MM:SS).
    t: String,
    /// A count, cents, or a rate (4 decimals; null without a denominator).
    value: Option<f64>,
}

/// `GET /v1/analytics/churn-reasons`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChurnReasons {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    total: i64,
    /// The previous period of the same length.
    previous_total: i64,
    reasons: Vec<ReasonRow>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRow {
    reason_code: String,
    count: i64,
    share: f64,
    previous_count: i64,
    previous_share: f64,
    share_change: f64,
}
