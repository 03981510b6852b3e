//! The session expiry tick: a cancel session accepts events until its `expires_at`
//! (`SESSION_TTL_SECS` after its start); this marks expired open sessions `abandoned`, so
//! analytics and the one-open-session rule see them as ended. Events on an expired session
//! are refused by the api whether or not this has run yet; running it twice changes nothing.

use std::sync::Arc;

use jobs::ExpireSessions;

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

/// Sessions marked per statement: short transactions, whatever the backlog.
const PAGE: i64 = 1000;

#[tracing::instrument(name = "job.expire_sessions", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, period = job.period))]
pub async fn run(
    st: Arc<WorkerState>,
    _meta: JobMeta,
    job: ExpireSessions,
) -> Result<(), JobError> {
    let run_id = super::start_run(&st, "expire_sessions", job.period).await?;
    let expired = expire(&st).await?;
    super::finish_run(&st, run_id, serde_json::json!({ "expired": expired })).await?;
    metrics::counter!("sessions_expired_total").increment(expired);
    Ok(())
}

/// Marks every expired open session abandoned; returns how many.
pub async fn expire(st: &WorkerState) -> Result<u64, JobError> {
    let mut total = 0;
    loop {
        let done = shared::db::sessions::expire_open(&st.pools.primary, PAGE).await?;
        total += done;
        if done < PAGE as u64 {
            return Ok(total);
        }
    }
}
