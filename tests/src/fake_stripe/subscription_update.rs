//! `POST /v1/subscriptions/{id}`: parsing and validating the offer parameters (discounts,
//! pause/resume, price change, trial end, cancel at period end, metadata), then applying
//! them all or nothing.

use std::collections::BTreeMap;

use super::{
    helpers::{new_id, now},
    params::{decode_segment, parse_bool, parse_int, split_brackets},
    server::{ApiError, ApiResult, Request},
    store::Store,
    subscriptions::{render_subscription, Discount},
};

/// What a `POST /v1/subscriptions/{id}` asks for, validated.
#[derive(Default)]
pub(super) struct SubscriptionUpdate {
    /// `Some(list)` replaces the discounts (an empty `discounts` clears them).
    pub(super) discounts: Option<BTreeMap<usize, String>>,
    /// `Some(None)`: resume; `Some(Some(..))`: pause.
    pub(super) pause: Option<Option<(Option<String>, Option<i64>)>>,
    pub(super) item_id: Option<String>,
    pub(super) item_price: Option<String>,
    pub(super) trial_end: Option<TrialEnd>,
    pub(super) cancel_at_period_end: Option<bool>,
    pub(super) metadata: Vec<(String, Option<String>)>,
    pub(super) clear_metadata: bool,
    pub(super) expand_discounts: bool,
}

pub(super) enum TrialEnd {
    Now,
    At(i64),
}

pub(super) fn parse_update(req: &Request) -> Result<SubscriptionUpdate, ApiError> {
    let mut u = SubscriptionUpdate::default();
    for (k, v) in &req.params {
        let (base, idx) = split_brackets(k);
        match (base, idx.as_slice(), v.as_str()) {
            ("discounts", [], "") => u.discounts = Some(BTreeMap::new()),
            ("discounts", [i, "coupon"], coupon) => {
                let i: usize = i.parse().map_err(|_| ApiError::unknown_param(k))?;
                if coupon.is_empty() {
                    return Err(ApiError::invalid(
                        format!("Invalid empty string for {k}"),
                        Some(k),
                    )
                    .with_code("parameter_invalid_empty"));
                }
                u.discounts
                    .get_or_insert_with(BTreeMap::new)
                    .insert(i, coupon.to_string());
            }
            ("pause_collection", [], "") => u.pause = Some(None),
            ("pause_collection", ["behavior"], b) => {
                if !matches!(b, "void" | "keep_as_draft" | "mark_uncollectible") {
                    return Err(ApiError::invalid(
                        format!(
                            "Invalid {k}: must be one of keep_as_draft, mark_uncollectible, or void"
                        ),
                        Some(k),
                    ));
                }
                pause_mut(&mut u).0 = Some(b.to_string());
            }
            ("pause_collection", ["resumes_at"], t) => {
                let t = parse_int(k, t)?;
                if t <= now() {
                    return Err(ApiError::invalid(
                        format!("Invalid {k}: must be in the future"),
                        Some(k),
                    ));
                }
                pause_mut(&mut u).1 = Some(t);
            }
            ("items", ["0", "id"], id) => u.item_id = Some(id.to_string()),
            ("items", ["0", "price"], price) => u.item_price = Some(price.to_string()),
            ("proration_behavior", [], b) => {
                if !matches!(b, "create_prorations" | "always_invoice" | "none") {
                    return Err(ApiError::invalid(
                        "Invalid proration_behavior: must be one of always_invoice, \
                         create_prorations, or none",
                        Some(k),
                    ));
                }
            }
            ("trial_end", [], "now") => u.trial_end = Some(TrialEnd::Now),
            ("trial_end", [], t) => {
                let t = parse_int(k, t)?;
                if t <= now() {
                    return Err(ApiError::invalid(
                        "Invalid timestamp: must be an integer Unix timestamp in the future.",
                        Some(k),
                    )
                    .with_code("invalid_timestamp"));
                }
                u.trial_end = Some(TrialEnd::At(t));
            }
            ("cancel_at_period_end", [], b) => u.cancel_at_period_end = Some(parse_bool(k, b)?),
            ("metadata", [], "") => u.clear_metadata = true,
            ("metadata", [key], value) => u.metadata.push((
                key.to_string(),
                (!value.is_empty()).then(|| value.to_string()),
            )),
            ("expand", [""], what) => u.expand_discounts |= what == "discounts",
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    if let Some(Some((None, _))) = &u.pause {
        return Err(ApiError::invalid(
            "Missing required param: pause_collection[behavior].",
            Some("pause_collection[behavior]"),
        )
        .with_code("parameter_missing"));
    }
    if u.item_price.is_some() && u.item_id.is_none() {
        return Err(ApiError::invalid(
            "The fake Stripe only changes the price of an existing item: send items[0][id] \
             with items[0][price].",
            Some("items[0][id]"),
        ));
    }
    Ok(u)
}

pub(super) fn pause_mut(u: &mut SubscriptionUpdate) -> &mut (Option<String>, Option<i64>) {
    if !matches!(u.pause, Some(Some(_))) {
        u.pause = Some(Some((None, None)));
    }
    match &mut u.pause {
        Some(Some(p)) => p,
        _ => unreachable!("set above"),
    }
}

pub(super) fn update_subscription(s: &mut Store, req: &Request, id: &str) -> ApiResult {
    let id = decode_segment(id);
    let u = parse_update(req)?;
    let sub = s
        .subscriptions
        .get(&id)
        .ok_or_else(|| ApiError::missing("subscription", &id))?
        .clone();
    let only_metadata = u.discounts.is_none()
        && u.pause.is_none()
        && u.item_id.is_none()
        && u.trial_end.is_none()
        && u.cancel_at_period_end.is_none();
    if sub.status == "canceled" && !only_metadata {
        return Err(ApiError::invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
            None,
        ));
    }
    if let Some(discounts) = &u.discounts {
        for (i, coupon) in discounts {
            if !s.coupons.contains_key(coupon) {
                let param = format!("discounts[{i}][coupon]");
                return Err(
                    ApiError::invalid(format!("No such coupon: '{coupon}'"), Some(&param))
                        .with_code("resource_missing"),
                );
            }
        }
    }
    if let Some(item) = &u.item_id {
        if *item != sub.item_id {
            return Err(ApiError::invalid(
                format!("Invalid subscription_item id: {item}"),
                Some("items[0][id]"),
            )
            .with_code("resource_missing"));
        }
    }
    if let Some(price) = &u.item_price {
        if !s.prices.contains_key(price) {
            return Err(ApiError::invalid(
                format!("No such price: '{price}'"),
                Some("items[0][price]"),
            )
            .with_code("resource_missing"));
        }
    }

    // Everything is valid: apply.
    let t = now();
    let mut sub = sub;
    if let Some(discounts) = u.discounts {
        let mut next = Vec::new();
        for coupon in discounts.into_values() {
            match sub.discounts.iter().find(|d| d.coupon == coupon) {
                Some(existing) => next.push(existing.clone()),
                None => {
                    if let Some(c) = s.coupons.get_mut(&coupon) {
                        c.times_redeemed += 1;
                    }
                    next.push(Discount {
                        id: new_id("di"),
                        coupon,
                        start: t,
                    });
                }
            }
        }
        sub.discounts = next;
    }
    if let Some(pause) = u.pause {
        sub.pause_collection = pause.map(|(b, r)| (b.unwrap_or_default(), r));
    }
    if let Some(price) = u.item_price {
        sub.price = price;
    }
    match u.trial_end {
        Some(TrialEnd::Now) => {
            sub.trial_end = Some(t);
            if sub.status == "trialing" {
                sub.status = "active".into();
            }
        }
        Some(TrialEnd::At(end)) => {
            sub.trial_start.get_or_insert(t);
            sub.trial_end = Some(end);
            if sub.status == "active" {
                sub.status = "trialing".into();
            }
        }
        None => {}
    }
    if let Some(c) = u.cancel_at_period_end {
        sub.cancel_at_period_end = c;
        sub.cancel_at = c.then_some(sub.current_period_end);
    }
    if u.clear_metadata {
        sub.metadata.clear();
    }
    for (k, v) in u.metadata {
        match v {
            Some(v) => sub.metadata.insert(k, v),
            None => sub.metadata.remove(&k),
        };
    }
    let body = render_subscription(s, &sub, u.expand_discounts);
    s.subscriptions.insert(id, sub);
    Ok(body)
}
