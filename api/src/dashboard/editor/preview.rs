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
    services,
};

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

#[derive(Deserialize)]
pub(super) struct PreviewQuery {
    #[serde(default, rename = "as")]
    as_variant: String,
}

/// `GET /app/flows/{id}/preview`: the frame that runs the real widget on the saved draft
/// (the editor replaces its data as the form changes). It may be framed by our own pages.
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
