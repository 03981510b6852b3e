//! The OpenAPI 3.1 document (`api/openapi.json`), served at `/openapi.json`. A test checks
//! that every route of the router is documented.

use axum::{http::header, response::IntoResponse, routing::get, Router};

use crate::AppState;

pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(get_openapi))
}

async fn get_openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
