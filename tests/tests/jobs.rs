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

/// Opens a probe gate: every probe waiting on `name` goes on to its effect.
async fn open_gate(pool: &PgPool, name: &str) {
    sqlx::query("INSERT INTO probe_gates (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
}

/// Nothing of the ops queue is waiting, running or scheduled: every task pushed so far has
/// been settled (done or dead). The point after which "it did not run again" can be checked.
async fn ops_queue_idle(env: &Env) -> bool {
    let s = env.queues().stats(queues::OPS).await.unwrap();
    s.ready == 0 && s.in_flight == 0 && s.scheduled == 0
}

/// A deadline for conditions that normally hold within a second or two: generous, because a
/// loaded 2-core CI machine can be an order of magnitude slower (`wait_until` returns as soon
/// as the condition holds, so this costs nothing when things are fast).
const PATIENCE: Duration = Duration::from_secs(60);

async fn outbox_status(pool: &PgPool, id: Uuid) -> String {
    let (status,): (String,) = sqlx::query_as("SELECT status FROM job_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    status
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
    let pool = env.pool().await;
    // The scheduler's reconcile, session expiry and retention ticks share the ops queue: every other
    // completion is a probe.
    // A tick can be pushed at any moment (an hour boundary), so the count is read together
    // with the queue, and the drain is over when every pushed task has completed.
    let ticks = || async {
        count(
            &pool,
            "SELECT count(*) FROM scheduler_runs WHERE duty IN ('reconcile', 'expire_sessions', 'retention') AND finished_at IS NOT NULL",
        )
        .await
    };
    let drained = wait_until(Duration::from_secs(600), || async {
        let s = q.stats(queues::OPS).await.unwrap();
        s.ready == 0
            && s.in_flight == 0
            && s.scheduled == 0
            && s.completed_total as i64 == 100_000 + ticks().await
    })
    .await;
    let s = q.stats(queues::OPS).await.unwrap();
    assert!(drained, "not drained: {s:?}, {} ticks", ticks().await);
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
    assert!(wait_until(PATIENCE, || async { effects(&pool, id1).await == 1 }).await);
    // Everything pushed has been settled: had the duplicate been queued, it would have run.
    assert!(wait_until(PATIENCE, || ops_queue_idle(&env)).await);
    assert_eq!(count(&pool, "SELECT count(*) FROM probe_runs").await, 1);
    w.shutdown().await;
}

#[tokio::test]
async fn kill_9_mid_job_another_worker_completes_it_once() {
    let mut env = Env::new().await;
    env.short_lease();
    let pool = env.pool().await;
    let mut a = env.spawn_worker_process();
    // Held at a gate: the job is certainly running, not done, when its process dies.
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            gate: Some("after-kill".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        wait_until(PATIENCE, || async { runs(&pool, id).await == 1 }).await,
        "job never started"
    );
    kill9(&mut a);
    assert_eq!(effects(&pool, id).await, 0);
    open_gate(&pool, "after-kill").await;
    let mut b = env.spawn_worker_process();
    // Lease is 3 s: the job comes back and another worker completes it.
    assert!(wait_until(PATIENCE, || async { effects(&pool, id).await == 1 }).await);
    assert!(runs(&pool, id).await >= 2);
    // The effect is written by the handler, the outbox row settled right after it by the
    // runtime: wait for the settle instead of reading in between.
    let status = || outbox_status(&pool, id);
    wait_until(PATIENCE, || async { status().await == "done" }).await;
    assert_eq!(status().await, "done");
    // Settled in the queue too (acknowledged, not left to run again), and applied once.
    assert!(wait_until(PATIENCE, || ops_queue_idle(&env)).await);
    assert_eq!(effects(&pool, id).await, 1);
    assert_eq!(env.queues().stats(queues::OPS).await.unwrap().dead, 0);
    kill9(&mut b);
}

#[tokio::test]
async fn two_worker_processes_run_one_rollup_per_tick() {
    let mut env = Env::new().await;
    // A generous shutdown timeout: a stopped process finishes every rollup it has leased.
    env.set("ROLLUP_INTERVAL_SECS", "1")
        .set("SHUTDOWN_TIMEOUT_SECS", "60");
    let pool = env.pool().await;
    let mut a = env.spawn_worker_process();
    let mut b = env.spawn_worker_process();
    // Both processes tick together for at least four periods (however slowly they start).
    let periods = || async {
        count(
            &pool,
            "SELECT count(DISTINCT period) FROM scheduler_runs WHERE duty = 'rollup'",
        )
        .await
    };
    assert!(
        wait_until(PATIENCE, || async { periods().await >= 5 }).await,
        "too few ticks: {}",
        periods().await
    );
    // SIGTERM, not kill -9: a leased rollup always runs to its start (killed between its
    // lease and its start, it would leave a hole until its lease expired). Tasks are leased
    // in period order, so the periods run form an unbroken prefix of those pushed.
    for p in [&mut a, &mut b] {
        let status = sigterm(p, Duration::from_secs(120)).expect("exited after SIGTERM");
        assert!(status.success(), "{status:?}");
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT period, count(*) FROM scheduler_runs WHERE duty = 'rollup' GROUP BY period ORDER BY period",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(rows.len() >= 5, "too few ticks: {rows:?}");
    for (period, n) in &rows {
        assert_eq!(*n, 1, "period {period} ran {n} times: {rows:?}");
    }
    // Ticks are consecutive: none skipped (a stalled process catches up on the periods it
    // missed; see workers::scheduler).
    for w in rows.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{rows:?}");
    }
    let workers: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT worker FROM scheduler_runs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!workers.is_empty());
}

/// Enqueues `count` durable probes through the ops API; returns their ids.
async fn api_probes(app: &TestApp, count: usize, probe: Value) -> Vec<Uuid> {
    let res = app
        .client
        .post(app.url("/v1/ops/probes"))
        .bearer_auth(app.ops_token())
        .json(&json!({ "count": count, "probe": probe }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    let ids: Vec<Uuid> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), count);
    ids
}

async fn effects_of(pool: &PgPool, ids: &[Uuid]) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM probe_effects WHERE job_id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap();
    n
}

async fn started_of(pool: &PgPool, ids: &[Uuid]) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(DISTINCT job_id) FROM probe_runs WHERE job_id = ANY($1)")
            .bind(ids)
            .fetch_one(pool)
            .await
            .unwrap();
    n
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
    // Work in three known states at the moment Redis is wiped:
    // 1. done: 100 probes that have all finished;
    let done = api_probes(&app, 100, json!({})).await;
    assert!(
        wait_until(PATIENCE, || async {
            effects_of(&app.pool, &done).await == 100
        })
        .await
    );
    // 2. running and 3. waiting in Redis: 200 probes held at a gate that opens only after the
    //    restart, so none of them can finish before the wipe (the ops queue runs 64 at once:
    //    some are running, the rest are queued).
    let held = api_probes(&app, 200, json!({ "gate": "after-restart" })).await;
    let q = env.queues();
    let (running, waiting, leased) = (
        || async { started_of(&app.pool, &held).await },
        || async { q.stats(queues::OPS).await.unwrap().ready },
        || async { q.stats(queues::OPS).await.unwrap().in_flight as i64 },
    );
    // Every leased probe has started (written its probe_runs row): a task leased but still
    // on its way to the handler when Redis goes is neither "started" nor "only in Redis"
    // (the worker holds it and runs it), so the counts below are exact only from here.
    assert!(
        wait_until(PATIENCE, || async {
            let r = running().await;
            r >= 10 && waiting().await >= 10 && r == leased().await
        })
        .await,
        "the held work never reached the state to wipe: {} running, {} waiting",
        running().await,
        waiting().await
    );
    redis.stop();
    // Read while Redis is down: nothing can be leased, so this is exactly the work that had
    // started; the rest existed only in Redis (and in the outbox).
    let started_at_wipe = running().await;
    redis.start_again();
    assert_eq!(
        effects_of(&app.pool, &held).await,
        0,
        "a held probe finished before its gate opened"
    );
    let queued_at_wipe = 200 - started_at_wipe;
    eprintln!("wiped Redis with 100 done, {started_at_wipe} running, {queued_at_wipe} queued");
    open_gate(&app.pool, "after-restart").await;
    // Every acknowledged probe is done, exactly once (probe_effects has one row per job at
    // most; every outbox row is done, none dead).
    let all = wait_until(Duration::from_secs(180), || async {
        effects_of(&app.pool, &held).await == 200
    })
    .await;
    assert!(
        all,
        "only {} of 200 held probes done",
        effects_of(&app.pool, &held).await
    );
    assert_eq!(effects_of(&app.pool, &done).await, 100);
    assert!(
        wait_until(PATIENCE, || async {
            count(
                &app.pool,
                "SELECT count(*) FROM job_outbox WHERE status <> 'done'",
            )
            .await
                == 0
        })
        .await,
        "{} outbox rows not done",
        count(
            &app.pool,
            "SELECT count(*) FROM job_outbox WHERE status <> 'done'"
        )
        .await
    );
    assert_eq!(
        count(
            &app.pool,
            "SELECT count(*) FROM job_outbox WHERE kind = 'probe'"
        )
        .await,
        300
    );
    // The queued ones could only run again by being restored from the outbox. A reconcile
    // run records its count when it finishes, which can be after the work it restored is
    // done: wait for the record, don't read it once.
    let restored = || async {
        count(&app.pool, "SELECT coalesce(sum((detail->>'restored')::bigint), 0)::bigint FROM scheduler_runs WHERE duty = 'reconcile'").await
    };
    wait_until(PATIENCE, || async { restored().await >= queued_at_wipe }).await;
    let restored = restored().await;
    assert!(
        restored >= queued_at_wipe,
        "the reconciler restored {restored}, fewer than the {queued_at_wipe} queued at the wipe"
    );
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
    assert!(wait_until(PATIENCE, || async { effects(&pool, id).await == 1 }).await);
    // The schedule as the queue recorded it: when each attempt became due and when the one
    // before it failed, read from the task by the worker (no wall-clock gaps, which a loaded
    // machine stretches at will).
    type Row = (
        i32,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT attempt, started_at, due_at, prev_failed_at FROM probe_runs
         WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "{rows:?}"
    );
    assert!(
        rows[0].3.is_none(),
        "a first attempt has no failure before it"
    );
    let mut delays = Vec::new();
    for (i, nominal) in [300.0, 600.0, 1200.0].iter().enumerate() {
        let (_, started, due, prev_failed) = rows[i + 1];
        let (due, prev_failed) = (due.unwrap(), prev_failed.unwrap());
        // The chosen delay: nominal ±20 % jitter (exactly what the runtime picked).
        let delay = (due - prev_failed).num_milliseconds() as f64;
        assert!(
            delay >= nominal * 0.8 - 1.0 && delay <= nominal * 1.2 + 1.0,
            "attempt {}: delay {delay} ms for nominal {nominal}: {rows:?}",
            i + 2
        );
        // Never started before it was due (same host clock; rounding to the millisecond).
        assert!(
            started >= due - chrono::Duration::milliseconds(1),
            "attempt {} started before it was due: {rows:?}",
            i + 2
        );
        // It failed after the previous attempt started.
        assert!(prev_failed >= rows[i].1 - chrono::Duration::milliseconds(1));
        delays.push(delay);
    }
    // Exponential: with ±20 % jitter, the third delay is always more than twice the first.
    assert!(delays[2] > delays[0] * 2.0, "not exponential: {delays:?}");
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
    assert!(wait_until(PATIENCE, || async { runs(&pool, id).await == 1 }).await);
    w.shutdown().await;
    let s = env.queues().stats(queues::OPS).await.unwrap();
    assert_eq!(s.scheduled, 1, "the retry is not scheduled durably: {s:?}");
    let w = start_worker(&env).await;
    assert!(wait_until(PATIENCE, || async { effects(&pool, id).await == 1 }).await);
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
        wait_until(PATIENCE, || async {
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
    assert!(wait_until(PATIENCE, || async { runs(&app.pool, one).await == 2 }).await);
    assert!(
        wait_until(PATIENCE, || async {
            q.stats(queues::OPS).await.unwrap().dead == 3
        })
        .await
    );
    // Settled again (dead) and nothing else pending: it did not run a third time.
    assert!(wait_until(PATIENCE, || ops_queue_idle(&app.env)).await);
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
        wait_until(PATIENCE, || async {
            count(&app.pool, "SELECT count(*) FROM probe_runs").await == 7
        })
        .await
    );
    assert!(
        wait_until(PATIENCE, || async {
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
        wait_until(PATIENCE, || async {
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
    assert!(wait_until(PATIENCE, || async { runs(&pool, id).await == 2 }).await);
    assert!(
        wait_until(PATIENCE, || async {
            q.stats(queues::OPS).await.unwrap().dead == 1
        })
        .await
    );
    let (ok, out) = env.workers_cli(&["dlq", "retry-all", "--queue", "ops", "--kind", "probe"]);
    assert!(ok && out.contains("\"count\": 1"), "{out}");
    assert!(wait_until(PATIENCE, || async { runs(&pool, id).await == 3 }).await);
    assert!(
        wait_until(PATIENCE, || async {
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
    let mut env = Env::new().await;
    env.short_lease();
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
    let outbox_dead = || async { outbox_status(&pool, id).await == "dead" };
    while !outbox_dead().await {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never dead-lettered ({spawned} workers spawned)"
        );
        let mut w = env.spawn_worker_process();
        spawned += 1;
        // It crashes as soon as it takes the task (which it can once the last lease has
        // expired), or it is the one that finds the crash budget used up and dead-letters it.
        // Never killed on a timer: a kill between taking the task and running it would be a
        // crash without a run.
        let t = Instant::now();
        loop {
            if w.try_wait().unwrap().is_some() || outbox_dead().await {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "worker {spawned} neither crashed nor dead-lettered the task"
            );
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
    let mut env = Env::new().await;
    // Far longer than the job is held: the shutdown waits for it rather than handing it back.
    env.set("SHUTDOWN_TIMEOUT_SECS", "120");
    let pool = env.pool().await;
    // A worker whose log the test reads, to know when it has taken the signal.
    let mut a = env
        .command(&harness::bin_path("rtos-test-workers"))
        .env("ALLOW_FAULT_INJECTION", "1")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn worker process");
    // (The log goes to stdout.)
    let signalled = log_watch(a.stdout.take().unwrap(), "shutdown signal received");
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            gate: Some("after-sigterm".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(wait_until(PATIENCE, || async { runs(&pool, id).await == 1 }).await);
    // SIGTERM while the job is certainly running; the gate opens only once the worker has
    // taken the signal, so the job can only finish during the shutdown.
    assert!(harness::send_sigterm(&a), "kill -TERM failed");
    signalled
        .recv_timeout(PATIENCE)
        .expect("the worker never logged the shutdown signal");
    assert!(
        a.try_wait().unwrap().is_none(),
        "the worker exited with a job still running"
    );
    assert_eq!(effects(&pool, id).await, 0);
    open_gate(&pool, "after-sigterm").await;
    let status = sigterm(&mut a, Duration::from_secs(120)).expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        effects(&pool, id).await,
        1,
        "the running job was not allowed to finish"
    );
    assert_eq!(
        runs(&pool, id).await,
        1,
        "the job was handed back, not finished"
    );
    // Same host, same configuration, immediately: starts and works.
    let mut b = env.spawn_worker_process();
    let id2 = durable_probe(&env, &pool, Probe::default()).await;
    assert!(wait_until(PATIENCE, || async { effects(&pool, id2).await == 1 }).await);
    kill9(&mut b);
    let mut c = env.spawn_worker_process();
    let id3 = durable_probe(&env, &pool, Probe::default()).await;
    assert!(wait_until(PATIENCE, || async { effects(&pool, id3).await == 1 }).await);
    assert!(c.try_wait().unwrap().is_none(), "restarted worker exited");
    kill9(&mut c);
}

/// Reads a child's log to its end on a thread (so the child never blocks on a full pipe);
/// the receiver gets one message when a line containing `needle` appears.
fn log_watch(
    log: impl std::io::Read + Send + 'static,
    needle: &'static str,
) -> std::sync::mpsc::Receiver<()> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines() {
            let Ok(line) = line else { break };
            if line.contains(needle) {
                let _ = tx.send(());
            }
        }
    });
    rx
}

#[tokio::test]
async fn shutdown_hands_back_jobs_that_outlive_the_timeout() {
    let mut env = Env::new().await;
    env.set("SHUTDOWN_TIMEOUT_SECS", "1");
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    // Held at a gate that stays shut through the shutdown: it outlives any timeout.
    let id = durable_probe(
        &env,
        &pool,
        Probe {
            gate: Some("after-handback".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(wait_until(PATIENCE, || async { runs(&pool, id).await == 1 }).await);
    // The shutdown returns (after its 1 s timeout) instead of waiting for the job; a shutdown
    // that waited would never return, so the bound only needs to tell "returned" from "hung".
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), w.shutdown())
        .await
        .expect("shutdown waited for a job past its timeout");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "did not wait for the timeout"
    );
    let s = env.queues().stats(queues::OPS).await.unwrap();
    assert_eq!((s.ready, s.in_flight), (1, 0), "not handed back: {s:?}");
    assert_eq!(effects(&pool, id).await, 0);
    open_gate(&pool, "after-handback").await;
    let w = start_worker(&env).await;
    assert!(wait_until(PATIENCE, || async { effects(&pool, id).await == 1 }).await);
    w.shutdown().await;
}

#[tokio::test]
async fn worker_metrics_show_queue_counts_and_outcomes() {
    let env = Env::new().await;
    let pool = env.pool().await;
    let w = start_worker(&env).await;
    let id = durable_probe(&env, &pool, Probe::default()).await;
    assert!(wait_until(PATIENCE, || async { effects(&pool, id).await == 1 }).await);
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

/// Issue 12: leases are renewed while every slot of every worker is busy (the renewal runs
/// beside the apalis workers, not in their poll loop). Two workers, two slots each, 1 s
/// leases, four probes that run 3 s each and two quick ones that make the workers fetch
/// again as soon as a slot frees: had a lease lapsed, that fetch would run its task a
/// second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_every_slot_is_busy() {
    let mut env = Env::new().await;
    env.set("JOB_LEASE_SECS", "1");
    env.set("WORKER_CONCURRENCY", "2");
    let pool = env.pool().await;
    let a = start_worker(&env).await;
    let b = start_worker(&env).await;
    let mut ids = Vec::new();
    for sleep_ms in [3000, 3000, 3000, 3000, 0, 0] {
        ids.push(
            durable_probe(
                &env,
                &pool,
                Probe {
                    sleep_ms,
                    ..Default::default()
                },
            )
            .await,
        );
    }
    assert!(
        wait_until(PATIENCE, || async {
            effects_of(&pool, &ids).await == ids.len() as i64
        })
        .await
    );
    assert!(wait_until(PATIENCE, || ops_queue_idle(&env)).await);
    for id in &ids {
        assert_eq!(
            runs(&pool, *id).await,
            1,
            "{id} ran again: its lease lapsed"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Issue 12: the bulk enqueue. 10,000 durable probes in one request: one outbox row and one
/// Redis task each (distinct ids), in a handful of round trips; a Redis that lost them all
/// gets every one back from the reconciler's bulk push, and a second push changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_enqueue_records_and_pushes_every_task_once() {
    let mut redis = ThrowawayRedis::start();
    let mut env = Env::new().await;
    env.set("REDIS_URL", redis.url());
    let app = TestApp::spawn_with(env.clone()).await;
    let ids = api_probes(&app, 10_000, json!({ "noop": true })).await;
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 10_000);
    let (outbox,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM job_outbox WHERE id = ANY($1) AND status = 'pending' AND kind = 'probe'",
    )
    .bind(&ids)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(outbox, 10_000);
    let q = env.queues();
    assert_eq!(q.stats(queues::OPS).await.unwrap().ready, 10_000);
    assert!(q
        .tasks_exist(queues::OPS, &ids)
        .await
        .unwrap()
        .iter()
        .all(|h| *h));

    // Redis wiped: the reconciler pushes them all back, in bulk, once. (Rows younger than
    // its 2 s grace period are left to the api that is pushing them: wait that out.)
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(q.stats(queues::OPS).await.unwrap().ready, 0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let st = workers::WorkerState::new(env.config()).unwrap();
    let restored = workers::handlers::reconcile::reconcile_outbox(&st)
        .await
        .unwrap();
    assert_eq!(restored, 10_000);
    assert_eq!(q.stats(queues::OPS).await.unwrap().ready, 10_000);
    let again = workers::handlers::reconcile::reconcile_outbox(&st)
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(q.stats(queues::OPS).await.unwrap().ready, 10_000);
    redis.stop();
}

/// The reconciler reads a page of pending outbox rows, then asks Redis which it holds. A
/// task that completes in between is gone from Redis (an ack deletes the task) yet was read
/// as pending: pushing it again made it run twice (seen under CPU pressure in
/// `the_typed_apalis_sink_enqueues_with_every_guarantee`: 2,504 runs of 2,503 tasks, with
/// "reconciler re-enqueued … restored=1"). The push re-reads the outbox first: the completed
/// task stays done, the truly lost one is pushed. Deterministic: the stale page is handed to
/// the push step as the reconciler would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_completed_during_a_reconcile_is_not_pushed_again() {
    use jobs::{JobSink, OutboxEntry, TaskSink};
    let env = Env::new().await;
    let pool = env.pool().await;
    let q = env.queues();
    let mut sink = JobSink::<Probe>::durable(env.job_client(), pool.clone(), None);
    sink.push_bulk(vec![Probe::default(); 2]).await.unwrap();
    let ids = sink.take_pushed();
    let (done, lost) = (ids[0], ids[1]);
    // `done` runs to completion as a worker settles it: outbox first, then the ack.
    let limits = jobs::queue::Limits {
        max_attempts: 5,
        max_crashes: 3,
    };
    let fetched = q
        .fetch(queues::OPS, "w1", 2, Duration::from_secs(30), limits)
        .await
        .unwrap();
    assert_eq!(fetched.tasks.len(), 2);
    sqlx::query("UPDATE job_outbox SET status = 'done', finished_at = now() WHERE id = $1")
        .bind(done)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        q.ack(queues::OPS, "w1", &[done], Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    // `lost`: Redis lost it (its task and lease gone), its outbox row still pending.
    let base = q.base(queues::OPS);
    let mut c = redis::Client::open(env.config().redis_url.expose())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(format!("{base}:t:{lost}"))
        .cmd("ZREM")
        .arg(format!("{base}:inflight"))
        .arg(lost.to_string())
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        q.tasks_exist(queues::OPS, &ids).await.unwrap(),
        [false, false]
    );

    // The page the reconciler read before `done` completed: both pending, neither in Redis.
    let st = workers::WorkerState::new(env.config()).unwrap();
    let page: Vec<OutboxEntry> = ids
        .iter()
        .map(|&id| OutboxEntry {
            id,
            queue: queues::OPS,
            kind: "probe",
            payload: serde_json::to_string(&Probe::default()).unwrap(),
        })
        .collect();
    let pushed = workers::handlers::reconcile::push_still_pending(&st, page)
        .await
        .unwrap();
    assert_eq!(pushed, 1);
    assert_eq!(
        q.tasks_exist(queues::OPS, &ids).await.unwrap(),
        [false, true]
    );
    // The worker then runs the lost one once, and never the completed one again.
    let w = start_worker(&env).await;
    assert!(wait_until(PATIENCE, || async { effects_of(&pool, &[lost]).await == 1 }).await);
    assert!(
        wait_until(PATIENCE, || async {
            let s = env.queues().stats(queues::OPS).await.unwrap();
            s.ready == 0 && s.in_flight == 0
        })
        .await
    );
    assert_eq!(runs(&pool, done).await, 0);
    w.shutdown().await;
}

/// Typed enqueue through apalis's `TaskSink` (jobs::JobSink): durable pushes record their
/// outbox rows first and are idempotent on the apalis task id; a non-durable sink honours
/// the task's `run_at` and idempotency key; the worker runs what was pushed, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_apalis_sink_enqueues_with_every_guarantee() {
    use apalis_core::task::{builder::TaskBuilder, task_id::TaskId};
    use jobs::{JobSink, SinkError, TaskSink, TaskSinkError};

    let env = Env::new().await;
    let pool = env.pool().await;
    let q = env.queues();

    // Durable: push, push_bulk and push_task (with our own id).
    let mut sink = JobSink::<Probe>::durable(env.job_client(), pool.clone(), None);
    sink.push(Probe::default()).await.unwrap();
    sink.push_bulk(vec![Probe::default(); 2500]).await.unwrap();
    let own = Uuid::now_v7();
    let task = || {
        TaskBuilder::new(Probe::default())
            .task_id(TaskId::from_uuid(own))
            .build()
    };
    sink.push_task(task()).await.unwrap();
    let ids = sink.take_pushed();
    assert_eq!(ids.len(), 2502);
    assert_eq!(ids[2501], own);
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        2502
    );
    let (outbox,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM job_outbox WHERE id = ANY($1) AND status = 'pending' AND kind = 'probe' AND queue = 'ops'",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outbox, 2502);
    assert!(q
        .tasks_exist(queues::OPS, &ids)
        .await
        .unwrap()
        .iter()
        .all(|h| *h));
    assert_eq!(q.stats(queues::OPS).await.unwrap().ready, 2502);
    // The same task again: no second outbox row, no second task.
    sink.push_task(task()).await.unwrap();
    assert_eq!(sink.take_pushed(), vec![own]);
    assert_eq!(count(&pool, "SELECT count(*) FROM job_outbox").await, 2502);
    assert_eq!(q.stats(queues::OPS).await.unwrap().ready, 2502);
    // A durable job runs at once and is keyed by its id: delays and keys are refused, and
    // nothing of the refused push is recorded.
    let delayed = TaskBuilder::new(Probe::default())
        .run_after(Duration::from_secs(600))
        .build();
    assert!(matches!(
        sink.push_task(delayed).await,
        Err(TaskSinkError::PushError(SinkError::Unsupported(_)))
    ));
    let keyed = TaskBuilder::new(Probe::default())
        .idempotency_key("k")
        .build();
    assert!(sink.push_task(keyed).await.is_err());
    assert_eq!(count(&pool, "SELECT count(*) FROM job_outbox").await, 2502);

    // Non-durable: the idempotency key de-duplicates, run_at schedules.
    let mut eph = JobSink::<Probe>::new(env.job_client());
    for _ in 0..2 {
        eph.push_task(
            TaskBuilder::new(Probe::default())
                .idempotency_key("sink:once")
                .build(),
        )
        .await
        .unwrap();
    }
    let once = eph.take_pushed();
    assert_eq!(once.len(), 2);
    assert_eq!(once[0], once[1]);
    eph.push_task(
        TaskBuilder::new(Probe::default())
            .run_after(Duration::from_secs(3600))
            .build(),
    )
    .await
    .unwrap();
    let later = eph.take_pushed()[0];
    let s = q.stats(queues::OPS).await.unwrap();
    assert_eq!((s.ready, s.scheduled), (2503, 1));

    // The worker runs every pushed task once; the scheduled one waits.
    let w = start_worker(&env).await;
    let mut all = ids.clone();
    all.push(once[0]);
    assert!(wait_until(PATIENCE, || async { effects_of(&pool, &all).await == 2503 }).await);
    assert!(
        wait_until(PATIENCE, || async {
            let s = env.queues().stats(queues::OPS).await.unwrap();
            s.ready == 0 && s.in_flight == 0
        })
        .await
    );
    assert_eq!(runs(&pool, later).await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM probe_runs").await, 2503);
    assert!(
        wait_until(PATIENCE, || async {
            count(
                &pool,
                "SELECT count(*) FROM job_outbox WHERE status = 'pending'",
            )
            .await
                == 0
        })
        .await
    );
    w.shutdown().await;
}
