//! One customer of a tenant's mode as the tenant sees them: the customer record, their
//! subscriptions, latest cancel sessions and applied offers. `GET /v1/customers/{id}` and the
//! dashboard's customer page read [`customer`].

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

// Documentation only: [`customer`]'s answer is built in SQL (`to_jsonb` of the rows,
// `jsonb_build_object` of the sessions) and read as JSON by the dashboard too, so these
// types describe it rather than build it (keep them in step with the query).
/// One customer of the key's mode: their record, subscriptions, latest cancel sessions and
/// applied offers.
#[derive(ToSchema)]
#[allow(dead_code)] // read by the document only
pub struct CustomerView {
    /// The tenant's id of the customer, as asked.
    customer_id: String,
    /// The customer record; null when only sessions of the customer exist.
    customer: Option<CustomerRecord>,
    /// Their subscriptions, newest first.
    subscriptions: Vec<CustomerSubscription>,
    /// Their 50 latest cancel sessions, newest first.
    sessions: Vec<CustomerSession>,
    /// The sessions of `sessions` whose offer was applied (`offer_state` `applied`).
    applied_offers: Vec<CustomerSession>,
}

/// A customer record (`users` row, less its custom attributes).
#[derive(ToSchema)]
#[allow(dead_code)] // read by the document only
pub struct CustomerRecord {
    id: Uuid,
    tenant_id: Uuid,
    /// `test` or `live`.
    #[schema(pattern = "^(test|live)$")]
    mode: String,
    /// The tenant's id of the customer.
    external_id: String,
    email: Option<String>,
    plan: Option<String>,
    region: Option<String>,
    mrr_cents: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A subscription of the customer (`subscriptions` row, synced from Stripe).
#[derive(ToSchema)]
#[allow(dead_code)] // read by the document only
pub struct CustomerSubscription {
    id: Uuid,
    tenant_id: Uuid,
    /// The customer record's id.
    user_id: Uuid,
    /// `test` or `live`.
    #[schema(pattern = "^(test|live)$")]
    mode: String,
    stripe_subscription_id: String,
    /// Stripe's subscription status (`active`, `trialing`, `past_due`, `canceled`, ...).
    status: String,
    plan: Option<String>,
    price_id: Option<String>,
    billing_interval: Option<String>,
    mrr_cents: i64,
    currency: Option<String>,
    current_period_start: Option<DateTime<Utc>>,
    current_period_end: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
    /// Stripe's `pause_collection`, null when not paused.
    #[schema(value_type = Option<Object>)]
    pause_collection: Option<Value>,
    /// Stripe's discounts (the subscription's `discounts`).
    discounts: Vec<Value>,
    trial_end: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
    /// `voluntary` or `involuntary`, once canceled.
    #[schema(pattern = "^(voluntary|involuntary)$")]
    churn_kind: Option<String>,
    /// The time of the Stripe object last synced.
    stripe_updated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// One cancel session of the customer.
#[derive(ToSchema)]
#[allow(dead_code)] // read by the document only
pub struct CustomerSession {
    id: Uuid,
    /// `saved`, `canceled`, `deflected` or `abandoned`; null while open.
    #[schema(pattern = "^(saved|canceled|deflected|abandoned)$")]
    outcome: Option<String>,
    /// The type of the offer that saved the customer; null when none did.
    saved_offer_type: Option<shared::flows::OfferType>,
    reason_code: Option<String>,
    /// `pending`, `applied` or `failed`; null when no offer was accepted.
    #[schema(pattern = "^(pending|applied|failed)$")]
    offer_state: Option<String>,
    /// Why applying the offer failed.
    offer_error: Option<String>,
    offer_applied_at: Option<DateTime<Utc>>,
    mrr_cents: i64,
    created_at: DateTime<Utc>,
}

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
