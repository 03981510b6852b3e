//! Settling a leased task: ack on success (batched), retry later or dead-letter on
//! failure, or hand it back without counting the attempt. All but the ack go through the
//! settle script.

use std::time::Duration;

use uuid::Uuid;

use super::{now_ms, scripts, QueueError, Queues, MAX_DONE_RECORDS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Retry,
    Dead,
    Released,
    /// The lease had expired and moved to another worker; nothing was changed.
    Lost,
}

impl Queues {
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
}
