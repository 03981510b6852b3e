//! How the overview's figures read: numbers and percentages from the API's JSON, changes
//! against the previous period, the charts' text alternatives and the JSON embedded for the
//! chart script.

use serde_json::Value;

use crate::dashboard::money;

pub(super) fn num(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn pct(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64).map(|r| r * 100.0)
}

pub(super) fn percent(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "–".into())
}

pub(super) fn points(d: f64) -> String {
    format!("{:+.1} pts", d * 100.0)
}

pub(super) fn delta_count(now: i64, before: i64) -> String {
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

pub(super) fn delta_points(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(a), Some(b)) => format!("{:+.1} pts vs previous", a - b),
        _ => "no previous figure".into(),
    }
}

/// JSON that can sit inside `<script type="application/json">`: no `<`, `>` or `&` (so no
/// `</script>`), each written as its `\u` escape, which JSON.parse reads back.
pub(super) fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// "total N; highest M on DATE" (or the average for a rate): a chart's text alternative.
pub(super) fn summarise(
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

pub(super) fn count_text(v: f64) -> String {
    format!("{}", v.round() as i64)
}

pub(super) fn cents_text(v: f64) -> String {
    money(v.round() as i64)
}

pub(super) fn rate_text(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

pub(super) fn opt(y: Option<f64>, fmt: fn(f64) -> String) -> String {
    y.map(fmt).unwrap_or_else(|| "–".into())
}
