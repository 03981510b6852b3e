//! One customer of a tenant's mode as the tenant sees them: the customer record, their
//! subscriptions, latest cancel sessions and applied offers. `GET /v1/customers/{id}` and the
//! dashboard's customer page read [`customer`].

use serde_json::{json, Value};

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// One customer of a tenant's mode, by the tenant's own id for them: the customer record
/// (plan, MRR), their subscriptions, their 50 latest cancel sessions and the offers applied
/// to them. 404 `customer` when the mode has no such customer (nor any session of them).
pub async fn customer(
    st: &AppState,
    (tenant, mode): (uuid::Uuid, shared::tenants::Mode),
    customer_id: &str,
) -> ApiResult<Value> {
    if customer_id.is_empty() || !shared::text::is_clean(customer_id, false) {
        return Err(ApiError::not_found("customer"));
    }
    let row = sqlx::query!(
        r#"WITH u AS (SELECT * FROM users WHERE tenant_id = $1 AND mode = $2 AND external_id = $3)
         SELECT (SELECT to_jsonb(u) - 'attributes' FROM u) AS "user?",
                (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.created_at DESC), '[]'::jsonb)
                   FROM subscriptions s WHERE s.tenant_id = $1 AND s.mode = $2 AND s.user_id IN (SELECT id FROM u)) AS "subscriptions!",
                (SELECT coalesce(jsonb_agg(x ORDER BY x->>'created_at' DESC), '[]'::jsonb) FROM (
                    SELECT jsonb_build_object('id', c.id, 'outcome', c.outcome, 'saved_offer_type', c.saved_offer_type,
                           'reason_code', c.reason_code, 'offer_state', c.offer_state, 'offer_error', c.offer_error,
                           'offer_applied_at', c.offer_applied_at, 'mrr_cents', c.mrr_cents, 'created_at', c.created_at) AS x
                      FROM cancel_sessions c
                     WHERE c.tenant_id = $1 AND c.mode = $2 AND c.customer_id = $3
                     ORDER BY c.created_at DESC LIMIT 50) l) AS "sessions!""#,
        tenant,
        mode.as_str(),
        customer_id,
    )
    .fetch_one(&st.pools.read)
    .await?;
    let (user, subscriptions, sessions) = (row.user, row.subscriptions, row.sessions);
    let empty = sessions.as_array().is_none_or(|a| a.is_empty());
    if user.is_none() && empty {
        return Err(ApiError::not_found("customer"));
    }
    let applied: Vec<Value> = sessions
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["offer_state"] == "applied")
        .cloned()
        .collect();
    Ok(json!({
        "customer_id": customer_id,
        "customer": user,
        "subscriptions": subscriptions,
        "sessions": sessions,
        "applied_offers": applied,
    }))
}
