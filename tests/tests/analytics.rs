//! Issue 6: rollups, analytics figures against direct SQL over generated data (late events
//! and re-runs included), generation-keyed cache invalidation, listings, and index use.

use std::time::Duration;

use harness::{count, TestApp};
use serde_json::{json, Value};
use shared::tenants::{KeyKind, Mode};
use sqlx::PgPool;
use uuid::Uuid;

struct Ctx {
    app: TestApp,
    worker: workers::WorkerState,
    tenant: Uuid,
    sk: String,
}

impl Ctx {
    /// Seeds generated data into one tenant (plus a second, noisy one) and rolls it up.
    async fn new(events: u64) -> Self {
        let app = TestApp::spawn().await;
        let t = app.create_tenant("Analytics Co").await;
        let other = app.create_tenant("Other Co").await;
        let master = app.master();
        for (tenant, seed) in [(t.tenant.id, 7), (other.tenant.id, 8)] {
            let opts = seed::SeedOptions {
                tenants: 0,
                events,
                days: 20,
                seed,
                tenant_ids: vec![tenant],
                ingested_now: false,
            };
            seed::run(&app.pool, &master, &opts).await.unwrap();
        }
        // Live keys read live data (the generator writes live-mode rows).
        let sk = t.key(KeyKind::Secret, Mode::Live).to_string();
        let worker = workers::WorkerState::new(app.env.config()).unwrap();
        let c = Self {
            app,
            worker,
            tenant: t.tenant.id,
            sk,
        };
        c.rollup().await;
        c
    }

    async fn rollup(&self) {
        let out = workers::handlers::rollup::rollup_new_events(&self.worker)
            .await
            .unwrap();
        workers::handlers::rollup::bump_generations(&self.worker, &out.tenants).await;
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .bearer_auth(&self.sk)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    fn pool(&self) -> &PgPool {
        &self.app.pool
    }
}

fn range() -> (String, String) {
    let to = chrono::Utc::now() + chrono::Duration::hours(1);
    let from = to - chrono::Duration::days(40);
    (
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .replace('+', "%2B"),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .replace('+', "%2B"),
    )
}

async fn sql_summary(pool: &PgPool, tenant: Uuid) -> Value {
    let (sessions, saved, canceled, deflected, abandoned, in_progress, mrr, validated): (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'saved'), count(*) FILTER (WHERE outcome = 'canceled'),
                count(*) FILTER (WHERE outcome = 'deflected'), count(*) FILTER (WHERE outcome = 'abandoned'),
                count(*) FILTER (WHERE outcome IS NULL),
                coalesce(sum(mrr_cents) FILTER (WHERE outcome = 'saved'), 0)::bigint,
                count(*) FILTER (WHERE outcome = 'saved' AND validated_at IS NOT NULL)
           FROM cancel_sessions WHERE tenant_id = $1 AND mode = 'live'",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap();
    let by_type: Vec<(String, i64)> = sqlx::query_as(
        "SELECT saved_offer_type, count(*) FROM cancel_sessions WHERE tenant_id = $1 AND mode = 'live' AND outcome = 'saved' GROUP BY 1",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .unwrap();
    let decided = saved + canceled + deflected;
    json!({
        "sessions": sessions, "saved": saved, "canceled": canceled, "deflected": deflected, "abandoned": abandoned,
        "in_progress": in_progress, "saved_mrr_cents": mrr, "validated_saves": validated,
        "save_rate": ((saved as f64 / decided as f64) * 10_000.0).round() / 10_000.0,
        "saves_by_offer_type": by_type.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

fn assert_summary_matches(api: &Value, sql: &Value) {
    for k in [
        "sessions",
        "saved",
        "canceled",
        "deflected",
        "abandoned",
        "in_progress",
        "saved_mrr_cents",
        "validated_saves",
        "save_rate",
        "saves_by_offer_type",
    ] {
        assert_eq!(api[k], sql[k], "{k}: api {} vs sql {}", api[k], sql[k]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_match_sql_including_late_events_and_reruns() {
    let c = Ctx::new(20_000).await;
    let (from, to) = range();
    let (st, summary) = c
        .get(&format!("/v1/analytics/summary?from={from}&to={to}"))
        .await;
    assert_eq!(st, 200, "{summary}");
    let sql = sql_summary(c.pool(), c.tenant).await;
    assert!(sql["sessions"].as_i64().unwrap() > 1000);
    assert_summary_matches(&summary, &sql);

    // Offers: shown/accepted per offer and per variant, and lift against the holdout.
    let (_, offers) = c
        .get(&format!("/v1/analytics/offers?from={from}&to={to}"))
        .await;
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT offer_id, coalesce(variant, ''), count(*) FILTER (WHERE NOT accepted), count(*) FILTER (WHERE accepted),
                coalesce(sum(mrr_cents) FILTER (WHERE accepted), 0)::bigint
           FROM offer_events WHERE tenant_id = $1 AND mode = 'live' GROUP BY 1, 2",
    )
    .bind(c.tenant).fetch_all(c.pool()).await.unwrap();
    for (offer, variant, shown, accepted, mrr) in &rows {
        let o = offers["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["offer_id"] == offer.as_str())
            .unwrap_or_else(|| panic!("{offer} missing"));
        let v = o["by_variant"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["variant"] == variant.as_str())
            .unwrap();
        assert_eq!(
            (
                v["shown"].as_i64().unwrap(),
                v["accepted"].as_i64().unwrap(),
                v["saved_mrr_cents"].as_i64().unwrap()
            ),
            (*shown, *accepted, *mrr),
            "{offer}/{variant}"
        );
    }
    let (hold_saved, hold_decided): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome = 'saved'), count(*) FILTER (WHERE outcome IN ('saved', 'canceled', 'deflected'))
           FROM cancel_sessions WHERE tenant_id = $1 AND mode = 'live' AND holdout").bind(c.tenant).fetch_one(c.pool()).await.unwrap();
    let (a_saved, a_decided): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome = 'saved'), count(*) FILTER (WHERE outcome IN ('saved', 'canceled', 'deflected'))
           FROM cancel_sessions WHERE tenant_id = $1 AND mode = 'live' AND NOT holdout AND variant = 'a'").bind(c.tenant).fetch_one(c.pool()).await.unwrap();
    let lift = ((a_saved as f64 / a_decided as f64 - hold_saved as f64 / hold_decided as f64)
        * 10_000.0)
        .round()
        / 10_000.0;
    let va = offers["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variant"] == "a")
        .unwrap();
    assert!(
        (va["lift_vs_holdout"].as_f64().unwrap() - lift).abs() < 0.0002,
        "{va} vs {lift}"
    );

    // Churn reasons.
    let (_, reasons) = c
        .get(&format!("/v1/analytics/churn-reasons?from={from}&to={to}"))
        .await;
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT reason_code, count(*) FROM churn_reasons WHERE tenant_id = $1 AND mode = 'live' GROUP BY 1")
        .bind(c.tenant).fetch_all(c.pool()).await.unwrap();
    let total: i64 = rows.iter().map(|r| r.1).sum();
    assert_eq!(reasons["total"], total);
    for (code, n) in &rows {
        let r = reasons["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reason_code"] == code.as_str())
            .unwrap();
        assert_eq!(r["count"], *n);
    }

    // Time series by day (UTC tenant): sum of points equals the sessions total; each day matches SQL.
    let (_, ts) = c
        .get(&format!(
            "/v1/analytics/timeseries?metric=sessions&interval=day&from={from}&to={to}"
        ))
        .await;
    let days: Vec<(chrono::NaiveDateTime, i64)> = sqlx::query_as(
        "SELECT date_trunc('day', created_at AT TIME ZONE 'UTC'), count(*) FROM cancel_sessions WHERE tenant_id = $1 AND mode = 'live' GROUP BY 1")
        .bind(c.tenant).fetch_all(c.pool()).await.unwrap();
    let points = ts["points"].as_array().unwrap();
    for (day, n) in &days {
        let t = day.format("%Y-%m-%dT%H:%M:%S").to_string();
        let p = points
            .iter()
            .find(|p| p["t"] == t.as_str())
            .unwrap_or_else(|| panic!("no point {t}"));
        assert_eq!(p["value"], *n, "{t}");
    }
    assert!(
        points.iter().any(|p| p["value"] == 0),
        "zero-filled buckets expected"
    );

    // A late event for an old hour, then a rollup: the figures move with it.
    let old_session: (Uuid,) = sqlx::query_as("SELECT id FROM cancel_sessions WHERE tenant_id = $1 AND outcome = 'canceled' ORDER BY created_at LIMIT 1")
        .bind(c.tenant).fetch_one(c.pool()).await.unwrap();
    sqlx::query("UPDATE cancel_sessions SET outcome = 'saved', saved_offer_type = 'pause', mrr_cents = 777 WHERE id = $1")
        .bind(old_session.0).execute(c.pool()).await.unwrap();
    sqlx::query("INSERT INTO churn_reasons (tenant_id, session_id, reason_code, created_at) SELECT tenant_id, id, 'late_reason', created_at FROM cancel_sessions WHERE id = $1")
        .bind(old_session.0).execute(c.pool()).await.unwrap();
    c.rollup().await;
    let (_, summary2) = c
        .get(&format!("/v1/analytics/summary?from={from}&to={to}"))
        .await;
    let sql2 = sql_summary(c.pool(), c.tenant).await;
    assert_summary_matches(&summary2, &sql2);
    assert_eq!(
        summary2["saved"].as_i64().unwrap(),
        summary["saved"].as_i64().unwrap() + 1,
        "the cached figure was served after the rollup"
    );
    let (_, reasons2) = c
        .get(&format!("/v1/analytics/churn-reasons?from={from}&to={to}"))
        .await;
    assert!(reasons2["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["reason_code"] == "late_reason"));

    // Re-running the rollup over everything gives the same rows.
    let snapshot = |pool: PgPool| async move {
        let (a,): (String,) = sqlx::query_as(
            "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM rollup_sessions_hourly x",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let (b,): (String,) = sqlx::query_as(
            "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM rollup_offers_hourly x",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let (r,): (String,) = sqlx::query_as(
            "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM rollup_reasons_hourly x",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (a, b, r)
    };
    let before = snapshot(c.pool().clone()).await;
    sqlx::query("UPDATE rollup_state SET watermark = 'epoch'")
        .execute(c.pool())
        .await
        .unwrap();
    c.rollup().await;
    assert_eq!(
        snapshot(c.pool().clone()).await,
        before,
        "a re-run changed the rollup"
    );
}

#[tokio::test]
async fn cache_is_used_and_invalidated_by_rollups() {
    let c = Ctx::new(2_000).await;
    let (from, to) = range();
    let path = format!("/v1/analytics/summary?from={from}&to={to}");
    let (_, first) = c.get(&path).await;
    // Change the source without a rollup: the cached (and rolled-up) figure stays.
    sqlx::query("UPDATE cancel_sessions SET outcome = 'abandoned' WHERE tenant_id = $1 AND outcome = 'canceled'")
        .bind(c.tenant).execute(c.pool()).await.unwrap();
    let (_, cached) = c.get(&path).await;
    assert_eq!(first, cached);
    let mut conn = c.app.env.queues().redis().conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}cache:{}:analytics:summary:*",
            c.app.env.vars["REDIS_PREFIX"], c.tenant
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "summary TTL {ttl}");
    // The default range (last 30 days) is stable for the hour, so it is cached too: two
    // requests in different seconds share one entry. Should an hour boundary fall between
    // them, the range rightly moves with it; that attempt's entries are dropped and the pair
    // is asked again (it cannot straddle the next boundary).
    let explicit = keys[0].clone();
    let pattern = format!(
        "{}cache:{}:analytics:summary:*",
        c.app.env.vars["REDIS_PREFIX"], c.tenant
    );
    let hour = || {
        let t = chrono::Utc::now().timestamp();
        t - t.rem_euclid(3600)
    };
    let keys = loop {
        let h = hour();
        c.get("/v1/analytics/summary").await;
        // The server read its clock before this; wait for the next second.
        let second = chrono::Utc::now().timestamp();
        assert!(
            harness::wait_until(Duration::from_secs(60), || async {
                chrono::Utc::now().timestamp() > second
            })
            .await
        );
        c.get("/v1/analytics/summary").await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        if hour() == h {
            break keys;
        }
        for k in keys.iter().filter(|k| **k != explicit) {
            let _: () = redis::cmd("DEL")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&explicit), "{keys:?}");
    c.rollup().await;
    let (_, after) = c.get(&path).await;
    assert_eq!(after["canceled"], 0);
    assert_summary_matches(&after, &sql_summary(c.pool(), c.tenant).await);
}

#[tokio::test]
async fn analytics_validate_their_parameters_and_isolate_tenants_and_modes() {
    let c = Ctx::new(500).await;
    for (q, param) in [
        (
            "/v1/analytics/summary?from=2026-05-01&to=2026-04-01",
            "from",
        ),
        ("/v1/analytics/summary?from=yesterday", "from"),
        ("/v1/analytics/timeseries?metric=vibes", "metric"),
        (
            "/v1/analytics/timeseries?metric=sessions&interval=month",
            "interval",
        ),
        ("/v1/analytics/summary?from=2020-01-01&to=2026-01-01", "to"),
    ] {
        let (st, body) = c.get(q).await;
        assert_eq!(st, 400, "{q}");
        assert_eq!(body["error"]["param"], param, "{q}: {body}");
    }
    let (st, body) = c.get("/v1/analytics/summary?bogus=1").await;
    assert_eq!(st, 400, "{body}");
    // Test-mode keys see test-mode data only (none here).
    let t = c.app.create_tenant("Empty").await;
    let r: Value = c
        .app
        .client
        .get(c.app.url("/v1/analytics/summary"))
        .bearer_auth(t.key(KeyKind::Secret, Mode::Live))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["sessions"], 0);
    let (_, mine) = c
        .get("/v1/analytics/summary?from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z")
        .await;
    assert_eq!(mine["sessions"], 0);
}

#[tokio::test]
async fn listings_paginate_filter_and_trim_fields() {
    let c = Ctx::new(3_000).await;
    let total = {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users WHERE tenant_id = $1")
            .bind(c.tenant)
            .fetch_one(c.pool())
            .await
            .unwrap();
        n
    };
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/v1/users?limit=37&fields=id,plan&cursor={cur}"),
            None => "/v1/users?limit=37&fields=id,plan".into(),
        };
        let (st, page) = c.get(&path).await;
        assert_eq!(st, 200, "{page}");
        for u in page["data"].as_array().unwrap() {
            assert_eq!(u.as_object().unwrap().len(), 2, "fields= not applied: {u}");
            assert!(
                seen.insert(u["id"].as_str().unwrap().to_string()),
                "duplicate across pages"
            );
        }
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, total);
    let (_, pro) = c.get("/v1/users?plan=pro&limit=500").await;
    assert!(pro["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["plan"] == "pro"));
    let (_, saved) = c
        .get("/v1/sessions?outcome=saved&fields=id,outcome,saved_offer_type&limit=20")
        .await;
    assert!(saved["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["outcome"] == "saved"));
    let (_, subs) = c.get("/v1/subscriptions?status=active&limit=5").await;
    assert!(subs["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "active"));
    let (st, e) = c.get("/v1/users?fields=id,password").await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("fields")));
    let (st, _) = c.get("/v1/users?cursor=garbage").await;
    assert_eq!(st, 400);
    let (st, e) = c.get("/v1/users?status=active").await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("status")));
    // Another tenant sees none of these users.
    let other = c.app.create_tenant("Nobody").await;
    let r: Value = c
        .app
        .client
        .get(c.app.url("/v1/users"))
        .bearer_auth(other.key(KeyKind::Secret, Mode::Live))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn the_specifications_indexed_queries_use_their_indexes() {
    let c = Ctx::new(5_000).await;
    let pool = c.pool();
    let mut tx = pool.begin().await.unwrap();
    // Tiny test tables make sequential scans cheap; ask the planner whether an index serves.
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let t = c.tenant;
    let cases = [
        (format!("SELECT * FROM users WHERE tenant_id = '{t}' AND mode = 'live' AND external_id = 'cus_1'"), "users_tenant_external_id_key"),
        (format!("SELECT * FROM users WHERE tenant_id = '{t}' AND email = 'x@y'"), "users_tenant_email_idx"),
        (format!("SELECT * FROM users WHERE tenant_id = '{t}' AND plan = 'pro'"), "users_tenant_plan_idx"),
        (format!("SELECT * FROM users WHERE tenant_id = '{t}' AND region = 'eu'"), "users_tenant_region_idx"),
        ("SELECT * FROM subscriptions WHERE stripe_subscription_id = 'sub_1'".to_string(), "subscriptions_stripe_subscription_id_key"),
        (format!("SELECT * FROM subscriptions WHERE tenant_id = '{t}' AND status = 'active'"), "subscriptions_tenant_status_idx"),
        (format!("SELECT count(*) FROM offer_events WHERE tenant_id = '{t}' AND created_at > now() - interval '1 day'"), "offer_events_tenant_created_idx"),
        (format!("SELECT count(*) FROM offer_events WHERE tenant_id = '{t}' AND offer_type = 'pause'"), "offer_events_tenant_offer_type_idx"),
        (format!("SELECT count(*) FROM churn_reasons WHERE tenant_id = '{t}' AND reason_code = 'other'"), "churn_reasons_tenant_reason_code_idx"),
        (format!("SELECT * FROM flows WHERE tenant_id = '{t}' ORDER BY ranking_score DESC LIMIT 5"), "flows_tenant_ranking_score_idx"),
    ];
    for (sql, index) in cases {
        let (plan,): (Value,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert!(
            plan.to_string().contains(index),
            "{sql}\nexpected {index} in {plan}"
        );
    }
    let _ = count(pool, "SELECT 1::bigint").await;
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The benchmark generator (`retentionos-seed`) on its own: new tenants with one default flow
/// each and the asked-for number of offer events; a second run into existing tenants adds
/// exactly its events, continues their customer numbering and stamps them ingested now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_generator_creates_tenants_and_adds_to_existing_ones() {
    let app = TestApp::spawn().await;
    let master = app.master();
    let opts = seed::SeedOptions {
        tenants: 3,
        events: 6_000,
        days: 30,
        seed: 42,
        tenant_ids: Vec::new(),
        ingested_now: false,
    };
    let report = seed::run(&app.pool, &master, &opts).await.unwrap();
    assert_eq!(report.offer_events, opts.events);
    assert_eq!(report.tenants.len(), 3);
    let mut total = 0;
    for t in &report.tenants {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM offer_events WHERE tenant_id = $1")
            .bind(t)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(n > 0, "tenant {t} got no events");
        total += n;
    }
    assert_eq!(total, 6_000);
    let customers = |t: Uuid| {
        let pool = app.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(DISTINCT external_id) FROM users WHERE tenant_id = $1 AND external_id ~ '^cus_[0-9]+$'",
            )
            .bind(t)
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    let first = report.tenants[0];
    let customers_before = customers(first).await;
    assert!(customers_before > 0);

    let again = seed::SeedOptions {
        events: 1_001,
        tenant_ids: report.tenants[..2].to_vec(),
        ingested_now: true,
        ..opts.clone()
    };
    let before = count(&app.pool, "SELECT count(*) FROM offer_events").await;
    let recent_before = count(
        &app.pool,
        "SELECT count(*) FROM offer_events WHERE ingested_at > now() - interval '10 minutes'",
    )
    .await;
    let second = seed::run(&app.pool, &master, &again).await.unwrap();
    assert_eq!(second.tenants, again.tenant_ids);
    assert_eq!(second.offer_events, 1_001);
    let after = count(&app.pool, "SELECT count(*) FROM offer_events").await;
    let recent = count(
        &app.pool,
        "SELECT count(*) FROM offer_events WHERE ingested_at > now() - interval '10 minutes'",
    )
    .await;
    assert_eq!(after - before, 1_001);
    // The first run back-dated ingestion to each event's time; the second stamped now.
    assert_eq!(recent - recent_before, 1_001);
    assert!(
        customers(first).await > customers_before,
        "new customers continue the numbering instead of reusing cus_1.."
    );
    let (defaults, tenants): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE is_default), count(DISTINCT tenant_id) FROM flows",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        defaults, tenants,
        "one default flow per tenant after both runs"
    );
    app.stop().await;
}
