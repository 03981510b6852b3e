//! The ops canary job (see `jobs::Probe`).

use std::{sync::Arc, time::Duration};

use jobs::Probe;

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

#[tracing::instrument(name = "job.probe", skip_all, fields(job_id = %meta.id, attempt = meta.attempt))]
pub async fn run(st: Arc<WorkerState>, meta: JobMeta, job: Probe) -> Result<(), JobError> {
    if job.noop {
        return Ok(());
    }
    let ms = |v: Option<i64>| v.and_then(chrono::DateTime::from_timestamp_millis);
    sqlx::query!(
        "INSERT INTO probe_runs (job_id, worker, attempt, due_at, prev_failed_at)
         VALUES ($1, $2, $3, $4, $5)",
        meta.id,
        &st.worker_name,
        meta.attempt as i32,
        ms(meta.due_at_ms),
        ms(meta.previous_failure_at_ms),
    )
    .execute(&st.pools.primary)
    .await?;
    let faults = job.crash || job.permanent_error || job.fail_times > 0 || job.gate.is_some();
    if faults && !st.allow_fault_injection {
        return Err(JobError::permanent(anyhow::anyhow!(
            "fault injection is disabled on this worker (ALLOW_FAULT_INJECTION)"
        )));
    }
    if job.crash {
        tracing::error!(job_id = %meta.id, "probe asked to crash the process");
        std::process::abort();
    }
    if job.permanent_error {
        return Err(JobError::permanent(anyhow::anyhow!(
            "probe: injected permanent error"
        )));
    }
    if meta.attempt <= job.fail_times {
        return Err(JobError::transient(anyhow::anyhow!(
            "probe: injected transient error {} of {}",
            meta.attempt,
            job.fail_times
        )));
    }
    if let Some(gate) = &job.gate {
        wait_for_gate(&st, gate).await?;
    }
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    // The effect, applied once however often the job runs.
    sqlx::query!(
        "INSERT INTO probe_effects (job_id, worker) VALUES ($1, $2) ON CONFLICT (job_id) DO NOTHING",
        meta.id,
        &st.worker_name,
    )
    .execute(&st.pools.primary)
    .await?;
    Ok(())
}

/// Polls `probe_gates` until the gate is open (the handler's timeout bounds the wait).
async fn wait_for_gate(st: &WorkerState, gate: &str) -> Result<(), JobError> {
    loop {
        let open = sqlx::query_scalar!("SELECT 1 AS one FROM probe_gates WHERE name = $1", gate)
            .fetch_optional(&st.pools.primary)
            .await?;
        if open.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
