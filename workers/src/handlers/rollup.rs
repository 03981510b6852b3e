//! The hourly rollup: aggregates offer events and churn reasons into per-tenant hourly
//! buckets. Incremental (only the hours that received events since the last run, late
//! arrivals included, found by ingestion time) and idempotent (each touched hour is
//! recomputed in full from the source rows, so re-running gives the same rows).

use std::{sync::Arc, time::Instant};

use jobs::{EnqueueOpts, InvalidateCache, Rollup};
use uuid::Uuid;

use crate::{
    runtime::{JobError, JobMeta},
    WorkerState,
};

/// Re-scan this much before the watermark, so rows whose transaction committed late (with
/// an `ingested_at` just under the watermark) are still counted.
const OVERLAP_SECS: f64 = 60.0;

#[tracing::instrument(name = "job.rollup", skip_all, fields(job_id = %_meta.id, attempt = _meta.attempt, period = job.period))]
pub async fn run(st: Arc<WorkerState>, _meta: JobMeta, job: Rollup) -> Result<(), JobError> {
    let started = Instant::now();
    let run_id = super::start_run(&st, "rollup", job.period).await?;
    let outcome = rollup_new_events(&st).await?;
    let tenants = outcome.tenants.len();
    bump_generations(&st, &outcome.tenants).await;
    let elapsed = started.elapsed().as_secs_f64();
    metrics::histogram!("rollup_duration_seconds").record(elapsed);
    super::finish_run(
        &st,
        run_id,
        serde_json::json!({ "hours": outcome.hours, "tenants": tenants, "seconds": elapsed }),
    )
    .await?;
    tracing::info!(
        period = job.period,
        hours = outcome.hours,
        tenants,
        elapsed,
        "rollup done"
    );
    Ok(())
}

/// Cached figures are keyed by the tenant's analytics generation: bumping it after the
/// commit means no figure computed from the old rollup is served again.
pub async fn bump_generations(st: &WorkerState, tenants: &[Uuid]) {
    for tenant_id in tenants {
        if let Err(e) = bump_generation(st, *tenant_id).await {
            // Fall back to the invalidation job (retried) so the cache cannot stay stale.
            tracing::warn!(tenant_id = %tenant_id, error = %e, "generation bump failed; queueing invalidation");
            let _ = st
                .jobs
                .enqueue(
                    &InvalidateCache {
                        tenant_id: *tenant_id,
                        scope: "analytics".into(),
                    },
                    EnqueueOpts::default(),
                )
                .await;
        }
    }
}

async fn bump_generation(st: &WorkerState, tenant: Uuid) -> redis::RedisResult<()> {
    let r = st.queues.redis();
    let mut c = r.conn.clone();
    redis::cmd("INCR")
        .arg(r.key(&format!("cache:{tenant}:analytics:gen")))
        .query_async::<i64>(&mut c)
        .await
        .map(|_| ())
}

pub struct RollupOutcome {
    pub hours: i64,
    pub tenants: Vec<Uuid>,
}

/// The three recomputations, each a DELETE + INSERT over the touched hours.
const RECOMPUTE: [(&str, &str); 3] = [
    (
        "rollup_offers_hourly",
        "INSERT INTO rollup_offers_hourly (tenant_id, mode, hour, variant, offer_id, offer_type, shown, accepted, saved_mrr_cents)
         SELECT e.tenant_id, e.mode, t.hour, coalesce(e.variant, ''), coalesce(e.offer_id, ''), e.offer_type,
                count(*) FILTER (WHERE NOT e.accepted),
                count(*) FILTER (WHERE e.accepted),
                coalesce(sum(e.mrr_cents) FILTER (WHERE e.accepted), 0)
           FROM touched t
           JOIN offer_events e ON e.tenant_id = t.tenant_id
                              AND e.created_at >= t.hour AND e.created_at < t.hour + interval '1 hour'
          GROUP BY 1, 2, 3, 4, 5, 6",
    ),
    (
        "rollup_reasons_hourly",
        "INSERT INTO rollup_reasons_hourly (tenant_id, mode, hour, reason_code, count)
         SELECT c.tenant_id, c.mode, t.hour, c.reason_code, count(*)
           FROM touched t
           JOIN churn_reasons c ON c.tenant_id = t.tenant_id
                               AND c.created_at >= t.hour AND c.created_at < t.hour + interval '1 hour'
          GROUP BY 1, 2, 3, 4",
    ),
    (
        "rollup_sessions_hourly",
        "INSERT INTO rollup_sessions_hourly (tenant_id, mode, hour, variant, outcome, saved_offer_type, sessions, saved_mrr_cents, validated)
         SELECT s.tenant_id, s.mode, t.hour,
                CASE WHEN s.holdout THEN 'holdout' ELSE coalesce(s.variant, '') END,
                coalesce(s.outcome, 'in_progress'),
                CASE WHEN s.outcome = 'saved' THEN coalesce(s.saved_offer_type, '') ELSE '' END,
                count(*),
                coalesce(sum(s.mrr_cents) FILTER (WHERE s.outcome = 'saved'), 0),
                count(*) FILTER (WHERE s.outcome = 'saved' AND s.validated_at IS NOT NULL)
           FROM touched t
           JOIN cancel_sessions s ON s.tenant_id = t.tenant_id
                                 AND s.created_at >= t.hour AND s.created_at < t.hour + interval '1 hour'
          GROUP BY 1, 2, 3, 4, 5, 6",
    ),
];

/// Recomputes one rollup table for the touched hours in its own transaction.
async fn recompute(
    st: &WorkerState,
    table: &'static str,
    insert: &'static str,
    tenants: &[Uuid],
    hours: &[chrono::DateTime<chrono::Utc>],
) -> Result<(), JobError> {
    let mut tx = st.pools.primary.begin().await?;
    // The recompute groups a million rows or more: keep aggregates in memory.
    sqlx::query_scalar!(r#"SELECT set_config('work_mem', '128MB', true) AS "work_mem!""#)
        .fetch_one(&mut *tx)
        .await?;
    // Not macros: the statements below read or create the temporary table `touched`, which
    // no schema the macros describe against has (and the DELETE names its table).
    sqlx::query("CREATE TEMP TABLE touched ON COMMIT DROP AS SELECT * FROM unnest($1::uuid[], $2::timestamptz[]) AS t(tenant_id, hour)")
        .bind(tenants)
        .bind(hours)
        .execute(&mut *tx)
        .await?;
    sqlx::query("ANALYZE touched").execute(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} r USING touched t WHERE r.tenant_id = t.tenant_id AND r.hour = t.hour"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query(insert).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Rolls up everything ingested since the watermark. The three tables are recomputed
/// concurrently (separate connections, one transaction each); the watermark moves only
/// after all three committed, so a failure just means the next run recomputes the same
/// hours (recomputing is idempotent). The row lock on the watermark serialises rollups.
#[tracing::instrument(skip_all)]
pub async fn rollup_new_events(st: &WorkerState) -> Result<RollupOutcome, JobError> {
    let mut tx = st.pools.primary.begin().await?;
    sqlx::query!("INSERT INTO rollup_state (name, watermark) VALUES ('hourly', 'epoch') ON CONFLICT DO NOTHING")
        .execute(&mut *tx)
        .await?;
    let state = sqlx::query!(
        r#"SELECT watermark, now() AS "upper!" FROM rollup_state WHERE name = 'hourly' FOR UPDATE"#,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (watermark, upper) = (state.watermark, state.upper);
    let touched = sqlx::query!(
        r#"SELECT DISTINCT tenant_id AS "tenant_id!", date_trunc('hour', created_at) AS "hour!" FROM offer_events
          WHERE ingested_at > $1::timestamptz - make_interval(secs => $3) AND ingested_at <= $2
         UNION
         SELECT DISTINCT tenant_id, date_trunc('hour', created_at) FROM churn_reasons
          WHERE ingested_at > $1::timestamptz - make_interval(secs => $3) AND ingested_at <= $2
         UNION
         SELECT DISTINCT tenant_id, date_trunc('hour', created_at) FROM cancel_sessions
          WHERE updated_at > $1::timestamptz - make_interval(secs => $3) AND updated_at <= $2"#,
        watermark,
        upper,
        OVERLAP_SECS,
    )
    .fetch_all(&mut *tx)
    .await?;
    let tenant_col: Vec<Uuid> = touched.iter().map(|t| t.tenant_id).collect();
    let hour_col: Vec<chrono::DateTime<chrono::Utc>> = touched.iter().map(|t| t.hour).collect();
    if !touched.is_empty() {
        let results = futures::future::join_all(
            RECOMPUTE
                .iter()
                .map(|(table, insert)| recompute(st, table, insert, &tenant_col, &hour_col)),
        )
        .await;
        for r in results {
            r?;
        }
    }
    let hours = touched.len() as i64;
    let mut tenants = tenant_col.clone();
    tenants.sort();
    tenants.dedup();
    sqlx::query!(
        "UPDATE rollup_state SET watermark = $1 WHERE name = 'hourly'",
        upper
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let lag = (chrono::Utc::now() - upper).num_milliseconds().max(0) as f64 / 1000.0;
    metrics::gauge!("rollup_lag_seconds").set(lag);
    Ok(RollupOutcome { hours, tenants })
}
