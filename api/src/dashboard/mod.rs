//! The tenant dashboard at `/app`: server-rendered pages (askama templates under
//! `api/templates/dashboard/`, checked at compile time) over the same domain code as the API
//! (`shared::accounts` for users and sessions, the API's services in `crate::services` for
//! figures, flows, settings, keys and lists).
//!
//! Access: email + password sign-in ([`shared::accounts::login`]: argon2id, lockout after
//! repeated failures) and a per-address throttle of failed sign-ins ([`LoginThrottle`]).
//! The session cookie (`rtos_session`) is `HttpOnly; SameSite=Lax; Path=/app`, `Secure` when
//! `PUBLIC_BASE_URL` is https; the session lives server-side in PostgreSQL.
//!
//! CSRF: every state-changing request is a POST that must (1) not come from another site
//! (`Origin`, when sent, is our own origin; `Sec-Fetch-Site`, when sent, is `same-origin` or
//! `none`) and (2) when signed in, carry the session's synchronizer token in its `csrf`
//! field (compared in constant time). Either failing is a 403 and changes nothing.
//!
//! Pages answer with `Cache-Control: no-store` and a CSP that allows only our own
//! stylesheet, scripts and frames (no inline script, no other origin). The stylesheet is
//! served under a content-hashed name with a one-year immutable cache.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use askama::Template;
use axum::{
    extract::{FromRequestParts, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use sha2::Digest;
use shared::{
    accounts::{self, LoginError, Session},
    tenants::Mode,
    Config,
};
use subtle::ConstantTimeEq;

use crate::{audit::ClientIp, error::ErrorEnvelope, AppState};

mod editor;
mod flows_list;
mod ops;
mod overview;
mod pages;
mod settings;
mod signin;
mod stripe;
mod team;

pub use signin::LoginThrottle;
use signin::*;

pub const COOKIE: &str = "rtos_session";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(overview::overview))
        .route("/app/", get(to_overview))
        .route("/app/login", get(login_page).post(login))
        .route("/app/logout", post(logout))
        .route("/app/logout-everywhere", post(logout_everywhere))
        .route("/app/mode", post(switch_mode))
        .route(
            "/app/set-password",
            get(set_password_page).post(set_password),
        )
        .route("/app/flows", get(flows_list::flows_page))
        .route("/app/flows/{id}/publish", post(flows_list::publish_flow))
        .route("/app/sessions", get(pages::sessions_page))
        .route("/app/sessions/{id}", get(pages::session_page))
        .route("/app/customers", get(pages::customers_page))
        .route("/app/customers/{customer_id}", get(pages::customer_page))
        .route(
            "/app/settings",
            get(settings::settings_page).post(settings::save_settings),
        )
        .route("/app/install", get(settings::install_page))
        .route("/app/keys", get(settings::keys_page))
        .route("/app/keys/rotate", post(settings::rotate_key))
        .route("/app/keys/{id}/revoke", post(settings::revoke_key))
        .route("/app/audit", get(settings::audit_page))
        .route("/app/team", get(team::team_page))
        .route("/app/team/invite", post(team::invite))
        .route("/app/team/transfer", post(team::transfer))
        .route("/app/team/{id}/role", post(team::change_role))
        .route("/app/team/{id}/remove", post(team::remove))
        .route("/app/team/{id}/resend", post(team::resend))
        .route(
            "/app/reset-password",
            get(team::reset_page).post(team::reset),
        )
        .route("/app/ops", get(ops::queues_page))
        .route("/app/ops/login", get(ops::login_page).post(ops::login))
        .route("/app/ops/logout", post(ops::logout))
        .route("/app/ops/queues/{queue}/dead", get(ops::dead_page))
        .route(
            "/app/ops/queues/{queue}/dead/retry-all",
            post(ops::retry_all),
        )
        .route(
            "/app/ops/queues/{queue}/dead/purge-all",
            post(ops::purge_all),
        )
        .route(
            "/app/ops/queues/{queue}/dead/{id}/retry",
            post(ops::retry_task),
        )
        .route(
            "/app/ops/queues/{queue}/dead/{id}/purge",
            post(ops::purge_task),
        )
        .route("/app/assets/{file}", get(asset))
        .merge(editor::router())
        .merge(stripe::router())
}

/// `GET /app/`: the overview is `/app`.
#[utoipa::path(
    get,
    path = "/app/",
    operation_id = "app_trailing_slash",
    tag = "dashboard",
    summary = "Redirects to /app",
    responses((status = 303, description = "To /app", headers(("Location" = String, description = "/app"))))
)]
async fn to_overview() -> Redirect {
    Redirect::to("/app")
}

// ---------------------------------------------------------------------------------------
// The OpenAPI description

/// The OpenAPI description of the dashboard's routes (merged by `routes::openapi`): the
/// handlers routed here, then (see [`DocParts`]) the editor's and the Stripe page's, and the
/// answers the layers and extractors give every dashboard operation.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        overview::overview,
        to_overview,
        login_page,
        login,
        logout,
        logout_everywhere,
        switch_mode,
        set_password_page,
        set_password,
        flows_list::flows_page,
        flows_list::publish_flow,
        pages::sessions_page,
        pages::session_page,
        pages::customers_page,
        pages::customer_page,
        settings::settings_page,
        settings::save_settings,
        settings::install_page,
        settings::keys_page,
        settings::rotate_key,
        settings::revoke_key,
        settings::audit_page,
        team::team_page,
        team::invite,
        team::transfer,
        team::change_role,
        team::remove,
        team::resend,
        team::reset_page,
        team::reset,
        ops::queues_page,
        ops::login_page,
        ops::login,
        ops::logout,
        ops::dead_page,
        ops::retry_all,
        ops::purge_all,
        ops::retry_task,
        ops::purge_task,
        asset,
    ),
    modifiers(&DocParts)
)]
pub(crate) struct Doc;

/// Completes [`Doc`]: merges `editor::Doc` and `stripe::Doc` (each lists its own handlers:
/// the editor's sit in its private submodules), then adds what the layers and extractors
/// answer (see [`layer_answers`]).
struct DocParts;

impl utoipa::Modify for DocParts {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::OpenApi;
        doc.merge(editor::Doc::openapi());
        doc.merge(stripe::Doc::openapi());
        layer_answers(doc);
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The answers of the layers and extractors, in the error envelope (`envelope_fallback`
/// turns their plain-text bodies into it), added to every dashboard operation where its
/// own `responses` does not say them yet (or as a second content type where it does):
/// - 429 from the per-client-IP rate limit (`overload::protect`, in front of `/app` too);
/// - 400 on a page with query parameters: a query that does not parse (a parameter given
///   twice);
/// - 503 in the envelope besides the HTML page of a handler that answers 503 itself (the
///   shedder and the session lookup answer with the envelope);
/// - on a form POST: 413 (over `BODY_LIMIT_BYTES`), 415 (not
///   `application/x-www-form-urlencoded`) and, for a form of named fields, 422 (a field
///   given twice, or a field without a default missing). The editor's free-form bodies
///   (`additionalProperties`) always parse.
///
/// 503 (overload, a dependency down) is added to every operation by `routes::openapi`.
fn layer_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{path::ParameterIn, schema::Schema, RefOr};
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, ParameterIn::Query));
            let form = op
                .request_body
                .as_ref()
                .and_then(|b| b.content.get(FORM))
                .map(|c| match &c.schema {
                    Some(RefOr::T(Schema::Object(o))) => o.additional_properties.is_none(),
                    _ => true,
                });
            let r = &mut op.responses.responses;
            envelope(
                r,
                "429",
                "Too many requests from this address (RATE_LIMIT_IP_PER_SECOND); retry after Retry-After",
            );
            if r.contains_key("503") {
                envelope(
                    r,
                    "503",
                    "Overloaded or a dependency is down; retry shortly",
                );
            }
            if has_query {
                envelope(
                    r,
                    "400",
                    "The query string does not parse (a parameter given twice)",
                );
            }
            if let Some(named_fields) = form {
                envelope(r, "413", "The body is over BODY_LIMIT_BYTES");
                envelope(
                    r,
                    "415",
                    "The body is not application/x-www-form-urlencoded",
                );
                if named_fields {
                    envelope(
                        r,
                        "422",
                        "The form does not parse: a field given twice, or a required field missing",
                    );
                }
            }
        }
    }
}

/// Adds the error envelope as response `status` (or as its `application/json` content when
/// the operation already answers `status` otherwise, e.g. with an HTML page).
fn envelope(
    responses: &mut std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::Response>,
    >,
    status: &str,
    why: &str,
) {
    use utoipa::openapi::{header::Header, ContentBuilder, Ref, RefOr, ResponseBuilder};
    let content = ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorEnvelope"))))
        .build();
    let retry_after = || {
        let mut h = Header::new(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer),
        );
        h.description = Some("Seconds to wait".into());
        h
    };
    match responses.get_mut(status) {
        Some(RefOr::T(r)) => {
            if !r.content.contains_key("application/json") {
                r.description = format!("{}; or the error envelope: {why}", r.description);
                r.content.insert("application/json".into(), content);
            }
            if status == "429" {
                r.headers
                    .entry("Retry-After".into())
                    .or_insert_with(retry_after);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut b = ResponseBuilder::new()
                .description(why)
                .content("application/json", content);
            if status == "429" {
                b = b.header("Retry-After", retry_after());
            }
            responses.insert(status.to_string(), RefOr::T(b.build()));
        }
    }
}

/// A string schema of these values (a form field or a parameter the handler reads as text),
/// with its description (`schema_with` drops the field's doc comment).
fn one_of(description: &str, values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// Where users reach the api: `PUBLIC_BASE_URL`, else `http://API_ADDR`.
pub fn base_url(config: &Config) -> String {
    if !config.public_base_url.is_empty() {
        return config.public_base_url.trim_end_matches('/').to_string();
    }
    // The api's own address as a browser on this machine reaches it: a wildcard bind
    // address (`0.0.0.0`, `[::]`) becomes the loopback address. `serve` puts the address
    // it bound into the config, so `API_ADDR=…:0` gives the real port.
    let mut addr = config.api_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// A one-time link to a dashboard page (`set-password`, `reset-password`, `invitation`).
pub fn link_url(config: &Config, page: &str, token: &str) -> String {
    format!("{}/app/{page}?token={token}", base_url(config))
}

// ---------------------------------------------------------------------------------------
// Assets

static CSS: &str = include_str!("../../assets/dashboard.css");

/// `/app/assets/<name>.<first 12 hex of the body's SHA-256>.<ext>`: a new body is a new
/// name, so every asset can be cached for a year.
fn hashed_path(name: &str, ext: &str, body: &str) -> String {
    let h = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    format!("/app/assets/{name}.{}.{ext}", &h[..12])
}

/// `/app/assets/dashboard.<hash>.css`.
static CSS_PATH: LazyLock<String> = LazyLock::new(|| hashed_path("dashboard", "css", CSS));

/// The assets `asset` serves: (path, content type, body). The overview's script and the
/// chart library (uPlot from npm, embedded by `api/build.rs`) besides the stylesheet; the
/// editor's scripts have routes of their own (`editor.rs`).
static ASSETS: LazyLock<[(&'static str, &'static str, &'static str); 4]> = LazyLock::new(|| {
    const CSS_TYPE: &str = "text/css; charset=utf-8";
    const JS_TYPE: &str = "text/javascript; charset=utf-8";
    [
        (CSS_PATH.as_str(), CSS_TYPE, CSS),
        (
            overview::UPLOT_CSS_PATH.as_str(),
            CSS_TYPE,
            overview::UPLOT_CSS,
        ),
        (
            overview::UPLOT_JS_PATH.as_str(),
            JS_TYPE,
            overview::UPLOT_JS,
        ),
        (
            overview::OVERVIEW_JS_PATH.as_str(),
            JS_TYPE,
            overview::OVERVIEW_JS,
        ),
    ]
});

/// Also documents the editor's two scripts (`editor.<hash>.js`, `preview.<hash>.js`): they
/// have routes of their own in `editor.rs`, at concrete paths of this template.
#[utoipa::path(
    get,
    path = "/app/assets/{file}",
    operation_id = "app_asset",
    tag = "dashboard",
    summary = "The dashboard's static assets (content-hashed names, cached for a year)",
    description = "The stylesheet (dashboard.<hash>.css), the chart library (uPlot's CSS and script), the overview's, the editor's and the preview frame's scripts, each under the name the pages link (<name>.<first 12 hex of the body's SHA-256>.<ext>), so a name never changes content. Served on both listeners (OPS_ADDR), with no session.",
    params(("file" = String, Path, description = "<name>.<hash>.<ext> as the pages link it")),
    responses(
        (status = 200, description = "The asset (Cache-Control: public, max-age=31536000, immutable)", content(
            (String = "text/css"),
            (String = "text/javascript"),
        ), headers(("Cache-Control" = String))),
        (status = 404, description = "Not an asset of this build", body = ErrorEnvelope),
    )
)]
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let path = format!("/app/assets/{file}");
    let Some((_, kind, body)) = ASSETS.iter().find(|a| a.0 == path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, *kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        *body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Responses

/// A rendered page with the dashboard's headers.
fn page(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = (status, axum::response::Html(html)).into_response();
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
                ),
            );
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn forbidden(why: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CACHE_CONTROL, "no-store")],
        why,
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn session_cookie(config: &Config, value: &str, max_age: Option<Duration>) -> HeaderValue {
    let secure = if config.public_base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let age = match max_age {
        Some(d) => format!("; Max-Age={}", d.as_secs()),
        None => "; Max-Age=0".to_string(),
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/app; HttpOnly; SameSite=Lax{secure}{age}"
    ))
    .expect("cookie is ASCII")
}

/// The value of cookie `name` (the first of every `Cookie` header), at most 128 characters.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE).filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

// ---------------------------------------------------------------------------------------
// CSRF

/// The request does not come from another site (see the module docs).
fn same_site(headers: &HeaderMap) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        return crate::extract::same_origin(origin, headers);
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => true,
    }
}

fn csrf_ok(s: &Session, headers: &HeaderMap, token: &str) -> bool {
    same_site(headers) && bool::from(s.csrf_token.as_bytes().ct_eq(token.as_bytes()))
}

/// A form that carries only the CSRF token (sign-out, revocations, ...).
#[derive(Deserialize, utoipa::ToSchema)]
struct CsrfForm {
    /// The session's CSRF token (in every page's forms); missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
}

// ---------------------------------------------------------------------------------------
// The signed-in extractor

/// The audit actor of a change the signed-in user makes from the dashboard (with the
/// client's address when known).
pub(crate) fn actor(s: &Session, ip: Option<axum::Extension<ClientIp>>) -> shared::audit::Actor {
    accounts::user_actor(&s.user, None, ip.map(|e| e.0 .0.to_string()))
}

/// The signed-in user's session; a page without one redirects to `/app/login`.
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(see_other("/app/login"));
        };
        match accounts::session(&st.pools.primary, &token).await {
            Ok(Some(s)) => {
                crate::extract::record_tenant(s.user.tenant_id, s.mode);
                tracing::Span::current().record("user_id", tracing::field::display(s.user.id));
                Ok(Signed(s))
            }
            Ok(None) => Err(see_other("/app/login")),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable; retry shortly",
                )
                    .into_response())
            }
        }
    }
}

fn client_ip(parts_ip: Option<&ClientIp>) -> Option<IpAddr> {
    parts_ip.map(|c| c.0)
}

// ---------------------------------------------------------------------------------------
// Pages

/// What the header of every signed-in page shows.
struct Chrome {
    tenant_name: String,
    page: &'static str,
    path: String,
    csrf: String,
    live: bool,
    email: String,
    role: &'static str,
}

async fn chrome(st: &AppState, s: &Session, page: &'static str, path: String) -> Chrome {
    let name = sqlx::query_scalar!("SELECT name FROM tenants WHERE id = $1", s.user.tenant_id)
        .fetch_optional(&st.pools.primary)
        .await
        .unwrap_or(None);
    Chrome {
        tenant_name: name.unwrap_or_default(),
        page,
        path,
        csrf: s.csrf_token.clone(),
        live: s.mode == Mode::Live,
        email: s.user.email.clone(),
        role: s.user.role.as_str(),
    }
}

#[derive(Template)]
#[template(path = "dashboard/not_found.html")]
struct NotFoundPage {
    css: &'static str,
    chrome: Chrome,
    message: &'static str,
}

/// A signed-in page for an object this tenant's selected mode does not have.
fn not_found_page(chrome: Chrome, status: StatusCode, message: &'static str) -> Response {
    let status = if status.is_client_error() {
        StatusCode::NOT_FOUND
    } else {
        status
    };
    page(
        status,
        &NotFoundPage {
            css: CSS_PATH.as_str(),
            chrome,
            message,
        },
    )
}

/// Cents as dollars: `$12.34`.
fn money(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, (cents % 100).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The development defaults with `API_ADDR` (set after parsing: a wildcard address would
    /// need production secrets) and `PUBLIC_BASE_URL`.
    fn config(api_addr: &str, public: &str) -> Config {
        let mut c = Config::from_lookup(|_| None).expect("config");
        c.api_addr = api_addr.parse().expect("address");
        c.public_base_url = public.to_string();
        c
    }

    /// Every (method, path) of the dashboard's routers.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/app"),
        ("get", "/app/"),
        ("get", "/app/login"),
        ("post", "/app/login"),
        ("post", "/app/logout"),
        ("post", "/app/logout-everywhere"),
        ("post", "/app/mode"),
        ("get", "/app/set-password"),
        ("post", "/app/set-password"),
        ("get", "/app/flows"),
        ("post", "/app/flows/{id}/publish"),
        ("get", "/app/sessions"),
        ("get", "/app/sessions/{id}"),
        ("get", "/app/customers"),
        ("get", "/app/customers/{customer_id}"),
        ("get", "/app/settings"),
        ("post", "/app/settings"),
        ("get", "/app/install"),
        ("get", "/app/keys"),
        ("post", "/app/keys/rotate"),
        ("post", "/app/keys/{id}/revoke"),
        ("get", "/app/audit"),
        ("get", "/app/team"),
        ("post", "/app/team/invite"),
        ("post", "/app/team/transfer"),
        ("post", "/app/team/{id}/role"),
        ("post", "/app/team/{id}/remove"),
        ("post", "/app/team/{id}/resend"),
        ("get", "/app/reset-password"),
        ("post", "/app/reset-password"),
        ("get", "/app/ops"),
        ("get", "/app/ops/login"),
        ("post", "/app/ops/login"),
        ("post", "/app/ops/logout"),
        ("get", "/app/ops/queues/{queue}/dead"),
        ("post", "/app/ops/queues/{queue}/dead/retry-all"),
        ("post", "/app/ops/queues/{queue}/dead/purge-all"),
        ("post", "/app/ops/queues/{queue}/dead/{id}/retry"),
        ("post", "/app/ops/queues/{queue}/dead/{id}/purge"),
        ("get", "/app/assets/{file}"),
        ("post", "/app/flows/new"),
        ("get", "/app/flows/{id}"),
        ("post", "/app/flows/{id}"),
        ("get", "/app/flows/{id}/preview"),
        ("post", "/app/flows/{id}/preview"),
        ("get", "/app/flows/{id}/diff"),
        ("post", "/app/flows/{id}/versions/{version}/restore"),
        ("post", "/app/flows/{id}/copy-to-live"),
        ("get", "/app/settings/stripe"),
        ("post", "/app/settings/stripe/key"),
        ("post", "/app/settings/stripe/secrets"),
        ("post", "/app/settings/stripe/secrets/remove"),
        ("post", "/app/settings/stripe/test"),
    ];

    /// The (method, path) pairs routed with a literal path in the dashboard's sources (as
    /// `foundation::openapi_documents_every_route` reads them).
    fn routed_in_source() -> std::collections::BTreeSet<(String, String)> {
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/dashboard"
        ))];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).expect("dashboard sources") {
                let path = e.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(std::fs::read_to_string(path).expect("source"));
                }
            }
        }
        // Spelled in pieces so that this file's text holds no route call of its own.
        let call = [".", "route", "("].concat();
        let mut routed = std::collections::BTreeSet::new();
        for file in &files {
            let mut rest = file.as_str();
            while let Some(at) = rest.find(&call) {
                rest = &rest[at + call.len()..];
                let Some(path) = rest.trim_start().strip_prefix('"') else {
                    continue;
                };
                let path = path.split('"').next().expect("a path").to_string();
                let (mut depth, mut end) = (1, 0);
                for (i, c) in rest.char_indices() {
                    depth += i32::from(c == '(') - i32::from(c == ')');
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                let methods = &rest[..end];
                for m in ["get", "post"] {
                    let called = methods.match_indices(&format!("{m}(")).any(|(i, _)| {
                        i == 0 || {
                            let b = methods.as_bytes()[i - 1];
                            !b.is_ascii_alphanumeric() && b != b'_'
                        }
                    });
                    if called {
                        routed.insert((m.to_string(), path.clone()));
                    }
                }
            }
        }
        routed
    }

    #[test]
    fn the_openapi_document_describes_every_dashboard_route() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(Doc::openapi()).expect("the document serialises");
        let expected: std::collections::BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(expected.len(), ROUTES.len(), "ROUTES repeats a route");
        assert_eq!(
            routed_in_source(),
            expected,
            "ROUTES is not what the routers route"
        );
        // The editor's scripts are routed at concrete paths that `/app/assets/{file}` covers.
        for script in [
            editor::EDITOR_JS_PATH.as_str(),
            editor::PREVIEW_JS_PATH.as_str(),
        ] {
            let file = script.strip_prefix("/app/assets/").expect("an asset path");
            assert!(!file.is_empty() && !file.contains('/'), "{script}");
        }

        let mut documented = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let what = format!("{method} {path}");
                documented.insert((method.clone(), path.clone()));
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(id.starts_with("app_"), "{what}: operationId {id:?}");
                assert!(ids.insert(id.to_string()), "operationId {id} repeats");
                if method == "post" {
                    let body = &op["requestBody"]["content"][FORM]["schema"];
                    assert!(body.is_object(), "{what}: no form request body");
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        assert_eq!(p["required"], true, "{what}: optional path parameter");
                        let name = p["name"].as_str().unwrap_or_default();
                        assert!(path.contains(&format!("{{{name}}}")), "{what}: {name}");
                    }
                }
                let in_path = path.matches('{').count();
                let params = op["parameters"].as_array().into_iter().flatten();
                let path_params = params.filter(|p| p["in"] == "path").count();
                assert_eq!(path_params, in_path, "{what}: path parameters");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    !responses.contains_key("default"),
                    "{what}: a default response"
                );
                for (status, r) in responses {
                    let content = r["content"].as_object();
                    if status.starts_with('3') {
                        assert!(content.is_none(), "{what} {status}: a body on a redirect");
                        assert!(
                            r["headers"]["Location"].is_object(),
                            "{what} {status}: no Location"
                        );
                    }
                    for (kind, c) in content.into_iter().flatten() {
                        assert!(c["schema"].is_object(), "{what} {status} {kind}: no schema");
                    }
                }
                // What the layers answer: the per-IP limit everywhere, form errors on POSTs.
                assert!(responses.contains_key("429"), "{what}: no 429");
                if method == "post" {
                    // 403: a cross-site POST (and, signed in, a wrong CSRF token).
                    for status in ["403", "413", "415"] {
                        assert!(responses.contains_key(status), "{what}: no {status}");
                    }
                }
            }
        }
        assert_eq!(
            documented, expected,
            "documented operations are not the routed ones"
        );
        println!("{} dashboard operations documented", documented.len());
    }

    #[test]
    fn dashboard_operation_ids_are_unique_in_the_whole_document() {
        let doc = serde_json::to_value(crate::routes::openapi::document(""))
            .expect("the document serialises");
        let mut ids = std::collections::BTreeMap::new();
        let mut app = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                if let Some(other) = ids.insert(id.to_string(), format!("{method} {path}")) {
                    panic!("operationId {id} names {other} and {method} {path}");
                }
                if path.starts_with("/app") {
                    app += 1;
                    assert!(id.starts_with("app_"), "{method} {path}: {id}");
                } else {
                    assert!(!id.starts_with("app_"), "{method} {path}: {id}");
                }
            }
        }
        assert_eq!(
            app,
            ROUTES.len(),
            "dashboard operations in the whole document"
        );
    }

    #[test]
    fn mailed_links_use_the_public_url_or_a_reachable_api_address() {
        assert_eq!(
            base_url(&config("0.0.0.0:8080", "")),
            "http://127.0.0.1:8080"
        );
        assert_eq!(base_url(&config("[::]:8080", "")), "http://[::1]:8080");
        assert_eq!(
            link_url(&config("127.0.0.1:3000", ""), "set-password", "abc"),
            "http://127.0.0.1:3000/app/set-password?token=abc"
        );
        let c = config("0.0.0.0:8080", "https://retention.example.com/");
        assert_eq!(base_url(&c), "https://retention.example.com");
    }
}
