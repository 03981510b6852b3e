//! Analytics from the hourly rollups (read pool), cached in Redis per tenant under the
//! tenant's analytics generation, which every rollup bumps: a figure is never served from
//! a rollup that has since changed. Summary 1 h, offers 30 min, time series 30 min,
//! churn reasons 1 h. The analytics routes (`/v1/analytics/...`) and the dashboard's overview
//! read these functions.
//!
//! - [`range`]: the `from`/`to` rules (defaults, local dates, whole hours) shared by every figure;
//! - [`cache`]: the generation-keyed Redis cache;
//! - one file per figure (its query and its shaping): [`summary`](mod@summary),
//!   [`offers`](mod@offers), [`timeseries`](mod@timeseries), [`reasons`] (churn reasons).

mod cache;
mod offers;
mod range;
mod reasons;
mod summary;
mod timeseries;

use serde::Deserialize;
use serde_json::{json, Value};

pub mod schema;

pub use offers::offers;
pub use reasons::churn_reasons;
pub use summary::summary;
pub use timeseries::{timeseries, timeseries_of};

/// The query of every analytics route (`metric` and `interval`: the time series only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub metric: Option<String>,
    pub interval: Option<String>,
}

fn rate(num: i64, den: i64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!(((num as f64 / den as f64) * 10_000.0).round() / 10_000.0)
    }
}
