//! Issue 15, input hygiene at the edge: control characters in any text input (bodies, query
//! strings, customer-token claims) are a 400 naming the field, never a 500; `null` where a
//! string is documented is a 400; a signed Stripe webhook carrying NUL is acknowledged,
//! stored escaped and processed; CORS preflights answer only origins some tenant allows, and
//! `*` is no origin.

use std::time::Duration;

use harness::{count, fake_stripe, fake_stripe::FakeStripe, wait_until, Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::{
    tenants::{KeyKind, Mode, TenantWithKeys},
    widget_token::{sign, Claims},
};

const DEADLINE: Duration = Duration::from_secs(60);

struct Ctx {
    app: TestApp,
    t: TenantWithKeys,
}

impl Ctx {
    async fn new() -> Self {
        Self::with(TestApp::spawn().await).await
    }

    async fn with(app: TestApp) -> Self {
        let t = app.create_tenant("Hygiene Co").await;
        Self { app, t }
    }

    fn sk(&self) -> &str {
        self.t.key(KeyKind::Secret, Mode::Test)
    }

    fn pk(&self) -> &str {
        self.t.key(KeyKind::Publishable, Mode::Test)
    }

    fn token(&self, cus: &str) -> String {
        sign(
            &Claims {
                tid: self.t.tenant.id,
                cus: cus.into(),
                sub: None,
                exp: chrono::Utc::now().timestamp() + 600,
                attrs: None,
            },
            self.t.signing_secret(Mode::Test),
        )
    }

    /// Sends `body` as raw JSON text (so escapes and raw bytes are exactly as written).
    async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(bearer);
        if let Some(t) = token {
            req = req.header("x-customer-token", t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn session(&self, cus: &str) -> String {
        let (st, body) = self
            .send(
                Method::POST,
                "/v1/widget/sessions",
                self.pk(),
                Some(&self.token(cus)),
                Some("{}"),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        body["session_id"].as_str().unwrap().to_string()
    }
}

fn assert_invalid(status: StatusCode, body: &Value, param: &str, case: &str) {
    assert_eq!(status, 400, "{case}: {body}");
    assert_eq!(body["error"]["param"], param, "{case}: {body}");
    assert_eq!(body["error"]["type"], "invalid_request", "{case}: {body}");
}

#[tokio::test]
async fn control_characters_in_bodies_are_a_400_naming_the_field_and_change_nothing() {
    let c = Ctx::new().await;
    let ops = c.app.ops_token().to_string();
    let sid = c.session("cus_ok").await;
    let events = format!("/v1/widget/sessions/{sid}/events");
    let flow = |name: &str, title: &str| {
        format!(
            r#"{{"name": "{name}", "steps": [{{"id": "c", "type": "confirm", "title": "{title}"}}]}}"#
        )
    };
    // (case, method, path, bearer, customer token, body, param)
    type Case<'a> = (
        &'a str,
        Method,
        &'a str,
        &'a str,
        Option<String>,
        String,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "tenant name",
            Method::POST,
            "/v1/tenants",
            &ops,
            None,
            r#"{"name": "Acme\u0000"}"#.into(),
            "name",
        ),
        (
            "flow name",
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            flow("F\\u0000", "Bye"),
            "name",
        ),
        (
            "flow copy NUL",
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            flow("F", "B\\u0000ye"),
            "steps[0].title",
        ),
        (
            "flow name newline",
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            flow("F\\nG", "Bye"),
            "name",
        ),
        (
            "flow name escaped C1",
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            flow("F\\u0085", "Bye"),
            "name",
        ),
        (
            "flow name raw C1",
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            flow("F\u{85}", "Bye"),
            "name",
        ),
        (
            "flow name raw DEL",
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            flow("F\u{7f}", "Bye"),
            "name",
        ),
        (
            "timezone",
            Method::PATCH,
            "/v1/settings",
            c.sk(),
            None,
            r#"{"timezone": "UTC\u0000"}"#.into(),
            "timezone",
        ),
        (
            "allowed origin",
            Method::PATCH,
            "/v1/settings",
            c.sk(),
            None,
            r#"{"allowed_origins": ["https://ok.test", "https://a.test\u0000"]}"#.into(),
            "allowed_origins[1]",
        ),
        (
            "token customer",
            Method::POST,
            "/v1/widget_tokens",
            c.sk(),
            None,
            r#"{"customer_id": "cus\u0000"}"#.into(),
            "customer_id",
        ),
        (
            "token attribute",
            Method::POST,
            "/v1/widget_tokens",
            c.sk(),
            None,
            r#"{"customer_id": "cus_1", "attributes": {"plan": "a\nb"}}"#.into(),
            "attributes.plan",
        ),
        (
            "session language",
            Method::POST,
            "/v1/widget/sessions",
            c.pk(),
            Some(c.token("cus_ok")),
            r#"{"language": "fr\u0000"}"#.into(),
            "language",
        ),
        (
            "event id",
            Method::POST,
            &events,
            c.pk(),
            Some(c.token("cus_ok")),
            r#"{"client_event_id": "e\u0000", "type": "feedback"}"#.into(),
            "client_event_id",
        ),
        (
            "feedback text",
            Method::POST,
            &events,
            c.pk(),
            Some(c.token("cus_ok")),
            r#"{"client_event_id": "e1", "type": "feedback", "text": "too\u0000 expensive"}"#
                .into(),
            "text",
        ),
        (
            "feedback text C0",
            Method::POST,
            &events,
            c.pk(),
            Some(c.token("cus_ok")),
            r#"{"client_event_id": "e1", "type": "feedback", "text": "bell\u0007"}"#.into(),
            "text",
        ),
    ];
    for (case, method, path, bearer, token, body, param) in &cases {
        let (st, res) = c
            .send(method.clone(), path, bearer, token.as_deref(), Some(body))
            .await;
        assert_invalid(st, &res, param, case);
        assert_eq!(res["error"]["code"], "invalid_characters", "{case}: {res}");
    }
    // Nothing was written.
    let pool = &c.app.pool;
    assert_eq!(count(pool, "SELECT count(*) FROM tenants").await, 1);
    assert_eq!(count(pool, "SELECT count(*) FROM flows").await, 0);
    assert_eq!(count(pool, "SELECT count(*) FROM cancel_sessions").await, 1);
    assert_eq!(count(pool, "SELECT count(*) FROM session_events").await, 0);
    // Free text keeps its lines and tabs; the rest of the widget path is unaffected.
    let (st, res) = c
        .send(
            Method::POST,
            &events,
            c.pk(),
            Some(&c.token("cus_ok")),
            Some(
                r#"{"client_event_id": "e2", "type": "feedback", "text": "line one\r\nline\ttwo"}"#,
            ),
        )
        .await;
    assert_eq!(st, 202, "{res}");
    let (st, res) = c
        .send(
            Method::POST,
            "/v1/flows",
            c.sk(),
            None,
            Some(&flow("F", "Bye\\nfor now")),
        )
        .await;
    assert_eq!(st, 201, "{res}");
}

#[tokio::test]
async fn control_characters_in_query_strings_are_a_400_naming_the_parameter() {
    let c = Ctx::new().await;
    let ops = c.app.ops_token().to_string();
    let cases: Vec<(Method, &str, &str, &str)> = vec![
        (Method::GET, "/v1/users?plan=a%00b", c.sk(), "plan"),
        (Method::GET, "/v1/users?region=%C2%85", c.sk(), "region"),
        (
            Method::GET,
            "/v1/subscriptions?status=a%00b",
            c.sk(),
            "status",
        ),
        (
            Method::GET,
            "/v1/sessions?outcome=saved%00",
            c.sk(),
            "outcome",
        ),
        (Method::GET, "/v1/sessions?plan=%7F", c.sk(), "plan"),
        (Method::GET, "/v1/sessions?cursor=%0A", c.sk(), "cursor"),
        (
            Method::GET,
            "/v1/audit_events?action=a%00",
            c.sk(),
            "action",
        ),
        (
            Method::GET,
            "/v1/ops/audit_events?target_id=%00",
            &ops,
            "target_id",
        ),
        (
            Method::GET,
            "/v1/analytics/summary?from=2026-01-01%00",
            c.sk(),
            "from",
        ),
        (
            Method::GET,
            "/v1/analytics/timeseries?metric=%01",
            c.sk(),
            "metric",
        ),
        (
            Method::GET,
            "/v1/ops/queues/stripe/dead?cursor=%00",
            &ops,
            "cursor",
        ),
        (
            Method::DELETE,
            "/v1/ops/queues/stripe/dead?kind=%00",
            &ops,
            "kind",
        ),
    ];
    for (method, path, bearer, param) in cases {
        let (st, res) = c.send(method, path, bearer, None, None).await;
        assert_invalid(st, &res, param, path);
        assert_eq!(res["error"]["code"], "invalid_characters", "{path}: {res}");
    }
    // Clean filters still work; an unknown parameter is a 400 envelope too.
    let (st, res) = c
        .send(Method::GET, "/v1/users?plan=pro", c.sk(), None, None)
        .await;
    assert_eq!(st, 200, "{res}");
    let (st, res) = c
        .send(Method::GET, "/v1/users?nope=1", c.sk(), None, None)
        .await;
    assert_eq!(st, 400, "{res}");
    assert_eq!(res["error"]["code"], "invalid_query", "{res}");
}

#[tokio::test]
async fn a_customer_token_with_a_nul_customer_is_refused_when_signed_and_when_used() {
    let c = Ctx::new().await;
    let (st, res) = c
        .send(
            Method::POST,
            "/v1/widget_tokens",
            c.sk(),
            None,
            Some(r#"{"customer_id": "cus_\u0000x"}"#),
        )
        .await;
    assert_invalid(st, &res, "customer_id", "widget_tokens");
    // A token signed elsewhere (the tenant's own backend) with NUL in its claims.
    for bad in ["cus_\u{0}x", "cus\u{85}", "cus\nx"] {
        let (st, res) = c
            .send(
                Method::POST,
                "/v1/widget/sessions",
                c.pk(),
                Some(&c.token(bad)),
                Some("{}"),
            )
            .await;
        assert_eq!(st, 401, "{bad:?}: {res}");
        assert_eq!(res["error"]["code"], "invalid_customer_token", "{res}");
    }
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM cancel_sessions").await,
        0
    );
}

#[tokio::test]
async fn null_where_a_string_is_documented_is_a_400() {
    let c = Ctx::new().await;
    let ops = c.app.ops_token().to_string();
    let sid = c.session("cus_1").await;
    let events = format!("/v1/widget/sessions/{sid}/events");
    let tok = c.token("cus_1");
    let cases: Vec<(&str, &str, Option<&str>, &str, &str)> = vec![
        (
            "/v1/widget/sessions",
            c.pk(),
            Some(&tok),
            r#"{"language": null}"#,
            "language",
        ),
        (
            &events,
            c.pk(),
            Some(&tok),
            r#"{"client_event_id": "e", "type": "feedback", "text": null}"#,
            "text",
        ),
        (
            &events,
            c.pk(),
            Some(&tok),
            r#"{"client_event_id": "e", "type": "reason_selected", "reason_code": null}"#,
            "reason_code",
        ),
        (
            &events,
            c.pk(),
            Some(&tok),
            r#"{"client_event_id": "e", "type": "offer_shown", "offer_id": null}"#,
            "offer_id",
        ),
        (
            "/v1/widget_tokens",
            c.sk(),
            None,
            r#"{"customer_id": "c", "subscription_id": null}"#,
            "subscription_id",
        ),
        (
            "/v1/ops/queues/stripe/dead/retry-all",
            &ops,
            None,
            r#"{"kind": null}"#,
            "kind",
        ),
        (
            "/v1/flows",
            c.sk(),
            None,
            r#"{"name": "F", "language": null, "steps": [{"id": "c", "type": "confirm", "title": "Bye"}]}"#,
            "language",
        ),
    ];
    for (path, bearer, token, body, param) in cases {
        let (st, res) = c.send(Method::POST, path, bearer, token, Some(body)).await;
        assert_invalid(st, &res, param, body);
    }
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM cancel_sessions").await,
        1
    );
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM session_events").await,
        0
    );
    // Absent is still fine.
    let (st, res) = c
        .send(
            Method::POST,
            "/v1/widget/sessions",
            c.pk(),
            Some(&tok),
            Some(r#"{}"#),
        )
        .await;
    assert_eq!(st, 201, "{res}");
}

/// What the OpenAPI document excludes, the API refuses (the API fuzzer sends such values
/// expecting a 4xx): attribute values that are not scalars or lists of scalars, probe
/// settings past their maxima, listing filters outside their enums. And lengths are counted
/// in characters, as documented (`maxLength`), not bytes.
#[tokio::test]
async fn values_outside_the_documented_schemas_are_a_400_and_lengths_count_characters() {
    let c = Ctx::new().await;
    let ops = c.app.ops_token().to_string();
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "/v1/widget_tokens",
            c.sk(),
            r#"{"customer_id": "c", "attributes": {"plan": {"nested": 1}}}"#,
            "attributes.plan",
        ),
        (
            "/v1/widget_tokens",
            c.sk(),
            r#"{"customer_id": "c", "attributes": {"plans": ["a", null]}}"#,
            "attributes.plans",
        ),
        (
            "/v1/widget_tokens",
            c.sk(),
            r#"{"customer_id": "c", "attributes": {"plans": [["a"]]}}"#,
            "attributes.plans",
        ),
        (
            "/v1/ops/probes",
            &ops,
            r#"{"probe": {"sleep_ms": 3600001}}"#,
            "probe.sleep_ms",
        ),
        (
            "/v1/ops/probes",
            &ops,
            r#"{"probe": {"fail_times": 1001}}"#,
            "probe.fail_times",
        ),
    ];
    for (path, bearer, body, param) in cases {
        let (st, res) = c.send(Method::POST, path, bearer, None, Some(body)).await;
        assert_invalid(st, &res, param, body);
    }
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM job_outbox").await,
        0
    );
    for (path, param) in [
        ("/v1/sessions?outcome=bogus", "outcome"),
        ("/v1/sessions?saved_offer_type=bogus", "saved_offer_type"),
        ("/v1/subscriptions?status=bogus", "status"),
    ] {
        let (st, res) = c.send(Method::GET, path, c.sk(), None, None).await;
        assert_invalid(st, &res, param, path);
    }
    let (st, res) = c
        .send(
            Method::GET,
            "/v1/sessions?outcome=saved",
            c.sk(),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200, "{res}");
    // Scalars, lists of scalars and null are attributes.
    let (st, res) = c
        .send(
            Method::POST,
            "/v1/widget_tokens",
            c.sk(),
            None,
            Some(r#"{"customer_id": "c", "attributes": {"plan": "pro", "seats": 3, "beta": true, "tags": ["a", 1], "gone": null}}"#),
        )
        .await;
    assert_eq!(st, 201, "{res}");
    // 255 characters of two bytes each: within the documented maxLength.
    let long = "é".repeat(255);
    let body = json!({ "customer_id": long }).to_string();
    let (st, res) = c
        .send(Method::POST, "/v1/widget_tokens", c.sk(), None, Some(&body))
        .await;
    assert_eq!(st, 201, "{res}");
    let sid = c.session("cus_chars").await;
    let body =
        json!({ "client_event_id": "é".repeat(100), "type": "feedback", "text": "x" }).to_string();
    let (st, res) = c
        .send(
            Method::POST,
            &format!("/v1/widget/sessions/{sid}/events"),
            c.pk(),
            Some(&c.token("cus_chars")),
            Some(&body),
        )
        .await;
    assert_eq!(st, 202, "{res}");
}

/// A number JSON allows is stored and read back: PostgreSQL prints a jsonb number in full
/// (the largest double as 309 digits), which serde_json reads only with `float_roundtrip`
/// (without it, creating the flow below was a 500 found by the API fuzzer).
#[tokio::test]
async fn the_largest_numbers_in_a_flow_are_stored_and_read_back() {
    let c = Ctx::new().await;
    let body = r#"{"name": "F", "steps": [{"type": "offer", "id": "o", "offers": [{"id": "c", "type": "custom", "title": "T", "custom": {"max": 1.7976931348623157e+308, "min": -1.7976931348623157e+308, "tiny": 5e-324}}]}]}"#;
    let (st, res) = c
        .send(Method::POST, "/v1/flows", c.sk(), None, Some(body))
        .await;
    assert_eq!(st, 201, "{res}");
    let custom = &res["draft"]["steps"][0]["offers"][0]["custom"];
    assert_eq!(custom["max"].as_f64(), Some(f64::MAX), "{res}");
    assert_eq!(custom["min"].as_f64(), Some(f64::MIN), "{res}");
    assert_eq!(custom["tiny"].as_f64(), Some(5e-324), "{res}");
    let id = res["id"].as_str().unwrap().to_string();
    let (st, res) = c
        .send(Method::GET, &format!("/v1/flows/{id}"), c.sk(), None, None)
        .await;
    assert_eq!(st, 200, "{res}");
}

#[tokio::test]
async fn a_signed_stripe_webhook_with_nul_is_acknowledged_stored_escaped_and_processed() {
    const WHSEC: &str = "whsec_hygiene_secret";
    let fake = FakeStripe::start().await;
    let mut env = Env::new().await;
    env.set("STRIPE_API_BASE", fake.base_url());
    let c = Ctx::with(TestApp::spawn_with(env).await).await;
    let (st, res) = c
        .send(
            Method::PUT,
            "/v1/settings/stripe",
            c.sk(),
            None,
            Some(
                &json!({"mode": "test", "api_key": "rk_test_x", "webhook_secrets": [WHSEC]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{res}");
    let cus = fake.create_customer("nul@b.test");
    let sub = fake.create_subscription(&cus, "price_pro", 4900, "month", "active");
    let mut event = fake.subscription_event("customer.subscription.updated", &sub.id);
    event["id"] = json!("evt_nul\u{0}id");
    event["data"]["object"]["metadata"] = json!({"note": "a\u{0}b", "k\u{0}": "v"});
    let hook = c.app.url(&format!("/v1/webhooks/stripe/{}", c.t.tenant.id));
    let r = fake_stripe::deliver(&hook, &event, WHSEC).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (event_id, note, key): (String, String, bool) = sqlx::query_as(
        "SELECT event_id, payload->'data'->'object'->'metadata'->>'note',
                payload->'data'->'object'->'metadata' ? E'k\\uFFFD' FROM stripe_events",
    )
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(event_id, "evt_nul\u{fffd}id");
    assert_eq!(note, "a\u{fffd}b");
    assert!(key);
    // Stripe's retry of the same delivery is a duplicate, not a second row or a 5xx.
    let r = fake_stripe::deliver(&hook, &event, WHSEC).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(
        count(&c.app.pool, "SELECT count(*) FROM stripe_events").await,
        1
    );
    // The worker processes it like any other: the subscription is synced.
    let worker = c.app.start_worker().await;
    let processed = wait_until(DEADLINE, || async {
        count(
            &c.app.pool,
            "SELECT count(*) FROM stripe_events WHERE processed_at IS NOT NULL",
        )
        .await
            == 1
    })
    .await;
    assert!(processed, "the escaped event was not processed");
    let synced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE stripe_subscription_id = $1")
            .bind(&sub.id)
            .fetch_one(&c.app.pool)
            .await
            .unwrap();
    assert_eq!(synced, 1);
    worker.shutdown().await;
}

async fn put(c: &Ctx, origins: Value) -> (StatusCode, Value) {
    let body = json!({ "allowed_origins": origins }).to_string();
    c.send(Method::PATCH, "/v1/settings", c.sk(), None, Some(&body))
        .await
}

async fn preflight(c: &Ctx, origin: &str) -> reqwest::Response {
    c.app
        .client
        .request(Method::OPTIONS, c.app.url("/v1/widget/sessions"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, x-customer-token",
        )
        .send()
        .await
        .unwrap()
}

fn allow_origin(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn preflights_answer_only_origins_some_tenant_allows_and_star_is_refused() {
    let c = Ctx::new().await;
    // Before any tenant allows it, and for a stranger's origin: no CORS headers.
    let r = preflight(&c, "https://shop.example").await;
    assert_eq!(r.status(), 204);
    assert_eq!(allow_origin(&r), None);
    let (st, res) = put(&c, json!(["https://shop.example"])).await;
    assert_eq!(st, 200, "{res}");
    let r = preflight(&c, "https://shop.example").await;
    assert_eq!(r.status(), 204);
    assert_eq!(allow_origin(&r).as_deref(), Some("https://shop.example"));
    assert!(r.headers().contains_key("access-control-allow-methods"));
    let r = preflight(&c, "https://evil.example").await;
    assert_eq!(r.status(), 204);
    assert_eq!(allow_origin(&r), None);
    assert!(!r.headers().contains_key("access-control-allow-methods"));
    // Our own origin is always fine.
    let own = c.app.base.clone();
    assert_eq!(allow_origin(&preflight(&c, &own).await), Some(own));
    // `*` is no origin, nor is a pattern.
    for bad in [json!(["*"]), json!(["https://*.example"])] {
        let (st, res) = put(&c, bad.clone()).await;
        assert_invalid(st, &res, "allowed_origins[0]", &bad.to_string());
    }
    // Removing the origin takes effect on the next preflight (this process forgets at once).
    let (st, _) = put(&c, json!([])).await;
    assert_eq!(st, 200);
    assert_eq!(
        allow_origin(&preflight(&c, "https://shop.example").await),
        None
    );
}

#[tokio::test]
async fn a_stored_star_is_not_a_wildcard() {
    let c = Ctx::new().await;
    // Settings written before `*` was refused.
    sqlx::query(
        "UPDATE tenant_settings SET settings = jsonb_set(settings, '{allowed_origins}', '[\"*\"]') WHERE tenant_id = $1",
    )
    .bind(c.t.tenant.id)
    .execute(&c.app.pool)
    .await
    .unwrap();
    let r = c
        .app
        .client
        .post(c.app.url("/v1/widget/sessions"))
        .bearer_auth(c.pk())
        .header("x-customer-token", c.token("cus_1"))
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(allow_origin(&r), None);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "origin_not_allowed"
    );
    assert_eq!(
        allow_origin(&preflight(&c, "https://evil.example").await),
        None
    );
}

/// The batched session writer on real PostgreSQL: a write PostgreSQL refuses (NUL, which the
/// edge now stops, but the writer must not rely on it) fails alone; the other writes of its
/// cross-tenant batch commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_write_fails_alone_in_its_batch() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let master = shared::crypto::MasterKey::parse(env.config().master_key.expose()).unwrap();
    let a = shared::tenants::create_tenant(&pool, &master, "A")
        .await
        .unwrap();
    let b = shared::tenants::create_tenant(&pool, &master, "B")
        .await
        .unwrap();
    let st = api::AppState::new(env.config()).unwrap();
    let row = |tenant: uuid::Uuid, cus: &str| shared::db::sessions::SessionRow {
        id: uuid::Uuid::now_v7(),
        tenant_id: tenant,
        mode: "test",
        user_id: None,
        customer_id: cus.into(),
        subscription_id: None,
        flow_id: None,
        flow_version: None,
        variant: None,
        holdout: false,
        mrr_cents: 0,
        attributes: json!({}),
        rendered_offers: Vec::new(),
        ttl_secs: 86400.0,
    };
    let writes: Vec<(bool, shared::db::sessions::SessionRow)> = (0..40)
        .map(|i| {
            let tenant = if i % 2 == 0 { a.tenant.id } else { b.tenant.id };
            if i == 17 {
                (false, row(tenant, "bad\u{0}"))
            } else {
                (true, row(tenant, &format!("cus_{i}")))
            }
        })
        .collect();
    let results = futures::future::join_all(writes.iter().map(|(good, w)| {
        let st = st.clone();
        async move { (*good, st.session_writes.submit(w.clone()).await) }
    }))
    .await;
    for (good, r) in results {
        if good {
            assert!(r.is_ok(), "{r:?}");
        } else {
            assert!(matches!(r, Err(sqlx::Error::Database(_))), "{r:?}");
        }
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM cancel_sessions").await,
        39
    );
}
