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
//! `jobs/src/lua/`, each bounded in the work it does per call. The workers still run on
//! apalis (the worker framework): `workers/src/backend/` makes this queue an apalis backend.
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
//!
//! # Files
//! One file per kind of operation, each adding methods to [`Queues`]:
//! `enqueue` (new tasks, single and pipelined), `lease` (fetch and lease renewal),
//! `settle` (ack, retry later, dead-letter, hand back), `dead` (the dead-letter set as ops
//! see it: list, show, retry, purge) and `inspect` (counts and existence checks). This file
//! holds what they share: the error type, the limits, the script handles and the key layout.

mod dead;
mod enqueue;
mod inspect;
mod lease;
mod settle;

use redis::Script;
use shared::redis_conn::Redis;
use uuid::Uuid;

pub use dead::{DeadPage, DeadTask};
pub use enqueue::NewTask;
pub use inspect::QueueStats;
pub use lease::{Fetched, Leased, Limits};
pub use settle::Settled;

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
        enqueue: Script::new(include_str!("../lua/enqueue.lua")),
        fetch: Script::new(include_str!("../lua/fetch.lua")),
        ack: Script::new(include_str!("../lua/ack.lua")),
        settle: Script::new(include_str!("../lua/settle.lua")),
        renew: Script::new(include_str!("../lua/renew.lua")),
        dead_retry: Script::new(include_str!("../lua/dead_retry.lua")),
        dead_purge: Script::new(include_str!("../lua/dead_purge.lua")),
    })
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
}

fn parse_id(s: &str) -> Result<Uuid, QueueError> {
    Uuid::parse_str(s).map_err(|e| QueueError::Malformed(format!("task id {s:?}: {e}")))
}
