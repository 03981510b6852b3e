//! Every route of the API, merged in one place.

pub mod analytics;
pub mod assets;
pub mod audit;
pub mod customers;
pub mod flows;
pub mod health;
pub mod keys;
pub mod listings;
pub mod openapi;
pub mod ops;
pub mod sessions;
pub mod settings;
pub mod tenants;
pub mod webhooks;
pub mod widget;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(openapi::router())
        .merge(tenants::router())
        .merge(keys::router())
        .merge(ops::router())
        .merge(flows::router())
        .merge(widget::router())
        .merge(settings::router())
        .merge(assets::router())
        .merge(webhooks::router())
        .merge(sessions::router())
        .merge(analytics::router())
        .merge(listings::router())
        .merge(audit::router())
        .merge(customers::router())
        .merge(crate::dashboard::router())
}

/// The endpoint class of a route (metrics label, SLOs and alert rules use it).
pub fn endpoint_class(route: &str) -> &'static str {
    if route.starts_with("/v1/widget") {
        "widget"
    } else if route.starts_with("/v1/webhooks") {
        "webhook"
    } else if route.starts_with("/v1/analytics") {
        "analytics"
    } else if route.starts_with("/v1/ops") || route == "/v1/tenants" {
        "ops"
    } else if route.starts_with("/app") {
        "dashboard"
    } else if route.starts_with("/v1/") {
        "admin"
    } else {
        "system"
    }
}
