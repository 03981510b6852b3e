//! Enqueueing: one task, or many in pipelined batches of [`ENQUEUE_BATCH`] (the enqueue
//! script honours idempotency keys and task ids per task).

use std::time::Duration;

use uuid::Uuid;

use super::{now_ms, parse_id, scripts, QueueError, Queues, ENQUEUE_BATCH};

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

impl Queues {
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
}
