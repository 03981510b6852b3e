//! The hardened queue layer over Redis.
//!
//! # Why not the apalis-redis 1.0.0 backend
//! We measured and read apalis-redis 1.0.0 (`tests/tests/apalis_canary.rs` reproduces each
//! defect against the real crate; README "The job platform"): its fetch script promotes every due task with one
//! `unpack()` (a backlog over ~8,000 tasks kills every worker), retries are linear and
//! hard-coded, a task that crashes its process is never counted, idempotency keys vanish
//! without a TTL, `Vacuum` walks the whole data hash in one call, and there are no
//! dead-letter operations. Working around all of that from outside would have meant
//! re-implementing fetch, retry, reclaim, vacuum and dead-letter handling while still
//! fighting the backend's own loops, so the queue is ours: a small set of Lua scripts in
//! `lua/`, each bounded in the work it does per call. The workers still run on apalis (the
//! worker framework): `workers/src/backend.rs` makes this queue an apalis backend.
//!
//! # Layout (queue `q`, deployment prefix `P`; `{q:..}` is a Redis Cluster hash tag)
//! | key | type | meaning |
//! |---|---|---|
//! | `P{q:q}:ready` | list | ready task ids, oldest first |
//! | `P{q:q}:scheduled` | zset | delayed tasks and retries, score = due time (ms) |
//! | `P{q:q}:inflight` | zset | leased tasks, score = lease deadline (ms) |
//! | `P{q:q}:dead` | zset | dead-letter set, score = failure time (ms) |
//! | `P{q:q}:done` | zset | recently finished ids (bounded by age and count) |
//! | `P{q:q}:t:{id}` | hash | kind, payload, attempts, crashes, limits, last error, owner |
//! | `P{q:q}:idem:{key}` | string | idempotency key → task id, always with a TTL |
//! | `P{q:q}:stats` | hash | lifetime counters |

use std::{collections::HashMap, time::Duration};

use redis::Script;
use serde::Serialize;
use shared::redis_conn::Redis;
use uuid::Uuid;

/// Maximum ids one script call promotes, reclaims or scans.
pub const SCRIPT_BOUND: usize = 1000;
/// Maximum finished-task ids kept per queue.
pub const MAX_DONE_RECORDS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected redis reply: {0}")]
    Reply(#[from] redis::ParsingError),
    #[error("payload could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("malformed task record: {0}")]
    Malformed(String),
}

/// Tasks per round trip of a bulk enqueue.
pub const ENQUEUE_BATCH: usize = 1000;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

struct Scripts {
    enqueue: Script,
    fetch: Script,
    ack: Script,
    settle: Script,
    renew: Script,
    dead_retry: Script,
    dead_purge: Script,
}

fn scripts() -> &'static Scripts {
    static S: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    S.get_or_init(|| Scripts {
        enqueue: Script::new(include_str!("lua/enqueue.lua")),
        fetch: Script::new(include_str!("lua/fetch.lua")),
        ack: Script::new(include_str!("lua/ack.lua")),
        settle: Script::new(include_str!("lua/settle.lua")),
        renew: Script::new(include_str!("lua/renew.lua")),
        dead_retry: Script::new(include_str!("lua/dead_retry.lua")),
        dead_purge: Script::new(include_str!("lua/dead_purge.lua")),
    })
}

/// A task ready to enqueue.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub id: Uuid,
    pub kind: &'static str,
    pub payload: String,
    pub run_at_ms: i64,
    pub idempotency_key: Option<String>,
    /// Backed by a `job_outbox` row with the same id.
    pub durable: bool,
}

/// Attempt limits of a queue (the worker's retry policy).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_attempts: u32,
    pub max_crashes: u32,
}

/// A task leased to a worker.
#[derive(Clone, Debug)]
pub struct Leased {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    pub attempt: u32,
    /// Backed by a `job_outbox` row with the same id.
    pub durable: bool,
    /// When the task became due (enqueue time, its scheduled time, or when a retry or an
    /// expired lease put it back), unix ms.
    pub ready_at_ms: Option<i64>,
    /// When its previous attempt failed (transient or permanent error), unix ms.
    pub failed_at_ms: Option<i64>,
}

/// The result of one fetch: leased tasks and the ids dead-lettered while fetching.
#[derive(Debug, Default)]
pub struct Fetched {
    pub tasks: Vec<Leased>,
    pub dead: Vec<Uuid>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Retry,
    Dead,
    Released,
    /// The lease had expired and moved to another worker; nothing was changed.
    Lost,
}

/// The reply of the stats pipeline.
type StatsReply = (
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    Option<String>,
    Vec<(String, f64)>,
    Option<u64>,
);

/// Counts for one queue.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct QueueStats {
    pub queue: String,
    pub ready: u64,
    pub scheduled: u64,
    /// Scheduled tasks whose time has come (promoted on the next fetch).
    pub due: u64,
    pub in_flight: u64,
    pub dead: u64,
    pub done_recent: u64,
    pub completed_total: u64,
    /// Age in seconds of the oldest task waiting to run (ready or due), 0 when none.
    pub oldest_ready_age_seconds: f64,
}

/// A dead-lettered task as ops see it.
#[derive(Clone, Debug, Serialize)]
pub struct DeadTask {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub last_error: String,
    pub attempts: u32,
    pub crashes: u32,
    pub failed_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub durable: bool,
}

/// One page of the dead-letter set, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct DeadPage {
    pub data: Vec<DeadTask>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Handle to every queue of this deployment.
#[derive(Clone, Debug)]
pub struct Queues {
    redis: Redis,
}

impl Queues {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Base key of a queue (with a Redis Cluster hash tag).
    pub fn base(&self, queue: &str) -> String {
        format!("{}{{q:{}}}", self.redis.prefix, queue)
    }

    fn task_key(&self, queue: &str, id: &str) -> String {
        format!("{}:t:{}", self.base(queue), id)
    }

    fn conn(&self) -> redis::aio::ConnectionManager {
        self.redis.conn.clone()
    }

    fn enqueue_invocation(
        &self,
        queue: &str,
        t: &NewTask,
        idem_ttl: Duration,
        now: i64,
    ) -> redis::ScriptInvocation<'static> {
        let mut inv = scripts().enqueue.prepare_invoke();
        inv.key(self.base(queue))
            .arg(t.id.to_string())
            .arg(t.kind)
            .arg(&t.payload)
            .arg(0)
            .arg(0)
            .arg(t.run_at_ms)
            .arg(now)
            .arg(t.idempotency_key.as_deref().unwrap_or(""))
            .arg(idem_ttl.as_secs().max(1))
            .arg(if t.durable { "1" } else { "0" });
        inv
    }

    /// Enqueues one task. Returns `(created, id)`: when the idempotency key or the task id
    /// is already known, nothing is enqueued and the existing id is returned.
    pub async fn enqueue(
        &self,
        queue: &str,
        task: &NewTask,
        idem_ttl: Duration,
    ) -> Result<(bool, Uuid), QueueError> {
        let (created, id): (i64, String) = self
            .enqueue_invocation(queue, task, idem_ttl, now_ms())
            .invoke_async(&mut self.conn())
            .await?;
        let id = Uuid::parse_str(&id).map_err(|e| QueueError::Malformed(e.to_string()))?;
        Ok((created == 1, id))
    }

    /// Enqueues many tasks in pipelined batches; returns how many were created.
    pub async fn enqueue_many(
        &self,
        queue: &str,
        tasks: &[NewTask],
        idem_ttl: Duration,
    ) -> Result<usize, QueueError> {
        Ok(self
            .enqueue_batch(queue, tasks, idem_ttl)
            .await?
            .iter()
            .filter(|(created, _)| *created)
            .count())
    }

    /// Enqueues many tasks, [`ENQUEUE_BATCH`] per round trip (one pipeline of the enqueue
    /// script: idempotency keys and task ids are honoured per task, as in
    /// [`Queues::enqueue`]). Returns `(created, id)` per task, in order.
    pub async fn enqueue_batch(
        &self,
        queue: &str,
        tasks: &[NewTask],
        idem_ttl: Duration,
    ) -> Result<Vec<(bool, Uuid)>, QueueError> {
        let mut out = Vec::with_capacity(tasks.len());
        let mut conn = self.conn();
        // The first alone: EVALSHA falls back to loading the script (a pipeline of EVALSHA
        // would fail with NOSCRIPT on a Redis that restarted empty).
        let Some(first) = tasks.first() else {
            return Ok(out);
        };
        let (c, id): (i64, String) = self
            .enqueue_invocation(queue, first, idem_ttl, now_ms())
            .invoke_async(&mut conn)
            .await?;
        out.push((c == 1, parse_id(&id)?));
        for chunk in tasks[1..].chunks(ENQUEUE_BATCH) {
            let now = now_ms();
            let mut pipe = redis::pipe();
            for t in chunk {
                pipe.invoke_script(&self.enqueue_invocation(queue, t, idem_ttl, now));
            }
            let res: Vec<(i64, String)> = pipe.query_async(&mut conn).await?;
            for (c, id) in res {
                out.push((c == 1, parse_id(&id)?));
            }
        }
        Ok(out)
    }

    /// Which of `ids` Redis still holds a record of (one pipelined round trip).
    pub async fn tasks_exist(&self, queue: &str, ids: &[Uuid]) -> Result<Vec<bool>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("EXISTS")
                .arg(self.task_key(queue, &id.to_string()));
        }
        let n: Vec<i64> = pipe.query_async(&mut self.conn()).await?;
        Ok(n.into_iter().map(|n| n == 1).collect())
    }

    /// Leases up to `max` tasks to `worker` (see `lua/fetch.lua`).
    pub async fn fetch(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        lease: Duration,
        limits: Limits,
    ) -> Result<Fetched, QueueError> {
        let raw: Vec<redis::Value> = scripts()
            .fetch
            .key(self.base(queue))
            .arg(now_ms())
            .arg(max)
            .arg(lease.as_millis() as u64)
            .arg(worker)
            .arg(SCRIPT_BOUND.max(max))
            .arg(limits.max_attempts)
            .arg(limits.max_crashes)
            .invoke_async(&mut self.conn())
            .await?;
        let mut out = Fetched::default();
        let mut iter = raw.into_iter();
        for v in iter.by_ref() {
            let s: String = redis::from_redis_value(v)?;
            if s == "|" {
                break;
            }
            out.dead.push(parse_id(&s)?);
        }
        let rest: Vec<redis::Value> = iter.collect();
        for c in rest.chunks(7) {
            if c.len() != 7 {
                return Err(QueueError::Malformed("short fetch row".into()));
            }
            let id: String = redis::from_redis_value(c[0].clone())?;
            out.tasks.push(Leased {
                id: parse_id(&id)?,
                kind: redis::from_redis_value(c[1].clone())?,
                payload: redis::from_redis_value(c[2].clone())?,
                attempt: redis::from_redis_value(c[3].clone())?,
                durable: redis::from_redis_value::<String>(c[4].clone())? == "1",
                ready_at_ms: optional_ms(c[5].clone())?,
                failed_at_ms: optional_ms(c[6].clone())?,
            });
        }
        Ok(out)
    }

    /// Completes tasks this worker holds.
    pub async fn ack(
        &self,
        queue: &str,
        worker: &str,
        ids: &[Uuid],
        retention: Duration,
    ) -> Result<usize, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = scripts().ack.prepare_invoke();
        inv.key(self.base(queue))
            .arg(worker)
            .arg(now_ms())
            .arg(retention.as_millis() as u64)
            .arg(MAX_DONE_RECORDS);
        for id in ids {
            inv.arg(id.to_string());
        }
        Ok(inv.invoke_async::<usize>(&mut self.conn()).await?)
    }

    #[expect(clippy::too_many_arguments, reason = "mirrors the script's arguments")]
    async fn settle(
        &self,
        queue: &str,
        worker: &str,
        id: Uuid,
        action: &str,
        delay: Duration,
        error: &str,
        max_attempts: u32,
    ) -> Result<Settled, QueueError> {
        let r: String = scripts()
            .settle
            .key(self.base(queue))
            .arg(id.to_string())
            .arg(worker)
            .arg(now_ms())
            .arg(action)
            .arg(delay.as_millis() as u64)
            .arg(error)
            .arg(max_attempts)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match r.as_str() {
            "retry" => Settled::Retry,
            "dead" => Settled::Dead,
            "released" => Settled::Released,
            _ => Settled::Lost,
        })
    }

    /// Reschedules a failed task `delay` from now, or dead-letters it when attempts are used
    /// up. The schedule lives in Redis, so a worker restart neither resets nor loses it; the
    /// failure time and the due time are taken from one clock reading, so a later attempt
    /// sees exactly the delay that was chosen (`Leased::ready_at_ms - failed_at_ms`).
    pub async fn retry_later(
        &self,
        queue: &str,
        worker: &str,
        id: Uuid,
        delay: Duration,
        error: &str,
        max_attempts: u32,
    ) -> Result<Settled, QueueError> {
        self.settle(queue, worker, id, "retry", delay, error, max_attempts)
            .await
    }

    /// Dead-letters a task at once (permanent error).
    pub async fn bury(
        &self,
        queue: &str,
        worker: &str,
        id: Uuid,
        error: &str,
    ) -> Result<Settled, QueueError> {
        self.settle(queue, worker, id, "dead", Duration::ZERO, error, 0)
            .await
    }

    /// Hands a leased task back to the front of the queue without counting the attempt.
    pub async fn release(
        &self,
        queue: &str,
        worker: &str,
        id: Uuid,
    ) -> Result<Settled, QueueError> {
        self.settle(queue, worker, id, "release", Duration::ZERO, "", 0)
            .await
    }

    /// Extends this worker's leases; returns how many were still held.
    pub async fn renew(
        &self,
        queue: &str,
        worker: &str,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<usize, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = scripts().renew.prepare_invoke();
        inv.key(self.base(queue))
            .arg(worker)
            .arg(now_ms() + lease.as_millis() as i64);
        for id in ids {
            inv.arg(id.to_string());
        }
        Ok(inv.invoke_async::<usize>(&mut self.conn()).await?)
    }

    /// True when Redis still holds a record of the task (queued, running, retrying or dead).
    pub async fn task_exists(&self, queue: &str, id: Uuid) -> Result<bool, QueueError> {
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.task_key(queue, &id.to_string()))
            .query_async(&mut self.conn())
            .await?;
        Ok(n == 1)
    }

    pub async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let base = self.base(queue);
        let now = now_ms();
        let (ready, scheduled, due, in_flight, dead, done_recent, head, first_sched, completed): StatsReply = redis::pipe()
            .llen(format!("{base}:ready"))
            .zcard(format!("{base}:scheduled"))
            .zcount(format!("{base}:scheduled"), "-inf", now)
            .zcard(format!("{base}:inflight"))
            .zcard(format!("{base}:dead"))
            .zcard(format!("{base}:done"))
            .lindex(format!("{base}:ready"), 0)
            .zrange_withscores(format!("{base}:scheduled"), 0, 0)
            .hget(format!("{base}:stats"), "done")
            .query_async(&mut self.conn())
            .await?;
        let mut oldest: Option<i64> = None;
        if let Some(id) = head {
            let ready_at: Option<i64> = redis::cmd("HGET")
                .arg(self.task_key(queue, &id))
                .arg("ready_at")
                .query_async(&mut self.conn())
                .await?;
            oldest = ready_at;
        }
        if let Some((_, score)) = first_sched.first() {
            let s = *score as i64;
            if s <= now {
                oldest = Some(oldest.map_or(s, |o| o.min(s)));
            }
        }
        Ok(QueueStats {
            queue: queue.to_string(),
            ready,
            scheduled,
            due,
            in_flight,
            dead,
            done_recent,
            completed_total: completed.unwrap_or(0),
            oldest_ready_age_seconds: oldest
                .map(|o| ((now - o).max(0) as f64) / 1000.0)
                .unwrap_or(0.0),
        })
    }

    /// Dead-lettered tasks, newest first. `cursor` is the opaque `next_cursor` of a previous
    /// page.
    pub async fn dead_list(
        &self,
        queue: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<DeadPage, QueueError> {
        let offset: usize = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| QueueError::Malformed("bad cursor".into()))?,
        };
        let limit = limit.clamp(1, 500);
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(format!("{}:dead", self.base(queue)))
            .arg(offset)
            .arg(offset + limit) // one extra to know whether a next page exists
            .query_async(&mut self.conn())
            .await?;
        let more = ids.len() > limit;
        let mut data = Vec::with_capacity(limit);
        for id in ids.iter().take(limit) {
            if let Some(t) = self.dead_show(queue, parse_id(id)?).await? {
                data.push(t);
            }
        }
        Ok(DeadPage {
            data,
            next_cursor: more.then(|| (offset + limit).to_string()),
        })
    }

    /// One dead-lettered task; `None` when it is not in the dead-letter set.
    pub async fn dead_show(&self, queue: &str, id: Uuid) -> Result<Option<DeadTask>, QueueError> {
        let (score, fields): (Option<f64>, HashMap<String, String>) = redis::pipe()
            .zscore(format!("{}:dead", self.base(queue)), id.to_string())
            .hgetall(self.task_key(queue, &id.to_string()))
            .query_async(&mut self.conn())
            .await?;
        let Some(score) = score else { return Ok(None) };
        if fields.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let payload = fields.get("payload").cloned().unwrap_or_default();
        Ok(Some(DeadTask {
            id,
            queue: queue.to_string(),
            kind: fields.get("kind").cloned().unwrap_or_default(),
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            last_error: fields.get("last_error").cloned().unwrap_or_default(),
            attempts: num("attempts").max(0) as u32,
            crashes: num("crashes").max(0) as u32,
            failed_at: ms_to_time(score as i64),
            created_at: ms_to_time(num("created")),
            durable: fields.get("outbox").map(|v| v == "1").unwrap_or(false),
        }))
    }

    async fn dead_ids(&self, queue: &str) -> Result<Vec<String>, QueueError> {
        Ok(redis::cmd("ZREVRANGE")
            .arg(format!("{}:dead", self.base(queue)))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?)
    }

    async fn run_dead_script(
        &self,
        queue: &str,
        retry: bool,
        kind: Option<&str>,
        ids: Vec<String>,
    ) -> Result<Vec<Uuid>, QueueError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let mut inv = if retry {
                let mut i = scripts().dead_retry.prepare_invoke();
                i.key(self.base(queue)).arg(now_ms());
                i
            } else {
                let mut i = scripts().dead_purge.prepare_invoke();
                i.key(self.base(queue));
                i
            };
            inv.arg(kind.unwrap_or("")).arg(chunk.len());
            for id in chunk {
                inv.arg(id);
            }
            let moved: Vec<String> = inv.invoke_async(&mut self.conn()).await?;
            for m in moved {
                out.push(parse_id(&m)?);
            }
        }
        Ok(out)
    }

    /// Moves one dead task back to the queue with a fresh attempt budget.
    pub async fn dead_retry(&self, queue: &str, id: Uuid) -> Result<bool, QueueError> {
        let moved = self
            .run_dead_script(queue, true, None, vec![id.to_string()])
            .await?;
        Ok(!moved.is_empty())
    }

    /// Moves every dead task (optionally only of `kind`) back to the queue.
    pub async fn dead_retry_all(
        &self,
        queue: &str,
        kind: Option<&str>,
    ) -> Result<Vec<Uuid>, QueueError> {
        let ids = self.dead_ids(queue).await?;
        self.run_dead_script(queue, true, kind, ids).await
    }

    /// Deletes dead tasks: the given ids, or all (optionally only of `kind`).
    pub async fn dead_purge(
        &self,
        queue: &str,
        kind: Option<&str>,
        ids: Option<Vec<Uuid>>,
    ) -> Result<Vec<Uuid>, QueueError> {
        let ids = match ids {
            Some(ids) => ids.iter().map(Uuid::to_string).collect(),
            None => self.dead_ids(queue).await?,
        };
        self.run_dead_script(queue, false, kind, ids).await
    }
}

fn parse_id(s: &str) -> Result<Uuid, QueueError> {
    Uuid::parse_str(s).map_err(|e| QueueError::Malformed(format!("task id {s:?}: {e}")))
}

/// A unix-ms field of a task hash as the fetch script returns it ('' when unset).
fn optional_ms(v: redis::Value) -> Result<Option<i64>, QueueError> {
    let s: String = redis::from_redis_value(v)?;
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<f64>()
        .map(|ms| Some(ms as i64))
        .map_err(|e| QueueError::Malformed(format!("time field {s:?}: {e}")))
}

fn ms_to_time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
