//! The flow editor (`/app/flows/{id}`): every part of a flow the API supports (general
//! settings, targeting rules, the experiment's variants and holdout, the steps with their
//! reasons and offers and each offer type's parameters), saved through the API's own
//! `services::flows::update` (its validation, its audit row). A live preview runs the real
//! `widget.js` on the draft in an iframe (desktop and mobile widths): the preview frame
//! (`/app/flows/{id}/preview`) opens the widget with the `preview` option (no session, no
//! events); with JavaScript the editor posts the form to `POST /app/flows/{id}/preview` as
//! it changes and hands the result to the frame, without saving. Publish, the versions list
//! with a diff of two versions (or a version and the draft), "restore as draft" and "copy to
//! live" (test flows) complete it.
//!
//! Owners and admins edit; analysts see the same page read-only and every POST of theirs
//! that would change something is refused (403). Without JavaScript everything but the
//! as-you-type preview works: structural edits (add, remove, move) are form buttons that
//! re-render the unsaved form.

mod diff;
mod form;
mod preview;
mod view;

use std::sync::LazyLock;

use askama::Template;
use axum::{
    extract::{FromRequestParts, Path, Query, State},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use shared::{accounts::Session, tenants::Mode};
use uuid::Uuid;

use self::view::{Error, FlowView};
use super::{actor, chrome, csrf_ok, forbidden, page, see_other, Chrome, Signed, CSS_PATH};
use crate::{audit::ClientIp, error::ApiError, services, AppState};

// ---------------------------------------------------------------------------------------
// Scripts: the editor's and the preview frame's, content-hashed like the stylesheet.

static EDITOR_JS: &str = include_str!("../../assets/editor.js");
static PREVIEW_JS: &str = include_str!("../../assets/preview.js");

fn hashed(name: &str, body: &str) -> String {
    let h = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    format!("/app/assets/{name}.{}.js", &h[..12])
}

static EDITOR_JS_PATH: LazyLock<String> = LazyLock::new(|| hashed("editor", EDITOR_JS));
static PREVIEW_JS_PATH: LazyLock<String> = LazyLock::new(|| hashed("preview", PREVIEW_JS));

fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/app/flows/new", post(new_flow))
        .route("/app/flows/{id}", get(editor_page).post(save))
        .route(
            "/app/flows/{id}/preview",
            get(preview::preview_frame).post(preview::preview_data),
        )
        .route("/app/flows/{id}/diff", get(diff::diff_page))
        .route("/app/flows/{id}/versions/{version}/restore", post(restore))
        .route("/app/flows/{id}/copy-to-live", post(copy_to_live))
        .route(EDITOR_JS_PATH.as_str(), get(|| async { script(EDITOR_JS) }))
        .route(
            PREVIEW_JS_PATH.as_str(),
            get(|| async { script(PREVIEW_JS) }),
        )
}

// ---------------------------------------------------------------------------------------
// Helpers

fn who(s: &Session) -> (Uuid, Mode) {
    (s.user.tenant_id, s.mode)
}

/// The flow of the path's `{id}` in the signed-in user's tenant and mode, with the session
/// (signed out: the sign-in redirect; no such flow there: the not-found page).
struct FlowOf(Session, services::flows::FlowRow);

impl FromRequestParts<AppState> for FlowOf {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let Signed(s) = Signed::from_request_parts(parts, st).await?;
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, st)
                .await
                .map_err(IntoResponse::into_response)?;
        let id = params.get("id").map(String::as_str).unwrap_or_default();
        let flow = load(st, &s, id).await.map_err(|r| *r)?;
        Ok(FlowOf(s, flow))
    }
}

/// The flow `id` of the session's tenant and mode, or the not-found page.
async fn load(
    st: &AppState,
    s: &Session,
    id: &str,
) -> Result<services::flows::FlowRow, Box<Response>> {
    let found = match Uuid::parse_str(id) {
        Ok(id) => services::flows::find(st, who(s), id).await,
        Err(_) => Err(ApiError::not_found("flow")),
    };
    match found {
        Ok(f) => Ok(f),
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            let c = chrome(st, s, "flows", "/app/flows".into()).await;
            Err(Box::new(super::not_found_page(
                c,
                StatusCode::NOT_FOUND,
                "No such flow in this mode.",
            )))
        }
        Err(e) => Err(Box::new(e.into_response())),
    }
}

/// A POST that changes something: CSRF first, then the role.
fn may_change(s: &Session, headers: &HeaderMap, csrf: &str) -> Result<(), Box<Response>> {
    if !csrf_ok(s, headers, csrf) {
        return Err(Box::new(forbidden("missing or wrong CSRF token")));
    }
    if !s.user.role.can_configure() {
        return Err(Box::new(forbidden("your role cannot change flows")));
    }
    Ok(())
}

fn field_of(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The editor page

struct VersionLine {
    version: i32,
    published_at: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "dashboard/editor.html")]
struct EditorPage {
    css: &'static str,
    editor_js: &'static str,
    chrome: Chrome,
    flow_id: String,
    flow_name: String,
    status: String,
    can_edit: bool,
    unsaved: bool,
    notice: Option<String>,
    /// The API's error: its message, its param and the id of the field it names.
    error: Option<(String, String, String)>,
    view: FlowView,
    versions: Vec<VersionLine>,
}

/// What the editor shows besides the flow: the form's definition (saved or as submitted),
/// whether it is unsaved, a notice, the API's error.
struct Shown {
    def: Value,
    unsaved: bool,
    notice: Option<String>,
    err: Option<Error>,
}

async fn render_editor(
    st: &AppState,
    s: &Session,
    flow: &services::flows::FlowRow,
    shown: Shown,
    status: StatusCode,
) -> Response {
    let versions = services::flows::versions(st, who(s), flow.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|v| VersionLine {
            version: v.version,
            published_at: v.published_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            current: Some(v.version) == flow.published_version,
        })
        .collect();
    // The mode switch goes back to the list: this flow exists in one mode only.
    let path = "/app/flows".to_string();
    page(
        status,
        &EditorPage {
            css: CSS_PATH.as_str(),
            editor_js: EDITOR_JS_PATH.as_str(),
            chrome: chrome(st, s, "flows", path).await,
            flow_id: flow.id.to_string(),
            flow_name: flow.name.clone(),
            status: match flow.published_version {
                Some(v) => format!("published v{v}"),
                None => "draft only".into(),
            },
            can_edit: s.user.role.can_configure(),
            unsaved: shown.unsaved,
            error: shown
                .err
                .as_ref()
                .map(|e| (e.message.clone(), e.param.clone(), view::field_id(&e.param))),
            view: FlowView::new(&shown.def, shown.err.as_ref()),
            notice: shown.notice,
            versions,
        },
    )
}

#[derive(Deserialize)]
struct NoticeQuery {
    #[serde(default)]
    notice: String,
}

async fn editor_page(
    State(st): State<AppState>,
    FlowOf(s, flow): FlowOf,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let notice = match q.notice.as_str() {
        "created" => Some("Flow created. Edit it, save the draft, then publish.".to_string()),
        "saved" => Some("Draft saved. Customers see it once you publish.".into()),
        "copied" => {
            Some("Copied to live as a draft: switch to live mode and publish it there.".into())
        }
        "copied_published" => Some(
            "Copied to live and published: live customers now see this flow's published version."
                .into(),
        ),
        n if n.starts_with("published_") => n
            .strip_prefix("published_")
            .and_then(|v| v.parse::<i32>().ok())
            .map(|v| format!("Published version {v}.")),
        n => n
            .strip_prefix("restored_")
            .and_then(|v| v.parse::<i32>().ok())
            .map(|v| format!("Version {v} restored as the draft (not published).")),
    };
    let shown = Shown {
        def: flow.draft.clone(),
        unsaved: false,
        notice,
        err: None,
    };
    render_editor(&st, &s, &flow, shown, StatusCode::OK).await
}

fn api_error(e: &ApiError) -> Error {
    Error::new(
        e.body.param.as_deref().unwrap_or(""),
        e.body.message.clone(),
    )
}

/// `POST /app/flows/{id}`: `op=save` saves the draft through the API; any other `op` is a
/// structural edit of the unsaved form, re-rendered.
async fn save(
    State(st): State<AppState>,
    FlowOf(s, flow): FlowOf,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = may_change(&s, &headers, &field_of(&pairs, "csrf")) {
        return *r;
    }
    let mut def = form::to_definition(&pairs);
    let op = field_of(&pairs, "op");
    if op != "save" {
        let (notice, err) = match form::apply_op(&mut def, &op) {
            Ok(()) => (
                Some("Unsaved changes: save the draft to keep them.".to_string()),
                None,
            ),
            Err(why) => (
                None,
                Some(Error::new("", format!("That edit cannot be made: {why}."))),
            ),
        };
        let status = if err.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        let shown = Shown {
            def,
            unsaved: true,
            notice,
            err,
        };
        return render_editor(&st, &s, &flow, shown, status).await;
    }
    match services::flows::update(&st, who(&s), &actor(&s, ip), flow.id, def.clone()).await {
        Ok(_) => see_other(&format!("/app/flows/{}?notice=saved", flow.id)),
        Err(e) if e.status.is_client_error() => {
            let shown = Shown {
                def,
                unsaved: true,
                notice: None,
                err: Some(api_error(&e)),
            };
            render_editor(&st, &s, &flow, shown, e.status).await
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct NewFlowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// `POST /app/flows/new`: a flow from the starter (survey, a discount, confirmation).
async fn new_flow(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Form(f): Form<NewFlowForm>,
) -> Response {
    if let Err(r) = may_change(&s, &headers, &f.csrf) {
        return *r;
    }
    let name = match f.name.trim() {
        "" => "New flow",
        n => n,
    };
    match services::flows::create(&st, who(&s), &actor(&s, ip), form::starter(name)).await {
        Ok(row) => see_other(&format!("/app/flows/{}?notice=created", row.id)),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Versions: restore (the diff is in `diff.rs`, the preview in `preview.rs`); copy to live

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /app/flows/{id}/versions/{version}/restore`: the version becomes the draft.
async fn restore(
    State(st): State<AppState>,
    FlowOf(s, flow): FlowOf,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Path((_, version)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = may_change(&s, &headers, &f.csrf) {
        return *r;
    }
    let versions = match services::flows::versions(&st, who(&s), flow.id).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(v) = version
        .parse::<i32>()
        .ok()
        .and_then(|n| versions.into_iter().find(|v| v.version == n))
    else {
        return ApiError::not_found("flow_version").into_response();
    };
    match services::flows::update(&st, who(&s), &actor(&s, ip), flow.id, v.definition).await {
        Ok(_) => see_other(&format!(
            "/app/flows/{}?notice=restored_{}",
            flow.id, v.version
        )),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct CopyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    publish: Option<String>,
}

/// `POST /app/flows/{id}/copy-to-live`: a test flow to live, as `POST
/// /v1/flows/{id}/copy_to_live` does (optionally publishing its published version there).
async fn copy_to_live(
    State(st): State<AppState>,
    FlowOf(s, flow): FlowOf,
    headers: HeaderMap,
    ip: Option<axum::Extension<ClientIp>>,
    Form(f): Form<CopyForm>,
) -> Response {
    if let Err(r) = may_change(&s, &headers, &f.csrf) {
        return *r;
    }
    if s.mode != Mode::Test {
        return forbidden("copy to live starts from a test-mode flow");
    }
    let publish = f.publish.is_some();
    match services::flows::copy(&st, s.user.tenant_id, &actor(&s, ip), flow.id, publish).await {
        Ok(_) => see_other(&format!(
            "/app/flows/{}?notice={}",
            flow.id,
            if publish {
                "copied_published"
            } else {
                "copied"
            }
        )),
        Err(e) if e.status.is_client_error() => {
            let shown = Shown {
                def: flow.draft.clone(),
                unsaved: false,
                notice: None,
                err: Some(Error::new("", e.body.message.clone())),
            };
            render_editor(&st, &s, &flow, shown, e.status).await
        }
        Err(e) => e.into_response(),
    }
}
