//! Issue 15 item 2: acceptance is what was rendered. A session accepts only the offers it
//! showed (holdout, A/B variant, guardrails, reason routing), cooldowns hold for every offer
//! type across sessions and concurrent acceptances (checked by the batched write under the
//! customer's lock, and again by the worker before Stripe), a customer has one open session,
//! sessions expire, and an ended session says so.

use std::time::Duration;

use harness::{stack::WidgetStack as Stack, wait_until};
use serde_json::{json, Value};
use shared::flows;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

fn refused(status: u16, body: &Value, code: &str) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// A flow with a reason-routed discount, a pause and a trial extension.
fn flow_body() -> Value {
    json!({
        "name": "F", "is_default": true, "steps": [
            {"id": "s", "type": "survey", "title": "Why?", "reasons": [
                {"code": "price", "label": "Price"}, {"code": "other", "label": "Other"}]},
            {"id": "o", "type": "offer", "offers": [
                {"id": "disc", "type": "discount", "title": "25% off", "reason_codes": ["price"],
                 "discount": {"percent_off": 25, "duration": "once"}},
                {"id": "pause", "type": "pause", "title": "Pause", "pause": {"months": 1}},
                {"id": "trial", "type": "trial_extension", "title": "Trial", "trial_extension": {"days": 14}}
            ]},
            {"id": "c", "type": "confirm", "title": "Bye"}
        ]
    })
}

#[tokio::test]
async fn holdout_and_other_variant_offers_are_refused_and_nothing_is_stored() {
    let s = Stack::new().await;
    let mut body = flow_body();
    body["experiment"] = json!({"holdout_percent": 30, "variants": [
        {"key": "a", "weight": 1, "offer_ids": ["pause"]},
        {"key": "b", "weight": 1, "offer_ids": ["trial"]}
    ]});
    let flow_id = s.publish(body.clone()).await;
    let exp: flows::Experiment = serde_json::from_value(body["experiment"].clone()).unwrap();
    let find = |want: (Option<&str>, bool)| {
        (0..10_000)
            .map(|i| format!("cus_{i}"))
            .find(|c| {
                let (v, h) = flows::assign(Some(&exp), flow_id, c);
                (v.as_deref(), h) == want
            })
            .unwrap()
    };
    // A holdout customer sees no offer and can take none.
    let held = find((None, true));
    let (sid, offers) = s.start(&held, None).await;
    assert!(offers.is_empty(), "{offers:?}");
    for kind in ["offer_accepted", "offer_shown", "offer_declined"] {
        let (st, b) = s
            .event(&held, &sid, json!({"type": kind, "offer_id": "pause"}))
            .await;
        refused(st, &b, "offer_not_available");
        assert_eq!(b["error"]["param"], "offer_id");
    }
    assert_eq!(
        s.state(&sid).await,
        (None, None, 0, 0),
        "something was stored"
    );
    // Variant a shows the pause only: the trial (variant b's) is refused.
    let a = find((Some("a"), false));
    let (sid, offers) = s.start(&a, None).await;
    assert_eq!(offers, ["pause"]);
    let (st, b) = s.accept(&a, &sid, "trial").await;
    refused(st, &b, "offer_not_available");
    assert_eq!(s.state(&sid).await, (None, None, 0, 0));
    // What it rendered is accepted.
    assert_eq!(s.accept(&a, &sid, "pause").await.0, 202);
    assert_eq!(s.state(&sid).await.0.as_deref(), Some("saved"));
    // An unknown offer is still a 400 naming the field.
    let b_cus = find((Some("b"), false));
    let (sid, _) = s.start(&b_cus, None).await;
    let (st, b) = s.accept(&b_cus, &sid, "nope").await;
    assert_eq!((st, &b["error"]["param"]), (400, &json!("offer_id")), "{b}");
}

#[tokio::test]
async fn reason_routed_offers_need_their_reason() {
    let s = Stack::new().await;
    s.publish(flow_body()).await;
    let (sid, offers) = s.start("cus_r", None).await;
    assert_eq!(offers, ["disc", "pause", "trial"]);
    // No reason yet, then another reason: the discount (for "price" only) is refused.
    let (st, b) = s.accept("cus_r", &sid, "disc").await;
    refused(st, &b, "offer_not_available");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("reason"),
        "{b}"
    );
    let r = s
        .event(
            "cus_r",
            &sid,
            json!({"type": "reason_selected", "reason_code": "other"}),
        )
        .await;
    assert_eq!(r.0, 202);
    let (st, b) = s.accept("cus_r", &sid, "disc").await;
    refused(st, &b, "offer_not_available");
    assert_eq!(s.state(&sid).await, (None, None, 1, 0));
    // The customer goes back and picks "price": now it is offered.
    let r = s
        .event(
            "cus_r",
            &sid,
            json!({"type": "reason_selected", "reason_code": "price"}),
        )
        .await;
    assert_eq!(r.0, 202);
    assert_eq!(s.accept("cus_r", &sid, "disc").await.0, 202);
    assert_eq!(s.state(&sid).await.0.as_deref(), Some("saved"));
}

#[tokio::test]
async fn every_offer_type_has_a_cooldown_across_sessions() {
    let s = Stack::new().await;
    s.publish(flow_body()).await;
    // Defaults: 90 days for trial extensions, 30 for plan changes; bounded like the others.
    let got: Value = s
        .app
        .client
        .get(s.app.url("/v1/settings"))
        .bearer_auth(s.sk())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["trial_extension_cooldown_days"], 90);
    assert_eq!(got["plan_change_cooldown_days"], 30);
    for field in ["trial_extension_cooldown_days", "plan_change_cooldown_days"] {
        let mut bad = got.clone();
        bad[field] = json!(3651);
        let r = s
            .app
            .client
            .put(s.app.url("/v1/settings"))
            .bearer_auth(s.sk())
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], field);
    }
    // A trial extension, then a second session: it is no longer rendered nor accepted.
    let (sid, _) = s.start("cus_t", None).await;
    assert_eq!(s.accept("cus_t", &sid, "trial").await.0, 202);
    let (sid2, offers) = s.start("cus_t", None).await;
    assert_eq!(offers, ["disc", "pause"], "trial shown inside its cooldown");
    let (st, b) = s.accept("cus_t", &sid2, "trial").await;
    refused(st, &b, "offer_not_available");
    assert_eq!(s.state(&sid2).await, (None, None, 0, 0));

    // Rendered, but another session of the customer saved with a pause since (written
    // behind the api's back): the batched write's own cooldown check refuses it.
    let (sid3, offers) = s.start("cus_p", None).await;
    assert!(offers.contains(&"pause".to_string()));
    sqlx::query(
        "INSERT INTO cancel_sessions (id, tenant_id, mode, customer_id, outcome, saved_offer_type, ended_at)
         VALUES ($1, $2, 'test', 'cus_p', 'saved', 'pause', now())",
    )
    .bind(Uuid::now_v7())
    .bind(s.t.tenant.id)
    .execute(&s.app.pool)
    .await
    .unwrap();
    let (st, b) = s.accept("cus_p", &sid3, "pause").await;
    refused(st, &b, "offer_not_available");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("cooldown"),
        "{b}"
    );
    assert_eq!(s.state(&sid3).await, (None, None, 0, 0));
    // Other types are unaffected.
    assert_eq!(s.accept("cus_p", &sid3, "trial").await.0, 202);
}

#[tokio::test]
async fn concurrent_acceptances_of_one_customer_apply_once() {
    let s = Stack::new().await;
    s.publish(flow_body()).await;
    let cus = s.fake.create_customer("c@d.test");
    let sub = s
        .fake
        .create_subscription(&cus, "price_pro", 4900, "month", "trialing")
        .id;
    let w = s.app.start_worker().await;
    // Eight widgets of one customer, each starting a session and taking the trial at once.
    const N: usize = 8;
    let s = &s;
    let (cus, sub) = (&cus, &sub);
    let results = futures::future::join_all((0..N).map(|_| async move {
        let (sid, _) = s.start(cus, Some(sub)).await;
        let (st, b) = s.accept(cus, &sid, "trial").await;
        (sid, st, b)
    }))
    .await;
    let won: Vec<_> = results.iter().filter(|r| r.1 == 202).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for (_, st, b) in &results {
        if *st != 202 {
            assert_eq!(*st, 409, "{b}");
            let code = b["error"]["code"].as_str().unwrap();
            assert!(
                ["offer_not_available", "session_ended"].contains(&code),
                "{b}"
            );
        }
    }
    let sid = &won[0].0;
    assert!(
        wait_until(DEADLINE, || async {
            s.offer_state(sid).await.0.as_deref() == Some("applied")
        })
        .await,
        "{:?}",
        s.offer_state(sid).await
    );
    assert_eq!(
        s.subscription_updates(sub),
        1,
        "Stripe saw more than one trial extension"
    );
    let saved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cancel_sessions WHERE customer_id = $1 AND outcome = 'saved'",
    )
    .bind(cus)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(saved, 1);
    w.shutdown().await;
}

#[tokio::test]
async fn the_worker_rechecks_the_cooldown_before_calling_stripe() {
    let s = Stack::new().await;
    s.publish(flow_body()).await;
    let cus = s.fake.create_customer("e@f.test");
    let sub = s
        .fake
        .create_subscription(&cus, "price_pro", 4900, "month", "trialing")
        .id;
    let w = s.app.start_worker().await;
    let (sid, _) = s.start(&cus, Some(&sub)).await;
    assert_eq!(s.accept(&cus, &sid, "trial").await.0, 202);
    assert!(
        wait_until(DEADLINE, || async {
            s.offer_state(&sid).await.0.as_deref() == Some("applied")
        })
        .await
    );
    assert_eq!(s.subscription_updates(&sub), 1);
    // A second acceptance that bypassed the api (written directly, its job pushed).
    let offer = flow_body()["steps"][1]["offers"][2].clone();
    let second = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO cancel_sessions (id, tenant_id, mode, customer_id, subscription_id, outcome,
                                      saved_offer_type, accepted_offer, offer_state, ended_at)
         VALUES ($1, $2, 'test', $3, $4, 'saved', 'trial_extension', $5, 'pending', now())",
    )
    .bind(second)
    .bind(s.t.tenant.id)
    .bind(&cus)
    .bind(&sub)
    .bind(&offer)
    .execute(&s.app.pool)
    .await
    .unwrap();
    s.app
        .env
        .job_client()
        .enqueue(&jobs::ApplyOffer { session_id: second }, Default::default())
        .await
        .unwrap();
    let sid2 = second.to_string();
    assert!(
        wait_until(DEADLINE, || async {
            s.offer_state(&sid2).await.0.as_deref() == Some("failed")
        })
        .await,
        "{:?}",
        s.offer_state(&sid2).await
    );
    let (_, err) = s.offer_state(&sid2).await;
    assert!(err.unwrap().contains("cooldown"));
    assert_eq!(
        s.subscription_updates(&sub),
        1,
        "the worker called Stripe again"
    );
    w.shutdown().await;
}

#[tokio::test]
async fn a_customer_has_one_open_session() {
    let s = Stack::new().await;
    s.publish(flow_body()).await;
    // A new start supersedes the open session: the old one is abandoned and accepts nothing.
    let (old, _) = s.start("cus_o", None).await;
    let (new, _) = s.start("cus_o", None).await;
    assert_eq!(s.state(&old).await.0.as_deref(), Some("abandoned"));
    assert_eq!(s.state(&new).await.0, None);
    let (st, b) = s.accept("cus_o", &old, "pause").await;
    refused(st, &b, "session_ended");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("abandoned"),
        "{b}"
    );
    assert_eq!(s.accept("cus_o", &new, "pause").await.0, 202);

    // Concurrent starts (in one batch or several): one stays open.
    let s = &s;
    futures::future::join_all((0..20).map(|_| s.start("cus_many", None))).await;
    let open = |cus: &'static str| async move {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT count(*), count(*) FILTER (WHERE outcome IS NULL) FROM cancel_sessions WHERE customer_id = $1",
        )
        .bind(cus)
        .fetch_one(&s.app.pool)
        .await
        .unwrap()
    };
    assert_eq!(open("cus_many").await, (20, 1));

    // Inside one batch of the session writer: the last start of the customer stays open.
    let row = |id: Uuid| shared::db::sessions::SessionRow {
        id,
        tenant_id: s.t.tenant.id,
        mode: "test",
        user_id: None,
        customer_id: "cus_batch".into(),
        subscription_id: None,
        flow_id: None,
        flow_version: None,
        variant: None,
        holdout: false,
        mrr_cents: 0,
        attributes: json!({}),
        rendered_offers: Vec::new(),
        ttl_secs: 60.0,
    };
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let batch = ids.iter().map(|i| row(*i)).collect();
    let n = shared::db::sessions::flush_sessions(s.app.pool.clone(), batch)
        .await
        .unwrap();
    assert_eq!(n.len(), 3);
    assert_eq!(open("cus_batch").await, (3, 1));
    assert_eq!(s.state(&ids[2].to_string()).await.0, None);

    // Racing starts of ten customers that already have an open session, through the
    // batched writer (several batches race for the same customers): every start is
    // acknowledged and stored, and each customer ends with exactly one open session.
    for i in 0..10 {
        s.start(&format!("cus_race_{i}"), None).await;
    }
    let starts = (0..60).map(|n| {
        let cus = format!("cus_race_{}", n % 10);
        async move { s.start(&cus, None).await }
    });
    futures::future::join_all(starts).await;
    let per_customer: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT customer_id, count(*), count(*) FILTER (WHERE outcome IS NULL) FROM cancel_sessions
          WHERE customer_id LIKE 'cus\\_race\\_%' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(per_customer.len(), 10);
    assert!(
        per_customer
            .iter()
            .all(|(_, all, open)| (*all, *open) == (7, 1)),
        "{per_customer:?}"
    );
}

#[tokio::test]
async fn sessions_expire_and_the_job_abandons_them() {
    let s = Stack::with(|env| {
        env.set("SESSION_TTL_SECS", "120")
            .set("RECONCILE_INTERVAL_SECS", "1");
    })
    .await;
    s.publish(flow_body()).await;
    let (sid, _) = s.start("cus_x", None).await;
    let ttl: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM cancel_sessions WHERE id = $1::uuid",
    )
    .bind(&sid)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert!((ttl - 120.0).abs() < 5.0, "{ttl}");
    // Its time passes (moved in the database rather than waited for).
    sqlx::query(
        "UPDATE cancel_sessions SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&sid)
    .execute(&s.app.pool)
    .await
    .unwrap();
    for body in [
        json!({"type": "offer_accepted", "offer_id": "pause"}),
        json!({"type": "reason_selected", "reason_code": "price"}),
        json!({"type": "cancel_confirmed"}),
    ] {
        let (st, b) = s.event("cus_x", &sid, body).await;
        refused(st, &b, "session_expired");
    }
    assert_eq!(s.state(&sid).await, (None, None, 0, 0));
    // The scheduler's expiry tick marks it abandoned.
    let w = s.app.start_worker().await;
    assert!(
        wait_until(DEADLINE, || async {
            s.state(&sid).await.0.as_deref() == Some("abandoned")
        })
        .await
    );
    w.shutdown().await;
    let (st, b) = s.accept("cus_x", &sid, "pause").await;
    assert_eq!(st, 409, "{b}");
}

#[tokio::test]
async fn events_after_an_outcome_say_what_happened() {
    let s = Stack::new().await;
    s.publish(flow_body()).await;
    let (sid, _) = s.start("cus_e", None).await;
    assert_eq!(s.accept("cus_e", &sid, "pause").await.0, 202);
    // cancel_confirmed after a save: 409 naming the outcome, nothing recorded.
    let (st, b) = s
        .event("cus_e", &sid, json!({"type": "cancel_confirmed"}))
        .await;
    refused(st, &b, "session_ended");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("saved"),
        "{b}"
    );
    let (st, _) = s
        .event("cus_e", &sid, json!({"type": "feedback", "text": "late"}))
        .await;
    assert_eq!(st, 409);
    assert_eq!(
        s.state(&sid).await,
        (Some("saved".into()), Some("pending".into()), 1, 1)
    );
    let cancel_state: Option<String> =
        sqlx::query_scalar("SELECT cancel_state FROM cancel_sessions WHERE id = $1::uuid")
            .bind(&sid)
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(cancel_state, None);
    // An abandoned session really ended: it accepts no offer.
    let (sid, _) = s.start("cus_f", None).await;
    let abandon = json!({"client_event_id": "ab", "type": "abandoned"});
    assert_eq!(s.event("cus_f", &sid, abandon.clone()).await.0, 202);
    let (st, b) = s.accept("cus_f", &sid, "pause").await;
    refused(st, &b, "session_ended");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("abandoned"),
        "{b}"
    );
    assert_eq!(s.state(&sid).await, (Some("abandoned".into()), None, 1, 0));
    // A retried event (same client_event_id) is still acknowledged as a duplicate.
    let (st, b) = s.event("cus_f", &sid, abandon).await;
    assert_eq!((st, &b["duplicate"]), (202, &json!(true)), "{b}");
}
