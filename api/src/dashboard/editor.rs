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
use crate::{
    audit::ClientIp,
    error::{ApiError, ErrorEnvelope},
    services, AppState,
};

// ---------------------------------------------------------------------------------------
// Scripts: the editor's and the preview frame's, content-hashed like the stylesheet.

static EDITOR_JS: &str = include_str!("../../assets/editor.js");
static PREVIEW_JS: &str = include_str!("../../assets/preview.js");

fn hashed(name: &str, body: &str) -> String {
    let h = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    format!("/app/assets/{name}.{}.js", &h[..12])
}

pub(super) static EDITOR_JS_PATH: LazyLock<String> = LazyLock::new(|| hashed("editor", EDITOR_JS));
pub(super) static PREVIEW_JS_PATH: LazyLock<String> =
    LazyLock::new(|| hashed("preview", PREVIEW_JS));

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

/// The OpenAPI description of the editor's routes (merged into `dashboard::Doc`). The two
/// scripts are documented as `GET /app/assets/{file}`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    new_flow,
    editor_page,
    save,
    preview::preview_frame,
    preview::preview_data,
    diff::diff_page,
    restore,
    copy_to_live
))]
pub(super) struct Doc;

/// The editor's form as the OpenAPI document describes it: string fields, read as
/// name/value pairs (`Form<Vec<(String, String)>>`, which any form parses into), with the
/// fields `named` (name, description, required) besides the flow's own.
fn pairs_schema(
    what: &str,
    named: &[(&str, &str, bool)],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::{schema::Type, ObjectBuilder};
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(what));
    for (name, description, required) in named {
        o = o.property(
            *name,
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(*description)),
        );
        if *required {
            o = o.required(*name);
        }
    }
    o.additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
        .into()
}

/// The body of `POST /app/flows/{id}` (documentation only: the handler takes the pairs).
struct EditorForm;

impl utoipa::PartialSchema for EditorForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        pairs_schema(
            "The editor's form. Besides csrf and op, every field is named by the API's param path of its value under name, language, ranking_score, is_default, targeting, experiment, steps and strings (e.g. steps[1].offers[0].discount.percent_off, experiment.variants[0].weight); other names are ignored.",
            &[
                ("csrf", "The session's CSRF token; missing or wrong: 403", true),
                ("op", "save, or a structural edit: add_step:<type>, add:<list path>, remove:<item path>, up:<item path>, down:<item path>", true),
            ],
        )
    }
}

impl utoipa::ToSchema for EditorForm {}

/// The body of `POST /app/flows/{id}/preview` (documentation only: the handler takes the
/// pairs).
pub(super) struct PreviewForm;

impl utoipa::PartialSchema for PreviewForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        pairs_schema(
            "The editor's form, as for POST /app/flows/{id}: besides csrf and _preview, every field is named by the API's param path of its value; other names (op among them) are ignored.",
            &[
                ("csrf", "The session's CSRF token; missing or wrong: 403", true),
                ("_preview", "What to preview: empty (no experiment), a variant key, or holdout", false),
            ],
        )
    }
}

impl utoipa::ToSchema for PreviewForm {}

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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct NoticeQuery {
    /// What just happened (`created`, `saved`, `copied`, `copied_published`, `published_N`,
    /// `restored_N`): shows its notice; anything else none.
    #[serde(default)]
    notice: String,
}

#[utoipa::path(
    get,
    path = "/app/flows/{id}",
    operation_id = "app_editor_page",
    tag = "dashboard",
    summary = "Dashboard: the flow editor (every field of a flow, live preview, publish, versions, copy to live)",
    description = "Analysts see it read-only. Another tenant's or mode's flow: 404.",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id"), NoticeQuery),
    responses(
        (status = 200, description = "The editor page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 404, description = "The not-found page: no such flow in this tenant and mode (or an id that is not a UUID)", content_type = "text/html", body = String),
    )
)]
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
#[utoipa::path(
    post,
    path = "/app/flows/{id}",
    operation_id = "app_save_flow",
    tag = "dashboard",
    summary = "Dashboard: save the editor's draft (op=save) or make a structural edit of the unsaved form (op=add_step:<type>, add:<list>, remove:<item>, up:<item>, down:<item>) (owner, admin)",
    description = "The body is the editor's form as name/value pairs: the handler reads `csrf`, `op`, and every field named by the API's param path of its value under name, language, ranking_score, is_default, targeting, experiment, steps and strings (e.g. steps[1].offers[0].discount.percent_off); other names are ignored. op=save saves through PUT /v1/flows/{id}'s own function (validation, audit row flow.update) and redirects to the editor; a validation error re-renders the form (400) with the error on the field its param names, and nothing is saved. Any other op re-renders the unsaved form with the edit made (200), or says why it cannot be made (400).",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id")),
    request_body(content = inline(EditorForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The editor with the structural edit made (unsaved)", content_type = "text/html", body = String),
        (status = 303, description = "Saved: to /app/flows/{id}?notice=saved; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The editor with the API's validation error on its field, or an edit that cannot be made; nothing saved", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The not-found page, or the editor with the error (the flow was deleted meanwhile)", content_type = "text/html", body = String),
    )
)]
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

/// The new flow form.
#[derive(Deserialize, utoipa::ToSchema)]
struct NewFlowForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// The flow's name (empty: "New flow").
    #[serde(default)]
    name: String,
}

/// `POST /app/flows/new`: a flow from the starter (survey, a discount, confirmation).
#[utoipa::path(
    post,
    path = "/app/flows/new",
    operation_id = "app_new_flow",
    tag = "dashboard",
    summary = "Dashboard: create a flow from the starter (survey, a discount offer, confirmation) and open it in the editor (owner, admin)",
    description = "Created through the API's flow creation (validation, audit row flow.create); redirects to /app/flows/{id}?notice=created. A name the API refuses: 400 (the error envelope).",
    security(("dashboardSession" = [])),
    request_body(content = inline(NewFlowForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Created: to /app/flows/{id}?notice=created; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The API's validation error (e.g. the name)", body = ErrorEnvelope),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
    )
)]
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

/// A form that carries only the CSRF token.
#[derive(Deserialize, utoipa::ToSchema)]
struct CsrfOnly {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
}

/// `POST /app/flows/{id}/versions/{version}/restore`: the version becomes the draft.
#[utoipa::path(
    post,
    path = "/app/flows/{id}/versions/{version}/restore",
    operation_id = "app_restore_version",
    tag = "dashboard",
    summary = "Dashboard: restore a published version as the flow's draft (not published) (owner, admin)",
    description = "Through PUT /v1/flows/{id}'s own function (validation, audit row flow.update); redirects to the editor. A version today's rules refuse: 400 (the error envelope).",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id"), ("version" = i32, Path, description = "A published version of the flow")),
    request_body(content = inline(CsrfOnly), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Restored: to /app/flows/{id}?notice=restored_N; not signed in: to /app/login", headers(("Location" = String))),
        (status = 400, description = "The API's validation error: the version does not pass today's rules", body = ErrorEnvelope),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The not-found page (no such flow), or the error envelope (no such version of it)", content((String = "text/html"), (ErrorEnvelope = "application/json"))),
    )
)]
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

/// The copy-to-live form.
#[derive(Deserialize, utoipa::ToSchema)]
struct CopyForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// Present (any value, e.g. `on`): also publish the test flow's published version in
    /// live.
    #[serde(default)]
    #[schema(value_type = String)]
    publish: Option<String>,
}

/// `POST /app/flows/{id}/copy-to-live`: a test flow to live, as `POST
/// /v1/flows/{id}/copy_to_live` does (optionally publishing its published version there).
#[utoipa::path(
    post,
    path = "/app/flows/{id}/copy-to-live",
    operation_id = "app_copy_to_live",
    tag = "dashboard",
    summary = "Dashboard: copy a test flow to live, optionally publishing its published version there (owner, admin; a live action)",
    description = "As POST /v1/flows/{id}/copy_to_live (same function, audit row flow.copy_to_live). Only from test mode (403 in live mode). With publish, a test flow that has no published version: 409.",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id")),
    request_body(content = inline(CopyForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Copied: to /app/flows/{id}?notice=copied (or copied_published); not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, an analyst, or live mode: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The not-found page: no such flow in this tenant and mode (or an id that is not a UUID)", content_type = "text/html", body = String),
        (status = 409, description = "The editor with the error: publish asked for, but the test flow has no published version", content_type = "text/html", body = String),
    )
)]
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
