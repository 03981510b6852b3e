//! Sandbox mode ([`FakeStripe::enable_demo_objects`]): unknown `cus_demo…` and
//! `sub_demo…` ids are created on first use.

use std::collections::BTreeMap;

use super::{
    customers::Customer,
    helpers::{new_id, now, period_end},
    params::decode_segment,
    prices::Price,
    store::{lock, Store},
    subscriptions::Subscription,
    FakeStripe, DEMO_PRICE,
};

impl FakeStripe {
    /// Sandbox mode, off unless called (no test relies on it): the first request naming an
    /// unknown `sub_demo…` subscription (or `cus_demo…` customer) creates it, so every demo
    /// visitor has a subscription without any setup, even after the sandbox restarted.
    /// `sub_demo<suffix>` belongs to `cus_demo<suffix>`, on [`DEMO_PRICE`] ($49.00 a month,
    /// as the demo page shows), active, its current period starting when it is created.
    pub fn enable_demo_objects(&self) {
        let mut s = lock(&self.store);
        s.demo_objects = true;
        if !s.prices.contains_key(DEMO_PRICE) {
            let created = now();
            s.prices.insert(
                DEMO_PRICE.to_string(),
                Price {
                    id: DEMO_PRICE.to_string(),
                    unit_amount: 4900,
                    currency: "usd".into(),
                    interval: "month".into(),
                    created,
                },
            );
        }
    }
}

/// Sandbox mode: creates the `cus_demo…` customer or `sub_demo…` subscription (and its
/// customer) a request names, if unknown. Any other id is left to answer 404 as usual.
pub(super) fn create_demo_objects(s: &mut Store, segments: &[&str]) {
    let id = match segments {
        ["v1", "customers" | "subscriptions", id] => decode_segment(id),
        _ => return,
    };
    let Some(suffix) = id
        .strip_prefix("sub_demo")
        .or_else(|| id.strip_prefix("cus_demo"))
    else {
        return;
    };
    let customer = format!("cus_demo{suffix}");
    let t = now();
    s.customers
        .entry(customer.clone())
        .or_insert_with(|| Customer {
            id: customer.clone(),
            email: Some(format!("{customer}@demo.retentionos.test")),
            created: t,
        });
    let subscription = format!("sub_demo{suffix}");
    if s.subscriptions.contains_key(&subscription) {
        return;
    }
    s.subscriptions.insert(
        subscription.clone(),
        Subscription {
            id: subscription,
            customer,
            status: "active".into(),
            item_id: new_id("si"),
            price: DEMO_PRICE.into(),
            current_period_start: t,
            current_period_end: period_end(t, "month"),
            cancel_at_period_end: false,
            cancel_at: None,
            pause_collection: None,
            discounts: Vec::new(),
            trial_start: None,
            trial_end: None,
            canceled_at: None,
            ended_at: None,
            cancellation_reason: None,
            metadata: BTreeMap::new(),
            created: t,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Sandbox mode is opt-in: without it a `sub_demo…` id is unknown like any other.
    #[tokio::test]
    async fn demo_objects_are_created_on_first_use_only_in_sandbox_mode() {
        let fake = FakeStripe::start().await;
        let c = reqwest::Client::new();
        let get = |path: &str| {
            let req = c
                .get(format!("{}{path}", fake.base_url()))
                .bearer_auth("sk_test_sandbox");
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        assert_eq!(get("/v1/subscriptions/sub_demo_v1").await.0, 404);
        assert!(fake.subscription("sub_demo_v1").is_none());

        fake.enable_demo_objects();
        let (status, sub) = get("/v1/subscriptions/sub_demo_v1").await;
        assert_eq!(status, 200, "{sub}");
        assert_eq!(sub["customer"], "cus_demo_v1");
        assert_eq!(sub["status"], "active");
        assert_eq!(sub["items"]["data"][0]["price"]["id"], DEMO_PRICE);
        assert_eq!(sub["items"]["data"][0]["price"]["unit_amount"], 4900);
        let (status, cus) = get("/v1/customers/cus_demo_v1").await;
        assert_eq!((status, cus["id"].as_str()), (200, Some("cus_demo_v1")));
        // The same subscription the next time (changes stick), a customer alone creates its
        // subscription too, and other ids stay unknown.
        let r = c
            .post(format!("{}/v1/subscriptions/sub_demo_v1", fake.base_url()))
            .bearer_auth("sk_test_sandbox")
            .form(&[("cancel_at_period_end", "true")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            get("/v1/subscriptions/sub_demo_v1").await.1["cancel_at_period_end"],
            true
        );
        assert_eq!(get("/v1/customers/cus_demo").await.0, 200);
        assert_eq!(
            fake.subscription("sub_demo").unwrap()["customer"],
            "cus_demo"
        );
        assert_eq!(get("/v1/subscriptions/sub_other").await.0, 404);
        assert_eq!(get("/v1/customers/cus_other").await.0, 404);
    }
}
