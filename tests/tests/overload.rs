//! Issue 7: rate limits (429 + Retry-After), load shedding (503 + Retry-After), and fail
//! fast while PostgreSQL is down.

use std::time::{Duration, Instant};

use harness::{Env, TestApp, ThrowawayPostgres};
use serde_json::{json, Value};
use shared::tenants::{KeyKind, Mode};

#[tokio::test]
async fn per_ip_limit_answers_429_with_retry_after() {
    let mut env = Env::new().await;
    env.set("RATE_LIMIT_IP_PER_SECOND", "5");
    let app = TestApp::spawn_with(env).await;
    let mut limited = 0;
    for _ in 0..30 {
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
        }
    }
    assert!(limited >= 15, "only {limited} of 30 limited");
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
    let app = TestApp::spawn().await;
    let a = app.create_tenant("Limited").await;
    let b = app.create_tenant("Free").await;
    let ska = a.key(KeyKind::Secret, Mode::Test);
    let r = app
        .client
        .put(app.url("/v1/settings"))
        .bearer_auth(ska)
        .json(&json!({"rate_limit_per_second": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(
            app.client
                .get(app.url("/v1/tenant"))
                .bearer_auth(ska)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(limited >= 10, "{codes:?}");
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
        .set("DATABASE_MAX_CONNECTIONS", "2");
    let app = TestApp::spawn_with(env).await;
    let t = app.create_tenant("Busy").await;
    let sk = t.key(KeyKind::Secret, Mode::Test).to_string();
    let reqs = (0..200).map(|_| {
        let c = app.client.clone();
        let url = app.url("/v1/analytics/churn-reasons");
        let sk = sk.clone();
        async move { c.get(url).bearer_auth(sk).send().await.unwrap() }
    });
    let res = futures::future::join_all(reqs).await;
    let mut ok = 0;
    let mut shed = 0;
    for r in res {
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
    assert!(ok >= 1 && shed >= 1, "ok {ok}, shed {shed}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_shed_total"),
        "shedding is not counted"
    );
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
    env.set("DATABASE_URL", url);
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
    pg.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = Instant::now();
    let r = app
        .client
        .get(app.url("/v1/tenant"))
        .bearer_auth(&sk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
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
    let back = harness::wait_until(Duration::from_secs(20), || async {
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
