//! The worker's own HTTP port: `/metrics` (Prometheus) and `/healthz`, plus the loop that
//! samples queue depths into gauges.

use std::{sync::Arc, time::Duration};

use axum::{routing::get, Router};

use crate::WorkerState;

pub async fn serve(
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let handle = shared::telemetry::prometheus();
    let app = Router::new()
        .route("/metrics", get(move || async move { handle.render() }))
        .route("/healthz", get(|| async { "ok" }));
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
}

/// Samples per-queue counts every few seconds (any worker can; they all see the same Redis).
pub async fn stats_loop(st: Arc<WorkerState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        record_queue_gauges(&st.queues).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {},
            _ = shutdown.changed() => break,
        }
    }
}

pub async fn record_queue_gauges(q: &jobs::Queues) {
    match jobs::ops::overview(q).await {
        Ok(stats) => {
            for s in stats {
                let l = s.queue.clone();
                metrics::gauge!("queue_ready", "queue" => l.clone()).set((s.ready + s.due) as f64);
                metrics::gauge!("queue_scheduled", "queue" => l.clone())
                    .set((s.scheduled - s.due) as f64);
                metrics::gauge!("queue_in_flight", "queue" => l.clone()).set(s.in_flight as f64);
                metrics::gauge!("queue_dead", "queue" => l.clone()).set(s.dead as f64);
                metrics::gauge!("queue_oldest_ready_age_seconds", "queue" => l)
                    .set(s.oldest_ready_age_seconds);
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue stats unavailable"),
    }
}
