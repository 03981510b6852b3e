//! Analytics from the hourly rollups (read pool), cached in Redis per tenant under the
//! tenant's analytics generation, which every rollup bumps: a figure is never served from
//! a rollup that has since changed. Summary 1 h, offers 30 min, time series 30 min,
//! churn reasons 1 h.
//!
//! - [`range`]: the `from`/`to` rules (defaults, local dates, whole hours) shared by every route;
//! - [`cache`]: the generation-keyed Redis cache;
//! - one file per figure (route handler, its query and its shaping): [`summary`](mod@summary),
//!   [`offers`](mod@offers), [`timeseries`](mod@timeseries), [`reasons`] (churn reasons).

mod cache;
mod offers;
mod range;
mod reasons;
mod summary;
mod timeseries;

use axum::{routing::get, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::AppState;

pub use offers::offers;
pub use reasons::churn_reasons;
pub use summary::summary;
pub use timeseries::timeseries_of;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/analytics/summary", get(summary::get_summary))
        .route("/v1/analytics/offers", get(offers::get_offers))
        .route("/v1/analytics/timeseries", get(timeseries::get_timeseries))
        .route(
            "/v1/analytics/churn-reasons",
            get(reasons::get_churn_reasons),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    metric: Option<String>,
    interval: Option<String>,
}

fn rate(num: i64, den: i64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!(((num as f64 / den as f64) * 10_000.0).round() / 10_000.0)
    }
}
