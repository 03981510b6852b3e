//! Settings, install and audit pages. The settings form goes through the API's own
//! `services::settings::update` (same validation, same audit row, the dashboard user as the
//! actor); an error appears on the field the API's `param` names. Only owners and admins
//! may change settings: the form is read-only for analysts and the server refuses their POST.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    Extension, Form,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::{accounts, tenants::TenantSettings};

use super::{chrome, csrf_ok, forbidden, page, see_other, Chrome, Signed, CSS_PATH};
use crate::{audit::ClientIp, error::ErrorEnvelope, services, AppState};

struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    hint: &'static str,
    value: String,
    options: &'static [&'static str],
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/settings.html")]
struct SettingsPage {
    css: &'static str,
    chrome: Chrome,
    can_edit: bool,
    saved: bool,
    error: Option<String>,
    fields: Vec<Field>,
}

/// The form's fields with the values to show (stored, or what was just submitted).
fn fields(v: &SettingsForm) -> Vec<Field> {
    let f = |name, label, kind, hint, value: &str| Field {
        name,
        label,
        kind,
        hint,
        value: value.to_string(),
        options: &[],
        error: None,
    };
    let mut cancel = f(
        "cancel_mode",
        "Cancel mode",
        "select",
        "record_only: your own cancel path runs (the widget's onCancel); cancel_at_period_end: we set it on the Stripe subscription.",
        &v.cancel_mode,
    );
    cancel.options = &["record_only", "cancel_at_period_end"];
    vec![
        cancel,
        f("discount_cooldown_days", "Discount cooldown (days)", "number", "No second discount within this many days of an accepted one.", &v.discount_cooldown_days),
        f("pause_cooldown_days", "Pause cooldown (days)", "number", "No second pause within this many days.", &v.pause_cooldown_days),
        f("trial_extension_cooldown_days", "Trial extension cooldown (days)", "number", "No second trial extension within this many days.", &v.trial_extension_cooldown_days),
        f("plan_change_cooldown_days", "Plan change cooldown (days)", "number", "No second plan change within this many days.", &v.plan_change_cooldown_days),
        f("timezone", "Time zone", "text", "IANA name, e.g. Europe/Paris: analytics days follow it.", &v.timezone),
        f("allowed_origins", "Allowed origins", "textarea", "One per line, exactly scheme://host[:port] (no wildcard): the pages that may open the widget.", &v.allowed_origins),
        f("rate_limit_per_second", "Rate limit (requests per second)", "number", "For this mode's keys; 0 is the platform's default.", &v.rate_limit_per_second),
    ]
}

/// The settings form: every field of PUT /v1/settings, as text.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct SettingsForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// `record_only` or `cancel_at_period_end`.
    #[serde(default)]
    #[schema(schema_with = cancel_modes)]
    cancel_mode: String,
    /// Days (a whole number).
    #[serde(default)]
    discount_cooldown_days: String,
    /// Days (a whole number).
    #[serde(default)]
    pause_cooldown_days: String,
    /// Days (a whole number).
    #[serde(default)]
    trial_extension_cooldown_days: String,
    /// Days (a whole number).
    #[serde(default)]
    plan_change_cooldown_days: String,
    /// An IANA time zone name, e.g. Europe/Paris.
    #[serde(default)]
    timezone: String,
    /// One origin per line, exactly scheme://host[:port].
    #[serde(default)]
    allowed_origins: String,
    /// Requests per second for this mode's keys; 0 is the platform's default.
    #[serde(default)]
    rate_limit_per_second: String,
}

fn cancel_modes() -> utoipa::openapi::Object {
    super::one_of(
        "record_only (your own cancel path runs) or cancel_at_period_end (set on the Stripe subscription)",
        &["record_only", "cancel_at_period_end"],
    )
}

impl SettingsForm {
    fn of(s: &TenantSettings) -> Self {
        SettingsForm {
            csrf: String::new(),
            cancel_mode: s.cancel_mode.clone(),
            discount_cooldown_days: s.discount_cooldown_days.to_string(),
            pause_cooldown_days: s.pause_cooldown_days.to_string(),
            trial_extension_cooldown_days: s.trial_extension_cooldown_days.to_string(),
            plan_change_cooldown_days: s.plan_change_cooldown_days.to_string(),
            timezone: s.timezone.clone(),
            allowed_origins: s.allowed_origins.join("\n"),
            rate_limit_per_second: s.rate_limit_per_second.to_string(),
        }
    }

    /// The API's body (`PUT` semantics: every field). A number that does not parse is sent
    /// as the text it is, so the API names the field.
    fn body(&self) -> Map<String, Value> {
        let n = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(s))
        };
        let origins: Vec<Value> = self
            .allowed_origins
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(Value::from)
            .collect();
        let v = json!({
            "cancel_mode": self.cancel_mode,
            "discount_cooldown_days": n(&self.discount_cooldown_days),
            "pause_cooldown_days": n(&self.pause_cooldown_days),
            "trial_extension_cooldown_days": n(&self.trial_extension_cooldown_days),
            "plan_change_cooldown_days": n(&self.plan_change_cooldown_days),
            "timezone": self.timezone.trim(),
            "allowed_origins": origins,
            "rate_limit_per_second": n(&self.rate_limit_per_second),
        });
        v.as_object().cloned().unwrap_or_default()
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Saved {
    /// `1` after a save (shows the notice).
    #[serde(default)]
    saved: String,
}

#[utoipa::path(
    get,
    path = "/app/settings",
    operation_id = "app_settings_page",
    tag = "dashboard",
    summary = "Dashboard: the selected mode's settings (read-only for analysts)",
    security(("dashboardSession" = [])),
    params(Saved),
    responses(
        (status = 200, description = "The settings page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
    )
)]
pub async fn settings_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    uri: Uri,
    Query(q): Query<Saved>,
) -> Response {
    let stored = match shared::tenants::settings(&st.pools.primary, s.user.tenant_id, s.mode).await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "settings read failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable; retry shortly",
            )
                .into_response();
        }
    };
    page(
        StatusCode::OK,
        &SettingsPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(&st, &s, "settings", uri.path().to_string()).await,
            can_edit: s.user.role.can_configure(),
            saved: q.saved == "1",
            error: None,
            fields: fields(&SettingsForm::of(&stored)),
        },
    )
}

#[utoipa::path(
    post,
    path = "/app/settings",
    operation_id = "app_save_settings",
    tag = "dashboard",
    summary = "Dashboard: save the selected mode's settings (owner, admin)",
    description = "Every field, as PUT /v1/settings (allowed_origins one per line; numbers as text, a number that does not parse is refused on its field); validated and audited by the same code (actor: the dashboard user). A refused value is shown on its field (400) and nothing changes. Analysts, a missing or wrong csrf token, or a cross-site POST: 403.",
    security(("dashboardSession" = [])),
    request_body(content = inline(SettingsForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Saved: to /app/settings?saved=1; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The settings form again, with the API's error on the field it names; nothing saved", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
    )
)]
pub async fn save_settings(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<SettingsForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    if !s.user.role.can_configure() {
        return forbidden("your role cannot change settings");
    }
    let actor = super::actor(&s, ip);
    match services::settings::update(&st, (s.user.tenant_id, s.mode), actor, f.body(), true).await {
        Ok(_) => see_other("/app/settings?saved=1"),
        Err(e) => {
            let mut fs = fields(&f);
            let param = e.body.param.clone().unwrap_or_default();
            let name = param.split('[').next().unwrap_or("");
            let mut placed = false;
            for field in &mut fs {
                if field.name == name {
                    field.error = Some(e.body.message.clone());
                    placed = true;
                }
            }
            page(
                if e.status.is_client_error() {
                    StatusCode::BAD_REQUEST
                } else {
                    e.status
                },
                &SettingsPage {
                    css: CSS_PATH.as_str(),
                    chrome: chrome(&st, &s, "settings", "/app/settings".into()).await,
                    can_edit: true,
                    saved: false,
                    error: Some(if placed {
                        "Nothing was saved: fix the field below.".to_string()
                    } else {
                        e.body.message.clone()
                    }),
                    fields: fs,
                },
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Install

#[derive(Template)]
#[template(path = "dashboard/install.html")]
struct InstallPage {
    css: &'static str,
    chrome: Chrome,
    base: String,
    tenant_id: String,
    pk_hint: String,
    examples: Vec<(&'static str, &'static str, String)>,
}

/// Token-signing examples (the format of `shared::widget_token`), filled with the tenant id.
/// Each reads the customer and subscription ids your backend knows and prints the token.
pub fn signing_examples(tenant_id: &str) -> Vec<(&'static str, &'static str, String)> {
    let node = format!(
        r#"import crypto from "node:crypto";
function retentionToken(customerId, subscriptionId) {{
  const payload = Buffer.from(JSON.stringify({{
    tid: "{tenant_id}", cus: customerId, sub: subscriptionId,
    exp: Math.floor(Date.now() / 1000) + 600,
  }})).toString("base64url");
  const sig = crypto.createHmac("sha256", process.env.RETENTIONOS_SIGNING_SECRET)
    .update(payload).digest("hex");
  return `${{payload}}.${{sig}}`;
}}
console.log(retentionToken(process.argv[2], process.argv[3]));"#
    );
    let python = format!(
        r#"import base64, hashlib, hmac, json, os, sys, time
def retention_token(customer_id, subscription_id):
    claims = {{"tid": "{tenant_id}", "cus": customer_id, "sub": subscription_id,
              "exp": int(time.time()) + 600}}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    sig = hmac.new(os.environ["RETENTIONOS_SIGNING_SECRET"].encode(), payload.encode(),
                   hashlib.sha256).hexdigest()
    return payload + "." + sig
print(retention_token(sys.argv[1], sys.argv[2]))"#
    );
    let ruby = format!(
        r##"require "base64"; require "json"; require "openssl"
def retention_token(customer_id, subscription_id)
  claims = {{ tid: "{tenant_id}", cus: customer_id, sub: subscription_id, exp: Time.now.to_i + 600 }}
  payload = Base64.urlsafe_encode64(claims.to_json, padding: false)
  sig = OpenSSL::HMAC.hexdigest("SHA256", ENV.fetch("RETENTIONOS_SIGNING_SECRET"), payload)
  "#{{payload}}.#{{sig}}"
end
puts retention_token(ARGV[0], ARGV[1])"##
    );
    let php = format!(
        r#"<?php
function retention_token(string $customerId, ?string $subscriptionId): string {{
    $claims = ["tid" => "{tenant_id}", "cus" => $customerId, "sub" => $subscriptionId,
               "exp" => time() + 600];
    $payload = rtrim(strtr(base64_encode(json_encode($claims)), "+/", "-_"), "=");
    $sig = hash_hmac("sha256", $payload, getenv("RETENTIONOS_SIGNING_SECRET"));
    return $payload . "." . $sig;
}}
echo retention_token($argv[1], $argv[2]), "\n";"#
    );
    vec![
        ("Node.js", "node", node),
        ("Python", "python", python),
        ("Ruby", "ruby", ruby),
        ("PHP", "php", php),
    ]
}

#[utoipa::path(
    get,
    path = "/app/install",
    operation_id = "app_install_page",
    tag = "dashboard",
    summary = "Dashboard: the widget snippet and token-signing examples (Node, Python, Ruby, PHP) for this tenant and mode",
    security(("dashboardSession" = [])),
    responses(
        (status = 200, description = "The install page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
    )
)]
pub async fn install_page(State(st): State<AppState>, Signed(s): Signed) -> Response {
    let tenant_id = s.user.tenant_id.to_string();
    let pk_hint = shared::tenants::list_keys(&st.pools.primary, s.user.tenant_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|k| k.kind == "publishable" && k.mode == s.mode.as_str() && k.revoked_at.is_none())
        .map(|k| k.display)
        .unwrap_or_else(|| format!("pk_{}_…", s.mode.as_str()));
    let base = super::base_url(&st.config);
    page(
        StatusCode::OK,
        &InstallPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(&st, &s, "install", "/app/install".into()).await,
            base,
            examples: signing_examples(&tenant_id),
            tenant_id,
            pk_hint,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Audit

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct AuditPage {
    css: &'static str,
    chrome: Chrome,
    rows: Vec<(String, String, String, String, String)>,
    next: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Cursor {
    /// The next page (the page's "Next" link).
    #[serde(default)]
    cursor: String,
}

#[utoipa::path(
    get,
    path = "/app/audit",
    operation_id = "app_audit_page",
    tag = "dashboard",
    summary = "Dashboard: the audit log of the selected mode and tenant-wide changes",
    security(("dashboardSession" = [])),
    params(Cursor),
    responses(
        (status = 200, description = "The audit page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The audit page with the error: a cursor the API did not return", content_type = "text/html", body = String),
    )
)]
pub async fn audit_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    Query(q): Query<Cursor>,
) -> Response {
    let mut out = AuditPage {
        css: CSS_PATH.as_str(),
        chrome: chrome(&st, &s, "audit", "/app/audit".into()).await,
        rows: Vec::new(),
        next: None,
        error: None,
    };
    let cursor = (!q.cursor.is_empty()).then(|| q.cursor.clone());
    let body = match services::audit::tenant_page(&st, (s.user.tenant_id, s.mode), cursor).await {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e.body.message.clone());
            return page(e.status, &out);
        }
    };
    for r in body["data"].as_array().into_iter().flatten() {
        let change = match (r.get("before"), r.get("after")) {
            (Some(b), Some(a)) if !b.is_null() => format!("{b} → {a}"),
            (_, Some(a)) if !a.is_null() => a.to_string(),
            _ => String::new(),
        };
        let actor = match r.get("actor_id").and_then(Value::as_str) {
            Some(id) => format!("{} {id}", r["actor_type"].as_str().unwrap_or("")),
            None => r["actor_type"].as_str().unwrap_or("").to_string(),
        };
        out.rows.push((
            r["created_at"].as_str().unwrap_or("").to_string(),
            r["action"].as_str().unwrap_or("").to_string(),
            actor,
            format!(
                "{} {}",
                r["target_type"].as_str().unwrap_or(""),
                r["target_id"].as_str().unwrap_or("")
            ),
            change,
        ));
    }
    if let Some(c) = body["next_cursor"].as_str() {
        out.next = Some(format!("/app/audit?cursor={}", urlencoding::encode(c)));
    }
    page(StatusCode::OK, &out)
}

// ---------------------------------------------------------------------------------------
// API keys

struct KeyRow {
    id: String,
    kind: String,
    display: String,
    created: String,
    last_used: String,
    state: String,
    usable: bool,
}

#[derive(Template)]
#[template(path = "dashboard/keys.html")]
struct KeysPage {
    css: &'static str,
    chrome: Chrome,
    can_edit: bool,
    keys: Vec<KeyRow>,
    issued: Option<(String, String)>,
    error: Option<String>,
}

async fn keys_view(
    st: &AppState,
    s: &accounts::Session,
    issued: Option<(String, String)>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let now = chrono::Utc::now();
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "–".into())
    };
    let keys = shared::tenants::list_keys(&st.pools.primary, s.user.tenant_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.mode == s.mode.as_str())
        .map(|k| {
            let (state, usable) = match (k.revoked_at, k.expires_at) {
                (Some(_), _) => ("revoked".to_string(), false),
                (None, Some(e)) if e <= now => ("expired".to_string(), false),
                (None, Some(e)) => (format!("retiring {}", fmt(Some(e))), true),
                (None, None) => ("active".to_string(), true),
            };
            KeyRow {
                id: k.id.to_string(),
                kind: k.kind,
                display: k.display,
                created: fmt(Some(k.created_at)),
                last_used: fmt(k.last_used_at),
                state,
                usable,
            }
        })
        .collect();
    page(
        status,
        &KeysPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(st, s, "keys", "/app/keys".into()).await,
            can_edit: s.user.role.can_configure(),
            keys,
            issued,
            error,
        },
    )
}

#[utoipa::path(
    get,
    path = "/app/keys",
    operation_id = "app_keys_page",
    tag = "dashboard",
    summary = "Dashboard: the selected mode's API keys (display prefix, created, last used, state)",
    security(("dashboardSession" = [])),
    responses(
        (status = 200, description = "The keys page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
    )
)]
pub async fn keys_page(State(st): State<AppState>, Signed(s): Signed) -> Response {
    keys_view(&st, &s, None, None, StatusCode::OK).await
}

/// The rotation form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RotateForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// `secret` or `publishable` (anything else: 400).
    #[serde(default)]
    #[schema(required = true, schema_with = key_kinds)]
    kind: String,
    /// Seconds the current keys keep working, 0 to 604800 (not a number: 400).
    #[serde(default)]
    #[schema(required = true)]
    grace_seconds: String,
}

fn key_kinds() -> utoipa::openapi::Object {
    super::one_of(
        "The kind of key to issue (anything else: 400)",
        &["secret", "publishable"],
    )
}

/// Issues the new key and shows it once (this response only; `no-store`).
#[utoipa::path(
    post,
    path = "/app/keys/rotate",
    operation_id = "app_rotate_key",
    tag = "dashboard",
    summary = "Dashboard: issue a new key and retire the current ones after a grace period (owner, admin)",
    description = "Same rules and audit row as POST /v1/keys/rotate (grace 0 to 604800 s). The new key is in this response only (no-store). A kind that is not secret or publishable, or a grace that is not a number or out of range: 400. Analysts, CSRF failures: 403.",
    security(("dashboardSession" = [])),
    request_body(content = inline(RotateForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The keys page showing the new key, once", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The keys page with the error; nothing changes", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
    )
)]
pub async fn rotate_key(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    Form(f): Form<RotateForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    if !s.user.role.can_configure() {
        return forbidden("your role cannot change keys");
    }
    let kind = match f.kind.as_str() {
        "secret" => shared::tenants::KeyKind::Secret,
        "publishable" => shared::tenants::KeyKind::Publishable,
        _ => {
            let e = Some("kind must be secret or publishable".to_string());
            return keys_view(&st, &s, None, e, StatusCode::BAD_REQUEST).await;
        }
    };
    let Ok(grace) = f.grace_seconds.trim().parse::<i64>() else {
        let e = Some("grace_seconds must be a number of seconds".to_string());
        return keys_view(&st, &s, None, e, StatusCode::BAD_REQUEST).await;
    };
    let actor = super::actor(&s, ip);
    match services::keys::rotate(&st, (s.user.tenant_id, s.mode), &actor, kind, grace).await {
        Ok(k) => keys_view(&st, &s, Some((f.kind.clone(), k.key)), None, StatusCode::OK).await,
        Err(e) => {
            let status = e.status;
            keys_view(&st, &s, None, Some(e.body.message), status).await
        }
    }
}

#[utoipa::path(
    post,
    path = "/app/keys/{id}/revoke",
    operation_id = "app_revoke_key",
    tag = "dashboard",
    summary = "Dashboard: revoke one key of the selected mode at once (owner, admin)",
    description = "Same function and audit row as the API's key revocation. Analysts, CSRF failures: 403; a key of another tenant or mode, or an id that is not a UUID: 404.",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    request_body(content = inline(super::CsrfForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Revoked: to /app/keys; not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The keys page with the error: no such key", content_type = "text/html", body = String),
    )
)]
pub async fn revoke_key(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<Extension<ClientIp>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    if !csrf_ok(&s, &headers, &f.csrf) {
        return forbidden("missing or wrong CSRF token");
    }
    if !s.user.role.can_configure() {
        return forbidden("your role cannot change keys");
    }
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return keys_view(
            &st,
            &s,
            None,
            Some("no such key".into()),
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    let actor = super::actor(&s, ip);
    match services::keys::revoke(&st, (s.user.tenant_id, s.mode), &actor, id).await {
        Ok(()) => see_other("/app/keys"),
        Err(e) => {
            let status = e.status;
            keys_view(&st, &s, None, Some(e.body.message), status).await
        }
    }
}
