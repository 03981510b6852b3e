//! The endpoint table: routes a validated request to its resource's handler, counts applied
//! changes, and answers `GET /v1/account` and the `expand[]`-only check of GETs.

use axum::http::Method;
use serde_json::json;

use super::{
    coupons::{create_coupon, get_coupon},
    customers::get_customer,
    demo::create_demo_objects,
    server::{ApiError, ApiResult, Request},
    store::{lock, Shared},
    subscription_update::update_subscription,
    subscriptions::{cancel_subscription, get_subscription},
    ACCOUNT_ID,
};

/// Routes and runs one request against the store (all-or-nothing: every parameter is
/// validated before anything changes).
pub(super) fn execute(store: &Shared, req: &Request) -> ApiResult {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let mut s = lock(store);
    if s.demo_objects {
        create_demo_objects(&mut s, &segments);
    }
    let result = match (&req.method, segments.as_slice()) {
        (&Method::GET, ["v1", "account"]) => get_account(req),
        (&Method::GET, ["v1", "customers", id]) => get_customer(&s, req, id),
        (&Method::GET, ["v1", "subscriptions", id]) => get_subscription(&s, req, id),
        (&Method::POST, ["v1", "subscriptions", id]) => update_subscription(&mut s, req, id),
        (&Method::DELETE, ["v1", "subscriptions", id]) => cancel_subscription(&mut s, req, id),
        (&Method::POST, ["v1", "coupons"]) => create_coupon(&mut s, req),
        (&Method::GET, ["v1", "coupons", id]) => get_coupon(&s, req, id),
        _ => Err(ApiError {
            status: 404,
            ..ApiError::invalid(
                format!(
                    "Unrecognized request URL ({}: {}). (The fake Stripe serves only the \
                     endpoints RetentionOS uses.)",
                    req.method, req.path
                ),
                None,
            )
        }),
    };
    if result.is_ok() && (req.method == Method::POST || req.method == Method::DELETE) {
        s.mutations += 1;
    }
    result
}

/// Only `expand[]` is accepted on GETs; returns whether `discounts` is expanded.
pub(super) fn check_get_params(req: &Request) -> Result<bool, ApiError> {
    let mut expand_discounts = false;
    for (k, v) in &req.params {
        match k.as_str() {
            "expand[]" => expand_discounts |= v == "discounts",
            _ => return Err(ApiError::unknown_param(k)),
        }
    }
    Ok(expand_discounts)
}

/// `GET /v1/account`: one fixed account for every key (objects are not scoped per account).
pub(super) fn get_account(req: &Request) -> ApiResult {
    check_get_params(req)?;
    Ok(json!({
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {"name": "Fake Stripe account"},
        "settings": {"dashboard": {"display_name": "Fake Stripe account"}},
        "charges_enabled": true,
        "country": "US",
        "default_currency": "usd",
    }))
}
