//! Issue 3: the job platform on real Redis and PostgreSQL.

use std::time::{Duration, Instant};

use harness::{count, kill9, sigterm, start_worker, wait_until, Env, TestApp, ThrowawayRedis};
use jobs::{queues, EnqueueOpts, Probe};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

async fn durable_probe(env: &Env, pool: &PgPool, probe: Probe) -> Uuid {
    env.job_client()
        .enqueue_durable(pool, None, &probe)
        .await
        .unwrap()
}

async fn effects(pool: &PgPool, id: Uuid) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM probe_effects WHERE job_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    n
}

async fn runs(pool: &PgPool, id: Uuid) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM probe_runs WHERE job_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_backlog_drains_completely() {
    let mut env = Env::new().await;
    env.set("WORKER_CONCURRENCY", "128");
    let client = env.job_client();
    let jobs: Vec<Probe> = (0..100_000)
        .map(|_| Probe {
            noop: true,
            ..Default::default()
        })
        .collect();
    let created = client.enqueue_many(&jobs).await.unwrap();
    assert_eq!(created, 100_000);
    let q = env.queues();
    let s = q.stats(queues::OPS).await.unwrap();
    assert_eq!(s.ready, 100_000, "{s:?}");
    let started = Instant::now();
    let worker = start_worker(&env).await;
    let drained = wait_until(Duration::from_secs(240), || async {
        let s = q.stats(queues::OPS).await.unwrap();
        s.completed_total >= 100_000 && s.ready == 0 && s.in_flight == 0
    })
    .await;
    let s = q.stats(queues::OPS).await.unwrap();
    assert!(drained, "not drained: {s:?}");
    // The scheduler's reconcile ticks share the ops queue: every other completion is a probe.
    let pool = env.pool().await;
    let ticks = count(
        &pool,
        "SELECT count(*) FROM scheduler_runs WHERE duty = 'reconcile'",
    )
    .await;
    assert_eq!(s.completed_total as i64, 100_000 + ticks);
    assert_eq!(s.dead, 0);
    eprintln!("drained 100000 tasks in {:?}", started.elapsed());
    worker.shutdown().await;
}

#[tokio::test]
async fn the_same_idempotency_key_runs_once() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let client = env.job_client();
    let opts = EnqueueOpts {
        idempotency_key: Some("once:1".into()),
        ..Default::default()
    };
    let (c1, id1) = client
        .enqueue(&Probe::default(), opts.clone())
        .await
        .unwrap();
    let (c2, id2) = client.enqueue(&Probe::default(), opts).await.unwrap();
    assert!(c1 && !c2);
    assert_eq!(id1, id2);
    // The key always has a TTL.
    let mut conn = env.queues().redis().conn.clone();
    let key = format!("{}:idem:once:1", env.queues().base(queues::OPS));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3600, "ttl {ttl}");
    let w = start_worker(&env).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            effects(&pool, id1).await == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM probe_runs").await, 1);
    w.shutdown().await;
}

#[tokio::test]
async fn kill_9_mid_job_another_worker_completes_it_once() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let mut a = env.spawn_worker_process();
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            sleep_ms: 4000,
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            runs(&pool, id).await == 1
        })
        .await,
        "job never started"
    );
    kill9(&mut a);
    assert_eq!(effects(&pool, id).await, 0);
    let mut b = env.spawn_worker_process();
    // Lease is 3 s: the job is back and done well within 60 s.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            effects(&pool, id).await == 1
        })
        .await
    );
    assert!(runs(&pool, id).await >= 2);
    let (status,): (String,) = sqlx::query_as("SELECT status FROM job_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "done");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(effects(&pool, id).await, 1);
    kill9(&mut b);
}

#[tokio::test]
async fn two_worker_processes_run_one_rollup_per_tick() {
    let mut env = Env::new().await;
    env.set("ROLLUP_INTERVAL_SECS", "1");
    let pool = env.pool().await;
    let mut a = env.spawn_worker_process();
    let mut b = env.spawn_worker_process();
    tokio::time::sleep(Duration::from_secs(6)).await;
    kill9(&mut a);
    kill9(&mut b);
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT period, count(*) FROM scheduler_runs WHERE duty = 'rollup' GROUP BY period ORDER BY period",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(rows.len() >= 4, "too few ticks: {rows:?}");
    for (period, n) in &rows {
        assert_eq!(*n, 1, "period {period} ran {n} times: {rows:?}");
    }
    // Ticks are consecutive: none skipped.
    for w in rows.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{rows:?}");
    }
    let workers: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT worker FROM scheduler_runs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!workers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_loses_nothing() {
    let mut redis = ThrowawayRedis::start();
    let mut env = Env::new().await;
    env.set("REDIS_URL", redis.url())
        .set("RECONCILE_INTERVAL_SECS", "1")
        .set("REDIS_TIMEOUT_MS", "1000");
    let app = TestApp::spawn_with(env.clone()).await;
    let worker = app.start_worker().await;
    let res = app
        .client
        .post(app.url("/v1/ops/probes"))
        .bearer_auth(app.ops_token())
        .json(&json!({ "count": 300, "probe": { "sleep_ms": 30 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Let part of it run, then wipe Redis.
    assert!(
        wait_until(Duration::from_secs(20), || async {
            count(&app.pool, "SELECT count(*) FROM probe_effects").await >= 20
        })
        .await
    );
    redis.stop();
    redis.start_again();
    let done_before = count(&app.pool, "SELECT count(*) FROM probe_effects").await;
    assert!(
        done_before < 300,
        "everything finished before the wipe; the test proves nothing"
    );
    let all = wait_until(Duration::from_secs(60), || async {
        count(&app.pool, "SELECT count(*) FROM probe_effects").await == 300
    })
    .await;
    assert!(
        all,
        "only {} of 300 done",
        count(&app.pool, "SELECT count(*) FROM probe_effects").await
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM job_outbox WHERE status <> 'done'"
        )
        .await,
        0
    );
    let restored = count(&app.pool, "SELECT coalesce(sum((detail->>'restored')::bigint), 0)::bigint FROM scheduler_runs WHERE duty = 'reconcile'").await;
    assert!(restored > 0, "the reconciler restored nothing");
    worker.shutdown().await;
}

#[tokio::test]
async fn backoff_schedule_is_exponential() {
    let mut env = Env::new().await;
    env.set("JOB_RETRY_BASE_MS", "300");
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            fail_times: 3,
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            effects(&pool, id).await == 1
        })
        .await
    );
    let times: Vec<(chrono::DateTime<chrono::Utc>,)> =
        sqlx::query_as("SELECT started_at FROM probe_runs WHERE job_id = $1 ORDER BY started_at")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(times.len(), 4);
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).num_milliseconds() as f64)
        .collect();
    // Nominal 300, 600, 1200 ms with ±20 % jitter, plus up to ~300 ms of polling.
    for (i, nominal) in [300.0, 600.0, 1200.0].iter().enumerate() {
        assert!(
            gaps[i] >= nominal * 0.8 - 20.0 && gaps[i] <= nominal * 1.2 + 350.0,
            "gaps {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0] * 2.0, "not exponential: {gaps:?}");
    w.shutdown().await;
}

#[tokio::test]
async fn a_retry_schedule_survives_a_worker_restart() {
    let mut env = Env::new().await;
    env.set("JOB_RETRY_BASE_MS", "3000");
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            fail_times: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            runs(&pool, id).await == 1
        })
        .await
    );
    w.shutdown().await;
    let s = env.queues().stats(queues::OPS).await.unwrap();
    assert_eq!(s.scheduled, 1, "the retry is not scheduled durably: {s:?}");
    let w = start_worker(&env).await;
    assert!(
        wait_until(Duration::from_secs(15), || async {
            effects(&pool, id).await == 1
        })
        .await
    );
    assert_eq!(runs(&pool, id).await, 2);
    w.shutdown().await;
}

#[tokio::test]
async fn dead_letters_list_show_retry_and_purge_through_the_api() {
    let app = TestApp::spawn().await;
    let w = app.start_worker().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            durable_probe(
                &app.env,
                &app.pool,
                Probe {
                    permanent_error: true,
                    ..Default::default()
                },
            )
            .await,
        );
    }
    let q = app.env.queues();
    assert!(
        wait_until(Duration::from_secs(15), || async {
            q.stats(queues::OPS).await.unwrap().dead == 3
        })
        .await
    );
    // Permanent errors go straight to the dead-letter set: one run each.
    for id in &ids {
        assert_eq!(runs(&app.pool, *id).await, 1);
    }
    let auth = app.ops_token().to_string();
    let page: Value = app
        .client
        .get(app.url("/v1/ops/queues/ops/dead?limit=2"))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["kind"], "probe");
    assert_eq!(data[0]["attempts"], 1);
    assert!(data[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("permanent"));
    assert!(
        data[0]["failed_at"].as_str().unwrap() >= data[1]["failed_at"].as_str().unwrap(),
        "not newest first"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .client
        .get(app.url(&format!("/v1/ops/queues/ops/dead?limit=2&cursor={cursor}")))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let (outbox_dead,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM job_outbox WHERE status = 'dead'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(outbox_dead, 3);

    let one = ids[0];
    let shown: Value = app
        .client
        .get(app.url(&format!("/v1/ops/queues/ops/dead/{one}")))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["id"], one.to_string());
    assert_eq!(shown["payload"]["permanent_error"], true);
    // Retry one: it runs again exactly once (and, still failing permanently, returns).
    let res = app
        .client
        .post(app.url(&format!("/v1/ops/queues/ops/dead/{one}/retry")))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            runs(&app.pool, one).await == 2
        })
        .await
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            q.stats(queues::OPS).await.unwrap().dead == 3
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&app.pool, one).await, 2);
    // Unknown ids and queues are 404s; the envelope is used.
    let res = app
        .client
        .post(app.url(&format!("/v1/ops/queues/ops/dead/{}/retry", Uuid::new_v4())))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .get(app.url("/v1/ops/queues/nope/dead"))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .get(app.url("/v1/ops/queues/ops/dead?limit=0"))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Retry all of a kind that has none moves nothing; retry all of `probe` moves all three.
    let r: Value = app
        .client
        .post(app.url("/v1/ops/queues/ops/dead/retry-all"))
        .bearer_auth(&auth)
        .json(&json!({"kind": "rollup"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["count"], 0);
    let r: Value = app
        .client
        .post(app.url("/v1/ops/queues/ops/dead/retry-all"))
        .bearer_auth(&auth)
        .json(&json!({"kind": "probe"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["count"], 3);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            count(&app.pool, "SELECT count(*) FROM probe_runs").await == 7
        })
        .await
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            q.stats(queues::OPS).await.unwrap().dead == 3
        })
        .await
    );
    // Purge.
    let r: Value = app
        .client
        .delete(app.url("/v1/ops/queues/ops/dead"))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["count"], 3);
    assert_eq!(q.stats(queues::OPS).await.unwrap().dead, 0);
    // Purged work stays dead: the reconciler does not resurrect it.
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM job_outbox WHERE status = 'pending'"
        )
        .await,
        0
    );
    let overview: Value = app
        .client
        .get(app.url("/v1/ops/queues"))
        .bearer_auth(&auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        overview["data"].as_array().unwrap().len(),
        queues::ALL.len()
    );
    w.shutdown().await;
}

#[tokio::test]
async fn dead_letters_through_the_cli() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            permanent_error: true,
            ..Default::default()
        },
    )
    .await;
    let q = env.queues();
    assert!(
        wait_until(Duration::from_secs(15), || async {
            q.stats(queues::OPS).await.unwrap().dead == 1
        })
        .await
    );
    let (ok, out) = env.workers_cli(&["dlq", "list", "--queue", "ops"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"][0]["id"], id.to_string());
    let (ok, out) = env.workers_cli(&["dlq", "list"]);
    assert!(ok && out.contains(&id.to_string()), "{out}");
    let (ok, out) = env.workers_cli(&["dlq", "show", "--queue", "ops", &id.to_string()]);
    assert!(ok && out.contains("permanent"), "{out}");
    let (ok, out) = env.workers_cli(&["dlq", "retry", "--queue", "ops", &id.to_string()]);
    assert!(ok, "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || async {
            runs(&pool, id).await == 2
        })
        .await
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            q.stats(queues::OPS).await.unwrap().dead == 1
        })
        .await
    );
    let (ok, out) = env.workers_cli(&["dlq", "retry-all", "--queue", "ops", "--kind", "probe"]);
    assert!(ok && out.contains("\"count\": 1"), "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || async {
            runs(&pool, id).await == 3
        })
        .await
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            q.stats(queues::OPS).await.unwrap().dead == 1
        })
        .await
    );
    let (ok, out) = env.workers_cli(&["dlq", "purge", "--queue", "ops"]);
    assert!(ok && out.contains("\"count\": 1"), "{out}");
    assert_eq!(q.stats(queues::OPS).await.unwrap().dead, 0);
    let (ok, _) = env.workers_cli(&["dlq", "show", "--queue", "ops", &id.to_string()]);
    assert!(!ok, "a purged task is gone");
    let (ok, out) = env.workers_cli(&["queues"]);
    assert!(ok && out.contains("\"queue\": \"stripe\""), "{out}");
    w.shutdown().await;
}

#[tokio::test]
async fn a_task_that_crashes_its_process_is_dead_lettered() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            crash: true,
            ..Default::default()
        },
    )
    .await;
    let q = env.queues();
    let started = Instant::now();
    let mut spawned = 0;
    let outbox_dead = || async {
        let (status,): (String,) = sqlx::query_as("SELECT status FROM job_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        status == "dead"
    };
    while !outbox_dead().await {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "never dead-lettered"
        );
        let mut w = env.spawn_worker_process();
        spawned += 1;
        // It crashes as soon as it takes the task (or idles until the lease lets it).
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(8) {
            if w.try_wait().unwrap().is_some() || outbox_dead().await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        kill9(&mut w);
    }
    let dead = q
        .dead_show(queues::OPS, id)
        .await
        .unwrap()
        .expect("in the dead-letter set");
    assert!(
        dead.last_error.contains("lease expired"),
        "{}",
        dead.last_error
    );
    assert_eq!(dead.crashes, 3);
    assert_eq!(runs(&pool, id).await, 3);
    assert!(spawned >= 3);
}

#[tokio::test]
async fn sigterm_finishes_running_jobs_and_a_restart_starts_cleanly() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let mut a = env.spawn_worker_process();
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            sleep_ms: 1500,
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(15), || async {
            runs(&pool, id).await == 1
        })
        .await
    );
    let status = sigterm(&mut a, Duration::from_secs(10)).expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        effects(&pool, id).await,
        1,
        "the running job was not allowed to finish"
    );
    // Same host, same configuration, immediately: starts and works.
    let mut b = env.spawn_worker_process();
    let id2 = durable_probe(&env, &pool, Probe::default()).await;
    assert!(
        wait_until(Duration::from_secs(15), || async {
            effects(&pool, id2).await == 1
        })
        .await
    );
    kill9(&mut b);
    let mut c = env.spawn_worker_process();
    let id3 = durable_probe(&env, &pool, Probe::default()).await;
    assert!(
        wait_until(Duration::from_secs(15), || async {
            effects(&pool, id3).await == 1
        })
        .await
    );
    assert!(c.try_wait().unwrap().is_none(), "restarted worker exited");
    kill9(&mut c);
}

#[tokio::test]
async fn shutdown_hands_back_jobs_that_outlive_the_timeout() {
    let mut env = Env::new().await;
    env.set("SHUTDOWN_TIMEOUT_SECS", "1");
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            sleep_ms: 4000,
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            runs(&pool, id).await == 1
        })
        .await
    );
    let t = Instant::now();
    w.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(4));
    let s = env.queues().stats(queues::OPS).await.unwrap();
    assert_eq!((s.ready, s.in_flight), (1, 0), "not handed back: {s:?}");
    let w = start_worker(&env).await;
    assert!(
        wait_until(Duration::from_secs(15), || async {
            effects(&pool, id).await == 1
        })
        .await
    );
    w.shutdown().await;
}

#[tokio::test]
async fn worker_metrics_show_queue_counts_and_outcomes() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    let id = durable_probe(&env, &pool, Probe::default()).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            effects(&pool, id).await == 1
        })
        .await
    );
    workers::server::record_queue_gauges(&env.queues()).await;
    let text = reqwest::get(format!("http://{}/metrics", w.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in [
        "queue_ready{",
        "queue_dead{",
        "queue_in_flight{",
        "queue_oldest_ready_age_seconds{",
        "jobs_total{",
        "job_duration_seconds_bucket{",
    ] {
        assert!(text.contains(m), "{m} missing");
    }
    w.shutdown().await;
}
