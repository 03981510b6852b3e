//! The Stripe client against the fake Stripe server (every call, idempotency semantics,
//! error classification), the per-account rate limiter against the real Redis, and the
//! fake's signed webhook deliveries.

use std::time::{Duration, Instant};

use harness::{
    fake_stripe::{self, FakeStripe, Fault, Gate, SubscriptionIds},
    wait_until,
};
use serde_json::Value;
use shared::stripe::{
    client::{StripeClient, StripeError, API_VERSION},
    ratelimit::AccountRateLimiter,
    webhook,
};

const KEY: &str = "rk_test_tenant_a_51abcdef";
/// The timeout of the clients that talk to the fake normally: generous, since a request to
/// a server on loopback takes milliseconds and a timeout there is a loaded machine, not a
/// behaviour under test.
const GENEROUS: Duration = Duration::from_secs(30);
/// The timeout of the clients in the timeout tests. Long enough for the request to reach
/// the fake on a loaded machine (the fake then hangs far longer, see [`HANG`]), short
/// enough to keep the tests quick.
const SHORT: Duration = Duration::from_secs(2);
/// How long [`Fault::Timeout`] hangs in the timeout tests: only the client's timeout can
/// end the call.
const HANG: Duration = Duration::from_secs(600);
/// How long to wait for a condition before failing (returns as soon as it holds).
const DEADLINE: Duration = Duration::from_secs(60);
/// A fixed clock for the rate limiter's exact schedule (2026-01-01T00:00:00Z).
const T0: Duration = Duration::from_secs(1_767_225_600);

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn setup() -> (FakeStripe, StripeClient, SubscriptionIds) {
    let fake = FakeStripe::start().await;
    let client = StripeClient::new(&fake.base_url(), GENEROUS);
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
    // The first request is held at the fake, holding its key, until the second one has
    // been answered: "while in flight" by construction, not by a delay.
    let gate = Gate::new();
    fake.fail_next("POST /v1/subscriptions", 1, Fault::Held(gate.clone()));
    let params = p(&[("cancel_at_period_end", "true")]);
    let first = {
        let (client, id, params) = (client.clone(), sub.id.clone(), params.clone());
        tokio::spawn(async move {
            client
                .update_subscription(KEY, &id, &params, "cancel:sess_5")
                .await
        })
    };
    assert!(
        wait_until(DEADLINE, || async { gate.held() == 1 }).await,
        "the first request never arrived"
    );
    let e = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_5")
        .await
        .unwrap_err();
    assert_eq!(e, StripeError::Conflict);
    assert!(e.is_retryable());

    gate.open();
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
    let (fake, client, sub) = setup().await;
    let impatient = StripeClient::new(&fake.base_url(), SHORT);
    fake.set_hang(HANG);
    fake.fail_next("POST /v1/subscriptions", 1, Fault::Timeout);
    let params = p(&[("cancel_at_period_end", "true")]);
    let started = Instant::now();
    let e = impatient
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_10")
        .await
        .unwrap_err();
    // Cut short by the client's timeout, long before the fake would have answered.
    assert!(started.elapsed() < HANG / 2, "{:?}", started.elapsed());
    assert!(
        matches!(&e, StripeError::Network(m) if m.starts_with("timeout")),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert_eq!(
        fake.requests_to("POST /v1/subscriptions").len(),
        1,
        "the timed-out request reached the fake"
    );
    // Nothing was applied nor saved: once the fake has dropped the abandoned request (and
    // released its key), the retry with the same key executes.
    assert!(
        wait_until(DEADLINE, || async { fake.keys_in_flight() == 0 }).await,
        "the abandoned request still holds its key"
    );
    let r = client
        .update_subscription(KEY, &sub.id, &params, "cancel:sess_10")
        .await
        .unwrap();
    assert!(!r.idempotent_replayed);
    assert_eq!(fake.mutations(), 1);

    fake.fail_next("GET /v1/subscriptions", 1, Fault::Timeout);
    let e = impatient.get_subscription(KEY, &sub.id).await.unwrap_err();
    assert!(matches!(e, StripeError::Network(_)), "{e:?}");
}

#[tokio::test]
async fn timeout_after_applying_then_retry_replays_instead_of_applying_twice() {
    let (fake, client, sub) = setup().await;
    let impatient = StripeClient::new(&fake.base_url(), SHORT);
    fake.set_hang(HANG);
    fake.create_coupon_percent("SAVE25", 25.0, "once");
    fake.fail_next("POST /v1/subscriptions", 1, Fault::TimeoutAfterApplying);
    let params = p(&[("discounts[0][coupon]", "SAVE25")]);
    let e = impatient
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
    // A port bound for the whole test but never listening: connections to it are refused,
    // and no other test can take it meanwhile (a freed port could be handed out again).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    let client = StripeClient::new(&format!("http://127.0.0.1:{port}"), GENEROUS);
    let e = client.get_customer(KEY, "cus_x").await.unwrap_err();
    assert!(
        matches!(&e, StripeError::Network(m) if m.starts_with("connect")),
        "{e:?}"
    );
    assert!(e.is_retryable());
    drop(reserved);
}

// ---------------------------------------------------------------------------------------
// Rate limiter (real Redis)

async fn limiter() -> (AccountRateLimiter, String) {
    let client = redis::Client::open(harness::redis_url()).unwrap();
    let conn = client.get_connection_manager().await.expect("Redis is up");
    let prefix = format!("rtos_test:{}:", uuid::Uuid::new_v4().simple());
    (AccountRateLimiter::new(conn, prefix.clone()), prefix)
}

/// In no one-second window of `slots` (sorted) are there more than `max`.
fn assert_at_most_per_second(slots: &[Duration], max: usize) {
    for (i, g) in slots.iter().enumerate() {
        let in_window = slots[i..]
            .iter()
            .take_while(|h| **h - *g < Duration::from_secs(1))
            .count();
        assert!(in_window <= max, "{in_window} slots within 1 s from {g:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiter_spaces_two_concurrent_tasks_to_the_rate() {
    let (limiter, _) = limiter().await;
    // The schedule, exactly, on a fixed clock: two tasks book 30 slots each at once.
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut waits = Vec::new();
                for _ in 0..30 {
                    waits.push(limiter.reserve("acct_1", 20, Some(T0)).await.unwrap());
                }
                waits
            })
        })
        .collect();
    let mut slots = Vec::new();
    for t in tasks {
        slots.extend(t.await.unwrap());
    }
    slots.sort();
    // 60 slots at 20/s with a burst of 4: four at once, then one every 50 ms, the last one
    // 56 intervals = 2.8 s later. No two tasks got the same slot.
    let want: Vec<Duration> = std::iter::repeat_n(Duration::ZERO, 4)
        .chain((1..=56).map(|k| Duration::from_millis(50 * k)))
        .collect();
    assert_eq!(slots, want);
    // In no one-second window do more than rate + burst requests go out.
    assert_at_most_per_second(&slots, 24);

    // As time moves: callers that book again when their slot comes, an idle spell that
    // refills the burst, then a steady stream. Still never more than 24 in a second.
    let mut booked = Vec::new();
    let mut now = T0 + Duration::from_secs(3600);
    for i in 0..120 {
        if i == 60 {
            now += Duration::from_millis(700);
        }
        let wait = limiter.reserve("acct_2", 20, Some(now)).await.unwrap();
        booked.push(now + wait);
        // Every other caller books its next slot only once it has been served.
        if i % 2 == 1 {
            now += wait;
        }
    }
    booked.sort();
    let first = booked[0];
    let booked: Vec<Duration> = booked.iter().map(|b| *b - first).collect();
    // A burst of 4, 56 slots 50 ms apart (to 2.8 s); after the idle spell (the last
    // booking at 2.8 s, the next at 3.5 s) a fresh burst of 4, then 50 ms apart again.
    let want: Vec<Duration> = std::iter::repeat_n(0, 4)
        .chain((1..=56).map(|k| 50 * k))
        .chain(std::iter::repeat_n(3500, 4))
        .chain((1..=56).map(|k| 3500 + 50 * k))
        .map(Duration::from_millis)
        .collect();
    assert_eq!(booked, want);
    assert_at_most_per_second(&booked, 24);

    // The real thing: the real clock and real waits. Never faster than the rate (this
    // bound cannot be missed by a slow machine); the upper bound only catches a limiter
    // that is far too slow (the exact spacing is asserted above).
    let started = Instant::now();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                for _ in 0..30 {
                    limiter.acquire("acct_3", 20).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = started.elapsed();
    assert!(
        total >= Duration::from_millis(2600) && total <= Duration::from_secs(60),
        "{total:?}"
    );
    for a in ["acct_1", "acct_2", "acct_3"] {
        redis_del(&limiter.key(a)).await;
    }
}

#[tokio::test]
async fn penalize_delays_the_next_acquire_of_that_account_only() {
    let (limiter, _) = limiter().await;
    let ms = Duration::from_millis;
    // Exactly, on a fixed clock.
    assert_eq!(
        limiter.reserve("acct_p", 20, Some(T0)).await.unwrap(),
        Duration::ZERO
    );
    limiter
        .penalize_at("acct_p", ms(1000), Some(T0))
        .await
        .unwrap();
    assert_eq!(
        limiter.reserve("acct_other", 20, Some(T0)).await.unwrap(),
        Duration::ZERO,
        "other accounts are not held"
    );
    assert_eq!(
        limiter.reserve("acct_p", 20, Some(T0)).await.unwrap(),
        ms(1000)
    );
    // After a hold, no burst: the next slot is one interval later.
    let t1 = T0 + ms(1000);
    assert_eq!(
        limiter.reserve("acct_p", 20, Some(t1)).await.unwrap(),
        ms(50)
    );
    // A shorter penalty never shortens a longer one.
    let t2 = t1 + ms(50);
    limiter
        .penalize_at("acct_p", ms(800), Some(t2))
        .await
        .unwrap();
    limiter
        .penalize_at("acct_p", ms(10), Some(t2))
        .await
        .unwrap();
    assert_eq!(
        limiter.reserve("acct_p", 20, Some(t2)).await.unwrap(),
        ms(800)
    );

    // With the real clock, `acquire` really waits out a penalty: measured from before the
    // penalty, so a slow machine only makes the wait look longer.
    limiter.acquire("acct_rt", 20).await.unwrap();
    let started = Instant::now();
    limiter.penalize("acct_rt", ms(1000)).await.unwrap();
    limiter.acquire("acct_rt", 20).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= ms(900) && waited < Duration::from_secs(60),
        "{waited:?}"
    );
    for a in ["acct_p", "acct_other", "acct_rt"] {
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
    // -2: already gone (more than the TTL passed since the acquire on a slow machine),
    // which is expiring by itself too; -1 (no TTL) or a long TTL would be a leak.
    assert!(ttl == -2 || (ttl > 0 && ttl <= 1_100), "{ttl}");
    assert!(
        wait_until(DEADLINE, || {
            let mut conn = conn.clone();
            let key = key.clone();
            async move {
                let exists: i64 = redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                exists == 0
            }
        })
        .await,
        "the key never expired"
    );
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

    // Far from the 300 s tolerance (the boundary itself is unit-tested with a fixed clock).
    let stale = chrono::Utc::now().timestamp() - 400;
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
