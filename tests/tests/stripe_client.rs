//! The Stripe client against the fake Stripe server (every call, idempotency semantics,
//! error classification), the per-account rate limiter against the real Redis, and the
//! fake's signed webhook deliveries.

use std::time::{Duration, Instant};

use harness::fake_stripe::{self, FakeStripe, Fault, SubscriptionIds};
use serde_json::Value;
use shared::stripe::{
    client::{StripeClient, StripeError, API_VERSION},
    ratelimit::AccountRateLimiter,
    webhook,
};

const KEY: &str = "rk_test_tenant_a_51abcdef";

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn setup() -> (FakeStripe, StripeClient, SubscriptionIds) {
    let fake = FakeStripe::start().await;
    let client = StripeClient::new(&fake.base_url(), Duration::from_secs(5));
    let cus = fake.create_customer("ada@example.com");
    let sub = fake.create_subscription(&cus, "price_pro_monthly", 4900, "month", "active");
    (fake, client, sub)
}

// ---------------------------------------------------------------------------------------
// Every call

#[tokio::test]
async fn get_subscription_sends_key_version_and_expands_discounts() {
    let (fake, client, sub) = setup().await;
    let s = client.get_subscription(KEY, &sub.id).await.unwrap();
    assert_eq!(s["id"], sub.id.as_str());
    assert_eq!(s["status"], "active");
    assert_eq!(s["items"]["data"][0]["id"], sub.item_id.as_str());
    assert_eq!(s["items"]["data"][0]["price"]["unit_amount"], 4900);
    assert_eq!(
        s["items"]["data"][0]["price"]["recurring"]["interval"],
        "month"
    );
    assert!(
        s["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap()
            > 0
    );

    let log = fake.requests();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", &*format!("/v1/subscriptions/{}", sub.id))
    );
    assert_eq!(r.query, p(&[("expand[]", "discounts")]));
    assert_eq!(r.api_key.as_deref(), Some(KEY));
    assert_eq!(r.stripe_version.as_deref(), Some(API_VERSION));
    assert_eq!(r.idempotency_key, None, "GETs carry no idempotency key");
    assert_eq!(r.status, Some(200));
}

#[tokio::test]
async fn get_customer() {
    let (fake, client, _) = setup().await;
    let cus = fake.create_customer("grace@example.com");
    let c = client.get_customer(KEY, &cus).await.unwrap();
    assert_eq!(c["id"], cus.as_str());
    assert_eq!(c["email"], "grace@example.com");
    assert_eq!(c["object"], "customer");
}

#[tokio::test]
async fn missing_objects_are_permanent_404s() {
    let (_fake, client, _) = setup().await;
    let e = client.get_subscription(KEY, "sub_nope").await.unwrap_err();
    assert!(
        matches!(&e, StripeError::Client { status: 404, code: Some(c), .. } if c == "resource_missing"),
        "{e:?}"
    );
    assert!(e.is_permanent() && !e.is_retryable());
    let e = client.get_customer(KEY, "cus_nope").await.unwrap_err();
    assert_eq!(e.code(), Some("resource_missing"));
}

#[tokio::test]
async fn ids_cannot_escape_their_path_segment() {
    let (fake, client, sub) = setup().await;
    let e = client
        .get_subscription(KEY, &format!("x/../../customers/{}", sub.id))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StripeError::Client { status: 404, .. }),
        "{e:?}"
    );
    assert_eq!(
        fake.requests()[0].path,
        format!("/v1/subscriptions/x%2F..%2F..%2Fcustomers%2F{}", sub.id)
    );
}

#[tokio::test]
async fn create_and_get_coupons() {
    let (fake, client, _) = setup().await;
    let created = client
        .create_coupon(
            KEY,
            &p(&[
                ("id", "RET20_3M"),
                ("percent_off", "20"),
                ("duration", "repeating"),
                ("duration_in_months", "3"),
                ("name", "20% off for 3 months"),
            ]),
            "coupon:flow_1:offer_2",
        )
        .await
        .unwrap();
    assert!(!created.idempotent_replayed);
    assert!(created.request_id.as_deref().unwrap().starts_with("req_"));
    assert_eq!(created.body["id"], "RET20_3M");
    assert_eq!(created.body["percent_off"], 20.0);
    assert_eq!(created.body["duration_in_months"], 3);

    let amount = client
        .create_coupon(
            KEY,
            &p(&[
                ("amount_off", "500"),
                ("currency", "usd"),
                ("duration", "once"),
            ]),
            "coupon:flow_1:offer_3",
        )
        .await
        .unwrap();
    let generated_id = amount.body["id"].as_str().unwrap().to_string();
    assert_eq!(amount.body["amount_off"], 500);

    let got = client.get_coupon(KEY, "RET20_3M").await.unwrap().unwrap();
    assert_eq!(got["percent_off"], 20.0);
    assert!(client
        .get_coupon(KEY, &generated_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(client.get_coupon(KEY, "NOPE").await.unwrap(), None);

    let posts = fake.requests_to("POST /v1/coupons");
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].idempotency_key.as_deref(),
        Some("coupon:flow_1:offer_2")
    );

    // Stripe's validation: amount_off needs a currency; a used id is taken.
    let e = client
        .create_coupon(KEY, &p(&[("amount_off", "500")]), "coupon:bad:1")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StripeError::Client { status: 400, param: Some(p), .. } if p == "currency"),
        "{e:?}"
    );
    let e = client
        .create_coupon(
            KEY,
            &p(&[("id", "RET20_3M"), ("percent_off", "5")]),
            "coupon:bad:2",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("resource_already_exists"));
}

#[tokio::test]
async fn discount_offer_applies_and_reads_back_expanded() {
    let (fake, client, sub) = setup().await;
    fake.create_coupon_percent("SAVE25", 25.0, "once");
    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("discounts[0][coupon]", "SAVE25")]),
            "offer:sess_1:discount",
        )
        .await
        .unwrap();
    // The POST answer carries discount ids, as Stripe's does without `expand`.
    let di = r.body["discounts"][0].as_str().unwrap().to_string();
    assert!(di.starts_with("di_"), "{di}");

    let s = client.get_subscription(KEY, &sub.id).await.unwrap();
    assert_eq!(s["discounts"][0]["id"], di.as_str());
    assert_eq!(s["discounts"][0]["coupon"]["id"], "SAVE25");
    assert_eq!(s["discounts"][0]["coupon"]["percent_off"], 25.0);

    let post = &fake.requests_to("POST /v1/subscriptions")[0];
    assert_eq!(post.form, p(&[("discounts[0][coupon]", "SAVE25")]));
    assert_eq!(
        post.idempotency_key.as_deref(),
        Some("offer:sess_1:discount")
    );

    // An unknown coupon is a permanent error naming the parameter.
    let e = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("discounts[0][coupon]", "NOPE")]),
            "offer:sess_2:discount",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StripeError::Client { status: 400, code: Some(c), param: Some(p), .. }
            if c == "resource_missing" && p == "discounts[0][coupon]"),
        "{e:?}"
    );
}

#[tokio::test]
async fn pause_and_resume() {
    let (fake, client, sub) = setup().await;
    let resumes_at = chrono::Utc::now().timestamp() + 30 * 86_400;
    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[
                ("pause_collection[behavior]", "void"),
                ("pause_collection[resumes_at]", &resumes_at.to_string()),
            ]),
            "offer:sess_1:pause",
        )
        .await
        .unwrap();
    assert_eq!(r.body["pause_collection"]["behavior"], "void");
    assert_eq!(r.body["pause_collection"]["resumes_at"], resumes_at);
    assert_eq!(
        r.body["status"], "active",
        "pausing collection keeps the status"
    );

    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("pause_collection", "")]),
            "resume:sess_1",
        )
        .await
        .unwrap();
    assert_eq!(r.body["pause_collection"], Value::Null);
    assert_eq!(
        fake.subscription(&sub.id).unwrap()["pause_collection"],
        Value::Null
    );

    let e = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("pause_collection[behavior]", "forever")]),
            "offer:sess_2:pause",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StripeError::Client { param: Some(p), .. } if p == "pause_collection[behavior]"),
        "{e:?}"
    );
}

#[tokio::test]
async fn plan_change() {
    let (fake, client, sub) = setup().await;
    fake.create_price("price_basic_monthly", 1900, "usd", "month");
    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[
                ("items[0][id]", &sub.item_id),
                ("items[0][price]", "price_basic_monthly"),
                ("proration_behavior", "none"),
            ]),
            "offer:sess_1:downgrade",
        )
        .await
        .unwrap();
    let item = &r.body["items"]["data"][0];
    assert_eq!(item["id"], sub.item_id.as_str(), "the item keeps its id");
    assert_eq!(item["price"]["id"], "price_basic_monthly");
    assert_eq!(item["price"]["unit_amount"], 1900);

    let e = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[
                ("items[0][id]", &sub.item_id),
                ("items[0][price]", "price_nope"),
            ]),
            "offer:sess_2:downgrade",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("resource_missing"));
    let e = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("proration_behavior", "sometimes")]),
            "offer:sess_3:downgrade",
        )
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
}

#[tokio::test]
async fn trial_extension() {
    let (fake, client, _) = setup().await;
    let cus = fake.create_customer("trial@example.com");
    let sub = fake.create_subscription(&cus, "price_pro_monthly", 4900, "month", "trialing");
    let end = chrono::Utc::now().timestamp() + 30 * 86_400;
    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[
                ("trial_end", &end.to_string()),
                ("proration_behavior", "none"),
            ]),
            "offer:sess_1:trial",
        )
        .await
        .unwrap();
    assert_eq!(r.body["trial_end"], end);
    assert_eq!(r.body["status"], "trialing");

    let past = chrono::Utc::now().timestamp() - 10;
    let e = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("trial_end", &past.to_string())]),
            "offer:sess_2:trial",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StripeError::Client { param: Some(p), .. } if p == "trial_end"),
        "{e:?}"
    );
}

#[tokio::test]
async fn cancel_at_period_end_and_undo() {
    let (_fake, client, sub) = setup().await;
    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("cancel_at_period_end", "true")]),
            "cancel:sess_1",
        )
        .await
        .unwrap();
    assert_eq!(r.body["cancel_at_period_end"], true);
    assert_eq!(
        r.body["cancel_at"],
        r.body["items"]["data"][0]["current_period_end"]
    );
    assert_eq!(r.body["status"], "active");
    let r = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("cancel_at_period_end", "false")]),
            "undo:sess_1",
        )
        .await
        .unwrap();
    assert_eq!(r.body["cancel_at_period_end"], false);
    assert_eq!(r.body["cancel_at"], Value::Null);
}

#[tokio::test]
async fn cancel_now() {
    let (fake, client, sub) = setup().await;
    let r = client
        .cancel_subscription(KEY, &sub.id, "cancel_now:sess_1")
        .await
        .unwrap();
    assert_eq!(r.body["status"], "canceled");
    assert!(r.body["canceled_at"].as_i64().is_some());
    assert_eq!(
        r.body["cancellation_details"]["reason"],
        "cancellation_requested"
    );
    let del = &fake.requests_to("DELETE /v1/subscriptions")[0];
    assert_eq!(del.idempotency_key.as_deref(), Some("cancel_now:sess_1"));
    assert!(del.form.is_empty());

    // Canceling again (new key) is "no such subscription"; updating is refused.
    let e = client
        .cancel_subscription(KEY, &sub.id, "cancel_now:sess_2")
        .await
        .unwrap_err();
    assert!(
        matches!(e, StripeError::Client { status: 404, .. }),
        "{e:?}"
    );
    let e = client
        .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), "x:1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, StripeError::Client { status: 400, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn unknown_parameters_are_rejected_like_stripe() {
    let (fake, client, sub) = setup().await;
    fake.create_coupon_percent("SAVE25", 25.0, "once");
    // The singular `coupon` parameter was removed in API 2025-03-31.
    let e = client
        .update_subscription(KEY, &sub.id, &p(&[("coupon", "SAVE25")]), "offer:old_api")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        StripeError::Client {
            status: 400,
            kind: "invalid_request_error".into(),
            code: Some("parameter_unknown".into()),
            message: "Received unknown parameter: coupon".into(),
            param: Some("coupon".into()),
        }
    );
    assert_eq!(fake.mutations(), 0);
}

// ---------------------------------------------------------------------------------------
// Idempotency

#[tokio::test]
async fn same_key_twice_applies_once_and_flags_the_replay() {
    let (fake, client, sub) = setup().await;
    fake.create_coupon_percent("SAVE25", 25.0, "once");
    let params = p(&[("discounts[0][coupon]", "SAVE25")]);
    let first = client
        .update_subscription(KEY, &sub.id, &params, "offer:sess_9:discount")
        .await
        .unwrap();
    let second = client
        .update_subscription(KEY, &sub.id, &params, "offer:sess_9:discount")
        .await
        .unwrap();
    assert!(!first.idempotent_replayed);
    assert!(second.idempotent_replayed);
    assert_eq!(first.body, second.body);
    assert_eq!(fake.mutations(), 1);
    assert_eq!(fake.coupon("SAVE25").unwrap()["times_redeemed"], 1);
    let log = fake.requests_to("POST");
    assert_eq!(
        log.iter().map(|r| r.replayed).collect::<Vec<_>>(),
        vec![false, true]
    );

    // Keys are scoped to the API key (the account): another tenant's key executes anew.
    let other = client
        .update_subscription(
            "rk_test_tenant_b_99",
            &sub.id,
            &params,
            "offer:sess_9:discount",
        )
        .await
        .unwrap();
    assert!(!other.idempotent_replayed);
    assert_eq!(fake.mutations(), 2);
}

#[tokio::test]
async fn same_key_while_in_flight_is_a_retryable_conflict() {
    let (fake, client, sub) = setup().await;
    fake.fail_next(
        "POST /v1/subscriptions",
        1,
        Fault::Slow(Duration::from_millis(800)),
    );
    let params = p(&[("cancel_at_period_end", "true")]);
    let first = {
        let (client, id, params) = (client.clone(), sub.id.clone(), params.clone());
        tokio::spawn(async move {
            client
                .update_subscription(KEY, &id, &params, "cancel:sess_5")
                .await
        })
    };
    // Wait until the first request is at the fake (and holds the key), however slow CI is.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.requests_to("POST /v1/subscriptions").is_empty() {
        assert!(Instant::now() < deadline, "the first request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_5")
        .await
        .unwrap_err();
    assert_eq!(e, StripeError::Conflict);
    assert!(e.is_retryable());

    let first = first.await.unwrap().unwrap();
    assert!(!first.idempotent_replayed);
    let again = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_5")
        .await
        .unwrap();
    assert!(again.idempotent_replayed);
    assert_eq!(fake.mutations(), 1);
}

#[tokio::test]
async fn same_key_with_other_parameters_is_a_permanent_idempotency_error() {
    let (fake, client, sub) = setup().await;
    client
        .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), "k:1")
        .await
        .unwrap();
    let e = client
        .update_subscription(
            KEY,
            &sub.id,
            &p(&[("cancel_at_period_end", "false")]),
            "k:1",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StripeError::Client { status: 400, kind, .. } if kind == "idempotency_error"),
        "{e:?}"
    );
    assert!(e.is_permanent());
    assert_eq!(fake.mutations(), 1);
    assert_eq!(
        fake.subscription(&sub.id).unwrap()["cancel_at_period_end"],
        true
    );
}

#[tokio::test]
async fn invalid_idempotency_keys_never_leave_the_process() {
    let (fake, client, sub) = setup().await;
    for key in ["", &"k".repeat(256), "has space"] {
        let e = client
            .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), key)
            .await
            .unwrap_err();
        assert!(matches!(e, StripeError::InvalidRequest(_)), "{e:?}");
        assert!(e.is_permanent());
    }
    let ok = "k".repeat(255);
    client
        .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), &ok)
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Errors and their classification

#[tokio::test]
async fn http_429_is_rate_limited_with_retry_after_and_not_saved() {
    let (fake, client, sub) = setup().await;
    fake.fail_next(
        "/v1/subscriptions",
        1,
        Fault::Status429 {
            retry_after: Some(Duration::from_secs(2)),
        },
    );
    let params = p(&[("cancel_at_period_end", "true")]);
    let e = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_7")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        StripeError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    assert!(e.is_retryable());
    assert_eq!(fake.mutations(), 0);
    // The retry with the same key executes (a 429 is not saved for the key).
    let r = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_7")
        .await
        .unwrap();
    assert!(!r.idempotent_replayed);
    assert_eq!(fake.mutations(), 1);

    fake.fail_next(
        "GET /v1/customers",
        1,
        Fault::Status429 { retry_after: None },
    );
    let e = client.get_customer(KEY, "cus_x").await.unwrap_err();
    assert_eq!(e, StripeError::RateLimited { retry_after: None });
}

#[tokio::test]
async fn http_500_is_outcome_unknown_and_replays_as_500() {
    let (fake, client, sub) = setup().await;
    fake.fail_next("POST /v1/subscriptions", 1, Fault::Status500);
    let params = p(&[("cancel_at_period_end", "true")]);
    let e = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_8")
        .await
        .unwrap_err();
    assert_eq!(e, StripeError::OutcomeUnknown { status: 500 });
    assert!(e.outcome_unknown() && !e.is_retryable() && !e.is_permanent());
    // Stripe saved the 500 for the key: retrying with it cannot settle anything; re-fetch.
    let e = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_8")
        .await
        .unwrap_err();
    assert_eq!(e, StripeError::OutcomeUnknown { status: 500 });
    let s = client.get_subscription(KEY, &sub.id).await.unwrap();
    assert_eq!(s["cancel_at_period_end"], false, "nothing was applied");
    assert_eq!(fake.mutations(), 0);
}

#[tokio::test]
async fn http_500_after_applying_is_settled_by_refetching() {
    let (fake, client, sub) = setup().await;
    fake.fail_next("POST /v1/subscriptions", 1, Fault::Status500AfterApplying);
    let e = client
        .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), "c:1")
        .await
        .unwrap_err();
    assert!(e.outcome_unknown(), "{e:?}");
    let s = client.get_subscription(KEY, &sub.id).await.unwrap();
    assert_eq!(s["cancel_at_period_end"], true, "the change was applied");
    assert_eq!(fake.mutations(), 1);
}

#[tokio::test]
async fn timeout_is_a_retryable_network_error() {
    let (fake, _, sub) = setup().await;
    let client = StripeClient::new(&fake.base_url(), Duration::from_millis(300));
    fake.set_hang(Duration::from_secs(3));
    fake.fail_next("POST /v1/subscriptions", 1, Fault::Timeout);
    let params = p(&[("cancel_at_period_end", "true")]);
    let started = Instant::now();
    let e = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_10")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&e, StripeError::Network(m) if m.starts_with("timeout")),
        "{e:?}"
    );
    assert!(e.is_retryable());
    // Nothing was applied nor saved: the retry with the same key executes.
    let r = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_10")
        .await
        .unwrap();
    assert!(!r.idempotent_replayed);
    assert_eq!(fake.mutations(), 1);

    fake.fail_next("GET /v1/subscriptions", 1, Fault::Timeout);
    let e = client.get_subscription(KEY, &sub.id).await.unwrap_err();
    assert!(matches!(e, StripeError::Network(_)), "{e:?}");
}

#[tokio::test]
async fn timeout_after_applying_then_retry_replays_instead_of_applying_twice() {
    let (fake, _, sub) = setup().await;
    let client = StripeClient::new(&fake.base_url(), Duration::from_millis(300));
    fake.set_hang(Duration::from_secs(3));
    fake.create_coupon_percent("SAVE25", 25.0, "once");
    fake.fail_next("POST /v1/subscriptions", 1, Fault::TimeoutAfterApplying);
    let params = p(&[("discounts[0][coupon]", "SAVE25")]);
    let e = client
        .update_subscription(KEY, &sub.id, &params, "offer:sess_11:discount")
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    let r = client
        .update_subscription(KEY, &sub.id, &params, "offer:sess_11:discount")
        .await
        .unwrap();
    assert!(r.idempotent_replayed);
    assert_eq!(fake.mutations(), 1);
    assert_eq!(fake.coupon("SAVE25").unwrap()["times_redeemed"], 1);
}

#[tokio::test]
async fn slow_answers_within_the_timeout_succeed() {
    let (fake, client, sub) = setup().await;
    fake.fail_next(
        "GET /v1/subscriptions",
        1,
        Fault::Slow(Duration::from_millis(300)),
    );
    let started = Instant::now();
    client.get_subscription(KEY, &sub.id).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn injected_400_is_a_permanent_client_error_with_code_and_message() {
    let (fake, client, sub) = setup().await;
    fake.fail_next(
        "POST /v1/subscriptions",
        1,
        Fault::Status400 {
            code: "resource_missing".into(),
            message: "No such price".into(),
        },
    );
    let e = client
        .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), "c:2")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        StripeError::Client {
            status: 400,
            kind: "invalid_request_error".into(),
            code: Some("resource_missing".into()),
            message: "No such price".into(),
            param: None,
        }
    );
    assert!(e.is_permanent() && !e.is_retryable());
    // Not saved for the key: the same request can run once the cause is fixed.
    client
        .update_subscription(KEY, &sub.id, &p(&[("cancel_at_period_end", "true")]), "c:2")
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_api_key_is_a_permanent_401() {
    let (_fake, client, sub) = setup().await;
    let e = client
        .get_subscription("pk_test_publishable", &sub.id)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StripeError::Client { status: 401, .. }),
        "{e:?}"
    );
    let e = client.get_subscription("", &sub.id).await.unwrap_err();
    assert!(matches!(e, StripeError::InvalidRequest(_)), "{e:?}");
    let e = client
        .get_subscription("rk_test_bad\nkey", &sub.id)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StripeError::InvalidRequest(m) if !m.contains("bad")),
        "{e:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let port = harness::free_port();
    let client = StripeClient::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
    let e = client.get_customer(KEY, "cus_x").await.unwrap_err();
    assert!(
        matches!(&e, StripeError::Network(m) if m.starts_with("connect")),
        "{e:?}"
    );
    assert!(e.is_retryable());
}

// ---------------------------------------------------------------------------------------
// Rate limiter (real Redis)

async fn limiter() -> (AccountRateLimiter, String) {
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let conn = client.get_connection_manager().await.expect("Redis is up");
    let prefix = format!("rtos_test:{}:", uuid::Uuid::new_v4().simple());
    (AccountRateLimiter::new(conn, prefix.clone()), prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiter_spaces_two_concurrent_tasks_to_the_rate() {
    let (limiter, _) = limiter().await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut grants = Vec::new();
                for _ in 0..30 {
                    limiter.acquire("acct_1", 20).await.unwrap();
                    grants.push(started.elapsed());
                }
                grants
            })
        })
        .collect();
    let mut grants = Vec::new();
    for t in tasks {
        grants.extend(t.await.unwrap());
    }
    let total = started.elapsed();
    // 60 slots at 20/s with a burst of 4: 56 intervals of 50 ms = 2.8 s.
    assert!(
        total >= Duration::from_millis(2600) && total <= Duration::from_millis(4500),
        "{total:?}"
    );
    // In no one-second window do more than rate + burst requests go out.
    grants.sort();
    for (i, g) in grants.iter().enumerate() {
        let in_window = grants[i..]
            .iter()
            .take_while(|h| **h - *g < Duration::from_secs(1))
            .count();
        assert!(in_window <= 24, "{in_window} grants within 1 s from {g:?}");
    }
    redis_del(&limiter.key("acct_1")).await;
}

#[tokio::test]
async fn penalize_delays_the_next_acquire_of_that_account_only() {
    let (limiter, _) = limiter().await;
    limiter.acquire("acct_p", 20).await.unwrap();
    limiter
        .penalize("acct_p", Duration::from_millis(1000))
        .await
        .unwrap();
    let started = Instant::now();
    limiter.acquire("acct_other", 20).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "other accounts are not held"
    );
    limiter.acquire("acct_p", 20).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1800),
        "{waited:?}"
    );
    // After a hold, no burst: the next slot is one interval later.
    let t = Instant::now();
    limiter.acquire("acct_p", 20).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    // A shorter penalty never shortens a longer one.
    limiter
        .penalize("acct_p", Duration::from_millis(800))
        .await
        .unwrap();
    limiter
        .penalize("acct_p", Duration::from_millis(10))
        .await
        .unwrap();
    let t = Instant::now();
    limiter.acquire("acct_p", 20).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    for a in ["acct_p", "acct_other"] {
        redis_del(&limiter.key(a)).await;
    }
}

#[tokio::test]
async fn limiter_keys_expire_by_themselves() {
    let (limiter, prefix) = limiter().await;
    limiter.acquire("acct_ttl", 20).await.unwrap();
    let key = limiter.key("acct_ttl");
    assert_eq!(key, format!("{prefix}stripe:rl:acct_ttl"));
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 1_100, "{ttl}");
    redis_del(&key).await;
}

async fn redis_del(key: &str) {
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// The fake's events and signed deliveries

/// A receiver that records what it got and answers as our webhook endpoint should.
async fn receiver(
    secret: &'static str,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<(u16, Vec<u8>)>) {
    use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new().route(
        "/webhooks/stripe",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let sig = headers
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let now = chrono::Utc::now().timestamp();
                let status = match webhook::verify(sig, &body, &[secret], now, 300) {
                    Ok(()) => 200,
                    Err(_) => 400,
                };
                let _ = tx.send((status, body.to_vec()));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/webhooks/stripe"), rx)
}

#[tokio::test]
async fn events_are_stripe_shaped() {
    let (fake, _, sub) = setup().await;
    let e1 = fake.subscription_event("customer.subscription.updated", &sub.id);
    let e2 = fake.subscription_event("customer.subscription.updated", &sub.id);
    assert_ne!(e1["id"], e2["id"]);
    assert!(e1["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(e1["object"], "event");
    assert_eq!(e1["type"], "customer.subscription.updated");
    assert_eq!(e1["livemode"], false);
    assert_eq!(e1["request"], Value::Null);
    assert_eq!(e1["data"]["object"]["id"], sub.id.as_str());
    assert!(e1["created"].as_i64().unwrap() > 0);

    let e = fake_stripe::api_event(
        "customer.subscription.deleted",
        fake.subscription(&sub.id).unwrap(),
        "req_123",
        Some("cancel_now:sess_1"),
    );
    assert_eq!(e["request"]["id"], "req_123");
    assert_eq!(e["request"]["idempotency_key"], "cancel_now:sess_1");
    let e = fake_stripe::with_previous_attributes(e, serde_json::json!({"status": "active"}));
    assert_eq!(e["data"]["previous_attributes"]["status"], "active");
}

#[tokio::test]
async fn deliveries_are_signed_and_duplicates_and_stale_ones_are_delivered_as_asked() {
    const SECRET: &str = "whsec_test_receiver_secret";
    let (fake, _, sub) = setup().await;
    let (url, mut rx) = receiver(SECRET).await;
    let ev = fake.subscription_event("customer.subscription.updated", &sub.id);

    assert_eq!(fake_stripe::deliver(&url, &ev, SECRET).await.status(), 200);
    let (_, body) = rx.recv().await.unwrap();
    assert_eq!(
        body,
        fake_stripe::event_body(&ev),
        "the raw bytes are what was signed"
    );
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["id"], ev["id"]);

    let dups = fake_stripe::deliver_times(&url, &ev, SECRET, 2).await;
    assert!(dups.iter().all(|r| r.status() == 200));
    let dups = fake_stripe::deliver_concurrently(&url, &ev, SECRET, 3).await;
    assert!(dups.iter().all(|r| r.status() == 200));

    let stale = chrono::Utc::now().timestamp() - 301;
    assert_eq!(
        fake_stripe::deliver_at(&url, &ev, SECRET, stale)
            .await
            .status(),
        400
    );
    assert_eq!(
        fake_stripe::deliver(&url, &ev, "whsec_wrong")
            .await
            .status(),
        400
    );
    assert_eq!(
        fake_stripe::deliver_raw(&url, b"{}".to_vec(), None)
            .await
            .status(),
        400
    );
    let mut seen = 1;
    while rx.try_recv().is_ok() {
        seen += 1;
    }
    assert_eq!(seen, 1 + 2 + 3 + 3);
}
