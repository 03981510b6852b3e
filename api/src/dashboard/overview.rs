//! The overview (`/app`): the selected range's figures with the previous period's change,
//! time-series charts (sessions, saves, save rate, saved MRR), churn reasons (share and
//! change), offer performance per offer and variant, and the experiment variants' lift
//! against the holdout with a 95 % confidence interval ([`lift_interval`]).
//!
//! Every figure comes from the API's own analytics functions (`routes::analytics`: summary,
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
use crate::{routes::analytics, AppState};

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
// The experiments' statistics

/// 1.959964: the standard normal quantile for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson's score interval of a proportion `x / n` (`n > 0`) at normal quantile `z`.
fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The lift of a variant's save rate over the holdout's, `x1/n1 − x2/n2`, with its 95 %
/// confidence interval: Newcombe's hybrid score interval for a difference of two independent
/// proportions (Newcombe 1998, "Interval estimation for the difference between independent
/// proportions", Statistics in Medicine 17, method 10), built from each group's Wilson score
/// interval. Unlike the normal (Wald) approximation it stays inside [−1, 1] and behaves with
/// small groups and rates near 0 or 1. `None` when either group is empty.
///
/// Returns `(lift, lower, upper)` as proportions (multiply by 100 for percentage points).
pub fn lift_interval(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64, f64)> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let (l1, u1) = wilson(x1, n1, Z95);
    let (l2, u2) = wilson(x2, n2, Z95);
    let d = p1 - p2;
    let lower = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let upper = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((d, lower.max(-1.0), upper.min(1.0)))
}

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

#[derive(Deserialize)]
pub(super) struct RangeForm {
    #[serde(default)]
    range: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
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

fn num(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn pct(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64).map(|r| r * 100.0)
}

fn percent(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn points(d: f64) -> String {
    format!("{:+.1} pts", d * 100.0)
}

fn delta_count(now: i64, before: i64) -> String {
    if before == 0 {
        if now == 0 {
            "no change".into()
        } else {
            "new this period".into()
        }
    } else {
        let d = (now - before) as f64 / before as f64 * 100.0;
        format!("{d:+.1} % vs previous")
    }
}

fn delta_points(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(a), Some(b)) => format!("{:+.1} pts vs previous", a - b),
        _ => "no previous figure".into(),
    }
}

/// JSON that can sit inside `<script type="application/json">`: no `<`, `>` or `&` (so no
/// `</script>`), each written as its `\u` escape, which JSON.parse reads back.
fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

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

/// "total N; highest M on DATE" (or the average for a rate): a chart's text alternative.
fn summarise(
    label: &str,
    buckets: &[String],
    ys: &[Option<f64>],
    fmt: &dyn Fn(f64) -> String,
    rate: bool,
) -> String {
    let known: Vec<(usize, f64)> = ys
        .iter()
        .enumerate()
        .filter_map(|(i, y)| y.map(|y| (i, y)))
        .collect();
    let Some(&(peak_at, peak)) = known
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
    else {
        return format!("{label}: no data in this period.");
    };
    let head = if rate {
        let lo = known.iter().map(|k| k.1).fold(f64::INFINITY, f64::min);
        format!("{label}: from {} to {}", fmt(lo), fmt(peak))
    } else {
        let total: f64 = known.iter().map(|k| k.1).sum();
        format!("{label}: {} in total", fmt(total))
    };
    format!(
        "{head}; highest {} on {} ({} points).",
        fmt(peak),
        buckets.get(peak_at).map(String::as_str).unwrap_or("?"),
        ys.len()
    )
}

fn count_text(v: f64) -> String {
    format!("{}", v.round() as i64)
}

fn cents_text(v: f64) -> String {
    money(v.round() as i64)
}

fn rate_text(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn opt(y: Option<f64>, fmt: fn(f64) -> String) -> String {
    y.map(fmt).unwrap_or_else(|| "–".into())
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
        all.push(r.map_err(|e| e.body.message.clone())?.0);
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

fn reasons_of(v: &Value) -> Vec<Reason> {
    v.get("reasons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let count = num(r, "count");
            let previous = num(r, "previous_count");
            let share = r.get("share").and_then(Value::as_f64).unwrap_or(0.0);
            let prev_share = r
                .get("previous_share")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let change = r.get("share_change").and_then(Value::as_f64).unwrap_or(0.0);
            Reason {
                code: r
                    .get("reason_code")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                count,
                share,
                share_text: format!("{:.1} %", share * 100.0),
                previous: if previous == 0 {
                    "none".into()
                } else {
                    format!("{previous} ({:.1} %)", prev_share * 100.0)
                },
                change: if previous == 0 && count > 0 {
                    "new this period".into()
                } else {
                    points(change)
                },
            }
        })
        .collect()
}

fn offers_of(v: &Value) -> Vec<OfferRow> {
    let mut rows = Vec::new();
    for o in v
        .get("offers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let row = |variant: &Value, name: String, total: bool| OfferRow {
            offer: s("offer_id"),
            offer_type: s("offer_type"),
            variant: name,
            total,
            shown: num(variant, "shown"),
            accepted: num(variant, "accepted"),
            rate: percent(variant.get("acceptance_rate").and_then(Value::as_f64)),
            saved_mrr: money(num(variant, "saved_mrr_cents")),
        };
        let by_variant: Vec<&Value> = o
            .get("by_variant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let name = |v: &Value| match v.get("variant").and_then(Value::as_str) {
            Some("") | None => "none".to_string(),
            Some(n) => n.to_string(),
        };
        match by_variant.as_slice() {
            [one] => rows.push(row(one, name(one), false)),
            many => {
                rows.push(row(o, "all variants".into(), true));
                rows.extend(many.iter().map(|v| row(v, name(v), false)));
            }
        }
    }
    rows
}

fn variants_of(v: &Value) -> (Vec<VariantRow>, bool) {
    let list: Vec<&Value> = v
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let decided = |r: &Value| r.get("decided").and_then(Value::as_u64);
    let holdout = list
        .iter()
        .find(|r| r.get("variant").and_then(Value::as_str) == Some("holdout"))
        .and_then(|h| Some((num(h, "saved") as u64, decided(h)?)))
        .filter(|h| h.1 > 0);
    let rows = list
        .iter()
        .map(|r| {
            let name = r
                .get("variant")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string();
            let is_holdout = name == "holdout";
            let saved = num(r, "saved");
            let stats = match (is_holdout, decided(r), holdout) {
                (false, Some(n), Some((hx, hn))) => lift_interval(saved as u64, n, hx, hn),
                _ => None,
            };
            let (lift, interval, verdict) = match stats {
                Some((d, lo, hi)) => (
                    points(d),
                    format!("{} to {}", points(lo), points(hi)),
                    if lo > 0.0 {
                        "better than holdout"
                    } else if hi < 0.0 {
                        "worse than holdout"
                    } else {
                        "not significant"
                    },
                ),
                None if is_holdout => ("baseline".into(), "–".into(), "–"),
                None => ("–".into(), "–".into(), "no data"),
            };
            VariantRow {
                variant: name,
                holdout: is_holdout,
                sessions: num(r, "sessions"),
                decided: decided(r)
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "–".into()),
                saved,
                save_rate: percent(r.get("save_rate").and_then(Value::as_f64)),
                lift,
                interval,
                verdict,
            }
        })
        .collect();
    (rows, holdout.is_some())
}

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
            .map(|j| j.0)
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
        Ok(axum::Json(v)) => v,
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
        Ok(axum::Json(v)) => {
            out.reasons = reasons_of(&v);
            out.reasons_total = num(&v, "total");
            out.reasons_previous_total = num(&v, "previous_total");
        }
        Err(e) => failed.push(format!("churn reasons: {}", e.body.message)),
    }
    match offers {
        Ok(axum::Json(v)) => {
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
