//! Coupons: the stored object, test setup and inspection, `POST /v1/coupons` (with
//! Stripe's validation), `GET /v1/coupons/{id}` and the JSON shape.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    helpers::{now, random_chars},
    params::{decode_segment, parse_int, split_brackets},
    router::check_get_params,
    server::{ApiError, ApiResult, Request},
    store::{lock, Store},
    FakeStripe,
};

#[derive(Debug, Clone)]
pub(super) struct Coupon {
    pub(super) id: String,
    pub(super) percent_off: Option<f64>,
    pub(super) amount_off: Option<i64>,
    pub(super) currency: Option<String>,
    pub(super) duration: String,
    pub(super) duration_in_months: Option<i64>,
    pub(super) name: Option<String>,
    pub(super) max_redemptions: Option<i64>,
    pub(super) redeem_by: Option<i64>,
    pub(super) times_redeemed: i64,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) created: i64,
}

impl FakeStripe {
    /// A coupon, as `POST /v1/coupons` would make it (for test setup).
    pub fn create_coupon_percent(&self, id: &str, percent_off: f64, duration: &str) {
        let mut store = lock(&self.store);
        store.coupons.insert(
            id.to_string(),
            Coupon {
                id: id.to_string(),
                percent_off: Some(percent_off),
                amount_off: None,
                currency: None,
                duration: duration.to_string(),
                duration_in_months: (duration == "repeating").then_some(3),
                name: None,
                max_redemptions: None,
                redeem_by: None,
                times_redeemed: 0,
                metadata: BTreeMap::new(),
                created: now(),
            },
        );
    }

    pub fn coupon(&self, id: &str) -> Option<Value> {
        lock(&self.store).coupons.get(id).map(render_coupon)
    }
}

pub(super) fn get_coupon(s: &Store, req: &Request, id: &str) -> ApiResult {
    check_get_params(req)?;
    let id = decode_segment(id);
    let c = s
        .coupons
        .get(&id)
        .ok_or_else(|| ApiError::missing("coupon", &id))?;
    Ok(render_coupon(c))
}

pub(super) fn create_coupon(s: &mut Store, req: &Request) -> ApiResult {
    let mut c = Coupon {
        id: String::new(),
        percent_off: None,
        amount_off: None,
        currency: None,
        duration: "once".into(),
        duration_in_months: None,
        name: None,
        max_redemptions: None,
        redeem_by: None,
        times_redeemed: 0,
        metadata: BTreeMap::new(),
        created: now(),
    };
    let mut id = None;
    for (k, v) in &req.params {
        let (base, idx) = split_brackets(k);
        match (base, idx.as_slice()) {
            ("id", []) => id = Some(v.clone()),
            ("percent_off", []) => {
                let p: f64 = v.parse().map_err(|_| {
                    ApiError::invalid(format!("Invalid decimal: {v}"), Some(k))
                        .with_code("parameter_invalid_decimal")
                })?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(ApiError::invalid(
                        "percent_off must be greater than 0 and at most 100.",
                        Some(k),
                    ));
                }
                c.percent_off = Some(p);
            }
            ("amount_off", []) => {
                let a = parse_int(k, v)?;
                if a <= 0 {
                    return Err(ApiError::invalid("amount_off must be positive.", Some(k)));
                }
                c.amount_off = Some(a);
            }
            ("currency", []) => {
                if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(ApiError::invalid(format!("Invalid currency: {v}"), Some(k)));
                }
                c.currency = Some(v.to_ascii_lowercase());
            }
            ("duration", []) => {
                if !matches!(v.as_str(), "once" | "repeating" | "forever") {
                    return Err(ApiError::invalid(
                        "Invalid duration: must be one of forever, once, or repeating",
                        Some(k),
                    ));
                }
                c.duration = v.clone();
            }
            ("duration_in_months", []) => c.duration_in_months = Some(parse_int(k, v)?),
            ("name", []) => c.name = Some(v.clone()),
            ("max_redemptions", []) => c.max_redemptions = Some(parse_int(k, v)?),
            ("redeem_by", []) => c.redeem_by = Some(parse_int(k, v)?),
            ("metadata", [key]) => {
                c.metadata.insert(key.to_string(), v.clone());
            }
            ("expand", [""]) => {}
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    match (c.percent_off, c.amount_off) {
        (None, None) => {
            return Err(ApiError::invalid(
                "You must pass either percent_off or amount_off.",
                None,
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "You may only pass one of percent_off and amount_off.",
                Some("amount_off"),
            ))
        }
        (None, Some(_)) if c.currency.is_none() => {
            return Err(ApiError::invalid(
                "You must pass currency when passing amount_off.",
                Some("currency"),
            )
            .with_code("parameter_missing"))
        }
        _ => {}
    }
    match (c.duration.as_str(), c.duration_in_months) {
        ("repeating", None) => {
            return Err(ApiError::invalid(
                "Missing required param: duration_in_months.",
                Some("duration_in_months"),
            )
            .with_code("parameter_missing"))
        }
        ("repeating", Some(m)) if m <= 0 => {
            return Err(ApiError::invalid(
                "duration_in_months must be positive.",
                Some("duration_in_months"),
            ))
        }
        ("once" | "forever", Some(_)) => {
            return Err(ApiError::invalid(
                "duration_in_months can only be set when duration is repeating.",
                Some("duration_in_months"),
            ))
        }
        _ => {}
    }
    c.id = id.unwrap_or_else(|| random_chars(8).to_ascii_uppercase());
    if s.coupons.contains_key(&c.id) {
        return Err(ApiError::invalid("Coupon already exists.", Some("id"))
            .with_code("resource_already_exists"));
    }
    let body = render_coupon(&c);
    s.coupons.insert(c.id.clone(), c);
    Ok(body)
}

pub(super) fn render_coupon(c: &Coupon) -> Value {
    json!({
        "id": c.id,
        "object": "coupon",
        "percent_off": c.percent_off,
        "amount_off": c.amount_off,
        "currency": c.currency,
        "duration": c.duration,
        "duration_in_months": c.duration_in_months,
        "name": c.name,
        "max_redemptions": c.max_redemptions,
        "redeem_by": c.redeem_by,
        "times_redeemed": c.times_redeemed,
        "valid": true,
        "metadata": c.metadata,
        "created": c.created,
        "livemode": false,
    })
}
