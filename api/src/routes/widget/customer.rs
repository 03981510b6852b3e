//! What session start knows of the customer: the batched lookup's row (synced user,
//! subscription, cooldowns) merged with the token's attributes into the attributes flows are
//! chosen by, and the guardrails that hide offers in cooldown.

use serde_json::{Map, Value};
use shared::flows::Guardrails;
use uuid::Uuid;

use crate::{error::ApiResult, extract::WidgetAuth, AppState};
use shared::db::sessions::CustomerKey;

/// The customer's attributes (the token's, signed by the tenant, over synced Stripe data),
/// their user id, MRR and guardrails.
pub(super) struct Customer {
    pub(super) attrs: Map<String, Value>,
    pub(super) user_id: Option<Uuid>,
    pub(super) mrr: i64,
    pub(super) guard: Guardrails,
}

pub(super) async fn customer(
    st: &AppState,
    auth: &WidgetAuth,
    settings: &shared::tenants::TenantSettings,
    lang: Option<&str>,
) -> ApiResult<Customer> {
    let lookup = CustomerKey {
        tenant_id: auth.key.tenant_id,
        mode: auth.key.mode.as_str(),
        customer_id: auth.claims.cus.clone(),
        subscription_id: auth.claims.sub.clone(),
        discount_days: settings.discount_cooldown_days,
        pause_days: settings.pause_cooldown_days,
        trial_extension_days: settings.trial_extension_cooldown_days,
        plan_change_days: settings.plan_change_cooldown_days,
    };
    let row = st.customer_reads.submit(lookup).await?;
    let mut attrs = Map::new();
    if let Some(p) = row.user_plan {
        attrs.insert("plan".into(), p.into());
    }
    if let Some(r) = row.user_region {
        attrs.insert("region".into(), r.into());
    }
    if let Some(mrr) = row.user_mrr {
        attrs.insert("mrr_cents".into(), mrr.into());
    }
    if let Some(created) = row.user_created {
        attrs.insert(
            "tenure_days".into(),
            (chrono::Utc::now() - created).num_days().into(),
        );
    }
    if let Some(custom) = row
        .user_attributes
        .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
    {
        attrs.insert("custom".into(), custom);
    }
    let mut active_coupon = false;
    if let Some(status) = row.sub_status {
        attrs.insert("status".into(), status.into());
        if let Some(p) = row.sub_plan {
            attrs.insert("plan".into(), p.into());
        }
        if let Some(i) = row.sub_interval {
            attrs.insert("billing_interval".into(), i.into());
        }
        attrs.insert("mrr_cents".into(), row.sub_mrr.unwrap_or(0).into());
        active_coupon = row
            .sub_discounts
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty());
    }
    if let Some(token_attrs) = &auth.claims.attrs {
        for (k, v) in token_attrs {
            attrs.insert(k.clone(), v.clone());
        }
    }
    if !attrs.contains_key("language") {
        if let Some(l) = lang {
            attrs.insert(
                "language".into(),
                l.split(['-', '_']).next().unwrap_or("en").into(),
            );
        }
    }
    if attrs.get("has_active_discount").and_then(Value::as_bool) == Some(true) {
        active_coupon = true;
    }
    let mrr = attrs.get("mrr_cents").and_then(Value::as_i64).unwrap_or(0);
    Ok(Customer {
        attrs,
        user_id: row.user_id,
        mrr,
        guard: Guardrails {
            discount_blocked: row.recent_discount || active_coupon,
            pause_blocked: row.recent_pause,
            trial_extension_blocked: row.recent_trial_extension,
            plan_change_blocked: row.recent_plan_change,
        },
    })
}
