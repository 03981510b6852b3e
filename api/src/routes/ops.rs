//! Ops: queue overview, dead-letter operations and canary probes (`OPS_TOKEN`). Every
//! dead-letter action writes its audit row ([`crate::services::ops::audit`]) once it succeeded.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use jobs::{
    ops,
    queue::{DeadPage, DeadTask},
    JobSink, Probe, QueueStats, SinkError, TaskSink, TaskSinkError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, ApiQuery, OpsAuth},
    routes::DataList,
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

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_queues,
        list_dead,
        purge_dead,
        retry_all_dead,
        show_dead,
        purge_one_dead,
        retry_dead,
        create_probes
    ),
    components(schemas(DeadKindFilter))
)]
pub(crate) struct Doc;

// Documentation only: the handlers take the path segment as text and answer 404
// `queue_not_found` for any name not in `jobs::queues::ALL` (the test below keeps the two
// lists equal).
/// A queue of the job platform.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // named by the document only
enum QueueName {
    Stripe,
    Webhooks,
    Analytics,
    Cache,
    Ops,
}

#[utoipa::path(
    get,
    path = "/v1/ops/queues",
    operation_id = "list_queues",
    tag = "ops",
    summary = "Per-queue counts: ready, scheduled, due, in flight, dead, oldest ready age",
    security(("opsToken" = [])),
    responses((status = 200, description = "One entry per queue", body = DataList<QueueStats>))
)]
async fn list_queues(
    _ops: OpsAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<DataList<QueueStats>>> {
    Ok(Json(DataList {
        data: ops::overview(&st.jobs.queues).await?,
    }))
}

/// The largest dead-letter cursor (an offset into the set) accepted: a larger one would
/// overflow Redis' integer range.
const MAX_DEAD_CURSOR: usize = 999_999_999_999_999_999;

/// `GET /v1/ops/queues/{queue}/dead`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page (an offset: digits).
    #[param(pattern = r"^\+?0*[0-9]{1,18}$")]
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/ops/queues/{queue}/dead",
    operation_id = "list_dead",
    tag = "ops",
    summary = "List dead-lettered tasks, newest first",
    security(("opsToken" = [])),
    params(("queue" = inline(QueueName), Path), ListParams),
    responses(
        (status = 200, description = "One page, newest first", body = DeadPage),
        (status = 400, description = "parameter_invalid (param limit: outside 1..500; param cursor: not one this API returned), or invalid_query", body = ErrorEnvelope),
        (status = 404, description = "queue_not_found", body = ErrorEnvelope),
    )
)]
async fn list_dead(
    _ops: OpsAuth,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<DeadPage>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    if let Some(c) = &p.cursor {
        if !c.parse::<usize>().is_ok_and(|n| n <= MAX_DEAD_CURSOR) {
            return Err(ApiError::invalid_param(
                "cursor",
                "cursor is not one this API returned",
            ));
        }
    }
    let page = ops::list_dead(&st.jobs.queues, &queue, limit, p.cursor.as_deref()).await?;
    Ok(Json(page))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("dead_task"))
}

#[utoipa::path(
    get,
    path = "/v1/ops/queues/{queue}/dead/{id}",
    operation_id = "show_dead",
    tag = "ops",
    summary = "Show one dead task (kind, payload, last error, attempts, failed at)",
    security(("opsToken" = [])),
    params(("queue" = inline(QueueName), Path), ("id" = uuid::Uuid, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The dead task", body = DeadTask),
        (status = 404, description = "queue_not_found, or dead_task_not_found (not in the queue's dead-letter set)", body = ErrorEnvelope),
    )
)]
async fn show_dead(
    _ops: OpsAuth,
    State(st): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<DeadTask>> {
    let q = ops::check_queue(&queue)?;
    let task = st
        .jobs
        .queues
        .dead_show(q, parse_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("dead_task"))?;
    Ok(Json(task))
}

/// The answer of a retry: the tasks moved back to their queue.
#[derive(Debug, Serialize, ToSchema)]
struct RetriedTasks {
    retried: Vec<Uuid>,
    /// How many (the length of `retried`).
    count: usize,
}

/// The answer of a purge: the tasks deleted.
#[derive(Debug, Serialize, ToSchema)]
struct PurgedTasks {
    purged: Vec<Uuid>,
    /// How many (the length of `purged`).
    count: usize,
}

#[utoipa::path(
    post,
    path = "/v1/ops/queues/{queue}/dead/{id}/retry",
    operation_id = "retry_dead",
    tag = "ops",
    summary = "Retry one dead task: it runs again once, with a fresh attempt budget",
    description = "Audited (dead_task.retry).",
    security(("opsToken" = [])),
    params(("queue" = inline(QueueName), Path), ("id" = uuid::Uuid, Path, description = "The task's id")),
    responses(
        (status = 200, description = "Moved back to the queue", body = RetriedTasks),
        (status = 404, description = "queue_not_found, or dead_task_not_found (not in the queue's dead-letter set)", body = ErrorEnvelope),
    )
)]
async fn retry_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<RetriedTasks>> {
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
    Ok(Json(RetriedTasks {
        retried: vec![id],
        count: 1,
    }))
}

/// Which dead tasks a bulk action takes: every one, or one kind's (the query of
/// `DELETE .../dead`, the optional body of `POST .../dead/retry-all`).
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeadKindFilter {
    /// Only tasks of this job kind (`probe`, `rollup`, `apply_offer`, ...); a kind no task
    /// has takes none; empty or omitted: every kind. Never null.
    #[serde(default, deserialize_with = "shared::text::some_string")]
    #[schema(value_type = String, required = false)]
    #[param(value_type = String, required = false)]
    kind: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/ops/queues/{queue}/dead/retry-all",
    operation_id = "retry_all_dead",
    tag = "ops",
    summary = "Retry every dead task (optionally one kind)",
    description = "The body is optional: none (or white space only) retries every dead task of the queue; `{\"kind\": ...}` only that kind's. The Content-Type is not checked. Audited (dead_task.retry_all).",
    security(("opsToken" = [])),
    params(("queue" = inline(QueueName), Path)),
    // A `ref` so that the body is optional (`required: false`) without being nullable:
    // `null` is refused like any body that is not the object.
    request_body(content = ref("#/components/schemas/DeadKindFilter"), content_type = "application/json", description = "Optional (none: every kind): which kind to retry"),
    responses(
        (status = 200, description = "Moved back to the queue", body = RetriedTasks),
        (status = 400, description = "The body does not parse (malformed_json, unknown_field, invalid_field; invalid_characters)", body = ErrorEnvelope),
        (status = 404, description = "queue_not_found", body = ErrorEnvelope),
    )
)]
async fn retry_all_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<RetriedTasks>> {
    // The body is optional: empty means every kind.
    let kind = crate::extract::parse_optional_json::<DeadKindFilter>(&body)?.kind;
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
    Ok(Json(RetriedTasks {
        count: ids.len(),
        retried: ids,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/ops/queues/{queue}/dead",
    operation_id = "purge_dead",
    tag = "ops",
    summary = "Purge dead-lettered tasks (optionally one kind)",
    description = "Deletes every dead task of the queue, or only `kind`'s. Audited (dead_task.purge).",
    security(("opsToken" = [])),
    params(("queue" = inline(QueueName), Path), DeadKindFilter),
    responses(
        (status = 200, description = "Deleted", body = PurgedTasks),
        (status = 404, description = "queue_not_found", body = ErrorEnvelope),
    )
)]
async fn purge_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(f): ApiQuery<DeadKindFilter>,
) -> ApiResult<Json<PurgedTasks>> {
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
    Ok(Json(PurgedTasks {
        count: ids.len(),
        purged: ids,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/ops/queues/{queue}/dead/{id}",
    operation_id = "purge_one_dead",
    tag = "ops",
    summary = "Purge one dead task",
    description = "Audited (dead_task.purge).",
    security(("opsToken" = [])),
    params(("queue" = inline(QueueName), Path), ("id" = uuid::Uuid, Path, description = "The task's id")),
    responses(
        (status = 200, description = "Deleted", body = PurgedTasks),
        (status = 404, description = "queue_not_found, or dead_task_not_found (not in the queue's dead-letter set)", body = ErrorEnvelope),
    )
)]
async fn purge_one_dead(
    _ops: OpsAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<PurgedTasks>> {
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
    Ok(Json(PurgedTasks {
        purged: ids,
        count: 1,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProbes {
    /// How many probe jobs, 1 to 10000.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 10000, default = 1)]
    count: u32,
    /// Record each probe in `job_outbox` (survives a Redis restarted empty).
    #[serde(default = "yes")]
    #[schema(default = true)]
    durable: bool,
    /// What each probe does (every probe of the call is the same).
    #[serde(default)]
    probe: Probe,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// `POST /v1/ops/probes`' answer.
#[derive(Debug, Serialize, ToSchema)]
struct EnqueuedProbes {
    /// The probe jobs' ids.
    ids: Vec<Uuid>,
    /// How many (the length of `ids`).
    count: usize,
}

/// Enqueues canary jobs; each records its effect once in `probe_effects`.
#[utoipa::path(
    post,
    path = "/v1/ops/probes",
    operation_id = "create_probes",
    tag = "ops",
    summary = "Enqueue canary probe jobs",
    description = "Enqueues `count` probe jobs on the ops queue; each records its effect once in probe_effects. The fault-injection fields of `probe` are honoured only by workers started with ALLOW_FAULT_INJECTION=1.",
    security(("opsToken" = [])),
    request_body = CreateProbes,
    responses(
        (status = 202, description = "Enqueued", body = EnqueuedProbes),
        (status = 400, description = "The body does not parse (malformed_json, unknown_field, invalid_field), or parameter_invalid (param count) outside 1..10000", body = ErrorEnvelope),
    )
)]
async fn create_probes(
    _ops: OpsAuth,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateProbes>,
) -> ApiResult<(StatusCode, Json<EnqueuedProbes>)> {
    if !(1..=10_000).contains(&body.count) {
        return Err(ApiError::invalid_param(
            "count",
            "count must be between 1 and 10000",
        ));
    }
    if body.probe.sleep_ms > jobs::Probe::MAX_SLEEP_MS {
        return Err(ApiError::invalid_param(
            "probe.sleep_ms",
            "sleep_ms must be at most 3600000 (an hour)",
        ));
    }
    if body.probe.fail_times > jobs::Probe::MAX_FAIL_TIMES {
        return Err(ApiError::invalid_param(
            "probe.fail_times",
            "fail_times must be at most 1000",
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
        Json(EnqueuedProbes {
            count: ids.len(),
            ids,
        }),
    ))
}

#[cfg(test)]
mod tests {
    /// The document's queue names are the job platform's.
    #[test]
    fn queue_names_are_the_platforms() {
        use super::QueueName::*;
        let names: Vec<String> = [Stripe, Webhooks, Analytics, Cache, Ops]
            .iter()
            .map(|q| {
                serde_json::to_value(q)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(names, jobs::queues::ALL);
    }
}
