//! CORS of the widget routes: the response layer that echoes an allowed `Origin`, and the
//! preflight answer for origins some tenant allows.

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::AppState;

/// CORS for the widget routes. A preflight (`OPTIONS`, answered by [`preflight`]) carries
/// no key, so it is allowed only for an origin that some tenant allows (or our own); any
/// other origin gets no CORS headers and the browser blocks the request. The real request
/// is checked against its own tenant's `allowed_origins` by `WidgetAuth` (403 there, and no
/// `Access-Control-Allow-Origin` then).
pub(super) async fn cors(req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = next.run(req).await;
    if let Some(o) = origin {
        if res.status() != StatusCode::FORBIDDEN {
            res.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    res
}

/// Answers a CORS preflight of the widget routes (see [`cors`]).
#[utoipa::path(
    options,
    path = "/v1/widget/sessions",
    operation_id = "preflight_v1_widget_sessions",
    tag = "widget",
    summary = "CORS preflight: Access-Control-Allow-Origin only for an origin some tenant allows (or the API's own); no CORS headers otherwise",
    params(("Origin" = Option<String>, Header, description = "The page's origin")),
    responses((status = 204, description = "Preflight answered (with CORS headers only for an allowed origin)"))
)]
pub(super) async fn preflight(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(o) = headers.get(header::ORIGIN) else {
        return res;
    };
    let Ok(origin) = o.to_str() else {
        return res;
    };
    let allowed = crate::extract::same_origin(origin, &headers)
        || match st
            .settings_cache
            .origin_allowed_by_some_tenant(&st.pools.primary, origin)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // No CORS headers: the browser does not send the request (fails closed).
                tracing::warn!(error = %e, "allowed origins unavailable for a preflight");
                false
            }
        };
    if allowed {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-customer-token, x-request-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    res
}

/// The preflight of `/v1/widget/sessions/{id}/events`: the same answer as [`preflight`].
#[utoipa::path(
    options,
    path = "/v1/widget/sessions/{id}/events",
    operation_id = "preflight_v1_widget_session_events",
    tag = "widget",
    summary = "CORS preflight: Access-Control-Allow-Origin only for an origin some tenant allows (or the API's own); no CORS headers otherwise",
    params(("id" = String, Path), ("Origin" = Option<String>, Header, description = "The page's origin")),
    responses((status = 204, description = "Preflight answered (with CORS headers only for an allowed origin)"))
)]
pub(super) async fn preflight_events(
    st: State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    preflight(st, headers).await
}
