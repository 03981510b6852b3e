//! Issue 4: flow builder API, targeting and experiments, guardrails, customer tokens, the
//! widget API with durable idempotent events, and flow cache invalidation across processes.

use std::time::Duration;

use harness::{count, Env, TestApp};
use serde_json::{json, Value};
use shared::{
    tenants::{KeyKind, Mode, TenantWithKeys},
    widget_token::{sign, Claims},
};

fn flow_body() -> Value {
    json!({
        "name": "Default", "language": "en", "is_default": true,
        "steps": [
            {"id": "survey", "type": "survey", "title": "Why are you leaving?", "reasons": [
                {"code": "too_expensive", "label": "Too expensive", "follow_up": "What would you pay?"},
                {"code": "missing_features", "label": "Missing features"},
                {"code": "not_using", "label": "Not using it"},
                {"code": "other", "label": "Other"}
            ]},
            {"id": "feedback", "type": "feedback", "title": "Anything else?"},
            {"id": "offers", "type": "offer", "title": "Before you go", "offers": [
                {"id": "disc20", "type": "discount", "title": "20% off for 3 months", "description": "Stay and save",
                 "reason_codes": ["too_expensive"], "discount": {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}},
                {"id": "pause2", "type": "pause", "title": "Pause for 2 months", "pause": {"months": 2}},
                {"id": "basic", "type": "plan_change", "title": "Switch to Basic", "plan_change": {"price_id": "price_basic", "proration": "none"}},
                {"id": "trial14", "type": "trial_extension", "title": "14 more days", "trial_extension": {"days": 14}}
            ]},
            {"id": "confirm", "type": "confirm", "title": "Confirm cancellation"}
        ]
    })
}

struct Ctx {
    app: TestApp,
    t: TenantWithKeys,
}

impl Ctx {
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        let t = app.create_tenant("Flows Co").await;
        Self { app, t }
    }
    fn sk(&self) -> &str {
        self.t.key(KeyKind::Secret, Mode::Test)
    }
    fn pk(&self) -> &str {
        self.t.key(KeyKind::Publishable, Mode::Test)
    }
    fn token(&self, customer: &str) -> String {
        self.token_with(customer, None, 600)
    }
    fn token_with(&self, customer: &str, attrs: Option<Value>, ttl: i64) -> String {
        sign(
            &Claims {
                tid: self.t.tenant.id,
                cus: customer.into(),
                sub: Some(format!("sub_{customer}")),
                exp: chrono::Utc::now().timestamp() + ttl,
                attrs: attrs.and_then(|a| a.as_object().cloned()),
            },
            self.t.signing_secret(Mode::Test),
        )
    }
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .bearer_auth(self.sk())
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn create_published(&self, body: Value) -> String {
        let res = self.post("/v1/flows", body).await;
        assert_eq!(res.status(), 201);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let res = self
            .post(&format!("/v1/flows/{id}/publish"), json!({}))
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        id
    }
    async fn start(&self, customer: &str) -> Value {
        self.start_with_token(&self.token(customer)).await
    }
    async fn start_with_token(&self, token: &str) -> Value {
        let res = self
            .app
            .client
            .post(self.app.url("/v1/widget/sessions"))
            .bearer_auth(self.pk())
            .header("x-customer-token", token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }
    async fn event(&self, customer: &str, session: &str, body: Value) -> reqwest::Response {
        self.app
            .client
            .post(
                self.app
                    .url(&format!("/v1/widget/sessions/{session}/events")),
            )
            .bearer_auth(self.pk())
            .header("x-customer-token", self.token(customer))
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn flow_crud_and_versions() {
    let c = Ctx::new().await;
    let res = c.post("/v1/flows", flow_body()).await;
    assert_eq!(res.status(), 201);
    let flow: Value = res.json().await.unwrap();
    let id = flow["id"].as_str().unwrap().to_string();
    assert!(flow["published_version"].is_null());
    let got: Value = c
        .app
        .client
        .get(c.app.url(&format!("/v1/flows/{id}")))
        .bearer_auth(c.sk())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["draft"]["steps"].as_array().unwrap().len(), 4);
    // Drafts are invisible to the widget.
    let s = c.start("cus_a").await;
    assert!(s["flow"].is_null());
    assert_eq!(
        c.post(&format!("/v1/flows/{id}/publish"), json!({}))
            .await
            .status(),
        200
    );
    let mut body = flow_body();
    body["name"] = json!("Renamed");
    let res = c
        .app
        .client
        .put(c.app.url(&format!("/v1/flows/{id}")))
        .bearer_auth(c.sk())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c.post(&format!("/v1/flows/{id}/publish"), json!({})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["published_version"], 2);
    let versions: Value = c
        .app
        .client
        .get(c.app.url(&format!("/v1/flows/{id}/versions")))
        .bearer_auth(c.sk())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["data"].as_array().unwrap().len(), 2);
    assert_eq!(versions["data"][1]["definition"]["name"], "Default");
    let list: Value = c
        .app
        .client
        .get(c.app.url("/v1/flows"))
        .bearer_auth(c.sk())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.app
            .client
            .delete(c.app.url(&format!("/v1/flows/{id}")))
            .bearer_auth(c.sk())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.app
            .client
            .get(c.app.url(&format!("/v1/flows/{id}")))
            .bearer_auth(c.sk())
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(c.start("cus_b").await["flow"].is_null());
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM flow_versions").await,
        2,
        "versions are kept"
    );
}

#[tokio::test]
async fn invalid_flows_name_the_offending_field() {
    let c = Ctx::new().await;
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|v| v["steps"][2]["offers"][0]["discount"]["percent_off"] = json!(0)),
            "steps[2].offers[0].discount.percent_off",
        ),
        (
            Box::new(|v| {
                v["steps"][2]["offers"][0]["discount"] =
                    json!({"amount_off": 500, "duration": "once"})
            }),
            "steps[2].offers[0].discount.currency",
        ),
        (
            Box::new(|v| v["steps"][2]["offers"][1]["pause"]["months"] = json!(0)),
            "steps[2].offers[1].pause.months",
        ),
        (
            Box::new(|v| v["steps"][2]["offers"][2]["plan_change"]["price_id"] = json!("basic")),
            "steps[2].offers[2].plan_change.price_id",
        ),
        (
            Box::new(|v| v["steps"][2]["offers"][0]["reason_codes"] = json!(["nope"])),
            "steps[2].offers[0].reason_codes[0]",
        ),
        (
            Box::new(|v| v["steps"][0]["reasons"][1]["code"] = json!("too_expensive")),
            "steps[0].reasons[1].code",
        ),
        (Box::new(|v| v["steps"] = json!([])), "steps"),
        (
            Box::new(|v| {
                v["targeting"] = json!([{"attribute": "shoe_size", "op": "eq", "value": 3}])
            }),
            "targeting[0].attribute",
        ),
        (
            Box::new(|v| {
                v["experiment"] =
                    json!({"holdout_percent": 80, "variants": [{"key": "a", "weight": 1}]})
            }),
            "experiment.holdout_percent",
        ),
    ];
    for (mutate, param) in cases {
        let mut body = flow_body();
        mutate(&mut body);
        let res = c.post("/v1/flows", body).await;
        assert_eq!(res.status(), 400, "{param}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
    }
    // Type errors and unknown fields carry the path too.
    let mut body = flow_body();
    body["steps"][2]["offers"][0]["discount"]["percent_off"] = json!("twenty");
    let e: Value = c.post("/v1/flows", body).await.json().await.unwrap();
    assert_eq!(
        e["error"]["param"], "steps[2].offers[0].discount.percent_off",
        "{e}"
    );
    let mut body = flow_body();
    body["steps"][2]["offers"][0]["colour"] = json!("red");
    let e: Value = c.post("/v1/flows", body).await.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unknown_field", "{e}");
    assert_eq!(count(&c.app.pool, "SELECT count(*) FROM flows").await, 0);
}

#[tokio::test]
async fn targeting_picks_the_highest_ranked_match_else_default() {
    let c = Ctx::new().await;
    let default = c.create_published(flow_body()).await;
    let mut pro = flow_body();
    pro["name"] = json!("Pro");
    pro["is_default"] = json!(false);
    pro["ranking_score"] = json!(10);
    pro["targeting"] = json!([{"attribute": "plan", "op": "in", "value": ["pro", "team"]}, {"attribute": "mrr_cents", "op": "gte", "value": 5000}]);
    let pro_id = c.create_published(pro.clone()).await;
    let mut trial = flow_body();
    trial["name"] = json!("Trial");
    trial["is_default"] = json!(false);
    trial["ranking_score"] = json!(5);
    trial["language"] = json!("es");
    trial["targeting"] = json!([{"attribute": "status", "op": "eq", "value": "trialing"}]);
    let trial_id = c.create_published(trial).await;
    let s = c
        .start_with_token(&c.token_with("c1", Some(json!({"plan": "pro", "mrr_cents": 9900})), 600))
        .await;
    assert_eq!(s["flow"]["id"], pro_id);
    let s = c
        .start_with_token(&c.token_with(
            "c2",
            Some(json!({"plan": "pro", "mrr_cents": 9900, "status": "trialing"})),
            600,
        ))
        .await;
    assert_eq!(s["flow"]["id"], pro_id, "higher ranking wins");
    let s = c
        .start_with_token(&c.token_with(
            "c3",
            Some(json!({"plan": "free", "status": "trialing"})),
            600,
        ))
        .await;
    assert_eq!(s["flow"]["id"], trial_id);
    assert_eq!(
        s["strings"]["cancel_now"], "Cancelar ahora",
        "the flow's language"
    );
    let s = c
        .start_with_token(&c.token_with("c4", Some(json!({"plan": "free"})), 600))
        .await;
    assert_eq!(s["flow"]["id"], default);
}

#[tokio::test]
async fn ab_assignment_is_deterministic_weighted_and_recorded() {
    let c = Ctx::new().await;
    let mut body = flow_body();
    body["experiment"] = json!({"holdout_percent": 20, "variants": [
        {"key": "discount_only", "weight": 1, "offer_ids": ["disc20"]},
        {"key": "pause_only", "weight": 1, "offer_ids": ["pause2"]}
    ]});
    let exp: shared::flows::Experiment =
        serde_json::from_value(body["experiment"].clone()).unwrap();
    let flow_id: uuid::Uuid = c.create_published(body).await.parse().unwrap();
    // The buckets hash the flow's (random) id with the customer: the API must give each
    // customer exactly what the assignment function says, whatever the id.
    let expected = |cus: &str| -> String {
        match shared::flows::assign(Some(&exp), flow_id, cus) {
            (_, true) => "holdout".to_string(),
            (Some(v), false) => v,
            (None, false) => panic!("{cus} is neither assigned nor held out"),
        }
    };
    let mut seen = std::collections::HashMap::new();
    let mut want = std::collections::HashMap::new();
    for i in 0..200 {
        let cus = format!("cus_{i}");
        let a = c.start(&cus).await;
        let b = c.start(&cus).await;
        assert_eq!(
            (&a["variant"], &a["holdout"]),
            (&b["variant"], &b["holdout"]),
            "not deterministic"
        );
        *want.entry(expected(&cus)).or_insert(0) += 1;
        let steps = a["flow"]["steps"].as_array().unwrap();
        let offers: Vec<String> = steps
            .iter()
            .filter(|s| s["type"] == "offer")
            .flat_map(|s| {
                s["offers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["id"].as_str().unwrap().to_string())
            })
            .collect();
        let key = if a["holdout"] == true {
            assert!(offers.is_empty(), "holdout sees no offers");
            "holdout".to_string()
        } else {
            let v = a["variant"].as_str().unwrap().to_string();
            assert_eq!(
                offers,
                vec![if v == "discount_only" {
                    "disc20"
                } else {
                    "pause2"
                }]
            );
            v
        };
        assert_eq!(key, expected(&cus), "{cus}");
        *seen.entry(key).or_insert(0) += 1;
    }
    assert_eq!(seen, want);
    // The weighting, for this flow's id, over enough customers that the shares are tight
    // (200 customers leave a bound like 20..=60 held out to chance: about 1 run in 2,500).
    let mut shares = std::collections::HashMap::new();
    for i in 0..20_000 {
        *shares.entry(expected(&format!("cus_{i}"))).or_insert(0u32) += 1;
    }
    let share = |k: &str| f64::from(shares.get(k).copied().unwrap_or(0)) / 20_000.0;
    assert!((share("holdout") - 0.20).abs() < 0.03, "{shares:?}");
    assert!(
        (share("discount_only") - 0.40).abs() < 0.03 && (share("pause_only") - 0.40).abs() < 0.03,
        "{shares:?}"
    );
    assert!(
        seen.contains_key("holdout")
            && seen.contains_key("discount_only")
            && seen.contains_key("pause_only"),
        "{seen:?}"
    );
    let (recorded,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM cancel_sessions WHERE holdout OR variant IS NOT NULL")
            .fetch_one(&c.app.pool)
            .await
            .unwrap();
    assert_eq!(recorded, 400);
}

#[tokio::test]
async fn events_are_durable_idempotent_and_fill_the_records() {
    let c = Ctx::new().await;
    c.create_published(flow_body()).await;
    let s = c.start("cus_save").await;
    let sid = s["session_id"].as_str().unwrap();
    let ev = |id: &str, body: Value| {
        let mut b = body;
        b["client_event_id"] = json!(id);
        b
    };
    let r = c
        .event(
            "cus_save",
            sid,
            ev(
                "e1",
                json!({"type": "reason_selected", "reason_code": "too_expensive", "text": "$5"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], false);
    let r = c
        .event(
            "cus_save",
            sid,
            ev(
                "e1",
                json!({"type": "reason_selected", "reason_code": "too_expensive"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM churn_reasons").await,
        1
    );
    assert_eq!(
        c.event(
            "cus_save",
            sid,
            ev("e2", json!({"type": "offer_shown", "offer_id": "disc20"}))
        )
        .await
        .status(),
        202
    );
    assert_eq!(
        c.event(
            "cus_save",
            sid,
            ev("e3", json!({"type": "feedback", "text": "ok"}))
        )
        .await
        .status(),
        202
    );
    for _ in 0..3 {
        assert_eq!(
            c.event(
                "cus_save",
                sid,
                ev(
                    "e4",
                    json!({"type": "offer_accepted", "offer_id": "disc20"})
                )
            )
            .await
            .status(),
            202
        );
    }
    let (outcome, offer_type, state): (String, String, String) = sqlx::query_as(
        "SELECT outcome, saved_offer_type, offer_state FROM cancel_sessions WHERE id = $1::uuid",
    )
    .bind(sid)
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(
        (outcome.as_str(), offer_type.as_str(), state.as_str()),
        ("saved", "discount", "pending")
    );
    assert_eq!(
        count(
            &c.app.pool,
            "SELECT count(*) FROM offer_events WHERE accepted"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &c.app.pool,
            "SELECT count(*) FROM offer_events WHERE NOT accepted"
        )
        .await,
        1
    );
    // The offer job is durable (outbox) and queued once.
    assert_eq!(
        count(
            &c.app.pool,
            "SELECT count(*) FROM job_outbox WHERE kind = 'apply_offer'"
        )
        .await,
        1
    );
    assert_eq!(c.app.env.queues().stats("stripe").await.unwrap().ready, 1);
    // A second acceptance in the same session is refused; bad references are 400s.
    let r = c
        .event(
            "cus_save",
            sid,
            ev(
                "e5",
                json!({"type": "offer_accepted", "offer_id": "pause2"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = c
        .event(
            "cus_save",
            sid,
            ev("e6", json!({"type": "offer_shown", "offer_id": "nope"})),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "offer_id"
    );
    let r = c
        .event(
            "cus_save",
            sid,
            ev(
                "e7",
                json!({"type": "reason_selected", "reason_code": "nope"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = c
        .event("cus_save", sid, ev("e8", json!({"type": "exploded"})))
        .await;
    assert_eq!(r.status(), 400);

    // Cancel path and abandon path.
    let s2 = c.start("cus_cancel").await;
    let sid2 = s2["session_id"].as_str().unwrap();
    c.event(
        "cus_cancel",
        sid2,
        ev(
            "x1",
            json!({"type": "offer_declined", "offer_id": "pause2"}),
        ),
    )
    .await;
    assert_eq!(
        c.event(
            "cus_cancel",
            sid2,
            ev("x2", json!({"type": "cancel_confirmed"}))
        )
        .await
        .status(),
        202
    );
    let s3 = c.start("cus_gone").await;
    let sid3 = s3["session_id"].as_str().unwrap();
    c.event("cus_gone", sid3, ev("y1", json!({"type": "abandoned"})))
        .await;
    let outcomes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT customer_id, outcome FROM cancel_sessions ORDER BY customer_id")
            .fetch_all(&c.app.pool)
            .await
            .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ("cus_cancel".into(), Some("canceled".into())),
            ("cus_gone".into(), Some("abandoned".into())),
            ("cus_save".into(), Some("saved".into())),
        ]
    );
    // Another customer's token cannot touch the session.
    let r = c
        .event("cus_cancel", sid, ev("z1", json!({"type": "abandoned"})))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn guardrails_hide_discounts_and_pauses_during_cooldowns() {
    let c = Ctx::new().await;
    c.create_published(flow_body()).await;
    let s = c.start("cus_g").await;
    let sid = s["session_id"].as_str().unwrap().to_string();
    let offers = |s: &Value| -> Vec<String> {
        s["flow"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["type"] == "offer")
            .flat_map(|x| {
                x["offers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["id"].as_str().unwrap().to_string())
            })
            .collect()
    };
    assert!(offers(&s).contains(&"disc20".to_string()));
    // disc20 is offered for the too_expensive reason only.
    let r = c
        .event(
            "cus_g",
            &sid,
            json!({"client_event_id": "r", "type": "reason_selected", "reason_code": "too_expensive"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = c
        .event(
            "cus_g",
            &sid,
            json!({"client_event_id": "a", "type": "offer_accepted", "offer_id": "disc20"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let s = c.start("cus_g").await;
    assert!(
        !offers(&s).contains(&"disc20".to_string()),
        "discount shown again inside the cooldown"
    );
    assert!(offers(&s).contains(&"pause2".to_string()));
    // An active coupon hides discounts too.
    let s = c
        .start_with_token(&c.token_with("cus_h", Some(json!({"has_active_discount": true})), 600))
        .await;
    assert!(!offers(&s).contains(&"disc20".to_string()));
    // A zero-day cooldown shows it again.
    let settings = json!({"discount_cooldown_days": 0, "pause_cooldown_days": 90, "cancel_mode": "record_only", "timezone": "UTC", "allowed_origins": []});
    let r = c
        .app
        .client
        .patch(c.app.url("/v1/settings"))
        .bearer_auth(c.sk())
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = c.start("cus_g").await;
    assert!(offers(&s).contains(&"disc20".to_string()));
}

#[tokio::test]
async fn customer_tokens_fail_closed() {
    let c = Ctx::new().await;
    c.create_published(flow_body()).await;
    let other = c.app.create_tenant("Other").await;
    let url = c.app.url("/v1/widget/sessions");
    let send = |pk: String, token: Option<String>| {
        let mut r = c.app.client.post(&url).bearer_auth(pk).json(&json!({}));
        if let Some(t) = token {
            r = r.header("x-customer-token", t);
        }
        r.send()
    };
    let expired = c.token_with("x", None, -10);
    let r = send(c.pk().into(), Some(expired)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "customer_token_expired"
    );
    let good = c.token("x");
    let (p, s) = good.split_once('.').unwrap();
    let tampered = format!(
        "{p}.{}",
        if s.starts_with('0') {
            s.replacen('0', "1", 1)
        } else {
            format!("0{}", &s[1..])
        }
    );
    assert_eq!(
        send(c.pk().into(), Some(tampered)).await.unwrap().status(),
        401
    );
    assert_eq!(send(c.pk().into(), None).await.unwrap().status(), 401);
    // Another tenant's publishable key with this tenant's token.
    assert_eq!(
        send(
            other.key(KeyKind::Publishable, Mode::Test).into(),
            Some(good.clone())
        )
        .await
        .unwrap()
        .status(),
        401
    );
    // A token signed with another tenant's signing secret.
    let forged = sign(
        &Claims {
            tid: c.t.tenant.id,
            cus: "x".into(),
            sub: None,
            exp: chrono::Utc::now().timestamp() + 60,
            attrs: None,
        },
        other.signing_secret(Mode::Test),
    );
    assert_eq!(
        send(c.pk().into(), Some(forged)).await.unwrap().status(),
        401
    );
    // Secret keys are refused by the widget; live keys do not accept test-signed tokens.
    assert_eq!(
        send(c.sk().into(), Some(good.clone()))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(
            c.t.key(KeyKind::Publishable, Mode::Live).into(),
            Some(good.clone())
        )
        .await
        .unwrap()
        .status(),
        401
    );
    assert_eq!(send(c.pk().into(), Some(good)).await.unwrap().status(), 201);
    // The server-side helper issues a working token.
    let r = c
        .post(
            "/v1/widget_tokens",
            json!({"customer_id": "cus_srv", "subscription_id": "sub_1", "expires_in": 300}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let tok = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(send(c.pk().into(), Some(tok)).await.unwrap().status(), 201);
    let r = c
        .post(
            "/v1/widget_tokens",
            json!({"customer_id": "cus_srv", "expires_in": 999999}),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "expires_in"
    );
}

#[tokio::test]
async fn cors_follows_allowed_origins() {
    let c = Ctx::new().await;
    c.create_published(flow_body()).await;
    let url = c.app.url("/v1/widget/sessions");
    let preflight = || {
        c.app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "https://app.flows.test")
            .header("access-control-request-method", "POST")
            .send()
    };
    // No tenant allows the origin yet: no CORS headers (issue 15: preflights no longer
    // reflect any origin; tests/hygiene.rs covers the rest).
    let pre = preflight().await.unwrap();
    assert_eq!(pre.status(), 204);
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    let post = |origin: &'static str| {
        c.app
            .client
            .post(&url)
            .bearer_auth(c.pk())
            .header("x-customer-token", c.token("o"))
            .header("origin", origin)
            .json(&json!({}))
            .send()
    };
    let r = post("https://evil.test").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let settings = json!({"allowed_origins": ["https://app.flows.test"]});
    assert_eq!(
        c.app
            .client
            .patch(c.app.url("/v1/settings"))
            .bearer_auth(c.sk())
            .json(&settings)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let pre = preflight().await.unwrap();
    assert_eq!(pre.status(), 204);
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-customer-token"));
    let r = post("https://app.flows.test").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.flows.test"
    );
}

#[tokio::test]
async fn flow_json_is_small_and_the_widget_is_served_with_cache_headers() {
    let c = Ctx::new().await;
    c.create_published(flow_body()).await;
    let res = c
        .app
        .client
        .post(c.app.url("/v1/widget/sessions"))
        .bearer_auth(c.pk())
        .header("x-customer-token", c.token("size"))
        .header("accept-encoding", "gzip")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let gz = res.bytes().await.unwrap().len();
    assert!(gz < 2048, "flow response is {gz} bytes gzip");
    let js = c
        .app
        .client
        .get(c.app.url("/widget.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    let hash = api::services::assets::widget_hash();
    let v = c
        .app
        .client
        .get(c.app.url(&format!("/widget/widget.{hash}.js")))
        .send()
        .await
        .unwrap();
    assert!(v.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let gz = c
        .app
        .client
        .get(c.app.url("/widget.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    assert!(gz < 10 * 1024, "widget.js is {gz} bytes gzip");
}

/// Process b caches the published flow for `flow_cache::TTL` (5 minutes); only the
/// invalidation broadcast can make it serve the new version well inside that.
#[tokio::test]
async fn publishing_invalidates_a_second_api_process_before_its_cache_expires() {
    let env = Env::new().await;
    let a = TestApp::spawn_with(env.clone()).await;
    let b = TestApp::spawn_with(env.clone()).await;
    let t = a.create_tenant("Two").await;
    let c = Ctx { app: a, t };
    // Both processes listen before b caches anything: a listener that subscribes late starts
    // with an empty cache, which would serve version 2 without the broadcast being heard.
    let channel = format!("{}invalidate", env.vars["REDIS_PREFIX"]);
    let conn = env.queues().redis().conn.clone();
    let listening = harness::wait_until(Duration::from_secs(60), || {
        let (mut conn, channel) = (conn.clone(), channel.clone());
        async move {
            let (_, n): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut conn)
                .await
                .unwrap();
            n >= 2
        }
    })
    .await;
    assert!(listening, "the api processes never subscribed to {channel}");
    let id = c.create_published(flow_body()).await;
    let start_on_b = || async {
        let r = b
            .client
            .post(b.url("/v1/widget/sessions"))
            .bearer_auth(c.pk())
            .header("x-customer-token", c.token("two"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    assert_eq!(start_on_b().await["flow"]["version"], 1); // b now caches version 1
    let mut body = flow_body();
    body["steps"][3]["title"] = json!("Really cancel?");
    c.app
        .client
        .put(c.app.url(&format!("/v1/flows/{id}")))
        .bearer_auth(c.sk())
        .json(&body)
        .send()
        .await
        .unwrap();
    let res = c.post(&format!("/v1/flows/{id}/publish"), json!({})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["published_version"], 2);
    let t0 = std::time::Instant::now();
    let seen = harness::wait_until(Duration::from_secs(60), || async {
        start_on_b().await["flow"]["version"] == 2
    })
    .await;
    assert!(
        seen,
        "process b still served version 1 after {:?}",
        t0.elapsed()
    );
    println!("process b served version 2 after {:?}", t0.elapsed());
}

/// Sessions and events are written in batches (group commit). Many customers at once, each
/// racing an acceptance, a cancellation and a duplicate of both, some through a second api
/// process that never saw the session: every session ends with exactly one outcome and the
/// writes that go with it, nothing is recorded twice, and every acknowledged event is stored.
#[tokio::test]
async fn concurrent_events_are_batched_and_each_session_gets_one_outcome() {
    let mut env = Env::new().await;
    // This test is about consistency under concurrency, not shedding (tests/overload.rs).
    env.set("SHED_QUEUE_TIMEOUT_MS", "5000");
    let a = TestApp::spawn_with(env.clone()).await;
    let b = TestApp::spawn_with(env.clone()).await;
    let t = a.create_tenant("Race Co").await;
    let c = Ctx { app: a, t };
    c.create_published(flow_body()).await;
    const N: usize = 60;
    let c = &c;
    let starts = futures::future::join_all(
        (0..N).map(|i| async move { c.start(&format!("cus_race_{i}")).await }),
    )
    .await;
    assert_eq!(
        count(
            &c.app.pool,
            "SELECT count(DISTINCT id) FROM cancel_sessions"
        )
        .await,
        N as i64
    );
    let send = |app: &TestApp, cus: String, sid: String, body: Value| {
        let req = app
            .client
            .post(app.url(&format!("/v1/widget/sessions/{sid}/events")))
            .bearer_auth(c.pk())
            .header("x-customer-token", c.token(&cus))
            .json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let batches = || async {
        let m = c
            .app
            .client
            .get(c.app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> f64 {
            m.lines()
                .filter(|l| l.starts_with(name) && l.contains("batch=\"events\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            value("write_batch_size_sum"),
            value("write_batch_size_count"),
        )
    };
    let sessions: Vec<(String, String)> = starts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sid = s["session_id"].as_str().unwrap().to_string();
            (format!("cus_race_{i}"), sid)
        })
        .collect();
    // Odd sessions get their events through process b (a cache miss there).
    let app_of = |i: usize| if i % 2 == 1 { &b } else { &c.app };
    let before = batches().await;
    // The reasons first, all at once (disc20 is offered for too_expensive only).
    let reasons = futures::future::join_all(sessions.iter().enumerate().map(|(i, (cus, sid))| {
        send(
            app_of(i),
            cus.clone(),
            sid.clone(),
            json!({"client_event_id": "why", "type": "reason_selected", "reason_code": "too_expensive"}),
        )
    }))
    .await;
    assert!(reasons.iter().all(|s| *s == 202), "{reasons:?}");
    // Then each acceptance races its session's cancellation.
    let mut calls = Vec::new();
    for (i, (cus, sid)) in sessions.iter().enumerate() {
        for id in ["acc", "acc"] {
            calls.push(send(
                app_of(i),
                cus.clone(),
                sid.clone(),
                json!({"client_event_id": id, "type": "offer_accepted", "offer_id": "disc20"}),
            ));
        }
        for id in ["cxl", "cxl"] {
            calls.push(send(
                app_of(i),
                cus.clone(),
                sid.clone(),
                json!({"client_event_id": id, "type": "cancel_confirmed"}),
            ));
        }
    }
    let statuses = futures::future::join_all(calls).await;
    let after = batches().await;
    for (i, chunk) in statuses.chunks(4).enumerate() {
        // One outcome wins: the acceptance (202 twice: the second is its duplicate) or the
        // cancellation; the loser is refused (409 session_ended) both times.
        let (acc, cxl) = (&chunk[..2], &chunk[2..]);
        assert!(
            (acc == [202, 202] && cxl == [409, 409]) || (acc == [409, 409] && cxl == [202, 202]),
            "session {i}: {chunk:?}"
        );
    }
    // (outcome, offer_state, cancel_state, session events, accepted offer events, reasons)
    type SessionCounts = (
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        i64,
        i64,
    );
    let rows: Vec<SessionCounts> = sqlx::query_as(
        "SELECT s.outcome, s.offer_state, s.cancel_state,
                (SELECT count(*) FROM session_events e WHERE e.session_id = s.id),
                (SELECT count(*) FROM offer_events o WHERE o.session_id = s.id AND o.accepted),
                (SELECT count(*) FROM churn_reasons r WHERE r.session_id = s.id)
           FROM cancel_sessions s",
    )
    .fetch_all(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), N);
    let mut saved = 0;
    for (outcome, offer_state, cancel_state, events, accepted, reasons) in &rows {
        assert_eq!(*reasons, 1);
        match outcome.as_deref() {
            Some("saved") => {
                saved += 1;
                assert_eq!(offer_state.as_deref(), Some("pending"));
                assert_eq!(*cancel_state, None, "a saved session was also canceled");
                assert_eq!((*events, *accepted), (2, 1));
            }
            Some("canceled") => {
                // The acceptance lost the race: refused, not stored.
                assert_eq!(*offer_state, None);
                assert_eq!((*events, *accepted), (2, 0));
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    // One offer job per saved session, one sessions row per start, no duplicate events.
    assert_eq!(
        count(
            &c.app.pool,
            "SELECT count(*) FROM job_outbox WHERE kind = 'apply_offer'"
        )
        .await,
        saved
    );
    assert_eq!(
        count(
            &c.app.pool,
            "SELECT count(*) FROM (SELECT session_id, client_event_id FROM session_events GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        .await,
        0
    );
    // The writes were grouped: fewer batches than writes.
    let (writes, batches) = (after.0 - before.0, after.1 - before.1);
    assert!(
        writes >= (5 * N) as f64 && batches < writes,
        "event writes were not batched: {writes} writes in {batches} batches"
    );
}
