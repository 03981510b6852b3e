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
use crate::{audit::ClientIp, AppState};

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

pub async fn login_page() -> Response {
    page(
        StatusCode::OK,
        &LoginPage {
            css: CSS_PATH.as_str(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

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

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

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

#[derive(Deserialize)]
pub struct DeadQuery {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    done: String,
}

pub async fn dead_page(
    State(st): State<AppState>,
    op: Operator,
    Path(queue): Path<String>,
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

/// Retries (`…/retry`) or purges (`…/purge`) one dead task (the path's last segment).
pub async fn task_action(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path((queue, id)): Path<(String, String)>,
    uri: axum::http::Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    let verb = uri.path().rsplit('/').next().unwrap_or("");
    let (name, id) = match checked(&st, &op, &headers, &f.csrf, &queue, Some(&id)) {
        Ok((n, Some(id))) => (n, id),
        Ok(_) => return (StatusCode::NOT_FOUND, "no such dead task").into_response(),
        Err(res) => return *res,
    };
    let (pool, queues) = (&st.pools.primary, &st.jobs.queues);
    match verb {
        "retry" => {
            let ids = jobs::ops::retry_dead(pool, queues, name, id)
                .await
                .map(|done| if done { vec![id] } else { Vec::new() });
            act(&st, ip, name, "dead_task.retry", ids).await
        }
        "purge" => {
            let ids = jobs::ops::purge_dead(pool, queues, name, None, Some(vec![id])).await;
            act(&st, ip, name, "dead_task.purge", ids).await
        }
        _ => (StatusCode::NOT_FOUND, "no such action").into_response(),
    }
}

/// Retries (`…/retry-all`) or purges (`…/purge-all`) every dead task of a queue.
pub async fn queue_action(
    State(st): State<AppState>,
    op: Operator,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Path(queue): Path<String>,
    uri: axum::http::Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    let verb = uri.path().rsplit('/').next().unwrap_or("");
    let name = match checked(&st, &op, &headers, &f.csrf, &queue, None) {
        Ok((n, _)) => n,
        Err(res) => return *res,
    };
    let (pool, queues) = (&st.pools.primary, &st.jobs.queues);
    match verb {
        "retry-all" => {
            let ids = jobs::ops::retry_all_dead(pool, queues, name, None).await;
            act(&st, ip, name, "dead_task.retry_all", ids).await
        }
        "purge-all" => {
            let ids = jobs::ops::purge_dead(pool, queues, name, None, None).await;
            act(&st, ip, name, "dead_task.purge", ids).await
        }
        _ => (StatusCode::NOT_FOUND, "no such action").into_response(),
    }
}
