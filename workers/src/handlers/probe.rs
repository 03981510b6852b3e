//! The ops canary job (see `jobs::Probe`).

use std::{sync::Arc, time::Duration};

use jobs::Probe;

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

pub async fn run(st: Arc<WorkerState>, meta: JobMeta, job: Probe) -> Result<(), JobError> {
    if job.noop {
        return Ok(());
    }
    sqlx::query("INSERT INTO probe_runs (job_id, worker) VALUES ($1, $2)")
        .bind(meta.id)
        .bind(&st.worker_name)
        .execute(&st.pools.primary)
        .await?;
    let faults = job.crash || job.permanent_error || job.fail_times > 0;
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
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    // The effect, applied once however often the job runs.
    sqlx::query(
        "INSERT INTO probe_effects (job_id, worker) VALUES ($1, $2) ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(meta.id)
    .bind(&st.worker_name)
    .execute(&st.pools.primary)
    .await?;
    Ok(())
}
