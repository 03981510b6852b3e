//! Leasing: fetching due tasks under a worker's lease (with the attempt and crash limits
//! the fetch script enforces) and renewing the leases a worker still holds.

use std::time::Duration;

use uuid::Uuid;

use super::{now_ms, parse_id, scripts, QueueError, Queues, SCRIPT_BOUND};

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

impl Queues {
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
