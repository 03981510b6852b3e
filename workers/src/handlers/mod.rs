//! Job handlers, one module per kind. Every handler is idempotent: jobs are delivered at
//! least once.

pub mod cache;
pub mod offers;
pub mod probe;
pub mod reconcile;
pub mod retention;
pub mod rollup;
pub mod sessions;
pub mod stripe_events;

/// Records the start of a scheduler duty run; returns the run id.
pub(crate) async fn start_run(
    st: &crate::WorkerState,
    duty: &str,
    period: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO scheduler_runs (duty, period, worker) VALUES ($1, $2, $3) RETURNING id",
        duty,
        period,
        &st.worker_name,
    )
    .fetch_one(&st.pools.primary)
    .await
}

pub(crate) async fn finish_run(
    st: &crate::WorkerState,
    run_id: i64,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE scheduler_runs SET finished_at = now(), detail = $2 WHERE id = $1",
        run_id,
        detail,
    )
    .execute(&st.pools.primary)
    .await?;
    Ok(())
}
