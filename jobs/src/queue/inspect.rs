//! Inspection: per-queue counts for metrics and ops, and whether Redis still holds a
//! task's record (the outbox reconciler's check).

use serde::Serialize;
use uuid::Uuid;

use super::{now_ms, QueueError, Queues};

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
#[derive(Clone, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Tasks waiting to run.
    pub ready: u64,
    /// Tasks waiting for their time (delayed or backing off).
    pub scheduled: u64,
    /// Scheduled tasks whose time has come (promoted on the next fetch).
    pub due: u64,
    /// Tasks leased by a worker.
    pub in_flight: u64,
    /// Dead-lettered tasks.
    pub dead: u64,
    /// Recently finished tasks (the done set, bounded by age and count).
    pub done_recent: u64,
    /// Tasks finished in all (the queue's `done` counter).
    pub completed_total: u64,
    /// Age in seconds of the oldest task waiting to run (ready or due), 0 when none.
    pub oldest_ready_age_seconds: f64,
}

impl Queues {
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
}
