//! Subscriptions (one item, with their discounts): the stored objects, test setup and
//! inspection (including Stripe's own status changes), `GET` and `DELETE
//! /v1/subscriptions/{id}`, and the JSON shape (API 2025-03-31: `current_period_*` on the
//! item). Updates live in [`super::subscription_update`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    coupons::render_coupon,
    events::event,
    helpers::{new_id, now, period_end},
    params::{decode_segment, parse_bool},
    prices::render_price,
    router::check_get_params,
    server::{ApiError, ApiResult, Request},
    store::{lock, Store},
    FakeStripe,
};

/// Ids of a subscription made with [`FakeStripe::create_subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionIds {
    pub id: String,
    /// Its single item (`si_...`), for `items[0][id]`.
    pub item_id: String,
}

#[derive(Debug, Clone)]
pub(super) struct Discount {
    pub(super) id: String,
    pub(super) coupon: String,
    pub(super) start: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Subscription {
    pub(super) id: String,
    pub(super) customer: String,
    pub(super) status: String,
    pub(super) item_id: String,
    pub(super) price: String,
    pub(super) current_period_start: i64,
    pub(super) current_period_end: i64,
    pub(super) cancel_at_period_end: bool,
    pub(super) cancel_at: Option<i64>,
    /// (behavior, resumes_at)
    pub(super) pause_collection: Option<(String, Option<i64>)>,
    pub(super) discounts: Vec<Discount>,
    pub(super) trial_start: Option<i64>,
    pub(super) trial_end: Option<i64>,
    pub(super) canceled_at: Option<i64>,
    pub(super) ended_at: Option<i64>,
    pub(super) cancellation_reason: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) created: i64,
}

impl FakeStripe {
    /// A subscription of `customer` to `price` (created in USD if it does not exist yet),
    /// in `status` (`active`, `trialing` with a 14-day trial, `past_due`, ...), whose current
    /// period starts now.
    pub fn create_subscription(
        &self,
        customer: &str,
        price: &str,
        amount: i64,
        interval: &str,
        status: &str,
    ) -> SubscriptionIds {
        if !lock(&self.store).prices.contains_key(price) {
            self.create_price(price, amount, "usd", interval);
        }
        let mut store = lock(&self.store);
        assert!(
            store.customers.contains_key(customer),
            "unknown customer {customer}"
        );
        let start = now();
        let ids = SubscriptionIds {
            id: new_id("sub"),
            item_id: new_id("si"),
        };
        let trial = status == "trialing";
        store.subscriptions.insert(
            ids.id.clone(),
            Subscription {
                id: ids.id.clone(),
                customer: customer.to_string(),
                status: status.to_string(),
                item_id: ids.item_id.clone(),
                price: price.to_string(),
                current_period_start: start,
                current_period_end: period_end(start, interval),
                cancel_at_period_end: false,
                cancel_at: None,
                pause_collection: None,
                discounts: Vec::new(),
                trial_start: trial.then_some(start),
                trial_end: trial.then_some(start + 14 * 86_400),
                canceled_at: None,
                ended_at: None,
                cancellation_reason: None,
                metadata: BTreeMap::new(),
                created: start,
            },
        );
        ids
    }

    /// The subscription as `GET /v1/subscriptions/{id}` answers without `expand`
    /// (`discounts` are `di_...` ids), which is also how event payloads carry it.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        let store = lock(&self.store);
        store
            .subscriptions
            .get(id)
            .map(|s| render_subscription(&store, s, false))
    }

    /// The subscription with `discounts` expanded (discount objects with their coupon).
    pub fn subscription_expanded(&self, id: &str) -> Option<Value> {
        let store = lock(&self.store);
        store
            .subscriptions
            .get(id)
            .map(|s| render_subscription(&store, s, true))
    }

    /// Changes a subscription's status as Stripe would on its own (a failed renewal makes
    /// it `past_due`, ...). Not an API request: not logged, not counted as a mutation.
    pub fn set_subscription_status(&self, id: &str, status: &str) {
        let mut store = lock(&self.store);
        let sub = store.subscriptions.get_mut(id).expect("known subscription");
        sub.status = status.to_string();
    }

    /// Cancels a subscription the way Stripe does after failed payments (involuntary churn:
    /// `cancellation_details.reason = payment_failed`; its event has `request: null`).
    pub fn cancel_subscription_automatically(&self, id: &str) {
        let mut store = lock(&self.store);
        let sub = store.subscriptions.get_mut(id).expect("known subscription");
        let t = now();
        sub.status = "canceled".into();
        sub.canceled_at = Some(t);
        sub.ended_at = Some(t);
        sub.cancellation_reason = Some("payment_failed".into());
    }

    /// A `customer.subscription.*` event carrying the subscription's current state, with
    /// `request: null` (a change Stripe made on its own). For a change made through the API,
    /// use [`api_event`](super::api_event) with the `request_id` from [`FakeStripe::requests`].
    pub fn subscription_event(&self, kind: &str, id: &str) -> Value {
        event(kind, self.subscription(id).expect("known subscription"))
    }
}

pub(super) fn get_subscription(s: &Store, req: &Request, id: &str) -> ApiResult {
    let expand = check_get_params(req)?;
    let id = decode_segment(id);
    let sub = s
        .subscriptions
        .get(&id)
        .ok_or_else(|| ApiError::missing("subscription", &id))?;
    Ok(render_subscription(s, sub, expand))
}

pub(super) fn cancel_subscription(s: &mut Store, req: &Request, id: &str) -> ApiResult {
    let id = decode_segment(id);
    let mut expand = false;
    for (k, v) in &req.params {
        match k.as_str() {
            "invoice_now" | "prorate" => {
                parse_bool(k, v)?;
            }
            "cancellation_details[comment]" | "cancellation_details[feedback]" => {}
            "expand[]" => expand |= v == "discounts",
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    let sub = s
        .subscriptions
        .get_mut(&id)
        .filter(|sub| sub.status != "canceled")
        // Stripe treats a canceled subscription as gone for this call.
        .ok_or_else(|| ApiError::missing("subscription", &id))?;
    let t = now();
    sub.status = "canceled".into();
    sub.canceled_at = Some(t);
    sub.ended_at = Some(t);
    sub.cancellation_reason = Some("cancellation_requested".into());
    let sub = sub.clone();
    Ok(render_subscription(s, &sub, expand))
}

pub(super) fn render_subscription(s: &Store, sub: &Subscription, expand_discounts: bool) -> Value {
    let price = s
        .prices
        .get(&sub.price)
        .map(render_price)
        .unwrap_or(Value::Null);
    let currency = price.get("currency").cloned().unwrap_or(Value::Null);
    let discounts: Vec<Value> = sub
        .discounts
        .iter()
        .map(|d| {
            if expand_discounts {
                json!({
                    "id": d.id,
                    "object": "discount",
                    "coupon": s.coupons.get(&d.coupon).map(render_coupon),
                    "customer": sub.customer,
                    "subscription": sub.id,
                    "start": d.start,
                    "end": null,
                })
            } else {
                Value::String(d.id.clone())
            }
        })
        .collect();
    let mut v = Map::new();
    let mut put = |k: &str, val: Value| {
        v.insert(k.to_string(), val);
    };
    put("id", json!(sub.id));
    put("object", json!("subscription"));
    put("customer", json!(sub.customer));
    put("status", json!(sub.status));
    put("currency", currency);
    put(
        "items",
        json!({
            "object": "list",
            "data": [{
                "id": sub.item_id,
                "object": "subscription_item",
                "price": price,
                "quantity": 1,
                "subscription": sub.id,
                "current_period_start": sub.current_period_start,
                "current_period_end": sub.current_period_end,
                "created": sub.created,
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={}", sub.id),
        }),
    );
    put("cancel_at_period_end", json!(sub.cancel_at_period_end));
    put("cancel_at", json!(sub.cancel_at));
    put("canceled_at", json!(sub.canceled_at));
    put("ended_at", json!(sub.ended_at));
    put(
        "cancellation_details",
        json!({"comment": null, "feedback": null, "reason": sub.cancellation_reason}),
    );
    put(
        "pause_collection",
        match &sub.pause_collection {
            Some((behavior, resumes_at)) => json!({"behavior": behavior, "resumes_at": resumes_at}),
            None => Value::Null,
        },
    );
    put("discounts", Value::Array(discounts));
    put("trial_start", json!(sub.trial_start));
    put("trial_end", json!(sub.trial_end));
    put("metadata", json!(sub.metadata));
    put("collection_method", json!("charge_automatically"));
    put("billing_cycle_anchor", json!(sub.created));
    put("start_date", json!(sub.created));
    put("created", json!(sub.created));
    put("latest_invoice", Value::Null);
    put("livemode", json!(false));
    Value::Object(v)
}
