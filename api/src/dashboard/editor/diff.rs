//! `GET /app/flows/{id}/diff?a=<version|draft>&b=<version|draft>`: two versions of a flow
//! (or a version and the draft) as a line diff of their indented JSON.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::Value;

use super::{who, FlowOf};
use crate::{
    dashboard::{chrome, page, Chrome, CSS_PATH},
    services, AppState,
};

struct DiffLine {
    /// `add`, `del`, `same` or `gap` (unchanged lines left out).
    tag: &'static str,
    sign: &'static str,
    old: String,
    new: String,
    text: String,
}

#[derive(Template)]
#[template(path = "dashboard/diff.html")]
struct DiffPage {
    css: &'static str,
    chrome: Chrome,
    flow_id: String,
    flow_name: String,
    a: String,
    b: String,
    choices: Vec<(String, String)>,
    lines: Vec<DiffLine>,
    identical: bool,
    error: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DiffQuery {
    /// A version number or `draft` (default: the published version, else the draft).
    #[serde(default)]
    a: String,
    /// A version number or `draft` (default: the draft).
    #[serde(default)]
    b: String,
}

/// The text compared: the definition as indented JSON.
fn diff_text(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn diff_lines(a: &str, b: &str) -> Vec<DiffLine> {
    use similar::{ChangeTag, TextDiff};
    let diff = TextDiff::from_lines(a, b);
    let mut out = Vec::new();
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push(DiffLine {
                tag: "gap",
                sign: "",
                old: String::new(),
                new: String::new(),
                text: "…".into(),
            });
        }
        for op in group {
            for ch in diff.iter_changes(op) {
                let (tag, sign) = match ch.tag() {
                    ChangeTag::Delete => ("del", "−"),
                    ChangeTag::Insert => ("add", "+"),
                    ChangeTag::Equal => ("same", ""),
                };
                out.push(DiffLine {
                    tag,
                    sign,
                    old: ch
                        .old_index()
                        .map(|n| (n + 1).to_string())
                        .unwrap_or_default(),
                    new: ch
                        .new_index()
                        .map(|n| (n + 1).to_string())
                        .unwrap_or_default(),
                    text: ch.value().trim_end_matches('\n').to_string(),
                });
            }
        }
    }
    out
}

/// `GET /app/flows/{id}/diff?a=<version|draft>&b=<version|draft>`.
#[utoipa::path(
    get,
    path = "/app/flows/{id}/diff",
    operation_id = "app_diff_page",
    tag = "dashboard",
    summary = "Dashboard: a line diff of two versions of a flow (or a version and the draft)",
    description = "The two definitions as indented JSON, compared line by line (unchanged runs folded). By default the published version against the draft.",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id"), DiffQuery),
    responses(
        (status = 200, description = "The diff page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
        (status = 404, description = "The not-found page (no such flow in this tenant and mode), or the diff page saying a or b is not a version of this flow", content_type = "text/html", body = String),
    )
)]
pub(super) async fn diff_page(
    State(st): State<AppState>,
    FlowOf(s, flow): FlowOf,
    Query(q): Query<DiffQuery>,
) -> Response {
    let versions = match services::flows::versions(&st, who(&s), flow.id).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let pick = |k: &str| -> Option<Value> {
        if k == "draft" {
            return Some(flow.draft.clone());
        }
        let n: i32 = k.parse().ok()?;
        versions
            .iter()
            .find(|v| v.version == n)
            .map(|v| v.definition.clone())
    };
    // Defaults: the published version against the draft.
    let published = flow
        .published_version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "draft".into());
    let a = if q.a.is_empty() { published } else { q.a };
    let b = if q.b.is_empty() { "draft".into() } else { q.b };
    let (lines, error, status) = match (pick(&a), pick(&b)) {
        (Some(x), Some(y)) => (
            diff_lines(&diff_text(&x), &diff_text(&y)),
            None,
            StatusCode::OK,
        ),
        _ => (
            vec![],
            Some("Choose two versions of this flow (or the draft).".to_string()),
            StatusCode::NOT_FOUND,
        ),
    };
    let mut choices = vec![("draft".to_string(), "Draft".to_string())];
    choices.extend(
        versions
            .iter()
            .map(|v| (v.version.to_string(), format!("Version {}", v.version))),
    );
    page(
        status,
        &DiffPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(&st, &s, "flows", "/app/flows".into()).await,
            flow_id: flow.id.to_string(),
            flow_name: flow.name.clone(),
            identical: error.is_none() && lines.is_empty(),
            a,
            b,
            choices,
            lines,
            error,
        },
    )
}
