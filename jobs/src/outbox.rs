//! `job_outbox`, the durable half of a durable job (PostgreSQL is the system of record; the
//! Redis task is its copy). This module owns the statements on the table: recording rows,
//! every state change (`done`, back to `pending` for a retry, `dead`, purged by ops) and the
//! reconciler's reads. Callers hold typed values (`OutboxEntry`, ids), never SQL.
//!
//! Two writers insert outbox rows elsewhere, each in one statement with the change that
//! needs the job, so that neither exists without the other: the Stripe webhook receiver
//! (`api/src/routes/webhooks.rs`: the delivery and its job in one `WITH`), and the batched
//! widget writers (the SQL functions `record_widget_sessions` / `record_widget_events`,
//! `migrations/`), which insert the rows the api built with [`crate::JobClient::outbox_entry`].
//! Both only insert; every later change of a row is here.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::OutboxEntry;

/// Records one row inside the caller's transaction.
pub async fn insert(
    conn: &mut PgConnection,
    tenant_id: Option<Uuid>,
    entry: &OutboxEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO job_outbox (id, tenant_id, queue, kind, payload) VALUES ($1, $2, $3, $4, $5::text::jsonb)",
        entry.id,
        tenant_id,
        entry.queue,
        entry.kind,
        &entry.payload,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records many rows (any kinds) in one statement, idempotent on the row id (a row already
/// recorded is left as it is). Returns how many were new.
pub async fn insert_many(
    pool: &PgPool,
    tenant_id: Option<Uuid>,
    entries: &[OutboxEntry],
) -> Result<u64, sqlx::Error> {
    if entries.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let queues: Vec<&str> = entries.iter().map(|e| e.queue).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind).collect();
    let payloads: Vec<&str> = entries.iter().map(|e| e.payload.as_str()).collect();
    let done = sqlx::query!(
        "INSERT INTO job_outbox (id, tenant_id, queue, kind, payload)
             SELECT id, $2, queue, kind, payload::jsonb
               FROM UNNEST($1::uuid[], $3::text[], $4::text[], $5::text[]) AS x(id, queue, kind, payload)
             ON CONFLICT (id) DO NOTHING",
        &ids,
        tenant_id,
        &queues as &[&str],
        &kinds as &[&str],
        &payloads as &[&str],
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The job ran to completion on attempt `attempts` (recorded before the Redis ack, so a
/// task Redis no longer holds because it was acked is `done` here).
pub async fn mark_done(pool: &PgPool, id: Uuid, attempts: i32) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE job_outbox SET status = 'done', attempts = $2, finished_at = now(), updated_at = now()
                 WHERE id = $1",
        id,
        attempts,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A failed attempt: `dead` when it was dead-lettered, else `pending` (a retry is scheduled).
pub async fn mark_failed(
    pool: &PgPool,
    id: Uuid,
    dead: bool,
    attempts: i32,
    last_error: &str,
) -> Result<(), sqlx::Error> {
    let status = if dead { "dead" } else { "pending" };
    sqlx::query!(
        "UPDATE job_outbox SET status = $2, attempts = $3, last_error = $4, updated_at = now(),
                    finished_at = CASE WHEN $2 = 'dead' THEN now() END
             WHERE id = $1",
        id,
        status,
        attempts,
        last_error,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Rows still `pending` whose tasks were dead-lettered without the worker recording it (a
/// decode failure at fetch, a worker that died right after burying): `dead`, with `why`.
pub async fn mark_dead_if_pending(
    pool: &PgPool,
    ids: &[Uuid],
    why: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE job_outbox SET status = 'dead', last_error = $2, finished_at = now(), updated_at = now()
         WHERE id = ANY($1) AND status = 'pending'",
        ids,
        why,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Dead tasks an operator sent back to their queue: `pending` again.
pub async fn mark_pending(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if !ids.is_empty() {
        sqlx::query!(
            "UPDATE job_outbox SET status = 'pending', updated_at = now(), finished_at = NULL
             WHERE id = ANY($1)",
            ids,
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Dead tasks an operator purged: `dead` for good, the purge noted in `last_error`.
pub async fn mark_purged(pool: &PgPool, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if !ids.is_empty() {
        sqlx::query!(
            "UPDATE job_outbox SET status = 'dead', updated_at = now(), finished_at = now(),
                    last_error = coalesce(last_error, '') || ' [purged by ops]'
             WHERE id = ANY($1)",
            ids,
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A `pending` row as the reconciler reads it.
pub struct PendingRow {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// One page of `pending` rows older than `grace_secs`, in (created_at, id) order after
/// `after` (keyset pagination).
pub async fn pending_page(
    pool: &PgPool,
    grace_secs: f64,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<PendingRow>, sqlx::Error> {
    sqlx::query_as!(
        PendingRow,
        "SELECT id, queue, kind, payload, created_at FROM job_outbox
                 WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
                   AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
                 ORDER BY created_at, id LIMIT $4",
        grace_secs,
        after.map(|a| a.0),
        after.map(|a| a.1),
        limit,
    )
    .fetch_all(pool)
    .await
}

/// Which of `ids` are still `pending` now.
pub async fn still_pending(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM job_outbox WHERE id = ANY($1) AND status = 'pending'",
        ids,
    )
    .fetch_all(pool)
    .await
}

/// The jobs that apply session `session_id`'s outcome to Stripe (`apply_offer`,
/// `cancel_subscription`), oldest first, as a JSON array of `{id, kind, status, attempts,
/// last_error, created_at, finished_at}` (a session's timeline).
pub async fn session_jobs_json(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
) -> Result<serde_json::Value, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'kind', kind, 'status', status,
                'attempts', attempts, 'last_error', last_error, 'created_at', created_at,
                'finished_at', finished_at) ORDER BY created_at, id), '[]'::jsonb) AS "jobs!"
           FROM job_outbox
          WHERE tenant_id = $1 AND kind IN ('apply_offer', 'cancel_subscription')
            AND payload->>'session_id' = $2::text
          -- job_outbox_session_idx"#,
        tenant_id,
        session_id as _,
    )
    .fetch_one(pool)
    .await
}
