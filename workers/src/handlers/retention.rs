//! The retention sweep (one per `RETENTION_INTERVAL_SECS` period): removes personal data
//! older than the configured retention (`RETENTION_*_DAYS`, see `shared::privacy`), and
//! writes one `system` audit row with what went when anything did.

use std::sync::Arc;

use jobs::RetentionSweep;
use shared::audit::{Actor, Change};

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

#[tracing::instrument(name = "job.retention_sweep", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, period = job.period))]
pub async fn run(
    st: Arc<WorkerState>,
    _meta: JobMeta,
    job: RetentionSweep,
) -> Result<(), JobError> {
    let run_id = super::start_run(&st, "retention", job.period).await?;
    let swept =
        shared::privacy::sweep(&st.pools.primary, st.config.retention, chrono::Utc::now()).await?;
    // Ended dashboard sessions and spent one-time links (their own schedule: no retention
    // setting applies to them).
    let sessions = shared::accounts::delete_expired(&st.pools.primary).await?;
    if sessions > 0 {
        tracing::info!(
            count = sessions,
            "expired dashboard sessions and links deleted"
        );
    }
    let detail = serde_json::to_value(&swept).map_err(JobError::permanent)?;
    if swept != shared::privacy::Swept::default() {
        let mut conn = st.pools.primary.acquire().await?;
        shared::audit::record(
            &mut conn,
            &Actor::system(),
            Change {
                tenant_id: None,
                mode: None,
                action: "retention.sweep",
                target_type: "personal_data",
                target_id: None,
                before: None,
                after: Some(detail.clone()),
            },
        )
        .await?;
        tracing::info!(
            ?swept,
            "retention sweep removed personal data past its retention"
        );
    }
    super::finish_run(&st, run_id, detail).await?;
    Ok(())
}
