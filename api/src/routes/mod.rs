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
use serde::Serialize;

use crate::AppState;

/// A list answer: `{"data": [...]}` (the listings with cursors have their own types).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DataList<T> {
    pub data: Vec<T>,
}

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

/// The endpoint class moved to [`crate::middleware`] (the metrics layer labels with it).
pub use crate::middleware::endpoint_class;
