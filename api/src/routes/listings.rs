//! Listings with cursor pagination (newest first, keyset on `(created_at, id)`), filters and
//! field selection: `GET /v1/users`, `/v1/subscriptions`, `/v1/sessions`. The handlers parse
//! the query and answer; the listing is [`crate::services::listings::list`].

use axum::{extract::State, routing::get, Json, Router};
use serde_json::Value;

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

async fn list_users(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&st, (auth.tenant_id, auth.mode), Listing::Users, q)
        .await
        .map(Json)
}

async fn list_subscriptions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&st, (auth.tenant_id, auth.mode), Listing::Subscriptions, q)
        .await
        .map(Json)
}

async fn list_sessions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&st, (auth.tenant_id, auth.mode), Listing::Sessions, q)
        .await
        .map(Json)
}
