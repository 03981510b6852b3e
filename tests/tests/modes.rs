//! Issue 15 item 1: configuration belongs to a mode. Flows, flow versions and tenant settings
//! are test or live; a test key never reads or changes live configuration; a tested flow goes
//! live with `copy_to_live`; settings `PUT` needs every field and `PATCH` changes only what
//! it names; every change is audited; the migration copies tenant-wide configuration into
//! both modes.

use std::{borrow::Cow, sync::Arc};

use harness::{admin_url, TestApp};
use serde_json::{json, Value};
use shared::{
    tenants::{KeyKind, Mode, TenantWithKeys},
    widget_token::{sign, Claims},
};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// A flow whose single offer is titled `offer_title` (so a session shows which one it got).
fn flow_body(name: &str, offer_title: &str) -> Value {
    json!({
        "name": name, "language": "en", "is_default": true,
        "steps": [
            {"id": "survey", "type": "survey", "title": "Why are you leaving?", "reasons": [
                {"code": "too_expensive", "label": "Too expensive"}
            ]},
            {"id": "offers", "type": "offer", "title": "Before you go", "offers": [
                {"id": "pause", "type": "pause", "title": offer_title, "pause": {"months": 1}}
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
        let t = app.create_tenant("Modes Co").await;
        Self { app, t }
    }
    fn sk(&self, mode: Mode) -> &str {
        self.t.key(KeyKind::Secret, mode)
    }
    fn pk(&self, mode: Mode) -> &str {
        self.t.key(KeyKind::Publishable, mode)
    }
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        mode: Mode,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(self.sk(mode));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, mode: Mode) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, mode, None).await
    }
    async fn post(&self, path: &str, mode: Mode, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, mode, Some(body))
            .await
    }
    async fn create_flow(&self, mode: Mode, body: Value) -> String {
        let (s, f) = self.post("/v1/flows", mode, body).await;
        assert_eq!(s, 201, "{f}");
        assert_eq!(f["mode"], mode.as_str());
        f["id"].as_str().unwrap().to_string()
    }
    async fn publish(&self, mode: Mode, id: &str) -> i64 {
        let (s, b) = self
            .post(&format!("/v1/flows/{id}/publish"), mode, json!({}))
            .await;
        assert_eq!(s, 200, "{b}");
        b["published_version"].as_i64().unwrap()
    }
    fn token(&self, mode: Mode, customer: &str, sub: Option<&str>) -> String {
        sign(
            &Claims {
                tid: self.t.tenant.id,
                cus: customer.into(),
                sub: sub.map(str::to_string),
                exp: chrono::Utc::now().timestamp() + 600,
                attrs: None,
            },
            self.t.signing_secret(mode),
        )
    }
    /// Starts a widget session with `mode`'s publishable key; (status, body).
    async fn start(
        &self,
        mode: Mode,
        customer: &str,
        sub: Option<&str>,
        origin: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .app
            .client
            .post(self.app.url("/v1/widget/sessions"))
            .bearer_auth(self.pk(mode))
            .header("x-customer-token", self.token(mode, customer, sub))
            .json(&json!({}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }
    /// The offer title a session of `mode` renders (None without a flow).
    async fn rendered_offer(&self, mode: Mode, customer: &str) -> Option<String> {
        let (s, b) = self.start(mode, customer, None, None).await;
        assert_eq!(s, 201, "{b}");
        if b["flow"].is_null() {
            return None;
        }
        let steps = b["flow"]["steps"].as_array().unwrap();
        steps
            .iter()
            .find(|s| s["type"] == "offer")
            .and_then(|s| s["offers"][0]["title"].as_str())
            .map(str::to_string)
    }
    async fn audit_actions(&self, mode: Mode) -> Vec<(String, Option<String>)> {
        let (s, b) = self.get("/v1/audit_events?limit=200", mode).await;
        assert_eq!(s, 200, "{b}");
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["mode"], mode.as_str(), "{e}");
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["target_id"].as_str().map(str::to_string),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn test_key_configuration_changes_nothing_a_live_session_sees() {
    let c = Ctx::new().await;
    let live = c
        .create_flow(Mode::Live, flow_body("Live", "Live pause"))
        .await;
    c.publish(Mode::Live, &live).await;
    let (s, live_settings) = c.get("/v1/settings", Mode::Live).await;
    assert_eq!(s, 200);

    // A leaked test key publishes a default flow and opens the settings.
    let test = c
        .create_flow(Mode::Test, flow_body("Evil", "100% off forever"))
        .await;
    c.publish(Mode::Test, &test).await;
    let (s, b) = c
        .call(
            reqwest::Method::PATCH,
            "/v1/settings",
            Mode::Test,
            Some(json!({
                "allowed_origins": ["https://evil.example"],
                "cancel_mode": "cancel_at_period_end",
                "pause_cooldown_days": 0,
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // Live customers still get the live flow, and the live origin list.
    assert_eq!(
        c.rendered_offer(Mode::Live, "cus_live").await.as_deref(),
        Some("Live pause")
    );
    let (s, b) = c
        .start(Mode::Live, "cus_live2", None, Some("https://evil.example"))
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["code"], "origin_not_allowed");
    assert_eq!(c.get("/v1/settings", Mode::Live).await.1, live_settings);
    // Test customers get the test configuration.
    assert_eq!(
        c.rendered_offer(Mode::Test, "cus_test").await.as_deref(),
        Some("100% off forever")
    );
    let (s, b) = c
        .start(Mode::Test, "cus_test2", None, Some("https://evil.example"))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["flow"]["id"], test.as_str());

    // Deleting the test flow leaves live alone too.
    let (s, _) = c
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/flows/{test}"),
            Mode::Test,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(c.rendered_offer(Mode::Test, "cus_test3").await, None);
    assert_eq!(
        c.rendered_offer(Mode::Live, "cus_live3").await.as_deref(),
        Some("Live pause")
    );
}

#[tokio::test]
async fn a_key_cannot_read_or_change_another_modes_flows_or_settings() {
    let c = Ctx::new().await;
    let live = c
        .create_flow(Mode::Live, flow_body("Live", "Live pause"))
        .await;
    c.publish(Mode::Live, &live).await;
    let test = c
        .create_flow(Mode::Test, flow_body("Test", "Test pause"))
        .await;

    for (mine, other, other_id) in [
        (Mode::Test, Mode::Live, &live),
        (Mode::Live, Mode::Test, &test),
    ] {
        let path = format!("/v1/flows/{other_id}");
        for (method, p, body) in [
            (reqwest::Method::GET, path.clone(), None),
            (
                reqwest::Method::PUT,
                path.clone(),
                Some(flow_body("Hijack", "Hijacked")),
            ),
            (reqwest::Method::DELETE, path.clone(), None),
            (
                reqwest::Method::POST,
                format!("{path}/publish"),
                Some(json!({})),
            ),
            (reqwest::Method::GET, format!("{path}/versions"), None),
        ] {
            let (s, b) = c.call(method.clone(), &p, mine, body).await;
            assert_eq!(s, 404, "{method} {p} with a {mine:?} key: {b}");
            assert_eq!(b["error"]["code"], "flow_not_found");
        }
        let (s, list) = c.get("/v1/flows", mine).await;
        assert_eq!(s, 200);
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&other_id.as_str()), "{other:?} flow listed");
        assert_eq!(ids.len(), 1);
    }
    // Nothing changed: the live flow is as published, version 1 only.
    let (_, f) = c.get(&format!("/v1/flows/{live}"), Mode::Live).await;
    assert_eq!(f["name"], "Live");
    assert_eq!(f["published_version"], 1);
    let (_, v) = c
        .get(&format!("/v1/flows/{live}/versions"), Mode::Live)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    // Settings: each key sees and changes its own mode's.
    let (s, _) = c
        .call(
            reqwest::Method::PATCH,
            "/v1/settings",
            Mode::Test,
            Some(json!({"discount_cooldown_days": 7})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.get("/v1/settings", Mode::Test).await.1["discount_cooldown_days"],
        7
    );
    assert_eq!(
        c.get("/v1/settings", Mode::Live).await.1["discount_cooldown_days"],
        90
    );
}

#[tokio::test]
async fn copy_to_live_creates_then_updates_the_live_counterpart() {
    let c = Ctx::new().await;
    let test = c
        .create_flow(Mode::Test, flow_body("Retain", "Tested pause"))
        .await;
    let path = format!("/v1/flows/{test}/copy_to_live");

    // A test key is refused, whatever the flow.
    let (s, b) = c.post(&path, Mode::Test, json!({"publish": true})).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["code"], "live_key_required");
    // Publishing what was never published in test is refused, and changes nothing.
    let (s, b) = c.post(&path, Mode::Live, json!({"publish": true})).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "flow_not_published");
    assert_eq!(c.get("/v1/flows", Mode::Live).await.1["data"], json!([]));
    // Unknown fields are refused.
    let (s, b) = c.post(&path, Mode::Live, json!({"publsh": true})).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "unknown_field");

    // First copy, draft only: a new live flow that live customers do not see yet.
    c.publish(Mode::Test, &test).await;
    let res = c
        .app
        .client
        .post(c.app.url(&path))
        .bearer_auth(c.sk(Mode::Live))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let first: Value = res.json().await.unwrap();
    let live = first["id"].as_str().unwrap().to_string();
    assert_ne!(live, test);
    assert_eq!(first["mode"], "live");
    assert_eq!(first["copied_from"], test.as_str());
    assert!(first["published_version"].is_null());
    assert_eq!(c.rendered_offer(Mode::Live, "cus_1").await, None);

    // The test draft moves on after its publish; copying with publish takes the tested
    // (published) version live, and the new draft as the live draft, on the same live flow.
    let (s, _) = c
        .call(
            reqwest::Method::PUT,
            &format!("/v1/flows/{test}"),
            Mode::Test,
            Some(flow_body("Retain v2", "Untested pause")),
        )
        .await;
    assert_eq!(s, 200);
    let (s, second) = c.post(&path, Mode::Live, json!({"publish": true})).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["id"], live.as_str());
    assert_eq!(second["published_version"], 1);
    assert_eq!(second["name"], "Retain v2");
    assert_eq!(
        c.rendered_offer(Mode::Live, "cus_2").await.as_deref(),
        Some("Tested pause")
    );
    let (_, flows) = c.get("/v1/flows", Mode::Live).await;
    assert_eq!(flows["data"].as_array().unwrap().len(), 1);

    // Publish the new draft in test, copy again: version 2 live.
    c.publish(Mode::Test, &test).await;
    let (s, third) = c.post(&path, Mode::Live, json!({"publish": true})).await;
    assert_eq!(s, 200, "{third}");
    assert_eq!(third["id"], live.as_str());
    assert_eq!(third["published_version"], 2);
    assert_eq!(
        c.rendered_offer(Mode::Live, "cus_3").await.as_deref(),
        Some("Untested pause")
    );
    // The test flow is untouched by all this.
    let (_, t) = c.get(&format!("/v1/flows/{test}"), Mode::Test).await;
    assert_eq!(t["published_version"], 2);
    assert!(t["copied_from"].is_null());

    // A live id is not a test flow.
    let (s, _) = c
        .post(
            &format!("/v1/flows/{live}/copy_to_live"),
            Mode::Live,
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    // Deleting the live counterpart: the next copy makes a new one.
    let (s, _) = c
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/flows/{live}"),
            Mode::Live,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, fourth) = c.post(&path, Mode::Live, json!({})).await;
    assert_eq!(s, 201, "{fourth}");
    assert_ne!(fourth["id"], live.as_str());

    // Audited, in live.
    let copies: Vec<_> = c
        .audit_actions(Mode::Live)
        .await
        .into_iter()
        .filter(|(a, _)| a == "flow.copy_to_live")
        .collect();
    assert_eq!(copies.len(), 4, "{copies:?}");
    assert!(copies
        .iter()
        .any(|(_, t)| t.as_deref() == Some(live.as_str())));
}

#[tokio::test]
async fn put_settings_needs_every_field_and_patch_changes_only_the_given_ones() {
    let c = Ctx::new().await;
    let (_, before) = c.get("/v1/settings", Mode::Test).await;
    let full = json!({
        "allowed_origins": ["https://app.modes.test"], "discount_cooldown_days": 30,
        "pause_cooldown_days": 60, "trial_extension_cooldown_days": 45,
        "plan_change_cooldown_days": 15, "cancel_mode": "cancel_at_period_end",
        "timezone": "Europe/Paris", "rate_limit_per_second": 0,
    });
    for field in full.as_object().unwrap().keys() {
        let mut partial = full.clone();
        partial.as_object_mut().unwrap().remove(field);
        let (s, b) = c
            .call(
                reqwest::Method::PUT,
                "/v1/settings",
                Mode::Test,
                Some(partial),
            )
            .await;
        assert_eq!(s, 400, "{field}: {b}");
        assert_eq!(b["error"]["code"], "missing_field", "{b}");
        assert_eq!(b["error"]["param"], field.as_str(), "{b}");
    }
    assert_eq!(c.get("/v1/settings", Mode::Test).await.1, before);
    let (s, b) = c
        .call(
            reqwest::Method::PUT,
            "/v1/settings",
            Mode::Test,
            Some(full.clone()),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, full);

    // PATCH one field: the others stay.
    let (s, b) = c
        .call(
            reqwest::Method::PATCH,
            "/v1/settings",
            Mode::Test,
            Some(json!({"pause_cooldown_days": 5})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut want = full.clone();
    want["pause_cooldown_days"] = json!(5);
    assert_eq!(b, want);
    assert_eq!(c.get("/v1/settings", Mode::Test).await.1, want);

    // Bad PATCHes name the field and change nothing.
    for (body, code, param) in [
        (json!({"nope": 1}), "unknown_field", "nope"),
        (json!({"timezone": null}), "invalid_field", "timezone"),
        (
            json!({"pause_cooldown_days": "x"}),
            "invalid_field",
            "pause_cooldown_days",
        ),
        (
            json!({"timezone": "Mars/Olympus"}),
            "parameter_invalid",
            "timezone",
        ),
        (
            json!({"cancel_mode": "yes", "pause_cooldown_days": 1}),
            "parameter_invalid",
            "cancel_mode",
        ),
        (
            json!({"allowed_origins": ["ftp://x"]}),
            "parameter_invalid",
            "allowed_origins[0]",
        ),
    ] {
        let (s, b) = c
            .call(
                reqwest::Method::PATCH,
                "/v1/settings",
                Mode::Test,
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["code"], code, "{body}: {b}");
        assert_eq!(b["error"]["param"], param, "{body}: {b}");
    }
    assert_eq!(c.get("/v1/settings", Mode::Test).await.1, want);
    // The live settings never moved.
    assert_eq!(c.get("/v1/settings", Mode::Live).await.1, before);
}

#[tokio::test]
async fn configuration_changes_are_audited_in_the_keys_mode() {
    let c = Ctx::new().await;
    let id = c.create_flow(Mode::Test, flow_body("A", "a")).await;
    let (s, _) = c
        .call(
            reqwest::Method::PUT,
            &format!("/v1/flows/{id}"),
            Mode::Test,
            Some(flow_body("B", "b")),
        )
        .await;
    assert_eq!(s, 200);
    c.publish(Mode::Test, &id).await;
    let (s, _) = c
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/flows/{id}"),
            Mode::Test,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            reqwest::Method::PATCH,
            "/v1/settings",
            Mode::Test,
            Some(json!({"discount_cooldown_days": 3})),
        )
        .await;
    assert_eq!(s, 200);
    // A live change, to show the listings are per mode.
    let (s, _) = c
        .call(
            reqwest::Method::PATCH,
            "/v1/settings",
            Mode::Live,
            Some(json!({"pause_cooldown_days": 4})),
        )
        .await;
    assert_eq!(s, 200);
    // A rejected change leaves no row.
    let (s, _) = c
        .call(
            reqwest::Method::PATCH,
            "/v1/settings",
            Mode::Live,
            Some(json!({"cancel_mode": "nope"})),
        )
        .await;
    assert_eq!(s, 400);

    let mut test: Vec<String> = c
        .audit_actions(Mode::Test)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    test.sort();
    assert_eq!(
        test,
        [
            "flow.create",
            "flow.delete",
            "flow.publish",
            "flow.update",
            "settings.update"
        ]
    );
    let live = c.audit_actions(Mode::Live).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].0, "settings.update");

    // Before/after of the settings change, the actor and the flow target.
    let (_, b) = c
        .get("/v1/audit_events?action=settings.update", Mode::Live)
        .await;
    let e = &b["data"][0];
    assert_eq!(e["before"]["pause_cooldown_days"], 90, "{e}");
    assert_eq!(e["after"]["pause_cooldown_days"], 4, "{e}");
    assert_eq!(e["actor_type"], "api_key");
    let live_key =
        c.t.keys
            .iter()
            .find(|k| k.kind == KeyKind::Secret && k.mode == Mode::Live)
            .unwrap();
    assert_eq!(e["actor_id"], live_key.id.to_string());
    let (_, b) = c
        .get("/v1/audit_events?action=flow.publish", Mode::Test)
        .await;
    let e = &b["data"][0];
    assert_eq!(e["target_id"], id.as_str());
    assert_eq!(e["before"]["published_version"], Value::Null);
    assert_eq!(e["after"]["published_version"], 1);
}

#[tokio::test]
async fn session_start_reads_only_the_keys_modes_subscription() {
    let c = Ctx::new().await;
    let default = c
        .create_flow(Mode::Live, flow_body("Default", "Default pause"))
        .await;
    c.publish(Mode::Live, &default).await;
    let mut targeted = flow_body("Enterprise", "Enterprise pause");
    targeted["is_default"] = json!(false);
    targeted["ranking_score"] = json!(10);
    targeted["targeting"] = json!([{"attribute": "plan", "op": "eq", "value": "enterprise"}]);
    let targeted = c.create_flow(Mode::Live, targeted).await;
    c.publish(Mode::Live, &targeted).await;
    // A test-mode customer and subscription (plan enterprise).
    let user = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, mode, external_id) VALUES ($1, $2, 'test', 'cus_mixed')",
    )
    .bind(user)
    .bind(c.t.tenant.id)
    .execute(&c.app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (id, tenant_id, user_id, mode, stripe_subscription_id, status, plan)
         VALUES ($1, $2, $3, 'test', 'sub_mixed', 'active', 'enterprise')",
    )
    .bind(Uuid::now_v7())
    .bind(c.t.tenant.id)
    .bind(user)
    .execute(&c.app.pool)
    .await
    .unwrap();
    // A live session naming that subscription does not see its test-mode data.
    let (s, b) = c
        .start(Mode::Live, "cus_mixed", Some("sub_mixed"), None)
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["flow"]["id"], default.as_str(), "{b}");
    let (plan,): (Option<String>,) =
        sqlx::query_as("SELECT attributes->>'plan' FROM cancel_sessions WHERE id = $1::text::uuid")
            .bind(b["session_id"].as_str().unwrap())
            .fetch_one(&c.app.pool)
            .await
            .unwrap();
    assert_eq!(plan, None);
}

#[tokio::test]
async fn the_flow_version_cache_never_serves_another_tenants_or_modes_version() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant("A").await;
    let b = app.create_tenant("B").await;
    let res = app
        .client
        .post(app.url("/v1/flows"))
        .bearer_auth(a.key(KeyKind::Secret, Mode::Test))
        .json(&flow_body("A's", "A's pause"))
        .send()
        .await
        .unwrap();
    let flow: Value = res.json().await.unwrap();
    let flow = Uuid::parse_str(flow["id"].as_str().unwrap()).unwrap();
    let res = app
        .client
        .post(app.url(&format!("/v1/flows/{flow}/publish")))
        .bearer_auth(a.key(KeyKind::Secret, Mode::Test))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let cache = Arc::new(api::flow_cache::FlowCache::default());
    let pool = &app.pool;
    let own = cache
        .version(pool, a.tenant.id, Mode::Test, flow, 1)
        .await
        .unwrap();
    assert!(own.is_some(), "the owner reads its version (now cached)");
    assert!(
        cache
            .version(pool, b.tenant.id, Mode::Test, flow, 1)
            .await
            .unwrap()
            .is_none(),
        "another tenant naming the flow id gets nothing from the cache"
    );
    assert!(
        cache
            .version(pool, a.tenant.id, Mode::Live, flow, 1)
            .await
            .unwrap()
            .is_none(),
        "the other mode gets nothing from the cache"
    );
}

const MODES_MIGRATION: i64 = 20261202000001;

/// An empty database of its own (not the harness's migrated template).
async fn empty_database() -> (String, PgPool) {
    let admin = admin_url();
    let name = format!("rtos_test_mig_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let pool = PgPool::connect(&url).await.unwrap();
    (url, pool)
}

#[tokio::test]
async fn the_migration_copies_tenant_wide_configuration_into_both_modes() {
    let (_, pool) = empty_database().await;
    let earlier = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            shared::db::MIGRATOR
                .iter()
                .filter(|m| m.version < MODES_MIGRATION)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    earlier.run(&pool).await.unwrap();

    // The old shape: tenant-wide settings, a published flow (two versions) and a deleted
    // one, a test-mode and a live-mode session on the flow.
    let tenant = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, name, timezone, settings) VALUES ($1, 'Old Co', 'Europe/Paris', $2)")
        .bind(tenant)
        .bind(json!({"allowed_origins": ["https://old.example"], "cancel_mode": "cancel_at_period_end", "pause_cooldown_days": 12}))
        .execute(&pool)
        .await
        .unwrap();
    let flow = Uuid::now_v7();
    let gone = Uuid::now_v7();
    for (id, deleted) in [(flow, false), (gone, true)] {
        sqlx::query(
            "INSERT INTO flows (id, tenant_id, name, language, ranking_score, is_default, draft, published_version, deleted_at)
             VALUES ($1, $2, 'Old', 'en', 3, $3, $4, 2, CASE WHEN $5 THEN now() END)",
        )
        .bind(id)
        .bind(tenant)
        .bind(!deleted)
        .bind(json!({"name": "Old", "draft": 3}))
        .bind(deleted)
        .execute(&pool)
        .await
        .unwrap();
        for v in [1, 2] {
            sqlx::query("INSERT INTO flow_versions (tenant_id, flow_id, version, definition) VALUES ($1, $2, $3, $4)")
                .bind(tenant)
                .bind(id)
                .bind(v)
                .bind(json!({"name": "Old", "v": v}))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    for mode in ["test", "live"] {
        sqlx::query("INSERT INTO cancel_sessions (id, tenant_id, mode, customer_id, flow_id, flow_version) VALUES ($1, $2, $3, 'cus', $4, 2)")
            .bind(Uuid::now_v7())
            .bind(tenant)
            .bind(mode)
            .bind(flow)
            .execute(&pool)
            .await
            .unwrap();
    }

    shared::db::migrate(&pool).await.unwrap();

    // Settings: both modes, time zone included.
    for mode in [Mode::Test, Mode::Live] {
        let s = shared::tenants::settings(&pool, tenant, mode)
            .await
            .unwrap();
        assert_eq!(s.allowed_origins, ["https://old.example"]);
        assert_eq!(s.cancel_mode, "cancel_at_period_end");
        assert_eq!(s.pause_cooldown_days, 12);
        assert_eq!(s.discount_cooldown_days, 90);
        assert_eq!(s.timezone, "Europe/Paris");
    }
    // Flows: the original is live, with a test copy (new id) linked by copied_from.
    let rows = sqlx::query!(
        r#"SELECT id, mode, copied_from, published_version, is_default, deleted_at IS NOT NULL AS "deleted!",
                  ranking_score, draft
             FROM flows ORDER BY mode, deleted_at NULLS FIRST"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    let live: Vec<_> = rows.iter().filter(|r| r.mode == "live").collect();
    let test: Vec<_> = rows.iter().filter(|r| r.mode == "test").collect();
    assert_eq!(live[0].id, flow);
    assert_eq!(live[1].id, gone);
    for (l, t) in live.iter().zip(&test) {
        assert_ne!(t.id, l.id);
        assert_eq!(
            l.copied_from,
            Some(t.id),
            "the live flow names its test copy"
        );
        assert_eq!(t.copied_from, None);
        assert_eq!(
            (
                t.published_version,
                t.is_default,
                t.deleted,
                t.ranking_score,
                &t.draft
            ),
            (
                l.published_version,
                l.is_default,
                l.deleted,
                l.ranking_score,
                &l.draft
            )
        );
    }
    // Versions copied, in their flow's mode.
    let versions: Vec<(Uuid, String, i32, Value)> = sqlx::query_as(
        "SELECT flow_id, mode, version, definition FROM flow_versions ORDER BY mode, flow_id, version",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions.len(), 8);
    let test_flow = test[0].id;
    let copied: Vec<_> = versions.iter().filter(|v| v.0 == test_flow).collect();
    assert_eq!(copied.len(), 2);
    assert!(copied.iter().all(|v| v.1 == "test"));
    assert_eq!(copied[1].3, json!({"name": "Old", "v": 2}));
    // The test session now names the test copy; the live one the original.
    let sessions: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT mode, flow_id FROM cancel_sessions ORDER BY mode")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        sessions,
        [("live".to_string(), flow), ("test".to_string(), test_flow)]
    );

    // New tenants get both modes' defaults.
    let master = shared::crypto::MasterKey::parse(&format!("{}=", "A".repeat(43))).unwrap();
    let t = shared::tenants::create_tenant(&pool, &master, "New Co")
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM tenant_settings WHERE tenant_id = $1")
        .bind(t.tenant.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    pool.close().await;
}

#[tokio::test]
async fn a_test_keys_rate_limit_and_traffic_never_throttle_live() {
    // Only the tenant buckets are under test: the per-IP limit is off.
    let mut env = harness::Env::new().await;
    env.set("RATE_LIMIT_IP_PER_SECOND", "0");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Budgets").await;
    let tenant_call = |mode: Mode| {
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(t.key(KeyKind::Secret, mode))
            .send()
    };
    let res = app
        .client
        .patch(app.url("/v1/settings"))
        .bearer_auth(t.key(KeyKind::Secret, Mode::Test))
        .json(&json!({"rate_limit_per_second": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Spend the test budget (1/s, burst 2) until test calls are refused.
    let mut refused = false;
    for _ in 0..50 {
        if tenant_call(Mode::Test).await.unwrap().status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the test limit applies to test keys");
    // Live keys keep the live limit (the default) and their own budget.
    for i in 0..30 {
        let r = tenant_call(Mode::Live).await.unwrap();
        assert_eq!(r.status(), 200, "live call {i}");
    }
    let (_, live): (u16, Value) = {
        let r = app
            .client
            .get(app.url("/v1/settings"))
            .bearer_auth(t.key(KeyKind::Secret, Mode::Live))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    };
    assert_eq!(live["rate_limit_per_second"], 0);
}
