//! The overview (`/app`): the selected range's figures with the previous period's change,
//! time-series charts (sessions, saves, save rate, saved MRR), churn reasons (share and
//! change), offer performance per offer and variant, and the experiment variants' lift
//! against the holdout with a 95 % confidence interval ([`lift_interval`]).
//!
//! Every figure comes from the API's own analytics functions (`services::analytics`: summary,
//! timeseries, churn reasons, offers), so the page runs the API's cached rollup queries and
//! nothing heavier. The charts are drawn in the browser by uPlot (npm, pinned in
//! `api/assets/package-lock.json`, installed and embedded by `api/build.rs`) and our
//! `overview.js`, from the series embedded in the page as JSON; the same series are in an
//! HTML table, which is what a reader without JavaScript (or a screen reader) gets.

use std::sync::LazyLock;

use askama::Template;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{chrome, hashed_path, money, page, Chrome, Signed, CSS_PATH};
use crate::{services::analytics, AppState};

mod stats;
mod tables;
mod text;

pub use stats::lift_interval;
use tables::*;
use text::*;

// ---------------------------------------------------------------------------------------
// Scripts and the chart library's stylesheet (served by `super::asset`)

pub(super) static OVERVIEW_JS: &str = include_str!("../../assets/overview.js");
pub(super) static UPLOT_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/uplot.min.js"));
pub(super) static UPLOT_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/uplot.min.css"));

pub(super) static OVERVIEW_JS_PATH: LazyLock<String> =
    LazyLock::new(|| hashed_path("overview", "js", OVERVIEW_JS));
pub(super) static UPLOT_JS_PATH: LazyLock<String> =
    LazyLock::new(|| hashed_path("uplot", "js", UPLOT_JS));
pub(super) static UPLOT_CSS_PATH: LazyLock<String> =
    LazyLock::new(|| hashed_path("uplot", "css", UPLOT_CSS));

// ---------------------------------------------------------------------------------------
// The page

struct Metric {
    key: &'static str,
    label: &'static str,
    value: String,
    delta: String,
}

/// One chart: its series' key in the embedded JSON, its title and its text alternative.
struct Chart {
    key: &'static str,
    title: &'static str,
    summary: String,
}

/// One bucket of the series, as the fallback table shows it.
struct SeriesRow {
    bucket: String,
    sessions: String,
    saves: String,
    save_rate: String,
    saved_mrr: String,
}

struct Reason {
    code: String,
    count: i64,
    share: f64,
    share_text: String,
    previous: String,
    change: String,
}

struct OfferRow {
    offer: String,
    offer_type: String,
    variant: String,
    total: bool,
    shown: i64,
    accepted: i64,
    rate: String,
    saved_mrr: String,
}

struct VariantRow {
    variant: String,
    holdout: bool,
    sessions: i64,
    decided: String,
    saved: i64,
    save_rate: String,
    lift: String,
    interval: String,
    verdict: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    css: &'static str,
    uplot_css: &'static str,
    uplot_js: &'static str,
    overview_js: &'static str,
    chrome: Chrome,
    presets: [(&'static str, &'static str); 3],
    range: String,
    from: String,
    to: String,
    period: String,
    timezone: String,
    error: Option<String>,
    metrics: Vec<Metric>,
    saves_by_type: Vec<(String, i64)>,
    interval: &'static str,
    charts: Vec<Chart>,
    series: Vec<SeriesRow>,
    chart_json: String,
    reasons: Vec<Reason>,
    reasons_total: i64,
    reasons_previous_total: i64,
    offers: Vec<OfferRow>,
    variants: Vec<VariantRow>,
    has_holdout: bool,
    has_experiment: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RangeForm {
    /// `7d`, `30d` (the default; also for any other value), `90d` (ending today, UTC), or
    /// `custom` (from `from` to `to`).
    #[serde(default)]
    #[param(example = "30d")]
    range: String,
    /// With `range=custom`: the first day, YYYY-MM-DD.
    #[serde(default)]
    #[param(format = Date)]
    from: String,
    /// With `range=custom`: the last day (included), YYYY-MM-DD.
    #[serde(default)]
    #[param(format = Date)]
    to: String,
}

/// One overview chart: key, title, the series, how a value reads, whether it is a rate.
type ChartSpec<'a> = (
    &'static str,
    &'static str,
    &'a Vec<Option<f64>>,
    fn(f64) -> String,
    bool,
);

/// The series of the four charts, from the API's time series (one call per metric).
struct Series {
    buckets: Vec<String>,
    /// Seconds since the epoch of each bucket's local start, read as if it were UTC (the
    /// charts label them in UTC, so they show the tenant's local dates whatever the
    /// browser's zone).
    xs: Vec<i64>,
    sessions: Vec<Option<f64>>,
    saves: Vec<Option<f64>>,
    save_rate: Vec<Option<f64>>,
    saved_mrr_cents: Vec<Option<f64>>,
}

fn values(v: &Value) -> (Vec<String>, Vec<i64>, Vec<Option<f64>>) {
    let mut buckets = Vec::new();
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for p in v
        .get("points")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let t = p.get("t").and_then(Value::as_str).unwrap_or_default();
        let x = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
            .map(|d| d.and_utc().timestamp())
            .unwrap_or(0);
        buckets.push(t.get(..10).unwrap_or(t).to_string());
        xs.push(x);
        ys.push(p.get("value").and_then(Value::as_f64));
    }
    (buckets, xs, ys)
}

async fn load_series(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    interval: &str,
    from: &str,
    to: &str,
) -> Result<Series, String> {
    let get = |metric: &'static str| {
        analytics::timeseries_of(
            st,
            tenant,
            mode,
            metric,
            interval,
            Some(from.to_string()),
            Some(to.to_string()),
        )
    };
    let (sessions, saves, save_rate, saved_mrr) = futures::join!(
        get("sessions"),
        get("saves"),
        get("save_rate"),
        get("saved_mrr")
    );
    let mut all = Vec::new();
    for r in [sessions, saves, save_rate, saved_mrr] {
        all.push(r.map_err(|e| e.body.message.clone())?);
    }
    let (buckets, xs, sessions) = values(&all[0]);
    Ok(Series {
        buckets,
        xs,
        sessions,
        saves: values(&all[1]).2,
        save_rate: values(&all[2]).2,
        saved_mrr_cents: values(&all[3]).2,
    })
}

#[utoipa::path(
    get,
    path = "/app",
    operation_id = "app_overview",
    tag = "dashboard",
    summary = "Dashboard overview (signed in; else 303 to /app/login)",
    description = "Save rate, saves, saved MRR, cancels, abandoned and validated saves of the session's selected mode over the range (tenant time zone), each with its change against the previous period of the same length; saves by offer type, charts, churn reasons and offers. A range the analytics API refuses (e.g. custom dates that are not dates) is shown as its error, with status 400.",
    security(("dashboardSession" = [])),
    params(RangeForm),
    responses(
        (status = 200, description = "The overview page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The overview page with the analytics API's error (no figures)", content_type = "text/html", body = String),
    )
)]
pub(super) async fn overview(
    State(st): State<AppState>,
    Signed(s): Signed,
    uri: axum::http::Uri,
    Query(q): Query<RangeForm>,
) -> Response {
    let chrome = chrome(&st, &s, "overview", uri.to_string()).await;
    let (tenant, mode) = (s.user.tenant_id, s.mode);
    let presets = [
        ("7d", "Last 7 days"),
        ("30d", "Last 30 days"),
        ("90d", "Last 90 days"),
    ];
    let days = match q.range.as_str() {
        "7d" => Some(7),
        "90d" => Some(90),
        "custom" => None,
        _ => Some(30),
    };
    let today = chrono::Utc::now().date_naive();
    let (from, to) = match days {
        Some(d) => (
            (today - chrono::Duration::days(d - 1)).to_string(),
            today.to_string(),
        ),
        None => (q.from.clone(), q.to.clone()),
    };
    let range = if days.is_some() {
        presets
            .iter()
            .find(|p| p.0 == q.range)
            .map(|p| p.0)
            .unwrap_or("30d")
            .to_string()
    } else {
        "custom".to_string()
    };
    let mut out = OverviewPage {
        css: CSS_PATH.as_str(),
        uplot_css: UPLOT_CSS_PATH.as_str(),
        uplot_js: UPLOT_JS_PATH.as_str(),
        overview_js: OVERVIEW_JS_PATH.as_str(),
        chrome,
        presets,
        range,
        from: from.clone(),
        to: to.clone(),
        period: String::new(),
        timezone: String::new(),
        error: None,
        metrics: Vec::new(),
        saves_by_type: Vec::new(),
        interval: "day",
        charts: Vec::new(),
        series: Vec::new(),
        chart_json: String::new(),
        reasons: Vec::new(),
        reasons_total: 0,
        reasons_previous_total: 0,
        offers: Vec::new(),
        variants: Vec::new(),
        has_holdout: false,
        has_experiment: false,
    };
    // The previous period: the same number of days just before `from`.
    let dates = (
        chrono::NaiveDate::parse_from_str(&from, "%Y-%m-%d"),
        chrono::NaiveDate::parse_from_str(&to, "%Y-%m-%d"),
    );
    let previous = match dates {
        (Ok(f), Ok(t)) => {
            let len = (t - f).num_days() + 1;
            Some((
                (f - chrono::Duration::days(len)),
                f - chrono::Duration::days(1),
            ))
        }
        _ => None,
    };
    // Daily points up to ~4 months, weekly beyond (a 2-year range stays ~100 points).
    out.interval = match dates {
        (Ok(f), Ok(t)) if (t - f).num_days() > 120 => "week",
        _ => "day",
    };
    let prev = async {
        match previous {
            Some((pf, pt)) => analytics::summary(
                &st,
                tenant,
                mode,
                Some(pf.to_string()),
                Some(pt.to_string()),
            )
            .await
            .unwrap_or(Value::Null),
            None => Value::Null,
        }
    };
    // Every figure at once (each read is the API's own, cached per rollup generation): a
    // cold page waits for its slowest read, not for the sum of them.
    let (now, prev, series, reasons, offers) = futures::join!(
        analytics::summary(&st, tenant, mode, Some(from.clone()), Some(to.clone())),
        prev,
        load_series(&st, (tenant, mode), out.interval, &from, &to),
        analytics::churn_reasons(&st, tenant, mode, Some(from.clone()), Some(to.clone())),
        analytics::offers(&st, tenant, mode, Some(from.clone()), Some(to.clone())),
    );
    let now = match now {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e.body.message.clone());
            return page(StatusCode::BAD_REQUEST, &out);
        }
    };
    out.period = format!("{from} to {to}");
    out.timezone = now
        .get("timezone")
        .and_then(Value::as_str)
        .unwrap_or("UTC")
        .to_string();
    let count = |key: &'static str, label: &'static str| Metric {
        key,
        label,
        value: num(&now, key).to_string(),
        delta: delta_count(num(&now, key), num(&prev, key)),
    };
    out.metrics = vec![
        Metric {
            key: "save_rate",
            label: "Save rate",
            value: pct(&now, "save_rate")
                .map(|p| format!("{p:.1} %"))
                .unwrap_or_else(|| "–".into()),
            delta: delta_points(pct(&now, "save_rate"), pct(&prev, "save_rate")),
        },
        count("saved", "Saves"),
        Metric {
            key: "saved_mrr_cents",
            label: "Saved MRR",
            value: money(num(&now, "saved_mrr_cents")),
            delta: delta_count(num(&now, "saved_mrr_cents"), num(&prev, "saved_mrr_cents")),
        },
        count("canceled", "Cancels"),
        count("abandoned", "Abandoned"),
        count("validated_saves", "Validated saves"),
        count("sessions", "Sessions"),
    ];
    if let Some(m) = now.get("saves_by_offer_type").and_then(Value::as_object) {
        out.saves_by_type = m
            .iter()
            .map(|(k, v)| {
                // A save without an offer (e.g. in the holdout).
                let k = if k.is_empty() { "no offer" } else { k };
                (k.to_string(), v.as_i64().unwrap_or(0))
            })
            .collect();
        out.saves_by_type.sort_by_key(|t| std::cmp::Reverse(t.1));
    }

    let mut failed = Vec::new();
    match series {
        Ok(sr) => {
            let per = if out.interval == "week" {
                "week"
            } else {
                "day"
            };
            let spec: [ChartSpec<'_>; 4] = [
                ("sessions", "Sessions", &sr.sessions, count_text, false),
                ("saves", "Saves", &sr.saves, count_text, false),
                ("save_rate", "Save rate", &sr.save_rate, rate_text, true),
                (
                    "saved_mrr",
                    "Saved MRR",
                    &sr.saved_mrr_cents,
                    cents_text,
                    false,
                ),
            ];
            out.charts = spec
                .iter()
                .map(|(key, title, ys, fmt, rate)| Chart {
                    key,
                    title,
                    summary: summarise(&format!("{title} per {per}"), &sr.buckets, ys, fmt, *rate),
                })
                .collect();
            out.series = (0..sr.buckets.len())
                .map(|i| SeriesRow {
                    bucket: sr.buckets[i].clone(),
                    sessions: opt(sr.sessions[i], count_text),
                    saves: opt(sr.saves.get(i).copied().flatten(), count_text),
                    save_rate: opt(sr.save_rate.get(i).copied().flatten(), rate_text),
                    saved_mrr: opt(sr.saved_mrr_cents.get(i).copied().flatten(), cents_text),
                })
                .collect();
            out.chart_json = script_json(&json!({
                "interval": out.interval,
                "x": sr.xs,
                "series": {
                    "sessions": sr.sessions,
                    "saves": sr.saves,
                    "save_rate": sr.save_rate,
                    "saved_mrr": sr.saved_mrr_cents.iter().map(|c| c.map(|c| c / 100.0)).collect::<Vec<_>>(),
                },
            }));
        }
        Err(e) => failed.push(format!("time series: {e}")),
    }
    match reasons {
        Ok(v) => {
            out.reasons = reasons_of(&v);
            out.reasons_total = num(&v, "total");
            out.reasons_previous_total = num(&v, "previous_total");
        }
        Err(e) => failed.push(format!("churn reasons: {}", e.body.message)),
    }
    match offers {
        Ok(v) => {
            out.offers = offers_of(&v);
            let (rows, has_holdout) = variants_of(&v);
            out.has_experiment = rows.iter().any(|r| r.variant != "none");
            out.variants = rows;
            out.has_holdout = has_holdout;
        }
        Err(e) => failed.push(format!("offers: {}", e.body.message)),
    }
    if !failed.is_empty() {
        tracing::warn!(failed = ?failed, "overview: part of the analytics failed");
        out.error = Some(format!(
            "Some figures are unavailable ({}); retry shortly.",
            failed.join("; ")
        ));
    }
    page(StatusCode::OK, &out)
}

#[cfg(test)]
mod tests {
    use super::stats::{wilson, Z95};
    use super::*;

    fn close(got: (f64, f64, f64), want: (f64, f64, f64)) {
        let ok = (got.0 - want.0).abs() < 5e-5
            && (got.1 - want.1).abs() < 5e-5
            && (got.2 - want.2).abs() < 5e-5;
        assert!(ok, "got {got:?}, want {want:?}");
    }

    /// Newcombe (1998), Table II, method 10 (score interval, no continuity correction):
    /// the published 95 % limits for his worked examples, to 4 decimals.
    #[test]
    fn lift_interval_matches_newcombes_published_limits() {
        close(
            lift_interval(56, 70, 48, 80).unwrap(),
            (0.2, 0.0524, 0.3339),
        );
        close(lift_interval(9, 10, 3, 10).unwrap(), (0.6, 0.1705, 0.8090));
        close(
            lift_interval(6, 7, 2, 7).unwrap(),
            (4.0 / 7.0, 0.0582, 0.8062),
        );
        close(
            lift_interval(5, 56, 0, 29).unwrap(),
            (5.0 / 56.0, -0.0381, 0.1926),
        );
        close(lift_interval(0, 10, 0, 20).unwrap(), (0.0, -0.1611, 0.2775));
        close(lift_interval(0, 10, 0, 10).unwrap(), (0.0, -0.2775, 0.2775));
        close(lift_interval(10, 10, 0, 20).unwrap(), (1.0, 0.6791, 1.0));
        close(lift_interval(10, 10, 0, 10).unwrap(), (1.0, 0.6075, 1.0));
    }

    #[test]
    fn lift_interval_is_antisymmetric_and_refuses_empty_groups() {
        let (d, lo, hi) = lift_interval(30, 100, 20, 100).unwrap();
        let (d2, lo2, hi2) = lift_interval(20, 100, 30, 100).unwrap();
        close((d, lo, hi), (-d2, -hi2, -lo2));
        assert!(lo < d && d < hi);
        assert_eq!(lift_interval(1, 0, 1, 10), None);
        assert_eq!(lift_interval(1, 10, 0, 0), None);
        assert_eq!(lift_interval(11, 10, 1, 10), None);
    }

    /// Wilson's score interval for 81/263 (Newcombe 1998, "Two-sided confidence intervals
    /// for the single proportion", Table I): 0.2553 to 0.3662.
    #[test]
    fn wilson_interval_known_value() {
        let (lo, hi) = wilson(81, 263, Z95);
        assert!(
            (lo - 0.2553).abs() < 5e-5 && (hi - 0.3662).abs() < 5e-5,
            "{lo} {hi}"
        );
    }

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let s = script_json(&json!({"a": "</script><b>&"}));
        assert!(
            !s.contains('<') && !s.contains('>') && !s.contains('&'),
            "{s}"
        );
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["a"], "</script><b>&");
    }
}
