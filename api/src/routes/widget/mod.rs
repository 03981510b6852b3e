//! The widget API (publishable key + customer token): start a cancel session with the flow
//! chosen for this customer, and record its events durably (202 once committed).
//!
//! - [`cors`]: CORS of the widget routes and their preflight;
//! - [`customer`]: what session start knows of the customer (attributes, guardrails);
//! - [`sessions`]: `POST /v1/widget/sessions`;
//! - [`events`]: `POST /v1/widget/sessions/{id}/events` and its rules;
//! - [`tokens`]: `POST /v1/widget_tokens`, signing customer tokens server-side.

mod cors;
mod customer;
mod events;
mod sessions;
mod tokens;

use axum::{routing::post, Router};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/widget/sessions",
            post(sessions::create_session).options(cors::preflight),
        )
        .route(
            "/v1/widget/sessions/{id}/events",
            post(events::create_event).options(cors::preflight_events),
        )
        .layer(axum::middleware::from_fn(cors::cors))
        .route("/v1/widget_tokens", post(tokens::create_widget_token))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    sessions::create_session,
    cors::preflight,
    events::create_event,
    cors::preflight_events,
    tokens::create_widget_token
))]
pub(crate) struct Doc;
