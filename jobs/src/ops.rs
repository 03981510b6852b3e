//! Dead-letter and queue operations for ops, shared by the HTTP API (`/v1/ops/queues/...`)
//! and the CLI (`retentionos-workers dlq ...`). They keep the `job_outbox` bookkeeping in
//! step with Redis so the reconciler neither resurrects purged work nor forgets retried work.

use sqlx::PgPool;
use uuid::Uuid;

use crate::{queue::DeadPage, queues, QueueStats, Queues};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    #[error(transparent)]
    Queue(#[from] crate::QueueError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub fn check_queue(name: &str) -> Result<&'static str, OpsError> {
    queues::ALL
        .iter()
        .find(|q| **q == name)
        .copied()
        .ok_or_else(|| OpsError::UnknownQueue(name.to_string()))
}

pub async fn overview(q: &Queues) -> Result<Vec<QueueStats>, OpsError> {
    let mut out = Vec::new();
    for name in queues::ALL {
        out.push(q.stats(name).await?);
    }
    Ok(out)
}

pub async fn list_dead(
    q: &Queues,
    queue: &str,
    limit: usize,
    cursor: Option<&str>,
) -> Result<DeadPage, OpsError> {
    Ok(q.dead_list(check_queue(queue)?, limit, cursor).await?)
}

/// Retries one dead task; `false` when it is not in the dead-letter set.
pub async fn retry_dead(
    pool: &PgPool,
    q: &Queues,
    queue: &str,
    id: Uuid,
) -> Result<bool, OpsError> {
    let moved = q.dead_retry(check_queue(queue)?, id).await?;
    if moved {
        crate::outbox::mark_pending(pool, &[id]).await?;
    }
    Ok(moved)
}

/// Retries every dead task of the queue, optionally only of `kind`.
pub async fn retry_all_dead(
    pool: &PgPool,
    q: &Queues,
    queue: &str,
    kind: Option<&str>,
) -> Result<Vec<Uuid>, OpsError> {
    let moved = q.dead_retry_all(check_queue(queue)?, kind).await?;
    crate::outbox::mark_pending(pool, &moved).await?;
    Ok(moved)
}

/// Purges dead tasks (given ids, or all, optionally only of `kind`).
pub async fn purge_dead(
    pool: &PgPool,
    q: &Queues,
    queue: &str,
    kind: Option<&str>,
    ids: Option<Vec<Uuid>>,
) -> Result<Vec<Uuid>, OpsError> {
    let purged = q.dead_purge(check_queue(queue)?, kind, ids).await?;
    crate::outbox::mark_purged(pool, &purged).await?;
    Ok(purged)
}
