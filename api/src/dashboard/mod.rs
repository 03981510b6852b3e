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

use crate::{audit::ClientIp, AppState};

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
        .route("/app/", get(|| async { Redirect::to("/app") }))
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
            post(ops::queue_action),
        )
        .route(
            "/app/ops/queues/{queue}/dead/purge-all",
            post(ops::queue_action),
        )
        .route(
            "/app/ops/queues/{queue}/dead/{id}/retry",
            post(ops::task_action),
        )
        .route(
            "/app/ops/queues/{queue}/dead/{id}/purge",
            post(ops::task_action),
        )
        .route("/app/assets/{file}", get(asset))
        .merge(editor::router())
        .merge(stripe::router())
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
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
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
