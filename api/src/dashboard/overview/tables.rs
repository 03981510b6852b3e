//! The overview's tables from the API's JSON: churn reasons with their change, offer
//! performance per offer, and the experiment variants with their lift over the holdout.

use super::*;

pub(super) fn reasons_of(v: &Value) -> Vec<Reason> {
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

pub(super) fn offers_of(v: &Value) -> Vec<OfferRow> {
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

pub(super) fn variants_of(v: &Value) -> (Vec<VariantRow>, bool) {
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
