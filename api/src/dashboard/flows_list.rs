//! The flows list (`/app/flows`): every flow of the selected mode with its status and who
//! last changed it (from the audit log), and its publish button (`POST
//! /app/flows/{id}/publish`, owners and admins), through the API's own `services::flows`.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{chrome, page, Chrome, Signed, CSS_PATH};
use crate::{error::ErrorEnvelope, services, AppState};

struct FlowLine {
    id: String,
    name: String,
    status: String,
    language: String,
    ranking: i32,
    default: &'static str,
    edited: String,
}

#[derive(Template)]
#[template(path = "dashboard/flows.html")]
struct FlowsPage {
    css: &'static str,
    chrome: Chrome,
    can_publish: bool,
    flows: Vec<FlowLine>,
    notice: Option<String>,
    error: Option<String>,
}

/// Who last changed a flow and when, from the audit log.
async fn last_edit(st: &AppState, tenant: Uuid, mode: shared::tenants::Mode, id: Uuid) -> String {
    let f = shared::audit::Filter {
        tenant_id: Some(tenant),
        mode: Some(mode),
        target_id: Some(id.to_string()),
        ..Default::default()
    };
    let Ok(rows) = shared::audit::list(&st.pools.primary, &f, 1).await else {
        return "–".into();
    };
    let Some(r) = rows.into_iter().next() else {
        return "–".into();
    };
    let who = match (r.actor_type.as_str(), r.actor_id.as_deref()) {
        ("dashboard_user", Some(uid)) => match Uuid::parse_str(uid) {
            Ok(uid) => shared::accounts::user_by_id(&st.pools.primary, uid)
                .await
                .ok()
                .flatten()
                .map(|u| u.email)
                .unwrap_or_else(|| "a removed user".into()),
            Err(_) => "a dashboard user".into(),
        },
        ("api_key", _) => "an API key".into(),
        (other, _) => other.to_string(),
    };
    format!("{} by {who}", r.created_at.format("%Y-%m-%d %H:%M UTC"))
}

async fn flows_view(
    st: &AppState,
    s: &shared::accounts::Session,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let who = (s.user.tenant_id, s.mode);
    let rows = services::flows::list(st, who).await.unwrap_or_default();
    let mut flows = Vec::with_capacity(rows.len());
    for r in rows {
        flows.push(FlowLine {
            id: r.id.to_string(),
            status: match r.published_version {
                Some(v) => format!("published v{v}"),
                None => "draft only".into(),
            },
            edited: last_edit(st, who.0, who.1, r.id).await,
            name: r.name,
            language: r.language,
            ranking: r.ranking_score,
            default: if r.is_default { "yes" } else { "" },
        });
    }
    page(
        status,
        &FlowsPage {
            css: CSS_PATH.as_str(),
            chrome: chrome(st, s, "flows", "/app/flows".into()).await,
            can_publish: s.user.role.can_configure(),
            flows,
            notice,
            error,
        },
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Published {
    /// A version just published (shows the notice "Published version N").
    #[serde(default)]
    published: String,
}

#[utoipa::path(
    get,
    path = "/app/flows",
    operation_id = "app_flows_page",
    tag = "dashboard",
    summary = "Dashboard: the selected mode's flows (status, language, ranking, default, last edited by)",
    security(("dashboardSession" = [])),
    params(Published),
    responses(
        (status = 200, description = "The flows page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to /app/login", headers(("Location" = String))),
    )
)]
pub async fn flows_page(
    State(st): State<AppState>,
    Signed(s): Signed,
    Query(q): Query<Published>,
) -> Response {
    let notice = q
        .published
        .parse::<i32>()
        .ok()
        .map(|v| format!("Published version {v}."));
    flows_view(&st, &s, notice, None, StatusCode::OK).await
}

/// The publish button's form.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PublishForm {
    /// The session's CSRF token; missing or wrong: 403.
    #[serde(default)]
    #[schema(required = true)]
    csrf: String,
    /// `editor`: back to the flow's editor (else the flows list).
    #[serde(default)]
    back: String,
}

#[utoipa::path(
    post,
    path = "/app/flows/{id}/publish",
    operation_id = "app_publish_flow",
    tag = "dashboard",
    summary = "Dashboard: publish a flow's draft (owner, admin)",
    description = "Same transaction, audit row (flow.publish, actor the dashboard user) and cache invalidation as POST /v1/flows/{id}/publish; redirects to /app/flows?published=N (back=editor: to the editor). Analysts and CSRF failures: 403; another tenant's or mode's flow, or an id that is not a UUID: 404 (the flows page with the error).",
    security(("dashboardSession" = [])),
    params(("id" = uuid::Uuid, Path, description = "The flow's id")),
    request_body(content = inline(PublishForm), content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Published: to /app/flows?published=N, or /app/flows/{id}?notice=published_N (back=editor); not signed in: to /app/login", headers(("Location" = String))),
        (status = 403, description = "A cross-site POST, the csrf token missing or wrong, or an analyst: nothing changes", body = ErrorEnvelope),
        (status = 404, description = "The flows page with the error: no such flow in this tenant and mode", content_type = "text/html", body = String),
    )
)]
pub async fn publish_flow(
    State(st): State<AppState>,
    Signed(s): Signed,
    headers: axum::http::HeaderMap,
    ip: Option<axum::Extension<crate::audit::ClientIp>>,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<PublishForm>,
) -> Response {
    if !super::csrf_ok(&s, &headers, &f.csrf) {
        return super::forbidden("missing or wrong CSRF token");
    }
    if !s.user.role.can_configure() {
        return super::forbidden("your role cannot publish flows");
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return flows_view(
            &st,
            &s,
            None,
            Some("no such flow".into()),
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    let actor = super::actor(&s, ip);
    match services::flows::publish(&st, (s.user.tenant_id, s.mode), &actor, id).await {
        Ok(v) if f.back == "editor" => {
            super::see_other(&format!("/app/flows/{id}?notice=published_{v}"))
        }
        Ok(v) => super::see_other(&format!("/app/flows?published={v}")),
        Err(e) => {
            let status = e.status;
            flows_view(&st, &s, None, Some(e.body.message), status).await
        }
    }
}
