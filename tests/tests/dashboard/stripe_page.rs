//! The Stripe connection settings page.

#[allow(unused_imports)]
use super::*;

use harness::fake_stripe::{self, FakeStripe, Fault};
use shared::tenants::{KeyKind, Mode};

const PAGE: &str = "/app/settings/stripe";

/// An api whose Stripe is the fake.
async fn app_with_fake() -> (TestApp, FakeStripe) {
    let fake = FakeStripe::start().await;
    let mut env = harness::Env::new().await;
    env.set("STRIPE_API_BASE", fake.base_url());
    (TestApp::spawn_with(env).await, fake)
}

async fn page_of(app: &TestApp, cookie: &str) -> String {
    let res = get(app, PAGE, cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

/// The stored row of a mode: (key last 4, number of secrets, updated_at as text).
async fn stored(app: &TestApp, tenant: Uuid, mode: &str) -> Option<(String, i64, String)> {
    sqlx::query_as(
        "SELECT api_key_last4, jsonb_array_length(webhook_secrets_enc)::bigint, updated_at::text
           FROM stripe_settings WHERE tenant_id = $1 AND mode = $2",
    )
    .bind(tenant)
    .bind(mode)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

async fn stripe_audits(app: &TestApp) -> i64 {
    count(
        &app.pool,
        "SELECT count(*) FROM audit_events WHERE action = 'stripe_settings.update' AND actor_type = 'dashboard_user'",
    )
    .await
}

/// Delivers a signed event of `mode` to the tenant's endpoint; returns the status.
async fn deliver(app: &TestApp, tenant: Uuid, secret: &str, live: bool) -> u16 {
    let mut ev = fake_stripe::event("ping.dashboard_test", serde_json::json!({"id": "x_1"}));
    ev["livemode"] = serde_json::Value::Bool(live);
    fake_stripe::deliver(
        &app.url(&format!("/v1/webhooks/stripe/{tenant}")),
        &ev,
        secret,
    )
    .await
    .status()
    .as_u16()
}

/// The fingerprint the page names a secret by, in table order.
fn secret_ids(html: &str) -> Vec<String> {
    html.split("data-secret=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

/// A tenant `name` whose owner `email` is signed in and has connected test mode with `key`
/// and a first secret: (tenant, the owner's cookie, the page's CSRF token).
async fn connected_owner(
    app: &TestApp,
    name: &str,
    email: &str,
    key: &str,
    secret: &str,
) -> (Uuid, String, String) {
    let t = app.create_tenant(name).await;
    user(app, t.tenant.id, email, Role::Owner).await;
    let o = signed_in(app, email).await;
    let csrf = csrf_of(&page_of(app, &o).await);
    let res = post(
        app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("csrf", &csrf),
            ("api_key", key),
            ("webhook_secret", secret),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    (t.tenant.id, o, csrf)
}

/// Adds a webhook signing secret through the page; the answer.
async fn add_secret(app: &TestApp, cookie: &str, csrf: &str, secret: &str) -> reqwest::Response {
    post(
        app,
        "/app/settings/stripe/secrets",
        cookie,
        &[("csrf", csrf), ("webhook_secret", secret)],
        None,
    )
    .await
}

/// Connect, roll a webhook secret (old and new both accepted), remove the old one (refused
/// from then on), replace the key keeping the secrets, the 1–5 rule and every field error
/// where the API's `param` names it; the key and secrets never reach the page.
#[tokio::test]
async fn owners_connect_stripe_and_roll_webhook_secrets() {
    let (app, _fake) = app_with_fake().await;
    let t = app.create_tenant("Acme").await;
    let tenant = t.tenant.id;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    let o = signed_in(&app, "owner@acme.test").await;

    let html = page_of(&app, &o).await;
    assert!(html.contains("data-not-connected"), "{html}");
    // `PUBLIC_BASE_URL`, else `http://API_ADDR` (the test app's configured address).
    let url = html
        .split("data-webhook-url")
        .next()
        .and_then(|s| s.rsplit("value=\"").next())
        .unwrap();
    assert!(
        url.starts_with("http://") && url.ends_with(&format!("/v1/webhooks/stripe/{tenant}\" ")),
        "{url}"
    );
    for ev in ["customer.subscription.updated", "invoice.payment_failed"] {
        assert!(html.contains(&format!("<code>{ev}</code>")), "{ev}");
    }
    assert!(html.contains("type=\"password\""));
    assert!(
        html.contains("aria-current=\"page\">Stripe</a>"),
        "in the nav"
    );
    let csrf = csrf_of(&html);

    // No CSRF token: refused, nothing stored.
    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("api_key", "rk_test_abcd1234"),
            ("webhook_secret", "whsec_old1"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A publishable key, then a bad secret: each error on its own field, nothing stored.
    for (key, secret, field) in [
        ("pk_test_abcd1234", "whsec_old1", "api_key"),
        ("rk_live_abcd1234", "whsec_old1", "api_key"),
        ("rk_test_abcd1234", "not-a-secret", "webhook_secret"),
    ] {
        let res = post(
            &app,
            "/app/settings/stripe/key",
            &o,
            &[
                ("csrf", &csrf),
                ("api_key", key),
                ("webhook_secret", secret),
            ],
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{key} {secret}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "{field}: {html}"
        );
        assert!(!html.contains(key) && !html.contains(secret), "no echo");
    }
    assert_eq!(stored(&app, tenant, "test").await, None);
    assert_eq!(stripe_audits(&app).await, 0);

    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("csrf", &csrf),
            ("api_key", " rk_test_abcd1234 "),
            ("webhook_secret", "whsec_old1111"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/settings/stripe?done=key");
    let html = page_of(&app, &o).await;
    assert!(html.contains("<dd data-key-last4>…1234</dd>"), "{html}");
    assert!(html.contains("whsec_…1111"));
    assert!(!html.contains("rk_test_abcd1234") && !html.contains("whsec_old1111"));
    assert_eq!(stored(&app, tenant, "test").await.unwrap().1, 1);
    // The API sees what the page stored.
    let api: serde_json::Value = app
        .client
        .get(app.url("/v1/settings/stripe"))
        .bearer_auth(t.key(KeyKind::Secret, Mode::Test))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["api_key_last4"], "1234");
    assert_eq!(api["webhook_secrets"], 1);
    // The only secret cannot be removed (no button; a forged request is refused on the list).
    let only = secret_ids(&html);
    assert_eq!(only.len(), 1);
    assert!(!html.contains("/app/settings/stripe/secrets/remove"));
    let res = post(
        &app,
        "/app/settings/stripe/secrets/remove",
        &o,
        &[("csrf", &csrf), ("secret", &only[0])],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("id=\"secrets-error\""));
    assert_eq!(deliver(&app, tenant, "whsec_old1111", false).await, 200);
    assert_eq!(deliver(&app, tenant, "whsec_new2222", false).await, 400);

    // Roll: add the new one; both are accepted.
    let res = add_secret(&app, &o, &csrf, "whsec_new2222").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/settings/stripe?done=added");
    assert_eq!(deliver(&app, tenant, "whsec_old1111", false).await, 200);
    assert_eq!(deliver(&app, tenant, "whsec_new2222", false).await, 200);
    // The same secret twice, and a malformed one: errors on the new-secret field.
    for secret in ["whsec_new2222", "new2222"] {
        let res = add_secret(&app, &o, &csrf, secret).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{secret}");
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("id=\"webhook_secret-error\""));
    }
    assert_eq!(stored(&app, tenant, "test").await.unwrap().1, 2);

    // Remove the old one: refused from then on, the new one still works.
    let html = page_of(&app, &o).await;
    let ids = secret_ids(&html);
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], only[0], "oldest first");
    let res = post(
        &app,
        "/app/settings/stripe/secrets/remove",
        &o,
        &[("csrf", &csrf), ("secret", &ids[0])],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/settings/stripe?done=removed");
    assert_eq!(deliver(&app, tenant, "whsec_old1111", false).await, 400);
    assert_eq!(deliver(&app, tenant, "whsec_new2222", false).await, 200);
    let html = page_of(&app, &o).await;
    assert!(!html.contains("whsec_…1111") && html.contains("whsec_…2222"));
    // An unknown (or already removed) secret: 404, nothing changes.
    let res = post(
        &app,
        "/app/settings/stripe/secrets/remove",
        &o,
        &[("csrf", &csrf), ("secret", &ids[0])],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Up to five: then the form is gone and a forged sixth is the API's 1–5 error.
    for i in 3..=6 {
        let res = add_secret(&app, &o, &csrf, &format!("whsec_more{i}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "secret {i}");
    }
    assert_eq!(stored(&app, tenant, "test").await.unwrap().1, 5);
    let html = page_of(&app, &o).await;
    assert!(!html.contains("action=\"/app/settings/stripe/secrets\""));
    let res = add_secret(&app, &o, &csrf, "whsec_sixth").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"webhook_secret-error\"") && html.contains("1 to 5"),
        "{html}"
    );
    assert_eq!(stored(&app, tenant, "test").await.unwrap().1, 5);

    // Replacing the key keeps the secrets.
    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[("csrf", &csrf), ("api_key", "sk_test_zzzz9999")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let row = stored(&app, tenant, "test").await.unwrap();
    assert_eq!((row.0.as_str(), row.1), ("9999", 5));
    assert_eq!(deliver(&app, tenant, "whsec_new2222", false).await, 200);

    // Every change is one audited `stripe_settings.update` by the dashboard user (summaries:
    // never a key or a secret).
    let (n, leaked): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE coalesce(before::text, '') || after::text ~ '(whsec_|rk_test|sk_test)')
           FROM audit_events WHERE action = 'stripe_settings.update' AND actor_type = 'dashboard_user' AND tenant_id = $1 AND mode = 'test'",
    )
    .bind(tenant)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((n, leaked), (8, 0));
}

/// "Test connection" calls Stripe's `GET /v1/account` with the stored key and shows the
/// account, or Stripe's own error message.
#[tokio::test]
async fn test_connection_calls_stripe_with_the_stored_key() {
    let (app, fake) = app_with_fake().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, t.tenant.id, "analyst@acme.test", Role::Analyst).await;
    let o = signed_in(&app, "owner@acme.test").await;
    let csrf = csrf_of(&page_of(&app, &o).await);

    // Nothing stored: said so, and Stripe is not called.
    let res = post(
        &app,
        "/app/settings/stripe/test",
        &o,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("data-test-result=\"failed\"") && html.contains("No Stripe key is stored"),
        "{html}"
    );
    assert!(fake.requests().is_empty());

    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("csrf", &csrf),
            ("api_key", "rk_test_conn5678"),
            ("webhook_secret", "whsec_a"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // No CSRF token: refused before any call.
    let res = post(&app, "/app/settings/stripe/test", &o, &[], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(fake.requests().is_empty());

    // Success.
    let res = post(
        &app,
        "/app/settings/stripe/test",
        &o,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-test-result=\"ok\""), "{html}");
    assert!(html.contains(fake_stripe::ACCOUNT_ID) && html.contains("Fake Stripe account"));
    assert!(!html.contains("rk_test_conn5678"));
    let calls = fake.requests_to("GET /v1/account");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].api_key.as_deref(), Some("rk_test_conn5678"));
    assert_eq!(calls[0].status, Some(200));

    // Stripe refuses: its message is shown.
    fake.fail_next(
        "GET /v1/account",
        1,
        Fault::Status400 {
            code: "api_key_expired".into(),
            message: "Expired API Key provided: rk_test_*******5678".into(),
        },
    );
    let res = post(
        &app,
        "/app/settings/stripe/test",
        &o,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("data-test-result=\"failed\""), "{html}");
    assert!(
        html.contains(
            "Stripe refused the key (HTTP 400): Expired API Key provided: rk_test_*******5678"
        ),
        "{html}"
    );
    // Stripe is down.
    fake.fail_next("GET /v1/account", 1, Fault::Status500);
    let html = post(
        &app,
        "/app/settings/stripe/test",
        &o,
        &[("csrf", &csrf)],
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        html.contains("data-test-result=\"failed\"") && html.contains("HTTP 500"),
        "{html}"
    );
    assert_eq!(fake.requests_to("GET /v1/account").len(), 3);

    // It changes nothing, so an analyst may run it too.
    let a = signed_in(&app, "analyst@acme.test").await;
    let ac = csrf_of(&page_of(&app, &a).await);
    let html = post(
        &app,
        "/app/settings/stripe/test",
        &a,
        &[("csrf", &ac)],
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(html.contains("data-test-result=\"ok\""), "{html}");
}

/// Analysts see the page read-only and their forged POSTs are refused with nothing changed;
/// admins may change it.
#[tokio::test]
async fn analysts_read_only_and_admins_change() {
    let (app, _fake) = app_with_fake().await;
    let t = app.create_tenant("Acme").await;
    let tenant = t.tenant.id;
    user(&app, tenant, "owner@acme.test", Role::Owner).await;
    user(&app, tenant, "admin@acme.test", Role::Admin).await;
    user(&app, tenant, "analyst@acme.test", Role::Analyst).await;
    let o = signed_in(&app, "owner@acme.test").await;
    let oc = csrf_of(&page_of(&app, &o).await);
    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("csrf", &oc),
            ("api_key", "rk_test_owner111"),
            ("webhook_secret", "whsec_one1"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = add_secret(&app, &o, &oc, "whsec_two2").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let before = stored(&app, tenant, "test").await.unwrap();
    let audits = stripe_audits(&app).await;

    let a = signed_in(&app, "analyst@acme.test").await;
    let html = page_of(&app, &a).await;
    assert!(html.contains("data-read-only") && html.contains("…r111"));
    for action in ["/key\"", "/secrets\"", "/secrets/remove\""] {
        assert!(
            !html.contains(&format!("action=\"/app/settings/stripe{action}")),
            "{action}"
        );
    }
    let ac = csrf_of(&html);
    let ids = secret_ids(&html);
    for (path, form) in [
        (
            "/app/settings/stripe/key",
            vec![
                ("api_key", "rk_test_analyst9"),
                ("webhook_secret", "whsec_x"),
            ],
        ),
        (
            "/app/settings/stripe/secrets",
            vec![("webhook_secret", "whsec_analyst")],
        ),
        (
            "/app/settings/stripe/secrets/remove",
            vec![("secret", ids[0].as_str())],
        ),
    ] {
        let mut f = form.clone();
        f.push(("csrf", &ac));
        let res = post(&app, path, &a, &f, None).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(stored(&app, tenant, "test").await.unwrap(), before);
    assert_eq!(stripe_audits(&app).await, audits);

    let ad = signed_in(&app, "admin@acme.test").await;
    let html = page_of(&app, &ad).await;
    assert!(!html.contains("data-read-only"));
    let res = post(
        &app,
        "/app/settings/stripe/secrets/remove",
        &ad,
        &[("csrf", &csrf_of(&html)), ("secret", &ids[0])],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored(&app, tenant, "test").await.unwrap().1, 1);
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor_id FROM audit_events WHERE action = 'stripe_settings.update' ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let admin = accounts::user_by_email(&app.pool, "admin@acme.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(actor, admin.id.to_string());
}

/// The header's switch picks the mode: each mode has its own key and secrets, a live page
/// is marked as live, and a live key is required in live mode.
#[tokio::test]
async fn test_and_live_connections_are_separate() {
    let (app, fake) = app_with_fake().await;
    let (tenant, o, csrf) = connected_owner(
        &app,
        "Acme",
        "owner@acme.test",
        "rk_test_tttt1111",
        "whsec_testonly",
    )
    .await;
    let html = page_of(&app, &o).await;
    assert!(!html.contains("data-live-warning") && html.contains("Save test key"));

    post(
        &app,
        "/app/mode",
        &o,
        &[("mode", "live"), ("csrf", &csrf), ("back", PAGE)],
        None,
    )
    .await;
    let html = page_of(&app, &o).await;
    assert!(html.contains("(live mode)") && html.contains("data-live-warning"));
    assert!(html.contains("data-not-connected") && !html.contains("…1111"));
    assert!(
        html.contains("class=\"primary live\">Save live key"),
        "{html}"
    );
    // A test key in live mode: the API's error on the key field.
    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("csrf", &csrf),
            ("api_key", "rk_test_tttt2222"),
            ("webhook_secret", "whsec_liveonly"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"api_key-error\"") && html.contains("live key"));
    assert_eq!(stored(&app, tenant, "live").await, None);
    let res = post(
        &app,
        "/app/settings/stripe/key",
        &o,
        &[
            ("csrf", &csrf),
            ("api_key", "rk_live_llll3333"),
            ("webhook_secret", "whsec_liveonly"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = page_of(&app, &o).await;
    assert!(html.contains("…3333") && !html.contains("…1111"));
    // The live test uses the live key.
    post(
        &app,
        "/app/settings/stripe/test",
        &o,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    let calls = fake.requests_to("GET /v1/account");
    assert_eq!(
        calls.last().unwrap().api_key.as_deref(),
        Some("rk_live_llll3333")
    );
    // Each mode's events are checked against that mode's secrets only.
    assert_eq!(deliver(&app, tenant, "whsec_liveonly", true).await, 200);
    assert_eq!(deliver(&app, tenant, "whsec_testonly", true).await, 400);
    assert_eq!(deliver(&app, tenant, "whsec_testonly", false).await, 200);
    assert_eq!(deliver(&app, tenant, "whsec_liveonly", false).await, 400);
    assert_eq!(stored(&app, tenant, "test").await.unwrap().0, "1111");
    assert_eq!(stored(&app, tenant, "live").await.unwrap().0, "3333");

    // Back in test mode: the test connection, untouched.
    post(
        &app,
        "/app/mode",
        &o,
        &[("mode", "test"), ("csrf", &csrf), ("back", PAGE)],
        None,
    )
    .await;
    let html = page_of(&app, &o).await;
    assert!(html.contains("…1111") && !html.contains("…3333"));
    let (live_audits,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_events WHERE action = 'stripe_settings.update' AND mode = 'live'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(live_audits, 1);
}

/// An edit of the secret list is a compare-and-set on what it read: a change stored in
/// between (another admin, another tab) is never overwritten. Deterministically through the
/// API's function (read, a change lands, the stale write is refused with 409 and nothing
/// changes), then through the page under real concurrency: of simultaneous adds, every one
/// answered "added" is stored, the others are told to retry, none is lost silently.
#[tokio::test]
async fn concurrent_secret_edits_never_lose_one() {
    use api::services::settings::{put_stripe_if, stripe_credentials, StripeSettingsBody};
    let (app, _fake) = app_with_fake().await;
    let (tenant, o, csrf) = connected_owner(
        &app,
        "Race",
        "owner@race.test",
        "rk_test_race1234",
        "whsec_first",
    )
    .await;

    let st = api::AppState::new(app.env.config()).unwrap();
    let auth = (tenant, Mode::Test);
    let read = stripe_credentials(&st, auth).await.unwrap().unwrap();
    assert_eq!(read.webhook_secrets, ["whsec_first"]);
    // A teammate adds a secret after that read...
    let res = add_secret(&app, &o, &csrf, "whsec_teammate").await;
    assert_eq!(location(&res), "/app/settings/stripe?done=added");
    // ... so a write of "what was read plus mine" is refused and changes nothing.
    let stale = |secrets: Vec<&str>| StripeSettingsBody {
        mode: Mode::Test,
        api_key: read.api_key.clone(),
        webhook_secrets: secrets.into_iter().map(String::from).collect(),
    };
    let before = stored(&app, tenant, "test").await.unwrap();
    let err = put_stripe_if(
        &st,
        auth,
        shared::audit::Actor::system(),
        stale(vec!["whsec_first", "whsec_mine"]),
        Some(Some(&read.revision)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status, StatusCode::CONFLICT);
    assert_eq!(err.body.code, "stripe_settings_changed");
    // "No settings yet" is stale too once a row exists.
    let err = put_stripe_if(
        &st,
        auth,
        shared::audit::Actor::system(),
        stale(vec!["whsec_mine"]),
        Some(None),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status, StatusCode::CONFLICT);
    assert_eq!(stored(&app, tenant, "test").await.unwrap(), before);
    assert_eq!(deliver(&app, tenant, "whsec_teammate", false).await, 200);
    assert_eq!(deliver(&app, tenant, "whsec_mine", false).await, 400);
    // From a fresh read, the same edit goes through.
    let fresh = stripe_credentials(&st, auth).await.unwrap().unwrap();
    let _ = put_stripe_if(
        &st,
        auth,
        shared::audit::Actor::system(),
        stale(vec!["whsec_first", "whsec_teammate", "whsec_mine"]),
        Some(Some(&fresh.revision)),
    )
    .await
    .unwrap();
    assert_eq!(stored(&app, tenant, "test").await.unwrap().1, 3);

    // Two simultaneous adds through the page, five times over (up to the 5-secret cap after
    // the removals below keep room): each answer is "added" (303) or "changed meanwhile"
    // (409), and exactly the added ones are stored.
    for round in 0..5 {
        let html = page_of(&app, &o).await;
        for id in secret_ids(&html).into_iter().skip(1) {
            let res = post(
                &app,
                "/app/settings/stripe/secrets/remove",
                &o,
                &[("csrf", &csrf), ("secret", &id)],
                None,
            )
            .await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
        }
        let (a, b) = (format!("whsec_a{round}"), format!("whsec_b{round}"));
        let (ra, rb) = tokio::join!(
            add_secret(&app, &o, &csrf, &a),
            add_secret(&app, &o, &csrf, &b)
        );
        let (sa, sb) = (ra.status(), rb.status());
        let stored_ok = |s: StatusCode| {
            assert!(
                s == StatusCode::SEE_OTHER || s == StatusCode::CONFLICT,
                "round {round}: {s}"
            );
            s == StatusCode::SEE_OTHER
        };
        let (ok_a, ok_b) = (stored_ok(sa), stored_ok(sb));
        assert!(ok_a || ok_b, "round {round}: one of two adds always lands");
        let now = stripe_credentials(&st, auth).await.unwrap().unwrap();
        assert_eq!(now.webhook_secrets.contains(&a), ok_a, "round {round}: {a}");
        assert_eq!(now.webhook_secrets.contains(&b), ok_b, "round {round}: {b}");
        assert_eq!(
            now.webhook_secrets.len(),
            1 + usize::from(ok_a) + usize::from(ok_b),
            "round {round}"
        );
    }
}
