//! Group commit for the widget's hot writes. Handlers queue an already-validated write and
//! wait for its own result; a few flusher tasks each take whatever is queued (up to
//! `max_batch`) and write it with one statement, so a burst of N writes costs one round trip
//! and one commit instead of N transactions. Nothing waits on a timer: an idle system
//! flushes a lone write at once, a busy one batches naturally while a flush is in flight.
//! A handler still answers only after its write is committed, so acknowledged means durable.
//!
//! When a batch fails with a database error (a bad element: the edge checks should let none
//! through, but a writer must not depend on it), it is bisected: each half is written again,
//! a half that commits answers its writers at once, and a failing half is split again, down
//! to the bad element, which alone gets the error. One bad element among N costs about
//! 2·log2(N) extra statements, not N, and the good half never waits for the bad one.
//! Connection errors fail the batch as they are (retrying would only multiply the wait
//! while PostgreSQL is down).

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Mutex};

type Waiter<R> = oneshot::Sender<Result<R, sqlx::Error>>;

/// Writes a batch; returns one result per element, in order.
pub type FlushFn<T, R> =
    Arc<dyn Fn(Vec<T>) -> BoxFuture<'static, Result<Vec<R>, sqlx::Error>> + Send + Sync>;

pub struct Batcher<T, R> {
    tx: mpsc::Sender<(T, Waiter<R>)>,
}

/// Concurrent flushes per batched path (each holds one pooled connection while it writes)
/// and the most elements one statement carries.
pub const FLUSHERS: usize = 3;
pub const MAX_BATCH: usize = 128;

impl<T: Clone + Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// A batcher of typed rows: `statement(pool, rows)` runs one statement for a batch and
    /// returns one result per row, in order.
    pub fn rows<F, Fut>(name: &'static str, pool: sqlx::PgPool, statement: F) -> Self
    where
        F: Fn(sqlx::PgPool, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<R>, sqlx::Error>> + Send + 'static,
    {
        let statement = Arc::new(statement);
        Self::start(
            name,
            FLUSHERS,
            MAX_BATCH,
            Arc::new(move |batch: Vec<T>| {
                let (pool, statement) = (pool.clone(), statement.clone());
                Box::pin(async move { statement(pool, batch).await })
            }),
        )
    }

    /// Spawns `flushers` tasks (each holds one pooled connection while it flushes).
    pub fn start(
        name: &'static str,
        flushers: usize,
        max_batch: usize,
        flush: FlushFn<T, R>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<(T, Waiter<R>)>(max_batch * flushers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..flushers.max(1) {
            let rx = rx.clone();
            let flush = flush.clone();
            tokio::spawn(async move {
                loop {
                    let mut items = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        match rx.recv().await {
                            Some(item) => items.push(item),
                            None => return,
                        }
                        while items.len() < max_batch {
                            match rx.try_recv() {
                                Ok(item) => items.push(item),
                                Err(_) => break,
                            }
                        }
                    }
                    metrics::histogram!("write_batch_size", "batch" => name)
                        .record(items.len() as f64);
                    run_batch(&flush, items).await;
                }
            });
        }
        Self { tx }
    }

    /// Queues one write and waits until its batch is committed.
    pub async fn submit(&self, item: T) -> Result<R, sqlx::Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((item, done))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        wait.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn run_batch<T: Clone + Send + 'static, R: Send + 'static>(
    flush: &FlushFn<T, R>,
    items: Vec<(T, Waiter<R>)>,
) {
    let (reqs, waiters): (Vec<T>, Vec<Waiter<R>>) = items.into_iter().unzip();
    settle(flush.clone(), reqs, waiters, 0).await;
}

/// Writes `reqs` and answers `waiters`; on a database error, bisects (see the module docs).
fn settle<T: Clone + Send + 'static, R: Send + 'static>(
    flush: FlushFn<T, R>,
    reqs: Vec<T>,
    mut waiters: Vec<Waiter<R>>,
    depth: u32,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let retry = (reqs.len() > 1).then(|| reqs.clone());
        match flush(reqs).await {
            Ok(results) if results.len() == waiters.len() => {
                for (w, r) in waiters.into_iter().zip(results) {
                    let _ = w.send(Ok(r));
                }
            }
            Ok(results) => {
                let msg = format!(
                    "batch returned {} results for {} writes",
                    results.len(),
                    waiters.len()
                );
                for w in waiters {
                    let _ = w.send(Err(sqlx::Error::Protocol(msg.clone())));
                }
            }
            Err(e) => match retry {
                Some(mut left) if matches!(e, sqlx::Error::Database(_)) => {
                    // One warning per failed batch, not one per level of its bisection.
                    if depth == 0 {
                        tracing::warn!(error = %e, size = waiters.len(), "batch failed: bisecting to isolate the bad write");
                    }
                    metrics::counter!("write_batch_bisections_total").increment(1);
                    let right = left.split_off(left.len() / 2);
                    let right_waiters = waiters.split_off(left.len());
                    settle(flush.clone(), left, waiters, depth + 1).await;
                    settle(flush, right, right_waiters, depth + 1).await;
                }
                // The bad element itself (or a connection error): its own error.
                None => {
                    if let Some(w) = waiters.pop() {
                        let _ = w.send(Err(e));
                    }
                }
                Some(_) => {
                    for w in waiters {
                        let _ = w.send(Err(same_kind(&e)));
                    }
                }
            },
        }
    })
}

/// A copy of `e` for each waiter of a failed batch, keeping what the caller maps to a status
/// (connection trouble → 503, anything else → 500).
fn same_kind(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Rejected;
    impl std::fmt::Display for Rejected {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("check constraint violated")
        }
    }
    impl std::error::Error for Rejected {}
    impl sqlx::error::DatabaseError for Rejected {
        fn message(&self) -> &str {
            "check constraint violated"
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::CheckViolation
        }
    }

    /// A bad element in a full batch fails alone, the others commit, and finding it costs a
    /// bisection (O(log n) statements), not one statement per element.
    #[tokio::test]
    async fn a_bad_element_is_isolated_by_bisection() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let seen = flushes.clone();
        let flush: FlushFn<i32, i32> = Arc::new(move |batch: Vec<i32>| {
            seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if batch.contains(&37) {
                    return Err(sqlx::Error::Database(Box::new(Rejected)));
                }
                Ok(batch.iter().map(|x| x * 2).collect())
            })
        });
        let mut waits = Vec::new();
        let items: Vec<(i32, Waiter<i32>)> = (0..128)
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                waits.push((i, rx));
                (i, tx)
            })
            .collect();
        run_batch(&flush, items).await;
        for (i, rx) in waits {
            match rx.await.unwrap() {
                Ok(v) => assert_eq!(v, i * 2),
                Err(e) => {
                    assert_eq!(i, 37, "only the bad element fails");
                    assert!(matches!(e, sqlx::Error::Database(_)), "{e}");
                }
            }
        }
        // 1 + 2 per level of a 128-element bisection (7 levels), not 1 + 128.
        assert!(flushes.load(Ordering::SeqCst) <= 15, "{flushes:?}");
        // Connection trouble is not bisected: one statement, every waiter gets the error.
        flushes.store(0, Ordering::SeqCst);
        let seen = flushes.clone();
        let down: FlushFn<i32, i32> = Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(sqlx::Error::PoolTimedOut) })
        });
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        run_batch(&down, vec![(1, tx1), (2, tx2)]).await;
        assert!(matches!(rx1.await.unwrap(), Err(sqlx::Error::PoolTimedOut)));
        assert!(matches!(rx2.await.unwrap(), Err(sqlx::Error::PoolTimedOut)));
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
    }

    /// Writes that arrive together share a flush; one bad write fails alone.
    #[tokio::test]
    async fn writes_are_grouped_and_a_bad_one_fails_alone() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let seen = flushes.clone();
        let flush: FlushFn<i32, i32> = Arc::new(move |batch: Vec<i32>| {
            seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                if batch.contains(&13) {
                    return Err(sqlx::Error::Database(Box::new(Rejected)));
                }
                Ok(batch.iter().map(|x| x * 2).collect())
            })
        });
        let b = Arc::new(Batcher::start("test", 1, 64, flush));
        // A lone write is flushed at once.
        assert_eq!(b.submit(1).await.unwrap(), 2);
        assert_eq!(flushes.swap(0, Ordering::SeqCst), 1);
        // 50 writes at once: far fewer flushes than writes.
        let all = futures::future::join_all((100..150).map(|i| {
            let b = b.clone();
            async move { b.submit(i).await.unwrap() }
        }))
        .await;
        assert_eq!(all, (100..150).map(|i| i * 2).collect::<Vec<_>>());
        assert!(flushes.swap(0, Ordering::SeqCst) <= 3);
        // With a bad write in the batch, the others still succeed.
        let results = futures::future::join_all((10..16).map(|i| {
            let b = b.clone();
            async move { (i, b.submit(i).await) }
        }))
        .await;
        for (i, r) in results {
            match r {
                Ok(v) => assert_eq!(v, i * 2),
                Err(e) => {
                    assert_eq!(i, 13);
                    assert!(matches!(e, sqlx::Error::Database(_)), "{e}");
                }
            }
        }
    }
}
