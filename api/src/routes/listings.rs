//! Listings with cursor pagination (newest first, keyset on `(created_at, id)`), filters and
//! field selection: `GET /v1/users`, `/v1/subscriptions`, `/v1/sessions`. The handlers parse
//! the query and answer; the listing is [`crate::services::listings::list`].

use axum::{extract::State, routing::get, Json, Router};
use serde_json::Value;

mod schema;

use crate::{
    error::ApiResult,
    extract::{ApiQuery, TenantAuth},
    services::listings::{list, ListQuery, Listing},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users))
        .route("/v1/subscriptions", get(list_subscriptions))
        .route("/v1/sessions", get(list_sessions))
}

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_users, list_subscriptions, list_sessions))]
pub(crate) struct Doc;

#[utoipa::path(
    get,
    path = "/v1/users",
    operation_id = "list_users",
    tag = "listings",
    summary = "List users (cursor pagination)",
    security(("secretKey" = [])),
    params(schema::UsersQuery),
    responses((status = 200, description = "One page, newest first", body = schema::Page<schema::UserRow>))
)]
async fn list_users(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&st, (auth.tenant_id, auth.mode), Listing::Users, q)
        .await
        .map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    operation_id = "list_subscriptions",
    tag = "listings",
    summary = "List subscriptions (cursor pagination)",
    security(("secretKey" = [])),
    params(schema::SubscriptionsQuery),
    responses((status = 200, description = "One page, newest first", body = schema::Page<schema::SubscriptionRow>))
)]
async fn list_subscriptions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&st, (auth.tenant_id, auth.mode), Listing::Subscriptions, q)
        .await
        .map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/sessions",
    operation_id = "list_sessions",
    tag = "listings",
    summary = "List cancel sessions (cursor pagination)",
    security(("secretKey" = [])),
    params(schema::SessionsQuery),
    responses((status = 200, description = "One page, newest first", body = schema::Page<schema::SessionRow>))
)]
async fn list_sessions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&st, (auth.tenant_id, auth.mode), Listing::Sessions, q)
        .await
        .map(Json)
}
