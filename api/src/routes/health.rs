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

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_healthz, get_readyz, get_metrics))]
pub(crate) struct Doc;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "get_healthz",
    tag = "system",
    summary = "Liveness: the process is up",
    responses((status = 200, description = "Up", body = Live))
)]
async fn get_healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// PostgreSQL and Redis reachable and migrations applied; 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "get_readyz",
    tag = "system",
    summary = "Readiness: PostgreSQL and Redis reachable, migrations applied (503 otherwise)",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "not_ready: the error envelope and the failing checks", body = NotReady),
    )
)]
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

// The bodies above are `json!` (the `/healthz` baseline of the load tests is as cheap as it
// gets); these types describe them for the OpenAPI document and refuse unknown fields, so
// the API fuzzer's response check catches a drift.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Live {
    #[schema(pattern = "^ok$")]
    status: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Checks {
    database: bool,
    redis: bool,
    migrations: bool,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Ready {
    #[schema(pattern = "^ready$")]
    status: String,
    checks: Checks,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NotReady {
    error: crate::error::ErrorBody,
    checks: Checks,
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    tag = "system",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
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
