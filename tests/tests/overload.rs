//! Issue 7: rate limits (429 + Retry-After), load shedding (503 + Retry-After), and fail
//! fast while PostgreSQL is down.
//!
//! Nothing here depends on how fast requests are sent or served: the rate-limit tests derive
//! what the limiter may admit from the time the requests really took, the shedding test holds
//! the only admission permit with a database lock while the excess arrives, and the
//! PostgreSQL test waits until the database gate has refused a request before timing one.

use std::time::{Duration, Instant};

use harness::{Env, TestApp, ThrowawayPostgres};
use serde_json::{json, Value};
use shared::tenants::{KeyKind, Mode};

/// The most requests the limiter (GCRA, `rate` per second with bursts of `2 * rate`) can admit
/// for a fresh key within `elapsed`: the burst, plus `rate` for every second that passed, plus
/// one for the emission interval the first admission starts.
fn most_admitted(rate: u32, elapsed: Duration) -> u32 {
    2 * rate + (f64::from(rate) * elapsed.as_secs_f64()).ceil() as u32 + 1
}

/// Sum of the samples of one series (`name{labels}` exactly) in a Prometheus exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// `PATCH /v1/settings {"rate_limit_per_second": rate}` with the tenant's key.
async fn set_rate_limit(app: &TestApp, key: &str, rate: u64) -> reqwest::Response {
    app.client
        .patch(app.url("/v1/settings"))
        .bearer_auth(key)
        .json(&json!({ "rate_limit_per_second": rate }))
        .send()
        .await
        .unwrap()
}

async fn scrape(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn per_ip_limit_answers_429_with_retry_after() {
    const RATE: u32 = 5;
    let mut env = Env::new().await;
    env.set("RATE_LIMIT_IP_PER_SECOND", RATE.to_string());
    let app = TestApp::spawn_with(env).await;
    // Send until 15 requests were limited (however slowly they go out), then check that the
    // limiter admitted no more than its rate allows for the time the requests took.
    let started = Instant::now();
    let (mut admitted, mut limited) = (0u32, 0u32);
    while limited < 15 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {limited} of {} requests limited in 60 s",
            admitted + limited
        );
        let r = app.client.get(app.url("/v1/tenant")).send().await.unwrap();
        if r.status() == 429 {
            limited += 1;
            assert!(
                r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error");
        } else {
            assert_eq!(r.status(), 401);
            admitted += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        admitted >= 2 * RATE,
        "the burst of {} was not admitted: {admitted}",
        2 * RATE
    );
    assert!(
        admitted <= most_admitted(RATE, elapsed),
        "{admitted} admitted in {elapsed:?} at {RATE}/s"
    );
    // Probes are never limited.
    for _ in 0..20 {
        assert_eq!(
            app.client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn per_tenant_limits_follow_the_tenants_setting() {
    const RATE: u32 = 3;
    let app = TestApp::spawn().await;
    let a = app.create_tenant("Limited").await;
    let b = app.create_tenant("Free").await;
    let ska = a.key(KeyKind::Secret, Mode::Test);
    assert_eq!(
        set_rate_limit(&app, ska, u64::from(RATE)).await.status(),
        200
    );
    // As above: send until 10 were limited, then bound the admitted ones by the elapsed time.
    let started = Instant::now();
    let mut codes = Vec::new();
    while codes.iter().filter(|c| **c == 429).count() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not limited in 60 s: {codes:?}"
        );
        let code = app
            .client
            .get(app.url("/v1/tenant"))
            .bearer_auth(ska)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(code == 200 || code == 429, "{codes:?} then {code}");
        codes.push(code);
    }
    let elapsed = started.elapsed();
    let admitted = codes.iter().filter(|c| **c == 200).count() as u32;
    assert!(
        admitted <= most_admitted(RATE, elapsed),
        "{admitted} admitted in {elapsed:?} at {RATE}/s: {codes:?}"
    );
    assert!(codes.iter().take(4).all(|c| *c == 200), "{codes:?}");
    for _ in 0..20 {
        let r = app
            .client
            .get(app.url("/v1/tenant"))
            .bearer_auth(b.key(KeyKind::Secret, Mode::Test))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "another tenant was limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_retry_after() {
    let mut env = Env::new().await;
    env.set("MAX_CONCURRENT_REQUESTS", "1")
        .set("SHED_QUEUE_TIMEOUT_MS", "1")
        .set("DATABASE_MAX_CONNECTIONS", "2")
        // The request holding the permit waits on the test's lock, however long that takes.
        .set("REQUEST_TIMEOUT_MS", "600000");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Busy").await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    let url = app.url("/v1/analytics/churn-reasons");

    // Hold the only admission permit: lock the table the key lookup reads, send one request
    // and wait until the api's query for it waits on that lock. The permit is then taken
    // until the lock goes, so every other request must be shed.
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let holder = tokio::spawn({
        let (c, url, sk) = (app.client.clone(), url.clone(), sk.clone());
        async move { c.get(url).bearer_auth(sk).send().await.unwrap() }
    });
    let blocked = harness::wait_until(Duration::from_secs(60), || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'retentionos-api'
                AND wait_event_type = 'Lock' AND query ILIKE '%api_keys%'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        n >= 1
    })
    .await;
    assert!(blocked, "the first request never reached its key lookup");

    let reqs = (0..199).map(|_| {
        let c = app.client.clone();
        let (url, sk) = (url.clone(), sk.clone());
        async move { c.get(url).bearer_auth(sk).send().await.unwrap() }
    });
    let res = futures::future::join_all(reqs).await;
    lock.commit().await.unwrap();
    let mut ok = 0;
    let mut shed = 0;
    for r in res.into_iter().chain([holder.await.unwrap()]) {
        match r.status().as_u16() {
            200 => ok += 1,
            503 => {
                shed += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(
                    r.json::<Value>().await.unwrap()["error"]["code"],
                    "overloaded"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, shed), (1, 199), "ok {ok}, shed {shed}");
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains("http_requests_shed_total"),
        "shedding is not counted"
    );
    // The counter is process-wide (other tests of the binary may add to it): it holds at
    // least this test's 199.
    let counted = metric(&metrics, "http_requests_shed_total{reason=\"overload\"}");
    assert!(counted >= 199.0, "{counted} overload sheds counted");
}

#[tokio::test]
async fn requests_fail_fast_while_postgres_is_down() {
    let pg = ThrowawayPostgres::start();
    let url = pg.url("rtos");
    shared::db::ensure_database(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    shared::db::migrate(&pool).await.unwrap();
    pool.close().await;
    let mut env = Env::new().await;
    // Without the database gate a request would wait this long for a connection; the gated
    // answer below is timed against a bound far from it.
    env.set("DATABASE_URL", url)
        .set("DATABASE_CONNECT_TIMEOUT_SECS", "30");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Fragile").await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    assert_eq!(
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&sk)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Only the gate counts `reason="database_down"`; no other test here stops its database.
    const GATED: &str = "http_requests_shed_total{reason=\"database_down\"}";
    pg.stop();
    // The watch pings every second: wait until it has flagged the database, i.e. the gate
    // refused a request (a request that still went to the pool is given up on after 1 s).
    let flagged = harness::wait_until(Duration::from_secs(60), || async {
        let before = metric(&scrape(&app).await, GATED);
        let r = app
            .client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&sk)
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        matches!(r, Ok(r) if r.status() == 503) && metric(&scrape(&app).await, GATED) > before
    })
    .await;
    assert!(flagged, "the api never flagged the database as down");
    let before = metric(&scrape(&app).await, GATED);
    let started = Instant::now();
    let r = app
        .client
        .get(app.url("/v1/tenant"))
        .bearer_auth(&sk)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert!(
        metric(&scrape(&app).await, GATED) > before,
        "the request was not refused by the database gate"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "database_unavailable"
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    pg.start_again();
    let back = harness::wait_until(Duration::from_secs(60), || async {
        app.client
            .get(app.url("/v1/tenant"))
            .bearer_auth(&sk)
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(back, "did not recover after PostgreSQL came back");
}

/// Forged deliveries to a tenant's webhook URL: no signature, a malformed one, a well-formed
/// one that matches no secret. Sent 50 at a time; returns every status.
async fn forge_webhooks(app: &TestApp, tenant: uuid::Uuid, n: usize) -> Vec<u16> {
    let url = app.url(&format!("/v1/webhooks/stripe/{tenant}"));
    let body = r#"{"id":"evt_forged","type":"customer.subscription.updated","livemode":true,"data":{"object":{"id":"sub_x"}}}"#;
    let mut codes = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(50) {
        let sends = batch.iter().map(|i| {
            let mut req = app.client.post(&url).body(body);
            match i % 3 {
                0 => {}
                1 => req = req.header("stripe-signature", "nonsense"),
                _ => {
                    // Signed "now" (a valid time), with a signature no secret produces.
                    let t = chrono::Utc::now().timestamp();
                    req = req.header("stripe-signature", format!("t={t},v1={}", "0".repeat(64)));
                }
            }
            async move { req.send().await.unwrap().status().as_u16() }
        });
        codes.extend(futures::future::join_all(sends).await);
    }
    codes
}

#[tokio::test]
async fn forged_webhooks_cost_the_tenant_nothing() {
    // Only the tenant bucket is under test: the per-IP limit is off (every request here comes
    // from 127.0.0.1).
    let mut env = Env::new().await;
    env.set("RATE_LIMIT_IP_PER_SECOND", "0");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Targeted").await;
    let sk = t.key(KeyKind::Secret, Mode::Test);
    assert_eq!(set_rate_limit(&app, sk, 20).await.status(), 200);
    let codes = forge_webhooks(&app, t.tenant.id, 300).await;
    assert!(
        codes.iter().all(|c| *c == 400),
        "forged deliveries: {codes:?}"
    );
    // The tenant's own calls right after: its budget (burst 40) is untouched.
    for i in 0..30 {
        let r = app
            .client
            .get(app.url("/v1/tenant"))
            .bearer_auth(sk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "call {i} after the forged flood");
    }
}

#[tokio::test]
async fn webhook_deliveries_have_their_own_bucket() {
    let mut env = Env::new().await;
    env.set("RATE_LIMIT_IP_PER_SECOND", "0")
        .set("RATE_LIMIT_WEBHOOK_PER_SECOND", "5");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Flooded").await;
    let sk = t.key(KeyKind::Secret, Mode::Test);
    // 50 at once, until the webhook bucket (5/s, burst 10) says no.
    let started = Instant::now();
    let mut limited = None;
    while limited.is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "never limited");
        let url = app.url(&format!("/v1/webhooks/stripe/{}", t.tenant.id));
        let t0 = chrono::Utc::now().timestamp();
        let sends = (0..50).map(|_| {
            app.client
                .post(&url)
                .header("stripe-signature", format!("t={t0},v1={}", "0".repeat(64)))
                .body(r#"{"id":"evt_1","type":"invoice.paid","data":{"object":{}}}"#)
                .send()
        });
        for r in futures::future::join_all(sends).await {
            let r = r.unwrap();
            match r.status().as_u16() {
                400 => {}
                429 => {
                    assert!(r.headers().contains_key("retry-after"));
                    let body: Value = r.json().await.unwrap();
                    limited = Some(body["error"]["message"].as_str().unwrap().to_string());
                }
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert!(limited.unwrap().contains("webhook"));
    // Another bucket: the tenant's API calls are served.
    let r = app
        .client
        .get(app.url("/v1/tenant"))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_tenant_cannot_raise_its_limit_past_the_platforms() {
    let mut env = Env::new().await;
    env.set("RATE_LIMIT_TENANT_PER_SECOND", "50");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Greedy").await;
    let sk = t.key(KeyKind::Secret, Mode::Test);
    assert_eq!(set_rate_limit(&app, sk, 20).await.status(), 200);
    for too_many in [51, 1_000_000, u64::from(u32::MAX)] {
        let r = set_rate_limit(&app, sk, too_many).await;
        assert_eq!(r.status(), 400, "{too_many}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["param"], "rate_limit_per_second");
    }
    // Nothing changed.
    let s: Value = app
        .client
        .get(app.url("/v1/settings"))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["rate_limit_per_second"], 20);
    assert_eq!(set_rate_limit(&app, sk, 50).await.status(), 200);
}
