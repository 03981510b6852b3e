//! Ops: queue overview, dead-letter operations and canary probes (`OPS_TOKEN`). Every
//! dead-letter action writes its audit row ([`crate::services::ops::audit`]) once it succeeded.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use jobs::{ops, JobSink, Probe, SinkError, TaskSink, TaskSinkError};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery, OpsAuth},
    services::ops::audit,
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ops/queues", get(list_queues))
        .route(
            "/v1/ops/queues/{queue}/dead",
            get(list_dead).delete(purge_dead),
        )
        .route(
            "/v1/ops/queues/{queue}/dead/retry-all",
            post(retry_all_dead),
        )
        .route(
            "/v1/ops/queues/{queue}/dead/{id}",
            get(show_dead).delete(purge_one_dead),
        )
        .route("/v1/ops/queues/{queue}/dead/{id}/retry", post(retry_dead))
        .route("/v1/ops/probes", post(create_probes))
}

async fn list_queues(_ops: OpsAuth, State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "data": ops::overview(&st.jobs.queues).await? }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_dead(
    _ops: OpsAuth,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    if let Some(c) = &p.cursor {
        if c.parse::<usize>().is_err() {
            return Err(ApiError::invalid_param(
                "cursor",
                "cursor is not one this API returned",
            ));
        }
    }
    let page = ops::list_dead(&st.jobs.queues, &queue, limit, p.cursor.as_deref()).await?;
    Ok(Json(
        serde_json::to_value(page).map_err(ApiError::internal)?,
    ))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("dead_task"))
}

async fn show_dead(
    _ops: OpsAuth,
    State(st): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let q = ops::check_queue(&queue)?;
    let task = st
        .jobs
        .queues
        .dead_show(q, parse_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("dead_task"))?;
    Ok(Json(
        serde_json::to_value(task).map_err(ApiError::internal)?,
    ))
}

async fn retry_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    if !ops::retry_dead(&st.pools.primary, &st.jobs.queues, &queue, id).await? {
        return Err(ApiError::not_found("dead_task"));
    }
    tracing::info!(queue, job_id = %id, "dead task retried by ops");
    audit(
        &st,
        &meta.ops_actor(),
        "dead_task.retry",
        &queue,
        &[id],
        None,
    )
    .await?;
    Ok(Json(json!({ "retried": [id], "count": 1 })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindFilter {
    #[serde(default, deserialize_with = "shared::text::some_string")]
    kind: Option<String>,
}

async fn retry_all_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // The body is optional: empty means every kind.
    let kind = crate::extract::parse_optional_json::<KindFilter>(&body)?.kind;
    let ids =
        ops::retry_all_dead(&st.pools.primary, &st.jobs.queues, &queue, kind.as_deref()).await?;
    tracing::info!(queue, count = ids.len(), "dead tasks retried by ops");
    audit(
        &st,
        &meta.ops_actor(),
        "dead_task.retry_all",
        &queue,
        &ids,
        kind.as_deref(),
    )
    .await?;
    Ok(Json(json!({ "retried": ids, "count": ids.len() })))
}

async fn purge_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(f): ApiQuery<KindFilter>,
) -> ApiResult<Json<Value>> {
    let ids = ops::purge_dead(
        &st.pools.primary,
        &st.jobs.queues,
        &queue,
        f.kind.as_deref(),
        None,
    )
    .await?;
    tracing::info!(queue, count = ids.len(), "dead tasks purged by ops");
    audit(
        &st,
        &meta.ops_actor(),
        "dead_task.purge",
        &queue,
        &ids,
        f.kind.as_deref(),
    )
    .await?;
    Ok(Json(json!({ "purged": ids, "count": ids.len() })))
}

async fn purge_one_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let ids = ops::purge_dead(
        &st.pools.primary,
        &st.jobs.queues,
        &queue,
        None,
        Some(vec![id]),
    )
    .await?;
    if ids.is_empty() {
        return Err(ApiError::not_found("dead_task"));
    }
    audit(
        &st,
        &meta.ops_actor(),
        "dead_task.purge",
        &queue,
        &ids,
        None,
    )
    .await?;
    Ok(Json(json!({ "purged": ids, "count": 1 })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProbes {
    #[serde(default = "one")]
    count: u32,
    /// Record each probe in `job_outbox` (survives a Redis restarted empty).
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    probe: Probe,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Enqueues canary jobs; each records its effect once in `probe_effects`.
async fn create_probes(
    _ops: OpsAuth,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateProbes>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !(1..=10_000).contains(&body.count) {
        return Err(ApiError::invalid_param(
            "count",
            "count must be between 1 and 10000",
        ));
    }
    // Typed apalis enqueue (TaskSink::push_bulk): one INSERT of the outbox rows (durable)
    // and one pipelined round trip per 1,000 tasks.
    let probes = vec![body.probe.clone(); body.count as usize];
    let mut sink = if body.durable {
        JobSink::durable(st.jobs.clone(), st.pools.primary.clone(), None)
    } else {
        JobSink::new(st.jobs.clone())
    };
    sink.push_bulk(probes).await.map_err(|e| match e {
        TaskSinkError::PushError(SinkError::Queue(e)) => ApiError::from(e),
        e => ApiError::internal(e),
    })?;
    let ids = sink.take_pushed();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "ids": ids, "count": ids.len() })),
    ))
}
