//! The reconciler tick: PostgreSQL is the system of record, so every `job_outbox` row that
//! is not finished and that Redis no longer knows (restarted empty, or an api process died
//! between its commit and its enqueue) is pushed again. Pushing is idempotent on the
//! outbox id, so a task Redis still holds is left alone.

use std::sync::Arc;

use jobs::{outbox, JobClient, OutboxEntry, Reconcile};
use uuid::Uuid;

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

/// Rows younger than this are left to the api that is pushing them.
const GRACE_SECS: f64 = 2.0;
const PAGE: i64 = 2000;

#[tracing::instrument(name = "job.reconcile", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, period = job.period))]
pub async fn run(st: Arc<WorkerState>, _meta: JobMeta, job: Reconcile) -> Result<(), JobError> {
    let run_id = super::start_run(&st, "reconcile", job.period).await?;
    let restored = reconcile_outbox(&st).await?;
    super::finish_run(&st, run_id, serde_json::json!({ "restored": restored })).await?;
    if restored > 0 {
        tracing::warn!(
            restored,
            "reconciler re-enqueued unfinished work Redis had lost"
        );
    }
    metrics::counter!("reconciler_restored_total").increment(restored as u64);
    Ok(())
}

/// Pushes every unfinished outbox row Redis does not hold; returns how many were pushed.
#[tracing::instrument(skip_all)]
pub async fn reconcile_outbox(st: &WorkerState) -> Result<usize, JobError> {
    let mut restored = 0usize;
    let mut after: Option<(chrono::DateTime<chrono::Utc>, Uuid)> = None;
    loop {
        let rows = outbox::pending_page(&st.pools.primary, GRACE_SECS, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = Some((last.created_at, last.id));
        let n = rows.len();
        let mut entries = Vec::with_capacity(n);
        for row in rows {
            let (id, queue) = (row.id, row.queue);
            let Some((kind, queue_static)) = jobs::kind_info(&row.kind) else {
                tracing::error!(job_id = %id, kind = row.kind, queue, "outbox row of an unknown kind");
                continue;
            };
            entries.push(OutboxEntry {
                id,
                queue: queue_static,
                kind,
                payload: row.payload.to_string(),
            });
        }
        // Which of them Redis still holds: one pipelined round trip per queue.
        let mut missing = Vec::with_capacity(entries.len());
        let mut queues: Vec<&'static str> = entries.iter().map(|e| e.queue).collect();
        queues.sort_unstable();
        queues.dedup();
        for q in queues {
            let of_queue: Vec<OutboxEntry> =
                entries.iter().filter(|e| e.queue == q).cloned().collect();
            let ids: Vec<Uuid> = of_queue.iter().map(|e| e.id).collect();
            let held = st.queues.tasks_exist(q, &ids).await?;
            for (entry, held) in of_queue.into_iter().zip(held) {
                if !held {
                    missing.push(entry);
                    continue;
                }
                // A worker that died right after dead-lettering may not have recorded it.
                if let Some(dead) = st.queues.dead_show(q, entry.id).await? {
                    outbox::mark_dead_if_pending(&st.pools.primary, &[entry.id], &dead.last_error)
                        .await?;
                }
            }
        }
        restored += push_still_pending(st, missing).await?;
        if (n as i64) < PAGE {
            break;
        }
    }
    Ok(restored)
}

/// Pushes the `missing` entries (read as pending, then not found in Redis) whose outbox rows
/// are still pending now; returns how many were pushed.
///
/// The second read closes a race with the workers: a task that completed after the page was
/// read but before Redis was asked is gone from Redis (an ack deletes the task) and would be
/// created anew by a push, so it ran twice. A worker records completion in the outbox before
/// it acks, so a task Redis no longer holds because it was acked is already `done` here.
pub async fn push_still_pending(
    st: &WorkerState,
    missing: Vec<OutboxEntry>,
) -> Result<usize, JobError> {
    if missing.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = missing.iter().map(|e| e.id).collect();
    let pending: std::collections::HashSet<Uuid> = outbox::still_pending(&st.pools.primary, &ids)
        .await?
        .into_iter()
        .collect();
    let lost: Vec<OutboxEntry> = missing
        .into_iter()
        .filter(|e| pending.contains(&e.id))
        .collect();
    // One bulk push (pipelined, idempotent on the outbox ids).
    Ok(JobClient::push_outbox_many(&st.jobs, &lost).await?)
}
