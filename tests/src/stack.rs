//! A tenant with Stripe connected (to the fake), a running api and helpers to publish a flow
//! and drive the widget's session API as a customer would: shared by the acceptance and
//! dashboard tests.

use serde_json::{json, Value};
use shared::{
    tenants::{KeyKind, Mode, TenantWithKeys},
    widget_token::{sign, Claims},
};
use uuid::Uuid;

use crate::{fake_stripe::FakeStripe, Env, TestApp};

pub struct WidgetStack {
    pub app: TestApp,
    pub fake: FakeStripe,
    pub t: TenantWithKeys,
}

impl WidgetStack {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Env)) -> Self {
        let fake = FakeStripe::start().await;
        let mut env = Env::new().await;
        env.set("STRIPE_API_BASE", fake.base_url())
            .set("JOB_RETRY_BASE_MS", "200")
            // Each test starts several sessions concurrently for one customer.
            .set("SHED_QUEUE_TIMEOUT_MS", "5000");
        tweak(&mut env);
        let app = TestApp::spawn_with(env).await;
        let t = app.create_tenant("Accept Co").await;
        let s = Self { app, fake, t };
        let r = s
            .app
            .client
            .put(s.app.url("/v1/settings/stripe"))
            .bearer_auth(s.sk())
            .json(&json!({"mode": "test", "api_key": "rk_test_tenant", "webhook_secrets": ["whsec_x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        s
    }

    pub fn sk(&self) -> &str {
        self.t.key(KeyKind::Secret, Mode::Test)
    }

    pub fn pk(&self) -> &str {
        self.t.key(KeyKind::Publishable, Mode::Test)
    }

    /// Creates and publishes the default flow; returns its id.
    pub async fn publish(&self, body: Value) -> Uuid {
        let r = self
            .app
            .client
            .post(self.app.url("/v1/flows"))
            .bearer_auth(self.sk())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = self
            .app
            .client
            .post(self.app.url(&format!("/v1/flows/{id}/publish")))
            .bearer_auth(self.sk())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        id.parse().unwrap()
    }

    pub fn token(&self, cus: &str, sub: Option<&str>) -> String {
        sign(
            &Claims {
                tid: self.t.tenant.id,
                cus: cus.into(),
                sub: Some(sub.map_or_else(|| format!("sub_{cus}"), str::to_string)),
                exp: chrono::Utc::now().timestamp() + 600,
                attrs: None,
            },
            self.t.signing_secret(Mode::Test),
        )
    }

    /// Starts a session; returns (session id, the rendered offer ids).
    pub async fn start(&self, cus: &str, sub: Option<&str>) -> (String, Vec<String>) {
        let r = self
            .app
            .client
            .post(self.app.url("/v1/widget/sessions"))
            .bearer_auth(self.pk())
            .header("x-customer-token", self.token(cus, sub))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let s: Value = r.json().await.unwrap();
        let offers = s["flow"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["type"] == "offer")
            .flat_map(|x| x["offers"].as_array().unwrap().clone())
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        (s["session_id"].as_str().unwrap().to_string(), offers)
    }

    /// Sends one event; returns (status, body).
    pub async fn event(&self, cus: &str, sid: &str, body: Value) -> (u16, Value) {
        let mut body = body;
        if body.get("client_event_id").is_none() {
            body["client_event_id"] = json!(Uuid::new_v4().to_string());
        }
        let r = self
            .app
            .client
            .post(self.app.url(&format!("/v1/widget/sessions/{sid}/events")))
            .bearer_auth(self.pk())
            .header("x-customer-token", self.token(cus, None))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn accept(&self, cus: &str, sid: &str, offer: &str) -> (u16, Value) {
        self.event(
            cus,
            sid,
            json!({"type": "offer_accepted", "offer_id": offer}),
        )
        .await
    }

    /// (outcome, offer_state, number of events, number of accepted offer_events) of a session.
    pub async fn state(&self, sid: &str) -> (Option<String>, Option<String>, i64, i64) {
        sqlx::query_as(
            "SELECT outcome, offer_state,
                    (SELECT count(*) FROM session_events e WHERE e.session_id = s.id),
                    (SELECT count(*) FROM offer_events o WHERE o.session_id = s.id AND o.accepted)
               FROM cancel_sessions s WHERE id = $1::uuid",
        )
        .bind(sid)
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    pub async fn offer_state(&self, sid: &str) -> (Option<String>, Option<String>) {
        sqlx::query_as("SELECT offer_state, offer_error FROM cancel_sessions WHERE id = $1::uuid")
            .bind(sid)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// Successful offer calls to the fake for this subscription.
    pub fn subscription_updates(&self, sub: &str) -> usize {
        self.fake
            .requests_to(&format!("POST /v1/subscriptions/{sub}"))
            .into_iter()
            .filter(|r| r.status == Some(200))
            .count()
    }
}
