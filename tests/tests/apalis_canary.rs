//! Canary for the apalis-redis 1.0.0 defects that the queue layer in `jobs/` works around.
//!
//! RetentionOS pins `apalis`/`apalis-redis` `=1.0.0` but does not run its jobs on the
//! apalis-redis backend: `jobs/` has its own hardened Redis queue, because of defects verified
//! in 1.0.0 (README, "The job platform", lists them). Each test below reproduces one of
//! those defects against the real, pinned crate and asserts that the defect is *still there*.
//!
//! A failing test here is good news: upstream fixed that defect (or the pin moved), and the
//! matching workaround in `jobs/` can be reconsidered. It is not a regression in our code.
//!
//! Covered: defect 1 (a large due backlog kills the worker), defect 3 (idempotency keys are
//! deleted at once when `Config::idempotency_ttl` is `None`) and defect 6 (`connect()` keeps
//! redis-rs's 500 ms response timeout).
//!
//! The tests use the Redis at `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each with
//! its own random queue name, and delete their keys at the end; anything that blocks Redis
//! (`DEBUG SLEEP`) runs on a throwaway `redis-server` child process instead. Every test is
//! bounded by timeouts, all far above what the work takes even on a busy machine: they only
//! turn a hang into a failure, they never decide an outcome.

use std::{
    future::Future,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apalis::prelude::{BoxDynError, TaskBuilder, TaskSink, WorkerBuilder, WorkerContext};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use redis::RedisResult;
use shared::redis_conn::Redis;
use uuid::Uuid;

/// More due tasks than Lua's `unpack` accepts (about 8,000 on Redis 7).
const BACKLOG: u32 = 20_000;
/// Tasks per `push_bulk` call (one `batch_push.lua` invocation each).
const PUSH_CHUNK: usize = 2_000;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A queue name no other test (or run) uses.
fn unique_queue(defect: &str) -> String {
    format!("rtos-apalis-canary-{defect}-{}", Uuid::new_v4().simple())
}

/// Our own connection (`shared::redis_conn`), with timeouts long enough that defect 6 cannot
/// mask the defect a test is about.
fn patient_conn(url: &str) -> ConnectionManager {
    Redis::connect_lazy(url, "", Duration::from_secs(10))
        .expect("valid Redis URL")
        .conn
}

/// Runs `body` under `limit`, then always deletes the queue's keys, then hands back the
/// body's outcome for the caller to assert on (so a failed assertion leaves no keys behind).
async fn with_queue<T, Fut>(queue: &str, limit: Duration, body: Fut) -> T
where
    Fut: Future<Output = Result<T, BoxDynError>>,
{
    let outcome = tokio::time::timeout(limit, body).await;
    let mut conn = patient_conn(&redis_url());
    let cleanup =
        tokio::time::timeout(Duration::from_secs(10), delete_queue(&mut conn, queue)).await;
    let value = outcome
        .unwrap_or_else(|_| panic!("canary body did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("canary body failed: {e}"));
    cleanup.expect("cleanup timed out").expect("cleanup failed");
    value
}

/// Deletes every key of `queue` (`{queue}:*`, including the per-task `{queue}:meta:{id}`
/// hashes) and its entry in the global queue registry written by `register_worker.lua`.
async fn delete_queue(conn: &mut ConnectionManager, queue: &str) -> RedisResult<()> {
    let pattern = format!("{queue}:*");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5_000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(conn)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    redis::cmd("ZREM")
        .arg("core:apalis:queues:list")
        .arg(format!("{queue}:workers"))
        .query_async::<()>(conn)
        .await
}

async fn zcard(conn: &mut ConnectionManager, key: &str) -> RedisResult<u64> {
    redis::cmd("ZCARD").arg(key).query_async(conn).await
}

async fn llen(conn: &mut ConnectionManager, key: &str) -> RedisResult<u64> {
    redis::cmd("LLEN").arg(key).query_async(conn).await
}

/// What defect 1's reproduction observed.
#[derive(Debug)]
struct BacklogRun {
    scheduled_before: u64,
    active_before: u64,
    /// `Some(result of Worker::run)`, `None` if the worker was still running at the deadline.
    worker: Option<Result<(), String>>,
    worker_elapsed: Duration,
    scheduled_after: u64,
    active_after: u64,
}

/// Defect 1: `fetch_next.lua` promotes every due scheduled id with `rpush(.., unpack(ids))`,
/// so a backlog of more than ~8,000 due tasks makes the script fail ("too many results to
/// unpack") and the worker stops with a backend error, leaving the backlog stuck.
///
/// Pushes 20,000 tasks through apalis-redis's own sink with no worker running (they land in
/// `{queue}:scheduled`), then runs one worker.
///
/// When this test fails, upstream fixed the defect and our workaround in jobs/ (bounded,
/// chunked promotion of due tasks) can be reconsidered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_1_a_20k_due_backlog_kills_the_worker() {
    let queue = unique_queue("d1");
    let config = Config::default().queue(&queue);
    let run = with_queue(&queue, Duration::from_secs(300), async {
        let mut conn = patient_conn(&redis_url());
        let mut storage = RedisStorage::<u32>::new(conn.clone()).with_config(config.clone());
        let ids: Vec<u32> = (0..BACKLOG).collect();
        for chunk in ids.chunks(PUSH_CHUNK) {
            storage.push_bulk(chunk.to_vec()).await?;
        }
        let scheduled_before = zcard(&mut conn, &config.scheduled_jobs_set()).await?;
        let active_before = llen(&mut conn, &config.active_jobs_list()).await?;

        // If upstream is fixed, the first task stops the worker so the test ends promptly.
        async fn handler(_task: u32, worker: WorkerContext) {
            let _ = worker.stop();
        }
        let worker = WorkerBuilder::new(format!("canary-{}", Uuid::new_v4().simple()))
            .backend(storage)
            .build(handler);
        // The defect kills the worker on its first fetch; a fixed one stops at the first
        // task. The deadline only bounds a worker that neither fails nor fetches.
        let started = Instant::now();
        let worker = tokio::time::timeout(Duration::from_secs(120), worker.run())
            .await
            .ok()
            .map(|r| r.map_err(|e| e.to_string()));
        let worker_elapsed = started.elapsed();

        Ok(BacklogRun {
            scheduled_before,
            active_before,
            worker,
            worker_elapsed,
            scheduled_after: zcard(&mut conn, &config.scheduled_jobs_set()).await?,
            active_after: llen(&mut conn, &config.active_jobs_list()).await?,
        })
    })
    .await;
    println!(
        "defect 1: scheduled/active before the worker {}/{}, after {}/{}; \
         Worker::run after {:?}: {:?}",
        run.scheduled_before,
        run.active_before,
        run.scheduled_after,
        run.active_after,
        run.worker_elapsed,
        run.worker
    );

    assert_eq!(
        (run.scheduled_before, run.active_before),
        (u64::from(BACKLOG), 0),
        "pushes no longer land in {{queue}}:scheduled; re-check the notes on the layout"
    );
    let error = match &run.worker {
        Some(Err(error)) => error,
        other => panic!(
            "defect 1 looks FIXED upstream (worker result: {other:?}): a {BACKLOG}-task due \
             backlog no longer kills the worker; reconsider the chunked promotion in jobs/"
        ),
    };
    assert!(
        error.contains("too many results to unpack"),
        "the worker failed, but not with the unpack error of defect 1: {error}"
    );
    assert_eq!(
        (run.scheduled_after, run.active_after),
        (u64::from(BACKLOG), 0),
        "the failed fetch should leave the whole backlog stuck in {{queue}}:scheduled"
    );
}

/// What defect 3's reproduction observed for one `idempotency_ttl`.
#[derive(Debug)]
struct IdempotencyRun {
    /// `TTL {queue}:idempotency:{key}` right after the first push (-2: the key is gone).
    key_ttl_after_push: i64,
    /// Tasks stored after pushing two tasks with the same idempotency key.
    tasks_stored: u64,
}

/// Pushes two tasks with the same idempotency key through apalis-redis's sink.
async fn push_twice_with_one_key(
    queue: &str,
    ttl: Option<Duration>,
) -> Result<IdempotencyRun, BoxDynError> {
    let config = Config::default().queue(queue).idempotency_ttl(ttl);
    let mut conn = patient_conn(&redis_url());
    let mut storage = RedisStorage::<u32>::new(conn.clone()).with_config(config.clone());
    let key = "canary-key";
    let idempotency_key = format!("{}:{key}", config.idempotency_key_set());

    storage
        .push_task(TaskBuilder::new(1).idempotency_key(key).build())
        .await?;
    let key_ttl_after_push: i64 = redis::cmd("TTL")
        .arg(&idempotency_key)
        .query_async(&mut conn)
        .await?;
    storage
        .push_task(TaskBuilder::new(2).idempotency_key(key).build())
        .await?;
    let tasks_stored: u64 = redis::cmd("HLEN")
        .arg(config.job_data_hash())
        .query_async(&mut conn)
        .await?;
    Ok(IdempotencyRun {
        key_ttl_after_push,
        tasks_stored,
    })
}

/// Defect 3: with `Config::idempotency_ttl = None` (the default, documented as "keys do not
/// expire"), `batch_push.lua` runs `EXPIRE key 0`, so the idempotency key is deleted right
/// after the push and a second task with the same key is accepted: no de-duplication at all.
/// A control queue with `Some(1 h)` shows the same two pushes being de-duplicated.
///
/// When this test fails, upstream fixed the defect and our workaround in jobs/ (always
/// setting an explicit idempotency TTL) can be reconsidered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_3_idempotency_key_is_deleted_without_a_ttl() {
    let queue = unique_queue("d3");
    let control_queue = unique_queue("d3-control");
    let no_ttl = with_queue(
        &queue,
        Duration::from_secs(60),
        push_twice_with_one_key(&queue, None),
    )
    .await;
    let with_ttl = with_queue(
        &control_queue,
        Duration::from_secs(60),
        push_twice_with_one_key(&control_queue, Some(Duration::from_secs(3_600))),
    )
    .await;
    println!("defect 3: idempotency_ttl None: {no_ttl:?}; Some(1 h): {with_ttl:?}");

    assert!(
        (1..=3_600).contains(&with_ttl.key_ttl_after_push) && with_ttl.tasks_stored == 1,
        "control failed (with a TTL the key must live and de-duplicate): {with_ttl:?}; \
         the canary itself needs fixing"
    );
    assert!(
        no_ttl.key_ttl_after_push == -2 && no_ttl.tasks_stored == 2,
        "defect 3 looks FIXED upstream: with idempotency_ttl = None the key now survives the \
         push or de-duplicates ({no_ttl:?}); reconsider the forced TTL in jobs/"
    );
}

/// A `redis-server` child on a free loopback port, with `DEBUG` enabled for local clients,
/// no persistence, killed on drop. For anything that blocks Redis.
struct ThrowawayRedis {
    child: Child,
    port: u16,
}

impl ThrowawayRedis {
    /// The port is free when probed but not held until `redis-server` binds it, so another
    /// process could still take it in between: then our server exits, or whatever answers on
    /// the port is not our child (`INFO server` names the server's pid). Either way, try
    /// again on another port.
    async fn start() -> Self {
        for _ in 0..20 {
            // Below the ephemeral range, so no client socket takes it meanwhile.
            let port = harness::free_port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--enable-debug-command", "local"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            let deadline = Instant::now() + Duration::from_secs(60);
            let accepting = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break true;
                }
                assert!(
                    Instant::now() < deadline,
                    "throwaway redis-server did not start"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if accepting && server_pid(port).await == Some(child.id()) {
                return Self { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no throwaway redis-server of ours after 20 ports");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The pid the Redis server on `port` reports (`None` if it is not a Redis server).
async fn server_pid(port: u16) -> Option<u32> {
    let url = format!("redis://127.0.0.1:{port}");
    let mut conn = Redis::connect_lazy(&url, "", Duration::from_secs(10))
        .ok()?
        .conn;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DEBUG SLEEP secs` through `conn`: the result and how long the client waited for it.
async fn debug_sleep(conn: &mut ConnectionManager, secs: u64) -> (RedisResult<()>, Duration) {
    let started = Instant::now();
    let result = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(secs)
        .query_async::<()>(conn)
        .await;
    (result, started.elapsed())
}

/// How long the server sleeps before the reply that `apalis_redis::connect()` gives up on:
/// ten times the 500 ms default, so that a busy machine, which can only make the client's
/// timeout fire late, cannot make it fire after the reply.
const SLOW_REPLY_SECS: u64 = 5;

/// Defect 6: `apalis_redis::connect()` builds its `ConnectionManager` with redis-rs's default
/// 500 ms response timeout, so any reply slower than that (here a 5 s `DEBUG SLEEP`) is an
/// error, which in a worker is a fatal backend error (upstream apalis-redis #76). A 1 s
/// `DEBUG SLEEP` through our `shared::redis_conn::Redis` (5 s timeouts) succeeds.
///
/// The client's give-up time is checked against bounds a loaded machine cannot cross: at
/// least the 500 ms default (a timeout never fires early) and far below the reply (it fired,
/// it did not wait). The measured value is printed.
///
/// When this test fails, upstream fixed the defect and our workaround in jobs/ (building
/// the connection ourselves with 5 s timeouts) can be reconsidered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_6_connect_gives_up_on_a_slow_reply() {
    let server = ThrowawayRedis::start().await;
    let url = server.url();
    let (ours, apalis) = tokio::time::timeout(Duration::from_secs(120), async {
        // The control first: `DEBUG SLEEP` blocks the whole server.
        let mut our_conn = Redis::connect_lazy(&url, "", Duration::from_secs(5))
            .expect("valid Redis URL")
            .conn;
        let ours = debug_sleep(&mut our_conn, 1).await;

        // The handshake and the PING run under the same short timeouts (1 s to connect,
        // 500 ms per reply), which a busy moment can exceed: wait until the connection works
        // (the outer timeout bounds this); what is under test is the slow reply below.
        let mut apalis_conn = loop {
            match apalis_redis::connect(url.as_str()).await {
                Ok(conn) => break conn,
                Err(e) => eprintln!("apalis_redis::connect: {e}; again"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        while let Err(e) = redis::cmd("PING")
            .query_async::<String>(&mut apalis_conn)
            .await
        {
            eprintln!("PING through apalis_redis::connect: {e}; again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let apalis = debug_sleep(&mut apalis_conn, SLOW_REPLY_SECS).await;
        (ours, apalis)
    })
    .await
    .expect("defect 6 canary did not finish within 120 s");
    drop(server);
    println!(
        "defect 6: apalis_redis::connect: {:?} after {:?} ({SLOW_REPLY_SECS} s reply); \
         shared::redis_conn::Redis (5 s): {:?} after {:?} (1 s reply)",
        apalis.0, apalis.1, ours.0, ours.1
    );

    assert!(
        ours.0.is_ok() && ours.1 >= Duration::from_secs(1),
        "control failed: DEBUG SLEEP 1 through our 5 s connection must succeed: {ours:?}"
    );
    let reply = Duration::from_secs(SLOW_REPLY_SECS);
    match &apalis.0 {
        Err(e) if e.is_timeout() => assert!(
            apalis.1 >= Duration::from_millis(500) && apalis.1 < reply - Duration::from_secs(1),
            "timed out after {:?}: not the 500 ms default (between 500 ms and {:?} here)",
            apalis.1,
            reply - Duration::from_secs(1)
        ),
        other => panic!(
            "defect 6 looks FIXED upstream: a {SLOW_REPLY_SECS} s reply through \
             apalis_redis::connect() gave {other:?} after {:?}; reconsider building the \
             connection ourselves in jobs/",
            apalis.1
        ),
    }
}
