//! The dashboard (issue 14) on the real api, PostgreSQL and Redis. This file: accounts and
//! access (sign-in, server-side sessions, lockout and throttling, CSRF, the mode switch,
//! one-time links and the CLI) and the shared helpers; the modules below test one page
//! family each.

mod editor;
mod overview;
mod stripe_page;
mod team_admin;

use std::{io::Write, time::Duration};

use harness::{bin_path, count, TestApp};
use reqwest::{header, redirect::Policy, StatusCode};
use shared::{
    accounts::{self, Role},
    audit::Actor,
};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn user(app: &TestApp, tenant: Uuid, email: &str, role: Role) -> accounts::User {
    let mut conn = app.pool.acquire().await.unwrap();
    accounts::create_user(
        &mut conn,
        tenant,
        email,
        role,
        Some(PASSWORD),
        &Actor::cli(),
    )
    .await
    .unwrap()
}

async fn login_as(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    client()
        .post(app.url("/app/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// The session cookie's value from a sign-in response.
fn cookie_of(res: &reqwest::Response) -> String {
    let set = res
        .headers()
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie")
        .to_str()
        .unwrap();
    let (kv, _) = set.split_once(';').unwrap();
    let (k, v) = kv.split_once('=').unwrap();
    assert_eq!(k, "rtos_session");
    v.to_string()
}

async fn signed_in(app: &TestApp, email: &str) -> String {
    let res = login_as(app, email, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    cookie_of(&res)
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header(header::COOKIE, format!("rtos_session={cookie}"))
        .send()
        .await
        .unwrap()
}

async fn post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .post(app.url(path))
        .header(header::COOKIE, format!("rtos_session={cookie}"))
        .form(form);
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    req.send().await.unwrap()
}

/// Moves one of a session's expiry columns to `now() <offset>` (e.g. `- interval '1 second'`).
async fn set_session_time(app: &TestApp, cookie: &str, column: &str, offset: &str) {
    assert!(["idle_expires_at", "expires_at"].contains(&column));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE dashboard_sessions SET {column} = now() {offset} WHERE token_hash = $1"
    )))
    .bind(shared::crypto::hash_key(cookie))
    .execute(&app.pool)
    .await
    .unwrap();
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// The CSRF token rendered into a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn sign_in_opens_a_server_side_session_and_sign_out_ends_it() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "Ana@Acme.test", Role::Owner).await;

    // Signed out: /app goes to the sign-in form.
    let res = client().get(app.url("/app")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/login");
    let form = client().get(app.url("/app/login")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(html.contains("name=\"email\"") && html.contains("name=\"password\""));
    assert!(html.contains("<label for=\"email\">"), "labelled fields");

    // A wrong password: refused, no session, no cookie.
    let res = login_as(&app, "ana@acme.test", "wrong password!").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("email or password is wrong"));
    // An unknown email says the same.
    let res = login_as(&app, "nobody@acme.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_sessions").await,
        0
    );

    // The right one (the email's case and spaces do not matter).
    let res = login_as(&app, "  ANA@acme.test ", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app");
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/app"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "not https: {set}");
    let cookie = cookie_of(&res);
    // Only the token's hash is stored.
    let (stored,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM dashboard_sessions WHERE token_hash = $1")
            .bind(shared::crypto::hash_key(&cookie))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1);

    let page = get(&app, "/app", &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("ana@acme.test (owner)"));
    assert!(html.contains("Acme"));
    assert!(
        html.contains("Test mode"),
        "a new session starts in test mode"
    );

    // The stylesheet is content-hashed and cached for a year.
    let css = html
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        css.starts_with("/app/assets/dashboard.") && css.ends_with(".css"),
        "{css}"
    );
    let res = client().get(app.url(css)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let res = client()
        .get(app.url("/app/assets/dashboard.000000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Sign out without the CSRF token: refused, still signed in.
    let res = post(&app, "/app/logout", &cookie, &[], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&app, "/app", &cookie).await.status(), StatusCode::OK);
    // With it: the session is gone and the cookie cleared.
    let res = post(
        &app,
        "/app/logout",
        &cookie,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = get(&app, "/app", &cookie).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/login");
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_sessions").await,
        0
    );
    // Sign-ins are audited (never the password).
    let (n, leaked): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE action = 'user.sign_in'),
                count(*) FILTER (WHERE coalesce(after::text, '') LIKE '%horse%')
           FROM audit_events WHERE tenant_id = $1",
    )
    .bind(t.tenant.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((n, leaked), (1, 0));
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    let u = user(&app, t.tenant.id, "ana@acme.test", Role::Admin).await;
    for i in 1..accounts::MAX_FAILED_LOGINS {
        let res = login_as(&app, "ana@acme.test", "not the password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(!res.text().await.unwrap().contains("locked"), "attempt {i}");
    }
    let res = login_as(&app, "ana@acme.test", "not the password").await;
    assert!(res.text().await.unwrap().contains("account is locked"));
    // Locked: even the right password is refused, and no session is opened.
    let res = login_as(&app, "ana@acme.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains("account is locked"));
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_sessions").await,
        0
    );
    // When the lock has run out, the right password works and the count starts again.
    sqlx::query(
        "UPDATE dashboard_users SET locked_until = now() - interval '1 second' WHERE id = $1",
    )
    .bind(u.id)
    .execute(&app.pool)
    .await
    .unwrap();
    signed_in(&app, "ana@acme.test").await;
    let (failed,): (i32,) =
        sqlx::query_as("SELECT failed_logins FROM dashboard_users WHERE id = $1")
            .bind(u.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(failed, 0);
}

#[tokio::test]
async fn failed_sign_ins_from_one_address_are_throttled() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Owner).await;
    // Guessing across many accounts (no lockout of any one) is stopped per address.
    for i in 0..api::dashboard::LoginThrottle::MAX {
        let res = login_as(&app, &format!("guess{i}@acme.test"), "not the password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let res = login_as(&app, "ana@acme.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 300, "{wait}");
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_sessions").await,
        0
    );
}

#[tokio::test]
async fn cross_site_and_token_less_posts_change_nothing() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Owner).await;

    // A sign-in posted from another site (login CSRF) is refused before any check.
    let res = client()
        .post(app.url("/app/login"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("email", "ana@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = client()
        .post(app.url("/app/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("email", "ana@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_sessions").await,
        0
    );

    let cookie = signed_in(&app, "ana@acme.test").await;
    let csrf = csrf_of(&get(&app, "/app", &cookie).await.text().await.unwrap());
    let mode = || async {
        let (m,): (String,) = sqlx::query_as("SELECT mode FROM dashboard_sessions")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        m
    };
    // No token, a wrong token, the right token from another site: 403, still test mode.
    for (form, origin) in [
        (vec![("mode", "live")], None),
        (vec![("mode", "live"), ("csrf", "x")], None),
        (
            vec![("mode", "live"), ("csrf", csrf.as_str())],
            Some("https://evil.example"),
        ),
    ] {
        let res = post(&app, "/app/mode", &cookie, &form, origin).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{form:?} {origin:?}");
        assert_eq!(mode().await, "test");
    }
    // Same origin with the token: live, and every page says so.
    let own = app.base.clone();
    let res = post(
        &app,
        "/app/mode",
        &cookie,
        &[("mode", "live"), ("csrf", &csrf), ("back", "/app?range=7d")],
        Some(&own),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app?range=7d");
    assert_eq!(mode().await, "live");
    assert!(get(&app, "/app", &cookie)
        .await
        .text()
        .await
        .unwrap()
        .contains("Live mode"));
    // The redirect never leaves the dashboard.
    for back in ["https://evil.example/", "//evil.example/app", "/v1/tenant"] {
        let res = post(
            &app,
            "/app/mode",
            &cookie,
            &[("mode", "test"), ("csrf", &csrf), ("back", back)],
            None,
        )
        .await;
        assert_eq!(location(&res), "/app", "{back}");
    }
    let res = post(
        &app,
        "/app/mode",
        &cookie,
        &[("mode", "prod"), ("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sessions_expire_when_idle_or_old_and_sign_out_everywhere_ends_all() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Analyst).await;

    let idle = signed_in(&app, "ana@acme.test").await;
    set_session_time(&app, &idle, "idle_expires_at", "- interval '1 second'").await;
    assert_eq!(
        get(&app, "/app", &idle).await.status(),
        StatusCode::SEE_OTHER
    );
    let old = signed_in(&app, "ana@acme.test").await;
    set_session_time(&app, &old, "expires_at", "- interval '1 second'").await;
    assert_eq!(
        get(&app, "/app", &old).await.status(),
        StatusCode::SEE_OTHER
    );
    // Use renews the idle expiry, never past the absolute one.
    let live = signed_in(&app, "ana@acme.test").await;
    set_session_time(&app, &live, "idle_expires_at", "+ interval '1 minute'").await;
    assert_eq!(get(&app, "/app", &live).await.status(), StatusCode::OK);
    let (renewed,): (bool,) = sqlx::query_as(
        "SELECT idle_expires_at > now() + interval '11 hours' AND idle_expires_at <= expires_at FROM dashboard_sessions WHERE token_hash = $1",
    )
    .bind(shared::crypto::hash_key(&live))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(renewed);

    // Sign out everywhere from one session ends the other one too.
    let other = signed_in(&app, "ana@acme.test").await;
    let csrf = csrf_of(&get(&app, "/app", &live).await.text().await.unwrap());
    let res = post(
        &app,
        "/app/logout-everywhere",
        &live,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&app, "/app", &live).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&app, "/app", &other).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM audit_events WHERE action = 'user.sign_out_everywhere'"
        )
        .await,
        1
    );
}

/// `retentionos-api user create`: without `--password-stdin` a one-time set-password link
/// (used once, refused after), with it a password from standard input.
#[tokio::test]
async fn the_cli_creates_users_with_a_one_time_link_or_a_password() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    let tid = t.tenant.id.to_string();
    let (ok, out) = app.env.api_cli(&[
        "user",
        "create",
        "--tenant",
        &tid,
        "--email",
        "Owner@Acme.test",
        "--role",
        "owner",
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["email"], "owner@acme.test");
    assert_eq!(v["role"], "owner");
    let link = v["set_password_link"].as_str().unwrap();
    let token = link.split("token=").nth(1).unwrap().to_string();
    assert!(link.contains("/app/set-password?token="), "{link}");
    // No password yet: sign-in is refused.
    assert_eq!(
        login_as(&app, "owner@acme.test", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let page = client()
        .get(app.url(&format!("/app/set-password?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("owner@acme.test"));
    // A short password: the error is on the field, the link still works.
    let res = client()
        .post(app.url("/app/set-password"))
        .form(&[("token", token.as_str()), ("password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("id=\"password-error\""));
    let res = client()
        .post(app.url("/app/set-password"))
        .form(&[("token", token.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    signed_in(&app, "owner@acme.test").await;
    // Used once: the link is dead.
    let res = client()
        .post(app.url("/app/set-password"))
        .form(&[
            ("token", token.as_str()),
            ("password", "another long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let page = client()
        .get(app.url(&format!("/app/set-password?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    // --password-stdin.
    let mut child = app
        .env
        .command(&bin_path("rtos-test-api"))
        .args([
            "user",
            "create",
            "--tenant",
            &tid,
            "--email",
            "analyst@acme.test",
            "--role",
            "analyst",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["set_password_link"].is_null());
    let cookie = signed_in(&app, "analyst@acme.test").await;
    assert!(get(&app, "/app", &cookie)
        .await
        .text()
        .await
        .unwrap()
        .contains("(analyst)"));

    // The same email again, an unknown tenant, a bad role: refused.
    let (ok, _) = app.env.api_cli(&[
        "user",
        "create",
        "--tenant",
        &tid,
        "--email",
        "owner@acme.test",
        "--role",
        "admin",
    ]);
    assert!(!ok);
    let (ok, _) = app.env.api_cli(&[
        "user",
        "create",
        "--tenant",
        &Uuid::now_v7().to_string(),
        "--email",
        "x@acme.test",
        "--role",
        "admin",
    ]);
    assert!(!ok);
    let (ok, _) = app.env.api_cli(&[
        "user",
        "create",
        "--tenant",
        &tid,
        "--email",
        "y@acme.test",
        "--role",
        "root",
    ]);
    assert!(!ok);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_users").await,
        2
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM audit_events WHERE action = 'user.create'"
        )
        .await,
        2
    );
}

/// The overview reads the selected mode's rollups through the analytics API's own code.
#[tokio::test]
async fn the_overview_shows_the_selected_modes_figures() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Analyst).await;
    for (mode, outcome, offer, n, mrr, validated) in [
        ("test", "saved", "discount", 3i64, 4500i64, 2i64),
        ("test", "canceled", "", 1, 0, 0),
        ("live", "saved", "pause", 1, 999, 0),
        ("live", "canceled", "", 3, 0, 0),
    ] {
        sqlx::query(
            "INSERT INTO rollup_sessions_hourly (tenant_id, mode, hour, variant, outcome, saved_offer_type, sessions, saved_mrr_cents, validated)
             VALUES ($1, $2, date_trunc('hour', now()) - interval '2 hours', 'control', $3, $4, $5, $6, $7)",
        )
        .bind(t.tenant.id)
        .bind(mode)
        .bind(outcome)
        .bind(offer)
        .bind(n)
        .bind(mrr)
        .bind(validated)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let cookie = signed_in(&app, "ana@acme.test").await;
    let html = get(&app, "/app?range=7d", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-metric=\"save_rate\">75.0 %"), "{html}");
    assert!(html.contains("data-metric=\"saved\">3<"));
    assert!(html.contains("$45.00"));
    assert!(html.contains("<td>discount</td><td>3</td>"));
    let csrf = csrf_of(&html);
    post(
        &app,
        "/app/mode",
        &cookie,
        &[("mode", "live"), ("csrf", &csrf)],
        None,
    )
    .await;
    let html = get(&app, "/app?range=30d", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-metric=\"save_rate\">25.0 %"), "{html}");
    assert!(html.contains("$9.99"));
    assert!(!html.contains("discount"));
    // A custom range the API refuses is shown as its error, not a 500.
    let res = get(
        &app,
        "/app?range=custom&from=2026-02-10&to=2026-01-01",
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("from must be before to"));
}

/// Sessions and customers pages on a real cancel flow: a customer answers the survey and
/// takes a pause, the worker applies it to (the fake) Stripe, and the dashboard lists and
/// shows it with its timeline and job; the other mode and another tenant see nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_customer_pages_follow_a_real_save() {
    use harness::{stack::WidgetStack, wait_until};
    use serde_json::json;

    let s = WidgetStack::new().await;
    s.publish(json!({
        "name": "F", "is_default": true, "steps": [
            {"id": "s", "type": "survey", "title": "Why?", "reasons": [{"code": "price", "label": "Price"}]},
            {"id": "o", "type": "offer", "offers": [
                {"id": "pause", "type": "pause", "title": "Pause", "pause": {"months": 1}}]},
            {"id": "c", "type": "confirm", "title": "Bye"}
        ]
    }))
    .await;
    let cus = s.fake.create_customer("page@d.test");
    let sub = s
        .fake
        .create_subscription(&cus, "price_pro", 4900, "month", "active")
        .id;
    let w = s.app.start_worker().await;
    let (sid, _) = s.start(&cus, Some(&sub)).await;
    let (st, b) = s
        .event(
            &cus,
            &sid,
            json!({"type": "reason_selected", "reason_code": "price"}),
        )
        .await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(s.accept(&cus, &sid, "pause").await.0, 202);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            s.offer_state(&sid).await.0.as_deref() == Some("applied")
        })
        .await
    );
    let (other_sid, _) = s.start("cus_other", None).await;
    let (st, _) = s
        .event("cus_other", &other_sid, json!({"type": "cancel_confirmed"}))
        .await;
    assert_eq!(st, 202);

    let app = &s.app;
    // The API answers what the pages show.
    let api_get = |path: String, key: String| async move {
        let r = app
            .client
            .get(app.url(&path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    let sk = s.sk().to_string();
    let live =
        s.t.key(
            shared::tenants::KeyKind::Secret,
            shared::tenants::Mode::Live,
        )
        .to_string();
    let (st, tl) = api_get(format!("/v1/sessions/{sid}/timeline"), sk.clone()).await;
    assert_eq!(st, StatusCode::OK, "{tl}");
    let types: Vec<&str> = tl["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["reason_selected", "offer_accepted"]);
    assert_eq!(tl["jobs"][0]["kind"], "apply_offer");
    assert_eq!(tl["jobs"][0]["status"], "done");
    let (st, _) = api_get(format!("/v1/sessions/{sid}/timeline"), live.clone()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, c) = api_get(format!("/v1/customers/{cus}"), sk.clone()).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["applied_offers"].as_array().unwrap().len(), 1);
    assert_eq!(c["sessions"][0]["id"], sid.as_str());
    let (st, _) = api_get(format!("/v1/customers/{cus}"), live).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, l) = api_get("/v1/sessions?saved_offer_type=pause".into(), sk.clone()).await;
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    let (_, l) = api_get(
        format!("/v1/sessions?customer_id={cus}&reason_code=price"),
        sk,
    )
    .await;
    assert_eq!(l["data"][0]["id"], sid.as_str());

    user(app, s.t.tenant.id, "ana@acme.test", Role::Analyst).await;
    let cookie = signed_in(app, "ana@acme.test").await;

    // The list, filtered by outcome, offer type, reason and customer.
    let html = get(app, "/app/sessions", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("/app/sessions/{sid}")), "{html}");
    assert!(html.contains(&format!("/app/sessions/{other_sid}")));
    for (filter, shows_saved, shows_other) in [
        ("outcome=saved", true, false),
        ("outcome=canceled", false, true),
        ("offer_type=pause", true, false),
        ("reason=price", true, false),
        (&format!("customer={cus}") as &str, true, false),
    ] {
        let html = get(app, &format!("/app/sessions?{filter}"), &cookie)
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(html.contains(&sid), shows_saved, "{filter}");
        assert_eq!(html.contains(&other_sid), shows_other, "{filter}");
    }
    let res = get(app, "/app/sessions?from=yesterday", &cookie).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("from must be a date"));

    // The session page: its facts, every event and the Stripe job that applied it.
    let res = get(app, &format!("/app/sessions/{sid}"), &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-field=\"Outcome\">saved"), "{html}");
    assert!(html.contains("data-field=\"Offer state\">applied"));
    assert!(html.contains("data-field=\"Reason\">price"));
    assert!(html.contains("<td>reason_selected</td>") && html.contains("<td>offer_accepted</td>"));
    assert!(html.contains("<td>apply_offer</td>"));
    assert!(html.contains("<td data-job-state>done</td>"), "{html}");
    assert!(html.contains(&format!("/app/customers/{cus}")));

    // The customer page: the session and the applied offer.
    let html = get(app, &format!("/app/customers/{cus}"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("/app/sessions/{sid}")), "{html}");
    assert!(html.contains("data-field=\"applied_offers\">1<"));
    let res = get(app, "/app/customers/nobody", &cookie).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Live mode has none of it; another tenant's user neither.
    let csrf = csrf_of(&html);
    post(
        app,
        "/app/mode",
        &cookie,
        &[("mode", "live"), ("csrf", &csrf)],
        None,
    )
    .await;
    let html = get(app, "/app/sessions", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&sid) && html.contains("No sessions match"));
    assert_eq!(
        get(app, &format!("/app/sessions/{sid}"), &cookie)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let other = app.create_tenant("Other").await;
    user(app, other.tenant.id, "eve@other.test", Role::Owner).await;
    let eve = signed_in(app, "eve@other.test").await;
    assert_eq!(
        get(app, &format!("/app/sessions/{sid}"), &eve)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(app, &format!("/app/customers/{cus}"), &eve)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    w.shutdown().await;
}

/// Settings through the dashboard: an owner saves (audited as the dashboard user, shown in
/// the audit page), a bad value is shown on its field and changes nothing, an analyst sees
/// a read-only form and the server refuses a forged save.
#[tokio::test]
async fn settings_are_changed_by_owners_only_with_errors_on_their_field() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    let owner = user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, t.tenant.id, "analyst@acme.test", Role::Analyst).await;
    let cookie = signed_in(&app, "owner@acme.test").await;
    let html = get(&app, "/app/settings", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"timezone\"") && html.contains("Save test settings"));
    let csrf = csrf_of(&html);
    let form = |tz: &'static str, origins: &'static str, csrf: String| {
        vec![
            ("csrf", csrf),
            ("cancel_mode", "cancel_at_period_end".to_string()),
            ("discount_cooldown_days", "30".into()),
            ("pause_cooldown_days", "60".into()),
            ("trial_extension_cooldown_days", "90".into()),
            ("plan_change_cooldown_days", "14".into()),
            ("timezone", tz.into()),
            ("allowed_origins", origins.into()),
            ("rate_limit_per_second", "0".into()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>, cookie: String| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, "/app/settings", &cookie, &pairs, None).await
        }
    };
    let res = send(
        form(
            "Europe/Paris",
            "https://app.acme.test\r\nhttps://www.acme.test",
            csrf.clone(),
        ),
        cookie.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/settings?saved=1");
    let s = shared::tenants::settings(&app.pool, t.tenant.id, shared::tenants::Mode::Test)
        .await
        .unwrap();
    assert_eq!(s.timezone, "Europe/Paris");
    assert_eq!(s.cancel_mode, "cancel_at_period_end");
    assert_eq!(
        s.allowed_origins,
        ["https://app.acme.test", "https://www.acme.test"]
    );
    assert_eq!(
        (s.discount_cooldown_days, s.plan_change_cooldown_days),
        (30, 14)
    );
    // Live mode's settings are untouched.
    let live = shared::tenants::settings(&app.pool, t.tenant.id, shared::tenants::Mode::Live)
        .await
        .unwrap();
    assert_eq!(live.timezone, "UTC");
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor_id FROM audit_events WHERE action = 'settings.update' AND actor_type = 'dashboard_user' AND mode = 'test'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(actor, owner.id.to_string());
    let audit = get(&app, "/app/audit", &cookie).await.text().await.unwrap();
    assert!(
        audit.contains("<td data-action>settings.update</td>"),
        "{audit}"
    );
    assert!(audit.contains("<td data-action>user.sign_in</td>"));

    // A bad time zone and a wildcard origin: each on its own field, nothing stored.
    for (tz, origins, field) in [
        ("Mars/Base", "", "timezone"),
        ("UTC", "*", "allowed_origins"),
    ] {
        let res = send(form(tz, origins, csrf.clone()), cookie.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "{field}: {html}"
        );
        assert!(
            html.contains(&format!("value=\"{tz}\"")) || field != "timezone",
            "the submitted value is kept"
        );
    }
    let again = shared::tenants::settings(&app.pool, t.tenant.id, shared::tenants::Mode::Test)
        .await
        .unwrap();
    assert_eq!(again, s);

    // An analyst: read-only form, and a forged save is refused.
    let analyst = signed_in(&app, "analyst@acme.test").await;
    let html = get(&app, "/app/settings", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<fieldset disabled>") && !html.contains("Save test settings"));
    let res = send(form("Asia/Tokyo", "", csrf_of(&html)), analyst).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let again = shared::tenants::settings(&app.pool, t.tenant.id, shared::tenants::Mode::Test)
        .await
        .unwrap();
    assert_eq!(again.timezone, "Europe/Paris");
}

/// The install page's token-signing examples, run with the real interpreters, make tokens
/// the API accepts for this tenant (Ruby and PHP when they are installed).
#[tokio::test]
async fn the_install_pages_signing_examples_make_valid_tokens() {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "ana@acme.test", Role::Admin).await;
    let cookie = signed_in(&app, "ana@acme.test").await;
    let html = get(&app, "/app/install", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&t.tenant.id.to_string()));
    assert!(html.contains("/widget.js"));
    let secret = t.signing_secret(shared::tenants::Mode::Test).to_string();
    let dir = std::env::temp_dir().join(format!("rtos-install-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ran = Vec::new();
    for (lang, bin, file) in [
        ("node", "node", "t.mjs"),
        ("python", "python3", "t.py"),
        ("ruby", "ruby", "t.rb"),
        ("php", "php", "t.php"),
    ] {
        let marker = format!("<code data-lang=\"{lang}\">");
        let code = html
            .split(&marker)
            .nth(1)
            .unwrap()
            .split("</code>")
            .next()
            .unwrap();
        let code = unescape(code);
        if std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(lang == "ruby" || lang == "php", "{bin} is needed");
            continue;
        }
        let path = dir.join(file);
        std::fs::write(&path, code).unwrap();
        let out = std::process::Command::new(bin)
            .arg(&path)
            .args(["cus_42", "sub_42"])
            .env("RETENTIONOS_SIGNING_SECRET", &secret)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let claims = shared::widget_token::verify(
            &token,
            t.tenant.id,
            std::slice::from_ref(&secret),
            chrono::Utc::now().timestamp(),
        )
        .unwrap_or_else(|e| panic!("{lang}: {e}: {token}"));
        assert_eq!(
            (claims.cus.as_str(), claims.sub.as_deref()),
            ("cus_42", Some("sub_42")),
            "{lang}"
        );
        ran.push(lang);
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(ran.contains(&"node") && ran.contains(&"python"), "{ran:?}");
}

/// HTML text back to the characters it encodes (named `lt gt quot amp`, numeric `&#N;`).
fn unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').expect("an entity ends with ;");
        let entity = &tail[1..end];
        let ch = match entity {
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "amp" => '&',
            e => {
                let n = e
                    .strip_prefix("#x")
                    .map(|h| u32::from_str_radix(h, 16))
                    .unwrap_or_else(|| e[1..].parse());
                char::from_u32(n.expect("numeric entity")).expect("a character")
            }
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `retentionos-api demo` (what `scripts/run` calls) gives the demo tenant a dashboard owner
/// with a fresh password each run: the printed one signs in, the previous one no longer
/// does, and its sessions end.
#[tokio::test]
async fn the_demo_command_prints_a_working_dashboard_sign_in() {
    let app = TestApp::spawn().await;
    let run = || {
        let (ok, out) = app.env.api_cli(&["demo"]);
        assert!(ok, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["dashboard"].clone()
    };
    let first = run();
    assert!(first["url"].as_str().unwrap().ends_with("/app"), "{first}");
    let email = first["email"].as_str().unwrap().to_string();
    let pw1 = first["password"].as_str().unwrap().to_string();
    let res = login_as(&app, &email, &pw1).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&res);
    assert!(get(&app, "/app", &cookie)
        .await
        .text()
        .await
        .unwrap()
        .contains("(owner)"));
    let second = run();
    let pw2 = second["password"].as_str().unwrap();
    assert_ne!(pw1, pw2);
    assert_eq!(
        login_as(&app, &email, &pw1).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&app, "/app", &cookie).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_as(&app, &email, pw2).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM dashboard_users").await,
        1
    );
}

/// The operator console: its own sign-in with the ops token, queue depths, and the
/// dead-letter workflow (show, retry one, purge one, retry all, purge all), each audited as
/// ops and refused without the CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_console_works_the_dead_letters() {
    use harness::wait_until;
    use jobs::{queues, Probe};

    let app = TestApp::spawn().await;
    let w = app.start_worker().await;
    let client_jobs = app.env.job_client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let probe = Probe {
            permanent_error: true,
            ..Default::default()
        };
        ids.push(
            client_jobs
                .enqueue_durable(&app.pool, None, &probe)
                .await
                .unwrap(),
        );
    }
    let q = app.env.queues();
    let dead = |n: u64| {
        let q = q.clone();
        async move {
            wait_until(Duration::from_secs(60), || async {
                q.stats(queues::OPS).await.unwrap().dead == n
            })
            .await
        }
    };
    assert!(dead(3).await);

    // Signed out, a tenant's session or a forged cookie: the ops sign-in.
    let res = client().get(app.url("/app/ops")).send().await.unwrap();
    assert_eq!(location(&res), "/app/ops/login");
    let forged = client()
        .get(app.url("/app/ops"))
        .header(header::COOKIE, "rtos_ops=99999999999.00")
        .send()
        .await
        .unwrap();
    assert_eq!(location(&forged), "/app/ops/login");
    let res = client()
        .post(app.url("/app/ops/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client()
        .post(app.url("/app/ops/login"))
        .form(&[("token", app.ops_token())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/app/ops")
    );
    let ops_cookie = set.split(';').next().unwrap().to_string();
    let ops_get = |path: String| {
        let c = ops_cookie.clone();
        let app = &app;
        async move {
            client()
                .get(app.url(&path))
                .header(header::COOKIE, c)
                .send()
                .await
                .unwrap()
        }
    };
    let ops_post = |path: String, csrf: Option<String>| {
        let c = ops_cookie.clone();
        let app = &app;
        async move {
            let form: Vec<(&str, String)> = csrf.map(|t| vec![("csrf", t)]).unwrap_or_default();
            client()
                .post(app.url(&path))
                .header(header::COOKIE, c)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let html = ops_get("/app/ops".into()).await.text().await.unwrap();
    assert!(html.contains("<tr data-queue=\"ops\">"), "{html}");
    assert!(html.contains("/app/ops/queues/ops/dead\">3</a>"), "{html}");
    let csrf = csrf_of(&html);
    let html = ops_get("/app/ops/queues/ops/dead".into())
        .await
        .text()
        .await
        .unwrap();
    for id in &ids {
        assert!(html.contains(&format!("data-task=\"{id}\"")));
    }
    assert!(html.contains("injected permanent error"));

    let audits = |action: &'static str| {
        let pool = app.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_type = 'ops'",
            )
            .bind(action)
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    // Without the token: nothing happens.
    let res = ops_post(format!("/app/ops/queues/ops/dead/{}/purge", ids[0]), None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(q.stats(queues::OPS).await.unwrap().dead, 3);
    // Purge one.
    let res = ops_post(
        format!("/app/ops/queues/ops/dead/{}/purge", ids[0]),
        Some(csrf.clone()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&res).contains("done=1+purged"),
        "{}",
        location(&res)
    );
    assert!(dead(2).await);
    assert_eq!(audits("dead_task.purge").await, 1);
    // Retry one: it runs again (and, failing permanently, is dead again).
    let res = ops_post(
        format!("/app/ops/queues/ops/dead/{}/retry", ids[1]),
        Some(csrf.clone()),
    )
    .await;
    assert!(location(&res).contains("done=1+retried"));
    assert_eq!(audits("dead_task.retry").await, 1);
    let runs = |id: Uuid| {
        let pool = app.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM probe_runs WHERE job_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            n
        }
    };
    assert!(
        wait_until(Duration::from_secs(60), || async {
            runs(ids[1]).await == 2
        })
        .await
    );
    assert!(dead(2).await);
    // Retry all, then purge all.
    let res = ops_post(
        "/app/ops/queues/ops/dead/retry-all".into(),
        Some(csrf.clone()),
    )
    .await;
    assert!(
        location(&res).contains("done=2+retried"),
        "{}",
        location(&res)
    );
    assert!(
        wait_until(Duration::from_secs(60), || async {
            runs(ids[2]).await == 2
        })
        .await
    );
    assert!(dead(2).await);
    let res = ops_post(
        "/app/ops/queues/ops/dead/purge-all".into(),
        Some(csrf.clone()),
    )
    .await;
    assert!(location(&res).contains("done=2+purged"));
    assert!(dead(0).await);
    assert_eq!(audits("dead_task.retry_all").await, 1);
    assert_eq!(audits("dead_task.purge").await, 2);
    // Sign out ends the console session for this browser.
    let res = ops_post("/app/ops/logout".into(), Some(csrf)).await;
    assert!(res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    w.shutdown().await;
}

/// API keys through the dashboard: a rotation shows the new secret once and keeps the old
/// key working for its grace period, revoke ends a key at once; analysts cannot do either.
#[tokio::test]
async fn keys_are_rotated_with_grace_and_revoked_and_secrets_shown_once() {
    use shared::tenants::{KeyKind, Mode};
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, t.tenant.id, "analyst@acme.test", Role::Analyst).await;
    let old = t.key(KeyKind::Secret, Mode::Test).to_string();
    let status_with = |key: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/v1/tenant"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let cookie = signed_in(&app, "owner@acme.test").await;
    let html = get(&app, "/app/keys", &cookie).await.text().await.unwrap();
    let csrf = csrf_of(&html);
    assert!(!html.contains(&old), "a stored key is never shown");
    let res = post(
        &app,
        "/app/keys/rotate",
        &cookie,
        &[
            ("csrf", &csrf),
            ("kind", "secret"),
            ("grace_seconds", "3600"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let html = res.text().await.unwrap();
    let new = html
        .split("<code data-new-key>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_string();
    assert!(new.starts_with("sk_test_"), "{new}");
    assert_eq!(status_with(new.clone()).await, StatusCode::OK);
    assert_eq!(
        status_with(old.clone()).await,
        StatusCode::OK,
        "grace period"
    );
    assert!(html.contains("retiring"));
    // Shown once: the next view has no plaintext.
    let again = get(&app, "/app/keys", &cookie).await.text().await.unwrap();
    assert!(!again.contains(&new) && !again.contains("data-new-key"));
    // Revoke the old one now.
    let (old_id,): (Uuid,) = sqlx::query_as(
        "SELECT id FROM api_keys WHERE tenant_id = $1 AND kind = 'secret' AND mode = 'test' AND expires_at IS NOT NULL",
    )
    .bind(t.tenant.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let res = post(
        &app,
        &format!("/app/keys/{old_id}/revoke"),
        &cookie,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_with(old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(new.clone()).await, StatusCode::OK);
    // A live key is not this mode's: 404, nothing revoked.
    let live_id = t.keys.iter().find(|k| k.mode == Mode::Live).unwrap().id;
    let res = post(
        &app,
        &format!("/app/keys/{live_id}/revoke"),
        &cookie,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM audit_events WHERE actor_type = 'dashboard_user' AND action IN ('api_key.rotate', 'api_key.revoke')").await,
        2
    );
    // An analyst: no form, and a forged rotation is refused.
    let analyst = signed_in(&app, "analyst@acme.test").await;
    let html = get(&app, "/app/keys", &analyst).await.text().await.unwrap();
    assert!(!html.contains("/app/keys/rotate"));
    let res = post(
        &app,
        "/app/keys/rotate",
        &analyst,
        &[
            ("csrf", &csrf_of(&html)),
            ("kind", "secret"),
            ("grace_seconds", "0"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(status_with(new).await, StatusCode::OK);
}

/// The flows page lists the mode's flows with who last edited them; an owner publishes (the
/// widget then serves the new version), an analyst sees no button and a forged publish is
/// refused.
#[tokio::test]
async fn owners_publish_flows_and_analysts_cannot() {
    use shared::tenants::{KeyKind, Mode};
    let app = TestApp::spawn().await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, t.tenant.id, "analyst@acme.test", Role::Analyst).await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    let res = app
        .client
        .post(app.url("/v1/flows"))
        .bearer_auth(&sk)
        .json(&serde_json::json!({
            "name": "Spring flow", "is_default": true, "steps": [
                {"id": "o", "type": "offer", "offers": [
                    {"id": "pause", "type": "pause", "title": "Pause", "pause": {"months": 1}}]},
                {"id": "c", "type": "confirm", "title": "Bye"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let flow: serde_json::Value = res.json().await.unwrap();
    let id = flow["id"].as_str().unwrap().to_string();

    let analyst = signed_in(&app, "analyst@acme.test").await;
    let html = get(&app, "/app/flows", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Spring flow") && html.contains("<td data-status>draft only</td>"),
        "{html}"
    );
    assert!(html.contains("by an API key"));
    assert!(
        !html.contains("/publish\""),
        "no publish button for analysts"
    );
    let res = post(
        &app,
        &format!("/app/flows/{id}/publish"),
        &analyst,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let published = |app: &TestApp| {
        let pool = app.pool.clone();
        let id = id.clone();
        async move {
            let (v,): (Option<i32>,) =
                sqlx::query_as("SELECT published_version FROM flows WHERE id = $1::uuid")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            v
        }
    };
    assert_eq!(published(&app).await, None);

    let owner = signed_in(&app, "owner@acme.test").await;
    let html = get(&app, "/app/flows", &owner).await.text().await.unwrap();
    let res = post(&app, &format!("/app/flows/{id}/publish"), &owner, &[], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let res = post(
        &app,
        &format!("/app/flows/{id}/publish"),
        &owner,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/flows?published=1");
    assert_eq!(published(&app).await, Some(1));
    let html = get(&app, "/app/flows?published=1", &owner)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Published version 1.") && html.contains("<td data-status>published v1</td>")
    );
    assert!(html.contains("by owner@acme.test"), "{html}");
    // Another mode's page has no such flow, and publishing it from there is a 404.
    post(
        &app,
        "/app/mode",
        &owner,
        &[("mode", "live"), ("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    let res = post(
        &app,
        &format!("/app/flows/{id}/publish"),
        &owner,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(published(&app).await, Some(1));
}

/// Invitations and password resets by mail through a real SMTP server: the invited teammate
/// follows the mail's link, sets a password and signs in with the invited role; a reset
/// link replaces the password; an unknown email gets the same answer and no mail; an admin
/// cannot invite an owner.
#[tokio::test]
async fn invitations_and_resets_arrive_by_mail_and_their_links_work() {
    let smtp = harness::smtp::ThrowawaySmtp::start();
    let mut env = harness::Env::new().await;
    env.set("SMTP_URL", smtp.url());
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Acme").await;
    user(&app, t.tenant.id, "owner@acme.test", Role::Owner).await;
    user(&app, t.tenant.id, "admin@acme.test", Role::Admin).await;
    let link_of = |text: &str| {
        let url = text
            .lines()
            .find(|l| l.contains("/app/set-password?token="))
            .expect("a link line")
            .trim()
            .to_string();
        url.split_once("/app/")
            .map(|(_, p)| format!("/app/{p}"))
            .unwrap()
    };

    let owner = signed_in(&app, "owner@acme.test").await;
    let html = get(&app, "/app/team", &owner).await.text().await.unwrap();
    assert!(html.contains("admin@acme.test") && html.contains("<option value=\"owner\">"));
    let res = post(
        &app,
        "/app/team/invite",
        &owner,
        &[
            ("csrf", &csrf_of(&html)),
            ("email", "Mia@Acme.test"),
            ("role", "analyst"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Invitation sent to mia@acme.test"));
    let mails = smtp.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(mails[0].rcpt_tos, ["mia@acme.test"]);
    let text = mails[0].text.clone().unwrap();
    assert!(
        text.contains("owner@acme.test invited you") && text.contains("as analyst"),
        "{text}"
    );
    let link = link_of(&text);
    let res = client()
        .post(app.url("/app/set-password"))
        .form(&[
            ("token", link.split("token=").nth(1).unwrap()),
            ("password", "mias long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = login_as(&app, "mia@acme.test", "mias long password").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mia = cookie_of(&res);
    let html = get(&app, "/app/team", &mia).await.text().await.unwrap();
    assert!(
        html.contains("(analyst)") && !html.contains("/app/team/invite"),
        "analysts do not invite"
    );
    let res = post(
        &app,
        "/app/team/invite",
        &mia,
        &[
            ("csrf", &csrf_of(&html)),
            ("email", "x@acme.test"),
            ("role", "analyst"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // An admin cannot make an owner; the same email twice is an error on the field.
    let admin = signed_in(&app, "admin@acme.test").await;
    let html = get(&app, "/app/team", &admin).await.text().await.unwrap();
    assert!(!html.contains("<option value=\"owner\">"));
    let csrf = csrf_of(&html);
    let res = post(
        &app,
        "/app/team/invite",
        &admin,
        &[
            ("csrf", &csrf),
            ("email", "boss@acme.test"),
            ("role", "owner"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &app,
        "/app/team/invite",
        &admin,
        &[
            ("csrf", &csrf),
            ("email", "mia@acme.test"),
            ("role", "admin"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("id=\"email-error\""));

    // Reset: an unknown email first (same answer, no mail), then the owner's.
    for email in ["nobody@acme.test", "owner@acme.test"] {
        let res = client()
            .post(app.url("/app/reset-password"))
            .form(&[("email", email)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains("If an account exists"));
    }
    let mails = smtp.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 2, "no mail for the unknown address");
    assert_eq!(mails[1].rcpt_tos, ["owner@acme.test"]);
    let link = link_of(mails[1].text.as_deref().unwrap());
    let res = client()
        .post(app.url("/app/set-password"))
        .form(&[
            ("token", link.split("token=").nth(1).unwrap()),
            ("password", "a brand new password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        login_as(&app, "owner@acme.test", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&app, "/app", &owner).await.status(),
        StatusCode::SEE_OTHER,
        "sessions ended"
    );
    assert_eq!(
        login_as(&app, "owner@acme.test", "a brand new password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(smtp.messages().len(), 2);
}
