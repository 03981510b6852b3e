//! The dead-letter set as ops see it: paged listing, one task's record, and moving dead
//! tasks back to the queue or deleting them (in bounded script calls).

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use super::{now_ms, parse_id, scripts, QueueError, Queues};

/// A dead-lettered task as ops see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeadTask {
    pub id: Uuid,
    /// The queue it was dead-lettered from.
    pub queue: String,
    /// The job kind (`probe`, `apply_offer`, ...; empty when its record lost it).
    pub kind: String,
    /// The job's payload (JSON; the stored text as a string when it is not JSON).
    pub payload: serde_json::Value,
    /// The error of its last attempt.
    pub last_error: String,
    pub attempts: u32,
    /// Attempts that ended with the worker process gone.
    pub crashes: u32,
    /// When it was dead-lettered.
    pub failed_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Whether it is recorded in `job_outbox`.
    pub durable: bool,
}

/// One page of the dead-letter set, newest first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeadPage {
    pub data: Vec<DeadTask>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl Queues {
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

fn ms_to_time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
