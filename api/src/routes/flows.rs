//! The flow builder API: drafts, atomic publishing, kept versions.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use shared::flows::FlowDefinition;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/flows", get(list_flows).post(create_flow))
        .route(
            "/v1/flows/{id}",
            get(get_flow).put(update_flow).delete(delete_flow),
        )
        .route("/v1/flows/{id}/publish", post(publish_flow))
        .route("/v1/flows/{id}/versions", get(list_versions))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct FlowRow {
    pub id: Uuid,
    pub name: String,
    pub language: String,
    pub ranking_score: i32,
    pub is_default: bool,
    pub draft: Value,
    pub published_version: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, language, ranking_score, is_default, draft, published_version, created_at, updated_at";

fn validated(body: Value) -> ApiResult<FlowDefinition> {
    let def = shared::flows::parse_flow(body).map_err(|e| {
        let code = if e.message.contains("unknown field") {
            "unknown_field"
        } else {
            "invalid_field"
        };
        ApiError::invalid(code, format!("{}: {}", e.param, e.message)).with_param(e.param)
    })?;
    def.validate()
        .map_err(|e| ApiError::invalid_param(&e.param, e.message))?;
    Ok(def)
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("flow"))
}

async fn fetch(st: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<FlowRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM flows WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&st.pools.primary)
    .await?
    .ok_or_else(|| ApiError::not_found("flow"))
}

async fn create_flow(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiJson(def): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<FlowRow>)> {
    let def = validated(def)?;
    let row: FlowRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO flows (id, tenant_id, name, language, ranking_score, is_default, draft)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(auth.tenant_id)
    .bind(&def.name)
    .bind(&def.language)
    .bind(def.ranking_score)
    .bind(def.is_default)
    .bind(serde_json::to_value(&def).map_err(ApiError::internal)?)
    .fetch_one(&st.pools.primary)
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

async fn list_flows(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    let rows: Vec<FlowRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM flows WHERE tenant_id = $1 AND deleted_at IS NULL
         ORDER BY ranking_score DESC, created_at"
    )))
    .bind(auth.tenant_id)
    .fetch_all(&st.pools.primary)
    .await?;
    Ok(Json(json!({ "data": rows })))
}

async fn get_flow(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowRow>> {
    Ok(Json(fetch(&st, auth.tenant_id, parse_id(&id)?).await?))
}

/// Replaces the draft; the published version is untouched until the next publish.
async fn update_flow(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(def): ApiJson<Value>,
) -> ApiResult<Json<FlowRow>> {
    let id = parse_id(&id)?;
    let def = validated(def)?;
    let row: Option<FlowRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE flows SET name = $3, language = $4, ranking_score = $5, is_default = $6, draft = $7, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(auth.tenant_id)
    .bind(id)
    .bind(&def.name)
    .bind(&def.language)
    .bind(def.ranking_score)
    .bind(def.is_default)
    .bind(serde_json::to_value(&def).map_err(ApiError::internal)?)
    .fetch_optional(&st.pools.primary)
    .await?;
    row.map(Json).ok_or_else(|| ApiError::not_found("flow"))
}

/// Removes the flow (and its published version) from the widget; versions are kept.
async fn delete_flow(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let res = sqlx::query("UPDATE flows SET deleted_at = now() WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL")
        .bind(auth.tenant_id)
        .bind(id)
        .execute(&st.pools.primary)
        .await?;
    if res.rows_affected() == 0 {
        return Err(ApiError::not_found("flow"));
    }
    st.flow_cache
        .invalidate_everywhere(&st.redis, auth.tenant_id)
        .await;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// Publishes the draft as a new immutable version, atomically (one transaction; a default
/// flow takes the default role from the tenant's other flows).
async fn publish_flow(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let mut tx = st.pools.primary.begin().await?;
    let row: Option<(Value, bool)> = sqlx::query_as(
        "SELECT draft, is_default FROM flows WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(auth.tenant_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (draft, is_default) = row.ok_or_else(|| ApiError::not_found("flow"))?;
    let (version,): (i32,) = sqlx::query_as(
        "INSERT INTO flow_versions (tenant_id, flow_id, version, definition)
         SELECT $1, $2, coalesce(max(version), 0) + 1, $3 FROM flow_versions WHERE flow_id = $2
         RETURNING version",
    )
    .bind(auth.tenant_id)
    .bind(id)
    .bind(&draft)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE flows SET published_version = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(auth.tenant_id)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    if is_default {
        sqlx::query(
            "UPDATE flows SET is_default = false WHERE tenant_id = $1 AND id <> $2 AND is_default",
        )
        .bind(auth.tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    st.flow_cache
        .invalidate_everywhere(&st.redis, auth.tenant_id)
        .await;
    tracing::info!(flow_id = %id, version, "flow published");
    Ok(Json(json!({ "id": id, "published_version": version })))
}

async fn list_versions(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    fetch(&st, auth.tenant_id, id).await?;
    let rows: Vec<(i32, Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT version, definition, published_at FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2 ORDER BY version DESC",
    )
    .bind(auth.tenant_id)
    .bind(id)
    .fetch_all(&st.pools.primary)
    .await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(v, d, at)| json!({ "version": v, "definition": d, "published_at": at }))
        .collect();
    Ok(Json(json!({ "data": data })))
}
