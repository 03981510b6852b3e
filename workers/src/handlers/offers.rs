//! Applying an accepted offer (and a confirmed cancel) to the customer's Stripe
//! subscription. Every call carries a deterministic `Idempotency-Key` per session and
//! action, with parameters computed once and stored, so a retried or redelivered job
//! applies the offer once. A 500 ("outcome unknown") is settled by re-fetching. The session's
//! statements are in `shared::db::sessions::apply`.

use std::sync::Arc;

use chrono::{Months, Utc};
use jobs::{ApplyOffer, CancelSubscription};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::{
    db::sessions::apply::{self as sessions, ApplySession as Session},
    flows::{Offer, OfferType},
    stripe::client::StripeError,
    tenants::Mode,
};
use uuid::Uuid;

use crate::{
    runtime::{JobError, JobMeta},
    stripe_ctx::TenantStripe,
    WorkerState,
};

async fn load(st: &WorkerState, id: Uuid) -> Result<Session, JobError> {
    sessions::load(&st.pools.primary, id)
        .await?
        .ok_or_else(|| JobError::permanent(anyhow::anyhow!("session {id} not found")))
}

async fn fail_offer(st: &WorkerState, id: Uuid, why: &str) -> Result<(), JobError> {
    Ok(sessions::fail_offer(&st.pools.primary, id, why).await?)
}

/// A Stripe coupon id derived from the offer's terms, so every session of one offer reuses
/// one coupon.
fn coupon_id(tenant: Uuid, params: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    for (k, v) in params {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"&");
    }
    format!("rtos_{}", &hex::encode(h.finalize())[..20])
}

/// The Stripe parameters for an offer, computed on the first attempt.
async fn compute_params(
    st: &WorkerState,
    creds: &TenantStripe,
    s: &Session,
    sub_id: &str,
    offer: &Offer,
) -> Result<Value, JobError> {
    let base_time = s.ended_at.unwrap_or_else(Utc::now);
    Ok(match offer.kind {
        OfferType::Discount => {
            let d = offer.discount.as_ref().ok_or_else(|| {
                JobError::permanent(anyhow::anyhow!("discount offer without terms"))
            })?;
            if let Some(c) = &d.coupon_id {
                json!({ "coupon": c, "create": null })
            } else {
                let mut p: Vec<(String, String)> = Vec::new();
                if let Some(pct) = d.percent_off {
                    p.push(("percent_off".into(), format!("{pct}")));
                }
                if let Some(a) = d.amount_off {
                    p.push(("amount_off".into(), a.to_string()));
                    p.push(("currency".into(), d.currency.clone().unwrap_or_default()));
                }
                p.push((
                    "duration".into(),
                    d.duration.clone().unwrap_or_else(|| "once".into()),
                ));
                if let Some(m) = d.duration_in_months {
                    p.push(("duration_in_months".into(), m.to_string()));
                }
                let id = coupon_id(s.tenant_id, &p);
                p.push(("id".into(), id.clone()));
                p.push(("name".into(), offer.title.chars().take(40).collect()));
                json!({ "coupon": id, "create": p })
            }
        }
        OfferType::Pause => {
            let pz = offer
                .pause
                .as_ref()
                .ok_or_else(|| JobError::permanent(anyhow::anyhow!("pause offer without terms")))?;
            let resumes = base_time
                .checked_add_months(Months::new(pz.months))
                .unwrap_or(base_time)
                .timestamp();
            json!([
                ["pause_collection[behavior]", pz.behavior],
                ["pause_collection[resumes_at]", resumes.to_string()]
            ])
        }
        OfferType::PlanChange => {
            let pc = offer
                .plan_change
                .as_ref()
                .ok_or_else(|| JobError::permanent(anyhow::anyhow!("plan change without terms")))?;
            let sub = st.stripe.fetch_subscription(creds, sub_id).await?;
            let item = sub["items"]["data"][0]["id"].as_str().ok_or_else(|| {
                JobError::permanent(anyhow::anyhow!("subscription has no item to change"))
            })?;
            json!([
                ["items[0][id]", item],
                ["items[0][price]", pc.price_id],
                ["proration_behavior", pc.proration]
            ])
        }
        OfferType::TrialExtension => {
            let t = offer.trial_extension.as_ref().ok_or_else(|| {
                JobError::permanent(anyhow::anyhow!("trial extension without terms"))
            })?;
            let sub = st.stripe.fetch_subscription(creds, sub_id).await?;
            let from = sub["trial_end"]
                .as_i64()
                .unwrap_or(0)
                .max(base_time.timestamp());
            let end = from + i64::from(t.days) * 86_400;
            json!([
                ["trial_end", end.to_string()],
                ["proration_behavior", "none"]
            ])
        }
        OfferType::Redirect | OfferType::Custom => Value::Null,
    })
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get(0)?.as_str()?.to_string(),
                p.get(1)?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// After a 500: did the change land? Compares the subscription with what we asked for.
fn looks_applied(sub: &Value, kind: OfferType, params: &Value) -> bool {
    let want = |k: &str| {
        pairs(params)
            .into_iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v)
    };
    match kind {
        OfferType::Discount => {
            let coupon = params["coupon"].as_str().unwrap_or_default();
            sub["discounts"].as_array().into_iter().flatten().any(|d| {
                d["coupon"]["id"].as_str() == Some(coupon)
                    || d["coupon"].as_str() == Some(coupon)
                    || d.as_str() == Some(coupon)
            })
        }
        OfferType::Pause => {
            sub["pause_collection"]["behavior"].as_str()
                == want("pause_collection[behavior]").as_deref()
                && sub["pause_collection"]["resumes_at"]
                    .as_i64()
                    .map(|v| v.to_string())
                    == want("pause_collection[resumes_at]")
        }
        OfferType::PlanChange => {
            sub["items"]["data"][0]["price"]["id"].as_str() == want("items[0][price]").as_deref()
        }
        OfferType::TrialExtension => {
            sub["trial_end"].as_i64().map(|v| v.to_string()) == want("trial_end")
        }
        OfferType::Redirect | OfferType::Custom => true,
    }
}

/// A 500 whose change did not land: the next attempt needs a new idempotency key, since
/// Stripe replays the saved 500 for the old one.
async fn next_key_generation(st: &WorkerState, session: Uuid, offer: bool) -> Result<(), JobError> {
    Ok(sessions::next_key_generation(&st.pools.primary, session, offer).await?)
}

/// The guardrail again, before any Stripe call: another session of this customer already
/// applied an offer of this type within the tenant's cooldown, or accepted one earlier that
/// is still being applied (the earlier acceptance wins; this one is refused). The api checks
/// this at acceptance under the customer's lock; this catches whatever got past it (a row
/// written another way, a cooldown raised since).
async fn cooldown_conflict(
    st: &WorkerState,
    id: Uuid,
    s: &Session,
    kind: OfferType,
) -> Result<Option<String>, JobError> {
    let mode = shared::tenants::Mode::parse(&s.mode)
        .ok_or_else(|| JobError::permanent(anyhow::anyhow!("session mode {:?}", s.mode)))?;
    let settings = shared::tenants::settings(&st.pools.primary, s.tenant_id, mode).await?;
    let days = match kind {
        OfferType::Discount => settings.discount_cooldown_days,
        OfferType::Pause => settings.pause_cooldown_days,
        OfferType::TrialExtension => settings.trial_extension_cooldown_days,
        OfferType::PlanChange => settings.plan_change_cooldown_days,
        OfferType::Redirect | OfferType::Custom => return Ok(None),
    };
    let other =
        sessions::cooldown_conflict(&st.pools.primary, id, kind.as_str(), days as i32).await?;
    Ok(other.map(|o| {
        format!(
            "offer_in_cooldown: another session of this customer ({o}) already applied or accepted a {} offer within the {days}-day cooldown",
            kind.as_str()
        )
    }))
}

#[tracing::instrument(name = "job.apply_offer", skip_all, fields(job_id = %meta.id, attempt = meta.attempt, session_id = %job.session_id, tenant_id = tracing::field::Empty))]
pub async fn apply_offer(
    st: Arc<WorkerState>,
    meta: JobMeta,
    job: ApplyOffer,
) -> Result<(), JobError> {
    let s = load(&st, job.session_id).await?;
    tracing::Span::current().record("tenant_id", tracing::field::display(s.tenant_id));
    if s.offer_state.as_deref() == Some("applied") {
        return Ok(());
    }
    let offer: Offer = match s.accepted_offer.clone().map(serde_json::from_value) {
        Some(Ok(o)) => o,
        _ => {
            return Err(JobError::permanent(anyhow::anyhow!(
                "session has no accepted offer"
            )))
        }
    };
    if let Some(why) = cooldown_conflict(&st, job.session_id, &s, offer.kind).await? {
        fail_offer(&st, job.session_id, &why).await?;
        return Err(JobError::permanent(anyhow::anyhow!(why)));
    }
    let Some(sub_id) = s.subscription_id.clone() else {
        fail_offer(
            &st,
            job.session_id,
            "the customer token named no subscription",
        )
        .await?;
        return Err(JobError::permanent(anyhow::anyhow!(
            "session has no subscription id"
        )));
    };
    let mode = Mode::parse(&s.mode).unwrap_or(Mode::Test);
    let creds = match st
        .stripe
        .settings(&st.pools.primary, s.tenant_id, mode)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            if let JobError::Permanent(err) = &e {
                fail_offer(&st, job.session_id, &err.to_string()).await?;
            }
            return Err(e);
        }
    };
    let params = match &s.offer_params {
        Some(p) => p.clone(),
        None => {
            let p = compute_params(&st, &creds, &s, &sub_id, &offer).await?;
            // Stored once: the first writer wins, and every retry reuses its parameters.
            sessions::store_offer_params(&st.pools.primary, job.session_id, &p).await?
        }
    };
    let idem = format!(
        "rtos:{}:{}:{}",
        job.session_id, offer.id, s.offer_key_generation
    );
    let result: Result<(), StripeError> = async {
        match offer.kind {
            OfferType::Discount => {
                let coupon = params["coupon"].as_str().unwrap_or_default().to_string();
                if let Some(create) = params["create"].as_array() {
                    let create: Vec<(String, String)> = create
                        .iter()
                        .filter_map(|p| {
                            Some((
                                p.get(0)?.as_str()?.to_string(),
                                p.get(1)?.as_str()?.to_string(),
                            ))
                        })
                        .collect();
                    st.stripe
                        .throttle(&creds)
                        .await
                        .map_err(|_| StripeError::Network("rate limiter unavailable".into()))?;
                    if st
                        .stripe
                        .client
                        .get_coupon(&creds.api_key, &coupon)
                        .await?
                        .is_none()
                    {
                        st.stripe
                            .throttle(&creds)
                            .await
                            .map_err(|_| StripeError::Network("rate limiter unavailable".into()))?;
                        match st
                            .stripe
                            .client
                            .create_coupon(
                                &creds.api_key,
                                &create,
                                // The coupon id itself de-duplicates (Stripe refuses a
                                // second coupon with one id): the key may change per attempt.
                                &format!("rtos:coupon:{coupon}:{}", meta.attempt),
                            )
                            .await
                        {
                            Ok(_) => {}
                            // Created concurrently by another session of the same offer.
                            Err(StripeError::Client { code: Some(c), .. })
                                if c == "resource_already_exists" => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                st.stripe
                    .throttle(&creds)
                    .await
                    .map_err(|_| StripeError::Network("rate limiter unavailable".into()))?;
                st.stripe
                    .client
                    .update_subscription(
                        &creds.api_key,
                        &sub_id,
                        &[("discounts[0][coupon]".into(), coupon)],
                        &idem,
                    )
                    .await?;
            }
            OfferType::Redirect | OfferType::Custom => {}
            _ => {
                st.stripe
                    .throttle(&creds)
                    .await
                    .map_err(|_| StripeError::Network("rate limiter unavailable".into()))?;
                st.stripe
                    .client
                    .update_subscription(&creds.api_key, &sub_id, &pairs(&params), &idem)
                    .await?;
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {}
        Err(e) if e.outcome_unknown() => {
            // Settle by re-fetching: if the change is there, it was applied.
            let sub = st.stripe.fetch_subscription(&creds, &sub_id).await?;
            if !looks_applied(&sub, offer.kind, &params) {
                next_key_generation(&st, job.session_id, true).await?;
                return Err(JobError::transient(e));
            }
            tracing::info!(session_id = %job.session_id, "Stripe answered 500 but the offer is applied");
        }
        Err(e) => {
            let err = st.stripe.classify(&creds, e).await;
            if let JobError::Permanent(p) = &err {
                fail_offer(&st, job.session_id, &format!("{p:#}")).await?;
            }
            return Err(err);
        }
    }
    sessions::offer_applied(&st.pools.primary, job.session_id).await?;
    metrics::counter!("offers_applied_total", "type" => offer.kind.as_str()).increment(1);
    Ok(())
}

#[tracing::instrument(name = "job.cancel_subscription", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, session_id = %job.session_id, tenant_id = tracing::field::Empty))]
pub async fn cancel_subscription(
    st: Arc<WorkerState>,
    _meta: JobMeta,
    job: CancelSubscription,
) -> Result<(), JobError> {
    let s = load(&st, job.session_id).await?;
    tracing::Span::current().record("tenant_id", tracing::field::display(s.tenant_id));
    if s.cancel_state.as_deref() == Some("applied") {
        return Ok(());
    }
    let Some(sub_id) = s.subscription_id.clone() else {
        return Err(JobError::permanent(anyhow::anyhow!(
            "session has no subscription id"
        )));
    };
    let mode = Mode::parse(&s.mode).unwrap_or(Mode::Test);
    let creds = st
        .stripe
        .settings(&st.pools.primary, s.tenant_id, mode)
        .await?;
    st.stripe.throttle(&creds).await?;
    let idem = format!("rtos:{}:cancel:{}", job.session_id, s.cancel_key_generation);
    let res = st
        .stripe
        .client
        .update_subscription(
            &creds.api_key,
            &sub_id,
            &[("cancel_at_period_end".into(), "true".into())],
            &idem,
        )
        .await;
    match res {
        Ok(_) => {}
        Err(e) if e.outcome_unknown() => {
            let sub = st.stripe.fetch_subscription(&creds, &sub_id).await?;
            if sub["cancel_at_period_end"].as_bool() != Some(true) {
                next_key_generation(&st, job.session_id, false).await?;
                return Err(JobError::transient(e));
            }
        }
        Err(e) => {
            let err = st.stripe.classify(&creds, e).await;
            if let JobError::Permanent(p) = &err {
                sessions::fail_cancel(&st.pools.primary, job.session_id, format!("{p:#}")).await?;
            }
            return Err(err);
        }
    }
    sessions::cancel_applied(&st.pools.primary, job.session_id).await?;
    Ok(())
}
