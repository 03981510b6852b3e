//! The editor's live preview: `GET /app/flows/{id}/preview` (the frame that runs the real
//! widget on the saved draft) and `POST /app/flows/{id}/preview` (the editor's unsaved form
//! as the widget would get it).

use askama::Template;
use axum::{
    extract::Query,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Form, Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::flows::Guardrails;

use super::{field_of, form, FlowOf, PREVIEW_JS_PATH};
use crate::{
    dashboard::{csrf_ok, forbidden, page, CSS_PATH},
    error::ErrorEnvelope,
    services,
};

// What `preview_payload` builds, for the OpenAPI document only (the JSON is built directly).
/// What the widget's `preview` option takes: the shape of a session start's answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PreviewPayload {
    /// The flow as the customer would get it: `id` and `version` null (nothing is saved),
    /// `language`, `steps` (rendered).
    #[schema(value_type = Object)]
    flow: Value,
    /// The variant previewed; null for none or the holdout.
    #[schema(required = true)]
    variant: Option<String>,
    /// Whether the holdout is previewed.
    holdout: bool,
    /// The flow's language.
    language: String,
    /// The widget's texts in that language, by key.
    strings: std::collections::HashMap<String, String>,
}

/// What the widget's `preview` option takes: the shape of a session start's answer.
fn preview_payload(def: &shared::flows::FlowDefinition, as_variant: &str) -> Value {
    let (variant, holdout) = match as_variant {
        "" => (None, false),
        "holdout" => (None, true),
        v => (Some(v), false),
    };
    let rendered = shared::flows::render_for_customer(def, variant, holdout, Guardrails::default());
    json!({
        "flow": { "id": null, "version": null, "language": rendered.language, "steps": rendered.steps },
        "variant": variant,
        "holdout": holdout,
        "language": rendered.language,
        "strings": crate::strings::for_language(&rendered.language, &rendered.strings),
    })
}

/// `POST /app/flows/{id}/preview`: the editor's form as the widget would get it (nothing is
/// saved), or the API's validation error (its envelope, 400).
#[utoipa::path(
    post,
    path = "/app/flows/{id}/preview",
    operation_id = "app_preview_data",
    tag = "dashboard",
    summary = "Dashboard: the editor's unsaved form as the widget would get it (a session start's answer), for the live preview; saves nothing",
    description = "Any role (nothing changes). The form is read as for POST /app/flows/{id} and validated by the API's own rules; `_preview` picks a variant or the holdout.",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id")),
    request_body(content = inline(super::PreviewForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The preview payload", body = inline(PreviewPayload)),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The API's validation error (error envelope with param)", body = ErrorEnvelope),
        (status = 403, description = "A cross-site POST, or the csrf token missing or wrong", body = ErrorEnvelope),
        (status = 404, description = "The not-found page: no such flow in this tenant and mode (or an id that is not a UUID)", content_type = "text/html", body = String),
    )
)]
pub(super) async fn preview_data(
    FlowOf(s, _): FlowOf,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&s, &headers, &field_of(&pairs, "csrf")) {
        return forbidden("missing or wrong CSRF token");
    }
    match services::flows::validated(form::to_definition(&pairs)) {
        Ok(def) => Json(preview_payload(&def, &field_of(&pairs, "_preview"))).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "dashboard/preview.html")]
struct PreviewFrame {
    css: &'static str,
    widget_js: String,
    preview_js: &'static str,
    data: String,
    error: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PreviewQuery {
    /// What to preview: empty (no experiment), a variant key, or `holdout`.
    #[serde(default, rename = "as")]
    as_variant: String,
}

/// `GET /app/flows/{id}/preview`: the frame that runs the real widget on the saved draft
/// (the editor replaces its data as the form changes). It may be framed by our own pages.
#[utoipa::path(
    get,
    path = "/app/flows/{id}/preview",
    operation_id = "app_preview_frame",
    tag = "dashboard",
    summary = "Dashboard: the preview frame, running the real widget.js (preview option: no session, no events) on the saved draft",
    description = "Framable by our own pages only (frame-ancestors 'self', X-Frame-Options SAMEORIGIN). A draft the API's rules refuse shows its error in the frame (200).",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id"), PreviewQuery),
    responses(
        (status = 200, description = "The preview frame", content_type = "text/html", body = String, headers(("X-Frame-Options" = String, description = "SAMEORIGIN"))),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 404, description = "The not-found page: no such flow in this tenant and mode (or an id that is not a UUID)", content_type = "text/html", body = String),
    )
)]
pub(super) async fn preview_frame(
    FlowOf(_, flow): FlowOf,
    Query(q): Query<PreviewQuery>,
) -> Response {
    let (data, error) = match services::flows::validated(flow.draft.clone()) {
        Ok(def) => (preview_payload(&def, &q.as_variant), None),
        Err(e) => (Value::Null, Some(e.body.message)),
    };
    // `<` never reaches the page raw: the JSON sits in a <script type="application/json">.
    let data = data.to_string().replace('<', "\\u003c");
    let mut res = page(
        StatusCode::OK,
        &PreviewFrame {
            css: CSS_PATH.as_str(),
            widget_js: format!("/widget.js?v={}", services::assets::widget_hash()),
            preview_js: PREVIEW_JS_PATH.as_str(),
            data,
            error,
        },
    );
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
        ),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    res
}
