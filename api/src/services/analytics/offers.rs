//! Offer performance (shown, accepted, saved MRR) by offer, type and variant, and the
//! experiment variants' save rates and lift over the holdout (from the hourly rollups,
//! cached 30 min), for `GET /v1/analytics/offers` and the dashboard's overview.

use std::time::Duration;

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{cache::cached, range::range, rate};
use crate::{error::ApiResult, AppState};

/// Offer performance and experiment variants of a tenant's mode over `from`..`to` (the
/// API's rules, as [`summary`](super::summary)); each variant row also carries `decided`
/// (the save rate's denominator), which `GET /v1/analytics/offers` leaves out. The
/// dashboard reads it.
pub async fn offers(
    st: &AppState,
    tenant: Uuid,
    mode: Mode,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<Value> {
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
