//! Cache invalidation: deletes a tenant's cached entries of one scope and tells every api
//! process (Redis pub/sub) to drop its in-process copies.

use std::sync::Arc;

use jobs::InvalidateCache;

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

#[tracing::instrument(name = "job.invalidate_cache", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, tenant_id = %job.tenant_id, scope = %job.scope))]
pub async fn run(
    st: Arc<WorkerState>,
    _meta: JobMeta,
    job: InvalidateCache,
) -> Result<(), JobError> {
    let r = st.queues.redis();
    let pattern = r.key(&format!("cache:{}:{}:*", job.tenant_id, job.scope));
    let mut conn = r.conn.clone();
    let mut cursor: u64 = 0;
    let mut deleted = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await
            .map_err(JobError::transient)?;
        // The generation counter is bumped below, never deleted (old entries stay unreachable).
        let keys: Vec<String> = keys.into_iter().filter(|k| !k.ends_with(":gen")).collect();
        if !keys.is_empty() {
            deleted += keys.len();
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await
                .map_err(JobError::transient)?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    redis::cmd("INCR")
        .arg(r.key(&format!("cache:{}:{}:gen", job.tenant_id, job.scope)))
        .query_async::<i64>(&mut conn)
        .await
        .map_err(JobError::transient)?;
    let msg = serde_json::json!({ "tenant_id": job.tenant_id, "scope": job.scope }).to_string();
    redis::cmd("PUBLISH")
        .arg(r.key("invalidate"))
        .arg(msg)
        .query_async::<()>(&mut conn)
        .await
        .map_err(JobError::transient)?;
    tracing::debug!(tenant_id = %job.tenant_id, scope = %job.scope, deleted, "cache invalidated");
    Ok(())
}
