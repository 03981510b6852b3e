//! The Stripe connection page (`/app/settings/stripe`), per mode: the header's switch picks
//! whose key and webhook signing secrets it shows and changes.
//!
//! - The key is entered in a password field and never shown again: only its last four
//!   characters. A secret is shown by its last four characters too.
//! - Every change goes through the API's own `services::settings::put_stripe` (same
//!   validation, same `stripe_settings.update` audit row, the dashboard user as the actor):
//!   replacing the key keeps the stored secrets; adding a secret (a roll: old and new are
//!   both accepted until the old one is removed, up to the API's 5) and removing one keep the
//!   stored key. An error appears on the field the API's `param` names.
//! - "Test connection" calls Stripe (`GET /v1/account`, through `shared::stripe`) with the
//!   stored key at `STRIPE_API_BASE` and shows the account or Stripe's own error message.
//!   It changes nothing, so every role may run it.
//! - Owners and admins change; analysts see the page read-only and the server refuses their
//!   POSTs (403).

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Extension, Form, Router,
};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use shared::{
    accounts::Session,
    stripe::{StripeClient, StripeError},
};

use super::{chrome, csrf_ok, forbidden, page, see_other, Chrome, Signed, CSS_PATH};
use crate::{
    audit::ClientIp,
    error::{ApiError, ErrorEnvelope},
    services::{
        self,
        settings::{stripe_credentials, StripeCredentials, StripeSettingsBody},
    },
    AppState,
};

const PATH: &str = "/app/settings/stripe";

/// The OpenAPI description of the Stripe page's routes (merged into `dashboard::Doc`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(stripe_page, save_key, add_secret, remove_secret, test_connection))]
pub(super) struct Doc;

/// How many signing secrets may be active at once (the API's rule).
const MAX_SECRETS: usize = 5;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        // `PATH`, spelled out: the OpenAPI test finds routes by their literal paths.
        .route("/app/settings/stripe", get(stripe_page))
        .route("/app/settings/stripe/key", post(save_key))
        .route("/app/settings/stripe/secrets", post(add_secret))
        .route("/app/settings/stripe/secrets/remove", post(remove_secret))
        .route("/app/settings/stripe/test", post(test_connection))
}

struct SecretRow {
    /// A fingerprint naming the secret in the remove form (never the secret).
    id: String,
    hint: String,
}

/// The errors of a failed change, on the field the API's `param` names.
#[derive(Default)]
struct Errors {
    page: Option<String>,
    api_key: Option<String>,
    webhook_secret: Option<String>,
    secrets: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/stripe.html")]
struct StripePage {
    css: &'static str,
    chrome: Chrome,
    can_edit: bool,
    mode: &'static str,
    connected: bool,
    last4: String,
    updated: String,
    secrets: Vec<SecretRow>,
    can_add: bool,
    max_secrets: usize,
    webhook_url: String,
    events: &'static [&'static str],
    notice: Option<String>,
    errors: Errors,
    /// The connection test's outcome: (succeeded, what to say).
    test: Option<(bool, String)>,
}

fn fingerprint(secret: &str) -> String {
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..8])
}

fn hint(secret: &str) -> String {
    format!("whsec_…{}", services::settings::last4(secret))
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable; retry shortly",
    )
        .into_response()
}

async fn view(
    st: &AppState,
    s: &Session,
    status: StatusCode,
    notice: Option<String>,
    errors: Errors,
    test: Option<(bool, String)>,
) -> Response {
    let (tenant, mode) = (s.user.tenant_id, s.mode);
    let creds = match stripe_credentials(st, (tenant, mode)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e.body.message, "stripe settings read failed");
            return unavailable();
        }
    };
    let updated = match services::settings::stripe_summary(st, (tenant, mode)).await {
        Ok(v) => v
            .get("updated_at")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let (last4, secrets) = match &creds {
        Some(c) => (
            services::settings::last4(&c.api_key),
            c.webhook_secrets
                .iter()
                .map(|w| SecretRow {
                    id: fingerprint(w),
                    hint: hint(w),
                })
                .collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    page(
        status,
        &StripePage {
            css: CSS_PATH.as_str(),
            chrome: chrome(st, s, "stripe", PATH.into()).await,
            can_edit: s.user.role.can_configure(),
            mode: mode.as_str(),
            connected: creds.is_some(),
            last4,
            updated,
            can_add: secrets.len() < MAX_SECRETS,
            secrets,
            max_secrets: MAX_SECRETS,
            webhook_url: format!(
                "{}/v1/webhooks/stripe/{tenant}",
                super::base_url(&st.config)
            ),
            events: services::webhooks::HANDLED,
            notice,
            errors,
            test,
        },
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Done {
    /// The change that just succeeded (`key`, `added`, `removed`): shows its notice;
    /// anything else none.
    #[serde(default)]
    done: String,
}

#[utoipa::path(
    get,
    path = "/app/settings/stripe",
    operation_id = "app_stripe_page",
    tag = "dashboard",
    summary = "Dashboard: the selected mode's Stripe connection (read-only for analysts)",
    description = "The stored key by its last four characters (never the key), the webhook signing secrets by their last four, the webhook endpoint URL ({base}/v1/webhooks/stripe/{tenant_id}) and the Stripe events to enable.",
    security(("dashboardSession" = [])),
    params(Done),
    responses(
        (status = 200, description = "The Stripe page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
    )
)]
pub async fn stripe_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    Query(q): Query<Done>,
) -> Response {
    let notice = match q.done.as_str() {
        "key" => Some("Saved: the new key is used from now on.".to_string()),
        "added" => Some(
            "Secret added: deliveries signed with any listed secret are accepted. Remove the old one once Stripe signs with the new one."
                .to_string(),
        ),
        "removed" => Some("Secret removed: deliveries signed with it are refused.".to_string()),
        _ => None,
    };
    view(&st, &s, StatusCode::OK, notice, Errors::default(), None).await
}

/// The checks every change makes, CSRF then the role: the 403 when one fails.
fn refused(s: &Session, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    if !csrf_ok(s, headers, csrf) {
        return Some(forbidden("missing or wrong CSRF token"));
    }
    if !s.user.role.can_configure() {
        return Some(forbidden("your role cannot change the Stripe connection"));
    }
    None
}

/// What a change does to the stored settings (`None`: none yet): the new key and secrets,
/// or the page to answer instead.
type Edit =
    Box<dyn FnOnce(Option<StripeCredentials>) -> Result<(String, Vec<String>), Refusal> + Send>;

/// An edit's refusal: the status and what the page says where.
struct Refusal(StatusCode, Errors);

/// Reads the mode's settings, applies `edit`, and stores the result through the API's
/// function as a compare-and-set on what was read (a concurrent change — another admin,
/// another tab — is never lost: this one is refused with a reload hint instead). On an
/// error, the page with it on the field its `param` names (`webhook_secrets[i]` and
/// `webhook_secrets` on the new-secret field when `adding`, else on the list).
async fn change(
    st: &AppState,
    s: &Session,
    ip: Option<Extension<ClientIp>>,
    adding: bool,
    done: &str,
    edit: Edit,
) -> Response {
    let current = match stripe_credentials(st, (s.user.tenant_id, s.mode)).await {
        Ok(c) => c,
        Err(e) => return failed(st, s, e, adding).await,
    };
    let revision = current.as_ref().map(|c| c.revision.clone());
    let (api_key, webhook_secrets) = match edit(current) {
        Ok(x) => x,
        Err(Refusal(status, errors)) => return view(st, s, status, None, errors, None).await,
    };
    let actor = super::actor(s, ip);
    let body = StripeSettingsBody {
        mode: s.mode,
        api_key,
        webhook_secrets,
    };
    let auth = (s.user.tenant_id, s.mode);
    match services::settings::put_stripe_if(st, auth, actor, body, Some(revision.as_deref())).await
    {
        Ok(_) => see_other(&format!("{PATH}?done={done}")),
        Err(e) => failed(st, s, e, adding).await,
    }
}

async fn failed(st: &AppState, s: &Session, e: ApiError, adding: bool) -> Response {
    if !e.status.is_client_error() {
        tracing::error!(error = %e.body.message, "stripe settings change failed");
        let errors = Errors {
            page: Some("Nothing was saved: the change failed; retry shortly.".into()),
            ..Errors::default()
        };
        return view(st, s, e.status, None, errors, None).await;
    }
    if e.status == StatusCode::CONFLICT {
        let errors = Errors {
            page: Some(
                "Nothing was saved: the Stripe settings were changed meanwhile (another tab or teammate). The page now shows them; make the change again."
                    .into(),
            ),
            ..Errors::default()
        };
        return view(st, s, StatusCode::CONFLICT, None, errors, None).await;
    }
    let param = e.body.param.clone().unwrap_or_default();
    let msg = e.body.message.clone();
    let mut errors = Errors::default();
    match param.split('[').next().unwrap_or("") {
        "api_key" => errors.api_key = Some(msg),
        "webhook_secrets" if adding || param.contains('[') => {
            errors.webhook_secret = Some(if param.contains('[') {
                msg
            } else {
                format!("{msg}: remove an old secret before adding one")
            })
        }
        "webhook_secrets" => errors.secrets = Some(msg),
        _ => errors.page = Some(msg),
    }
    if errors.page.is_none() {
        errors.page = Some("Nothing was saved: fix the field below.".into());
    }
    view(st, s, StatusCode::BAD_REQUEST, None, errors, None).await
}

/// The key form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct KeyForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// The Stripe secret or restricted key of this mode.
    #[serde(default)]
    #[schema(required = true, format = Password)]
    api_key: String,
    /// The first signing secret, when the mode has no settings yet.
    #[serde(default)]
    webhook_secret: String,
}

/// Replaces the mode's key (keeping its secrets); the first time, with a first secret.
#[utoipa::path(
    post,
    path = "/app/settings/stripe/key",
    operation_id = "app_save_stripe_key",
    tag = "dashboard",
    summary = "Dashboard: store the selected mode's Stripe key (owner, admin)",
    description = "Through the same code as PUT /v1/settings/stripe (validation, audit stripe_settings.update with the dashboard user as actor), as a compare-and-set on the settings read: a concurrent change is refused (409), never lost. The stored webhook signing secrets are kept; webhook_secret is the first one, used only when the mode has no settings yet. A refused value is shown on its field (400) and nothing changes. Analysts, a missing or wrong csrf token, or a cross-site POST: 403.",
    security(("dashboardSession" = [])),
    request_body(content = inline(KeyForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Saved: to /app/settings/stripe?done=key; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The Stripe page with the API's error on the field it names; nothing saved", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 409, description = "The Stripe page: the settings were changed meanwhile (another tab or teammate); nothing saved, make the change again", content_type = "text/html", body = String),
    )
)]
pub async fn save_key(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<KeyForm>,
) -> Response {
    if let Some(r) = refused(&s, &headers, &f.csrf) {
        return r;
    }
    let (key, first) = (
        f.api_key.trim().to_string(),
        f.webhook_secret.trim().to_string(),
    );
    let edit: Edit = Box::new(move |current| {
        let secrets = match current {
            Some(c) => c.webhook_secrets,
            None => vec![first],
        };
        Ok((key, secrets))
    });
    change(&st, &s, ip, true, "key", edit).await
}

/// The add-secret and remove-secret forms (each uses its own field).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SecretForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// The signing secret to add (whsec_…).
    #[serde(default)]
    #[schema(format = Password)]
    webhook_secret: String,
    /// The fingerprint of the secret to remove.
    #[serde(default)]
    secret: String,
}

/// Adds a signing secret after the stored ones (a roll), keeping the key.
#[utoipa::path(
    post,
    path = "/app/settings/stripe/secrets",
    operation_id = "app_add_webhook_secret",
    tag = "dashboard",
    summary = "Dashboard: add a webhook signing secret to the selected mode (a roll; owner, admin)",
    description = "Appends the secret to the stored ones (all stay active, at most 5) and keeps the key, through the same code as PUT /v1/settings/stripe (a compare-and-set: a concurrent change is refused with 409). A refused value (not whsec_, a sixth secret, one already active) or no key stored yet: 400. Analysts, a missing or wrong csrf token, or a cross-site POST: 403.",
    security(("dashboardSession" = [])),
    request_body(content = inline(SecretForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Saved: to /app/settings/stripe?done=added; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The Stripe page with the API's error on the field it names; nothing saved", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 409, description = "The Stripe page: the settings were changed meanwhile (another tab or teammate); nothing saved, make the change again", content_type = "text/html", body = String),
    )
)]
pub async fn add_secret(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<SecretForm>,
) -> Response {
    if let Some(r) = refused(&s, &headers, &f.csrf) {
        return r;
    }
    let new = f.webhook_secret.trim().to_string();
    let edit: Edit = Box::new(move |current| {
        let Some(c) = current else {
            let errors = Errors {
                page: Some("Connect a Stripe key first.".into()),
                ..Errors::default()
            };
            return Err(Refusal(StatusCode::BAD_REQUEST, errors));
        };
        if c.webhook_secrets.contains(&new) {
            let errors = Errors {
                page: Some("Nothing was saved: fix the field below.".into()),
                webhook_secret: Some("this secret is already active".into()),
                ..Errors::default()
            };
            return Err(Refusal(StatusCode::BAD_REQUEST, errors));
        }
        let mut secrets = c.webhook_secrets;
        secrets.push(new);
        Ok((c.api_key, secrets))
    });
    change(&st, &s, ip, true, "added", edit).await
}

/// Removes one signing secret (named by its fingerprint), keeping the key and the others.
#[utoipa::path(
    post,
    path = "/app/settings/stripe/secrets/remove",
    operation_id = "app_remove_webhook_secret",
    tag = "dashboard",
    summary = "Dashboard: remove a webhook signing secret of the selected mode (owner, admin)",
    description = "secret is the fingerprint the page shows the secret under (never the secret). Deliveries signed with it are refused from then on; the last secret cannot be removed (400). An unknown fingerprint: 404. A concurrent change: 409. Analysts, a missing or wrong csrf token, or a cross-site POST: 403.",
    security(("dashboardSession" = [])),
    request_body(content = inline(SecretForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Saved: to /app/settings/stripe?done=removed; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The Stripe page with the API's error on the field it names; nothing saved", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The Stripe page: no such secret in this mode (it may have been removed already)", content_type = "text/html", body = String),
        (status = 409, description = "The Stripe page: the settings were changed meanwhile (another tab or teammate); nothing saved, make the change again", content_type = "text/html", body = String),
    )
)]
pub async fn remove_secret(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<SecretForm>,
) -> Response {
    if let Some(r) = refused(&s, &headers, &f.csrf) {
        return r;
    }
    let edit: Edit = Box::new(move |current| {
        let (key, secrets) = current
            .map(|c| (c.api_key, c.webhook_secrets))
            .unwrap_or_default();
        let before = secrets.len();
        let kept: Vec<String> = secrets
            .into_iter()
            .filter(|w| fingerprint(w) != f.secret)
            .collect();
        if kept.len() == before {
            let errors = Errors {
                secrets: Some(
                    "No such secret in this mode (it may have been removed already).".into(),
                ),
                ..Errors::default()
            };
            return Err(Refusal(StatusCode::NOT_FOUND, errors));
        }
        Ok((key, kept))
    });
    change(&st, &s, ip, false, "removed", edit).await
}

/// What the connection test says about Stripe's answer.
fn describe(r: Result<Value, StripeError>) -> (bool, String) {
    match r {
        Ok(acct) => {
            let id = acct["id"].as_str().unwrap_or("?");
            let name = acct["settings"]["dashboard"]["display_name"]
                .as_str()
                .or_else(|| acct["business_profile"]["name"].as_str())
                .filter(|n| !n.is_empty());
            let what = match name {
                Some(n) => format!("{n} ({id})"),
                None => id.to_string(),
            };
            (
                true,
                format!("Connected: Stripe accepted the key for account {what}."),
            )
        }
        Err(StripeError::Client {
            status, message, ..
        }) => (
            false,
            format!("Stripe refused the key (HTTP {status}): {message}"),
        ),
        Err(StripeError::Network(m)) => (false, format!("Stripe could not be reached: {m}")),
        Err(StripeError::OutcomeUnknown { status }) => (
            false,
            format!("Stripe answered with an error of its own (HTTP {status}); try again later."),
        ),
        Err(e) => (false, format!("The test failed: {e}")),
    }
}

/// Calls Stripe with the stored key (nothing changes; any role).
#[utoipa::path(
    post,
    path = "/app/settings/stripe/test",
    operation_id = "app_test_stripe_connection",
    tag = "dashboard",
    summary = "Dashboard: test the selected mode's Stripe connection (any role)",
    description = "Calls Stripe's GET /v1/account with the stored key (STRIPE_API_BASE) and shows the account, or Stripe's error message (also 200: the page says the test failed). Changes nothing. A missing or wrong csrf token, or a cross-site POST: 403.",
    security(("dashboardSession" = [])),
    request_body(content = inline(super::CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The Stripe page with the test's outcome", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, or the csrf token missing or wrong", body = ErrorEnvelope),
    )
)]
pub async fn test_connection(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    let result = match stripe_credentials(&st, (s.user.tenant_id, s.mode)).await {
        Ok(Some(c)) => {
            let client = StripeClient::new(&st.config.stripe_api_base, Duration::from_secs(10));
            describe(client.get_account(&c.api_key).await)
        }
        Ok(None) => (
            false,
            format!("No Stripe key is stored for {} mode yet.", s.mode.as_str()),
        ),
        Err(e) => {
            tracing::error!(error = %e.body.message, "stripe settings read failed");
            return unavailable();
        }
    };
    view(
        &st,
        &s,
        StatusCode::OK,
        None,
        Errors::default(),
        Some(result),
    )
    .await
}
