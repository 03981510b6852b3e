//! The operator console at `/app/ops` (like Sidekiq Web): queues with depth and oldest age,
//! dead letters with list / show / retry / retry-all / purge. Signed in with the ops token
//! (`OPS_TOKEN`) on a login of its own, apart from tenant users; every action goes through
//! `jobs::ops` and the ops API's audit rows (actor `ops`), like `/v1/ops/*`. With `OPS_ADDR`
//! set these pages are served on the internal listener only.
//!
//! The ops session is a cookie `rtos_ops = <expiry>.<HMAC-SHA256(OPS_TOKEN, "ops-session:"
//! expiry)>` (`HttpOnly; SameSite=Strict; Path=/app/ops`, 8 hours): nothing to store, and
//! changing `OPS_TOKEN` ends every ops session. Forms carry a CSRF token derived the same way
//! (`"ops-csrf:" expiry`) and POSTs must be same-site.

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{FromRequestParts, Path, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Form,
};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use super::{forbidden, page, same_site, see_other, CSS_PATH};
use crate::{audit::ClientIp, error::ErrorEnvelope, AppState};

const COOKIE: &str = "rtos_ops";
const TTL: Duration = Duration::from_secs(8 * 3600);

fn mac(st: &AppState, purpose: &str, exp: i64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(st.config.ops_token.expose().as_bytes())
        .expect("HMAC takes any key length");
    m.update(format!("{purpose}:{exp}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A signed-in operator (the cookie's expiry, from which the CSRF token derives).
pub struct Operator {
    exp: i64,
}

impl Operator {
    fn csrf(&self, st: &AppState) -> String {
        mac(st, "ops-csrf", self.exp)
    }

    fn check(&self, st: &AppState, headers: &HeaderMap, csrf: &str) -> bool {
        same_site(headers) && shared::crypto::ct_eq(self.csrf(st).as_bytes(), csrf.as_bytes())
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let value = super::cookie_value(&parts.headers, COOKIE);
        let ok = value.as_deref().and_then(|v| {
            let (exp, sig) = v.split_once('.')?;
            let exp: i64 = exp.parse().ok()?;
            (exp > chrono::Utc::now().timestamp()
                && shared::crypto::ct_eq(mac(st, "ops-session", exp).as_bytes(), sig.as_bytes()))
            .then_some(exp)
        });
        match ok {
            Some(exp) => Ok(Operator { exp }),
            None => Err(see_other("/app/ops/login")),
        }
    }
}

fn cookie(st: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if st.config.public_base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/app/ops; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ASCII")
}

#[derive(Template)]
#[template(path = "dashboard/ops_login.html")]
struct LoginPage {
    css: &'static str,
    error: Option<String>,
}

#[utoipa::path(
    get,
    path = "/app/ops/login",
    operation_id = "app_ops_login_page",
    tag = "ops",
    summary = "Ops console sign-in form (field token)",
    description = "With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    responses((status = 200, description = "The sign-in page", content_type = "text/html", body = String))
)]
pub async fn login_page() -> Response {
    page(
        StatusCode::OK,
        &LoginPage {
            css: CSS_PATH.as_str(),
            error: None,
        },
    )
}

/// The console's sign-in form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// The deployment's OPS_TOKEN.
    #[serde(default)]
    #[schema(required = true, format = Password)]
    token: String,
}

#[utoipa::path(
    post,
    path = "/app/ops/login",
    operation_id = "app_ops_login",
    tag = "ops",
    summary = "Ops console sign-in with OPS_TOKEN",
    description = "Sets the `rtos_ops` cookie (HMAC of its expiry under OPS_TOKEN; HttpOnly; SameSite=Strict; Path=/app/ops; 8 hours). Wrong tokens count toward the per-address sign-in throttle (429 with Retry-After once over it). A cross-site POST: 403. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    request_body(content = inline(TokenForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: to /app/ops, with the console cookie", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 401, description = "The sign-in page again: the token is wrong", content_type = "text/html", body = String),
        (status = 403, description = "A POST from another site", body = ErrorEnvelope),
        (status = 429, description = "The sign-in page: too many failed sign-ins from this address", content_type = "text/html", body = String, headers(("Retry-After" = u64, description = "Seconds left in the window"))),
    )
)]
pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<TokenForm>,
) -> Response {
    if !same_site(&headers) {
        return forbidden("cross-site request refused");
    }
    let ip = ip.map(|e| e.0 .0);
    if let Some(wait) = ip.and_then(|ip| st.login_throttle.blocked(ip)) {
        let mut res = page(
            StatusCode::TOO_MANY_REQUESTS,
            &LoginPage {
                css: CSS_PATH.as_str(),
                error: Some("Too many failed sign-ins from your address; try again later.".into()),
            },
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return res;
    }
    if !shared::crypto::ct_eq(f.token.as_bytes(), st.config.ops_token.expose().as_bytes()) {
        if let Some(ip) = ip {
            st.login_throttle.failed(ip);
        }
        tracing::warn!(ip = ?ip, "ops console sign-in with a wrong token");
        return page(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                css: CSS_PATH.as_str(),
                error: Some("The ops token is wrong.".into()),
            },
        );
    }
    let exp = chrono::Utc::now().timestamp() + TTL.as_secs() as i64;
    let mut res = see_other("/app/ops");
    res.headers_mut().insert(
        header::SET_COOKIE,
        cookie(
            &st,
            &format!("{exp}.{}", mac(&st, "ops-session", exp)),
            TTL.as_secs(),
        ),
    );
    res
}

/// A console form: only its CSRF token.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CsrfForm {
    /// The console's CSRF token (in its pages' forms); missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
}

#[utoipa::path(
    post,
    path = "/app/ops/logout",
    operation_id = "app_ops_logout",
    tag = "ops",
    summary = "Ops console sign-out",
    description = "Clears the console cookie. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To /app/ops/login: signed out (the cookie cleared), or not signed in", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 403, description = "A cross-site POST, or the console's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
    )
)]
pub async fn logout(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !op.check(&st, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let mut res = see_other("/app/ops/login");
    res.headers_mut()
        .insert(header::SET_COOKIE, cookie(&st, "", 0));
    res
}

struct QueueRow {
    name: String,
    ready: u64,
    oldest: String,
    scheduled: u64,
    in_flight: u64,
    dead: u64,
    completed: u64,
}

#[derive(Template)]
#[template(path = "dashboard/ops_queues.html")]
struct QueuesPage {
    css: &'static str,
    csrf: String,
    queues: Vec<QueueRow>,
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the job queue is unavailable; retry shortly",
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/app/ops",
    operation_id = "app_ops_queues_page",
    tag = "ops",
    summary = "Ops console: every queue's depth, oldest waiting age, scheduled, running, dead and completed counts",
    description = "The job queue unreachable: 503. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    responses(
        (status = 200, description = "The queues page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in to the console: to /app/ops/login", headers(("Location" = String))),
    )
)]
pub async fn queues_page(State(st): State<AppState>, op: Operator) -> Response {
    let stats = match jobs::ops::overview(&st.jobs.queues).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "queue overview failed");
            return unavailable();
        }
    };
    let queues = stats
        .into_iter()
        .map(|q| QueueRow {
            oldest: if q.oldest_ready_age_seconds > 0.0 {
                format!("{:.0} s", q.oldest_ready_age_seconds)
            } else {
                "–".into()
            },
            name: q.queue,
            ready: q.ready + q.due,
            scheduled: q.scheduled,
            in_flight: q.in_flight,
            dead: q.dead,
            completed: q.completed_total,
        })
        .collect();
    page(
        StatusCode::OK,
        &QueuesPage {
            css: CSS_PATH.as_str(),
            csrf: op.csrf(&st),
            queues,
        },
    )
}

struct DeadRow {
    id: String,
    kind: String,
    attempts: u32,
    crashes: u32,
    error: String,
    payload: String,
    failed_at: String,
    created_at: String,
    durable: bool,
}

#[derive(Template)]
#[template(path = "dashboard/ops_dead.html")]
struct DeadPage {
    css: &'static str,
    csrf: String,
    queue: String,
    notice: Option<String>,
    tasks: Vec<DeadRow>,
    next: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// The next page (the page's "Next" link; not a number: the first page).
    #[serde(default)]
    cursor: String,
    /// A notice to show (what an action just did; at most 80 characters shown).
    #[serde(default)]
    done: String,
}

#[utoipa::path(
    get,
    path = "/app/ops/queues/{queue}/dead",
    operation_id = "app_ops_dead_page",
    tag = "ops",
    summary = "Ops console: a queue's dead letters (50 per page, newest first) with each task's error and payload",
    description = "An unknown queue: 404; the job queue unreachable: 503. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    params(QueuePath, DeadQuery),
    responses(
        (status = 200, description = "The dead letters page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in to the console: to /app/ops/login", headers(("Location" = String))),
        (status = 404, description = "No such queue", body = ErrorEnvelope),
    )
)]
pub async fn dead_page(
    State(st): State<AppState>,
    op: Operator,
    Path(QueuePath { queue }): Path<QueuePath>,
    Query(q): Query<DeadQuery>,
) -> Response {
    let Ok(name) = jobs::ops::check_queue(&queue) else {
        return (StatusCode::NOT_FOUND, "no such queue").into_response();
    };
    let cursor =
        (!q.cursor.is_empty() && q.cursor.parse::<usize>().is_ok()).then_some(q.cursor.as_str());
    let dead = match jobs::ops::list_dead(&st.jobs.queues, name, 50, cursor).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "dead-letter listing failed");
            return unavailable();
        }
    };
    let tasks = dead
        .data
        .into_iter()
        .map(|t| DeadRow {
            id: t.id.to_string(),
            kind: t.kind,
            attempts: t.attempts,
            crashes: t.crashes,
            error: t.last_error,
            payload: t.payload.to_string(),
            failed_at: t.failed_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            created_at: t.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            durable: t.durable,
        })
        .collect();
    let notice = match q.done.as_str() {
        "" => None,
        d => Some(d.chars().take(80).collect()),
    };
    page(
        StatusCode::OK,
        &DeadPage {
            css: CSS_PATH.as_str(),
            csrf: op.csrf(&st),
            next: dead
                .next_cursor
                .map(|c| format!("/app/ops/queues/{name}/dead?cursor={c}")),
            queue: name.to_string(),
            notice,
            tasks,
        },
    )
}

/// Runs one dead-letter action and its audit row, then back to the list with a notice.
async fn act(
    st: &AppState,
    ip: Option<Extension<ClientIp>>,
    queue: &'static str,
    action: &'static str,
    ids: Result<Vec<Uuid>, jobs::ops::OpsError>,
) -> Response {
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, action, "ops console action failed");
            return unavailable();
        }
    };
    let actor = shared::audit::Actor {
        kind: shared::audit::ActorType::Ops,
        id: None,
        request_id: None,
        ip: ip.map(|e| e.0 .0.to_string()),
    };
    if let Err(e) = crate::services::ops::audit(st, &actor, action, queue, &ids, None).await {
        tracing::error!(error = %e.body.message, action, "audit row of an ops console action failed");
    }
    tracing::info!(
        queue,
        action,
        count = ids.len(),
        "dead tasks changed from the ops console"
    );
    let verb = if action.ends_with("retry") || action.ends_with("retry_all") {
        "retried"
    } else {
        "purged"
    };
    see_other(&format!(
        "/app/ops/queues/{queue}/dead?done={}+{verb}",
        ids.len()
    ))
}

/// The checks of every console action: the CSRF token, a known queue and (for one task) a
/// task id; `Err` is the response that refuses it.
fn checked(
    st: &AppState,
    op: &Operator,
    headers: &HeaderMap,
    csrf: &str,
    queue: &str,
    id: Option<&str>,
) -> Result<(&'static str, Option<Uuid>), Box<Response>> {
    if !op.check(st, headers, csrf) {
        return Err(Box::new(forbidden("missing or wrong CSRF token")));
    }
    let name = jobs::ops::check_queue(queue)
        .map_err(|_| Box::new((StatusCode::NOT_FOUND, "no such queue").into_response()))?;
    let id = id
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| Box::new((StatusCode::NOT_FOUND, "no such dead task").into_response()))?;
    Ok((name, id))
}

/// What a console form does to dead tasks.
#[derive(Clone, Copy)]
enum Action {
    Retry,
    Purge,
}

/// A queue of the job platform (the path's `{queue}`).
#[derive(Deserialize)]
pub struct QueuePath {
    queue: String,
}

/// One dead task of a queue (the path's `{queue}` and `{id}`).
#[derive(Deserialize)]
pub struct TaskPath {
    queue: String,
    id: String,
}

/// A path parameter of the console's routes, for the OpenAPI document.
fn path_param(
    name: &str,
    description: &str,
    schema: utoipa::openapi::Object,
) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::{path::ParameterBuilder, path::ParameterIn, Required};
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn queue_param() -> utoipa::openapi::path::Parameter {
    let names = super::one_of("A queue of the job platform", jobs::queues::ALL);
    path_param("queue", "The queue (another name: 404)", names)
}

impl utoipa::IntoParams for QueuePath {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![queue_param()]
    }
}

impl utoipa::IntoParams for TaskPath {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::{schema::Type, KnownFormat, ObjectBuilder, SchemaFormat};
        let uuid = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .build();
        vec![
            queue_param(),
            path_param("id", "The dead task's id (not a UUID: 404)", uuid),
        ]
    }
}

/// Retries or purges one dead task.
async fn task_action(
    st: &AppState,
    op: &Operator,
    headers: &HeaderMap,
    ip: Option<Extension<ClientIp>>,
    path: TaskPath,
    csrf: &str,
    action: Action,
) -> Response {
    let (name, id) = match checked(st, op, headers, csrf, &path.queue, Some(&path.id)) {
        Ok((n, Some(id))) => (n, id),
        Ok(_) => return (StatusCode::NOT_FOUND, "no such dead task").into_response(),
        Err(res) => return *res,
    };
    let (pool, queues) = (&st.pools.primary, &st.jobs.queues);
    match action {
        Action::Retry => {
            let ids = jobs::ops::retry_dead(pool, queues, name, id)
                .await
                .map(|done| if done { vec![id] } else { Vec::new() });
            act(st, ip, name, "dead_task.retry", ids).await
        }
        Action::Purge => {
            let ids = jobs::ops::purge_dead(pool, queues, name, None, Some(vec![id])).await;
            act(st, ip, name, "dead_task.purge", ids).await
        }
    }
}

/// `POST …/dead/{id}/retry`.
#[utoipa::path(
    post,
    path = "/app/ops/queues/{queue}/dead/{id}/retry",
    operation_id = "app_ops_retry_task",
    tag = "ops",
    summary = "Ops console: retry one dead letter (it runs again once, with a fresh attempt budget)",
    description = "Redirects to the list with how many were changed (0 when the task is no longer dead). Audited as ops (dead_task.retry), like the ops API. Without the console's csrf token or from another site: 403. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    params(TaskPath),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: to /app/ops/queues/{queue}/dead?done=N+retried; not signed in: to /app/ops/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, or the console's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "No such queue, or the id is not a UUID", body = ErrorEnvelope),
    )
)]
pub async fn retry_task(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(path): Path<TaskPath>,
    Form(f): Form<CsrfForm>,
) -> Response {
    task_action(&st, &op, &headers, ip, path, &f.csrf, Action::Retry).await
}

/// `POST …/dead/{id}/purge`.
#[utoipa::path(
    post,
    path = "/app/ops/queues/{queue}/dead/{id}/purge",
    operation_id = "app_ops_purge_task",
    tag = "ops",
    summary = "Ops console: purge one dead letter",
    description = "Redirects to the list with how many were changed (0 when the task is no longer dead). Audited as ops (dead_task.purge), like the ops API. Without the console's csrf token or from another site: 403. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    params(TaskPath),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: to /app/ops/queues/{queue}/dead?done=N+purged; not signed in: to /app/ops/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, or the console's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "No such queue, or the id is not a UUID", body = ErrorEnvelope),
    )
)]
pub async fn purge_task(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(path): Path<TaskPath>,
    Form(f): Form<CsrfForm>,
) -> Response {
    task_action(&st, &op, &headers, ip, path, &f.csrf, Action::Purge).await
}

/// Retries or purges every dead task of a queue.
async fn queue_action(
    st: &AppState,
    op: &Operator,
    headers: &HeaderMap,
    ip: Option<Extension<ClientIp>>,
    queue: &str,
    csrf: &str,
    action: Action,
) -> Response {
    let name = match checked(st, op, headers, csrf, queue, None) {
        Ok((n, _)) => n,
        Err(res) => return *res,
    };
    let (pool, queues) = (&st.pools.primary, &st.jobs.queues);
    match action {
        Action::Retry => {
            let ids = jobs::ops::retry_all_dead(pool, queues, name, None).await;
            act(st, ip, name, "dead_task.retry_all", ids).await
        }
        Action::Purge => {
            let ids = jobs::ops::purge_dead(pool, queues, name, None, None).await;
            act(st, ip, name, "dead_task.purge", ids).await
        }
    }
}

/// `POST …/dead/retry-all`.
#[utoipa::path(
    post,
    path = "/app/ops/queues/{queue}/dead/retry-all",
    operation_id = "app_ops_retry_all",
    tag = "ops",
    summary = "Ops console: retry every dead letter of the queue",
    description = "Redirects to the list with how many were changed. Audited as ops (dead_task.retry_all), like the ops API. Without the console's csrf token or from another site: 403. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    params(QueuePath),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: to /app/ops/queues/{queue}/dead?done=N+retried; not signed in: to /app/ops/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, or the console's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "No such queue", body = ErrorEnvelope),
    )
)]
pub async fn retry_all(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(QueuePath { queue }): Path<QueuePath>,
    Form(f): Form<CsrfForm>,
) -> Response {
    queue_action(&st, &op, &headers, ip, &queue, &f.csrf, Action::Retry).await
}

/// `POST …/dead/purge-all`.
#[utoipa::path(
    post,
    path = "/app/ops/queues/{queue}/dead/purge-all",
    operation_id = "app_ops_purge_all",
    tag = "ops",
    summary = "Ops console: purge every dead letter of the queue",
    description = "Redirects to the list with how many were changed. Audited as ops (dead_task.purge), like the ops API. Without the console's csrf token or from another site: 403. With OPS_ADDR set, served on the internal listener only (the public one answers 404).",
    security(("opsSession" = [])),
    params(QueuePath),
    request_body(content = inline(CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: to /app/ops/queues/{queue}/dead?done=N+purged; not signed in: to /app/ops/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, or the console's csrf token missing or wrong: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "No such queue", body = ErrorEnvelope),
    )
)]
pub async fn purge_all(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(QueuePath { queue }): Path<QueuePath>,
    Form(f): Form<CsrfForm>,
) -> Response {
    queue_action(&st, &op, &headers, ip, &queue, &f.csrf, Action::Purge).await
}
