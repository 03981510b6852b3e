//! Liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde_json::json;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(get_readyz))
        .route("/metrics", get(get_metrics))
}

/// The process is up.
async fn get_healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// PostgreSQL and Redis reachable and migrations applied; 503 otherwise.
async fn get_readyz(State(st): State<AppState>) -> impl IntoResponse {
    let limit = Duration::from_secs(2);
    let (db, redis) = tokio::join!(
        tokio::time::timeout(limit, shared::db::migrations_applied(&st.pools.primary)),
        st.redis.ping(limit),
    );
    let (database, migrations) = match db {
        Ok(Ok(applied)) => (true, applied),
        _ => (false, false),
    };
    let checks = json!({ "database": database, "redis": redis, "migrations": migrations });
    if database && redis && migrations {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": checks })),
        )
    } else {
        let failing: Vec<&str> = [
            ("database", database),
            ("redis", redis),
            ("migrations", migrations),
        ]
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": {
                    "type": "api_error",
                    "code": "not_ready",
                    "message": format!("Not ready: {} failing.", failing.join(", ")),
                },
                "checks": checks,
            })),
        )
    }
}

async fn get_metrics(State(st): State<AppState>) -> impl IntoResponse {
    for (name, pool) in [("primary", &st.pools.primary), ("read", &st.pools.read)] {
        let size = pool.size() as f64;
        let idle = pool.num_idle() as f64;
        metrics::gauge!("db_pool_connections", "pool" => name, "state" => "idle").set(idle);
        metrics::gauge!("db_pool_connections", "pool" => name, "state" => "in_use")
            .set(size - idle);
        metrics::gauge!("db_pool_max_connections", "pool" => name)
            .set(pool.options().get_max_connections() as f64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        shared::telemetry::prometheus().render(),
    )
}
