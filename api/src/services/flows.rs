//! Flows: drafts, atomic publishing, kept versions, and copying a tested flow to live
//! ([`copy()`]). Every flow belongs to a mode: a caller reads and changes its own mode's
//! flows only (another mode's flow is a 404, like another tenant's). Every change is audited
//! in its own transaction. The flow routes (`/v1/flows/...`) and the dashboard's flows list
//! and editor call these functions.

mod copy;

pub use copy::copy;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use shared::{audit::Change, flows::FlowDefinition, tenants::Mode};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlowRow {
    pub id: Uuid,
    /// `test` or `live`: the mode of the key that created it.
    pub mode: String,
    pub name: String,
    pub language: String,
    pub ranking_score: i32,
    pub is_default: bool,
    /// The draft definition (what the next publish makes a version).
    #[schema(value_type = shared::flows::FlowDefinition)]
    pub draft: Value,
    pub published_version: Option<i32>,
    /// On a live flow made by [`copy()`] (`copy_to_live`): the test flow it copies.
    pub copied_from: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FlowRow {
    /// What an audit row says of the flow (the draft itself is in the flow's history).
    fn summary(&self) -> Value {
        json!({
            "name": self.name, "language": self.language, "ranking_score": self.ranking_score,
            "is_default": self.is_default, "published_version": self.published_version,
            "copied_from": self.copied_from,
        })
    }
}

/// Parses and validates a flow definition; errors name the offending field in `param`.
pub fn validated(body: Value) -> ApiResult<FlowDefinition> {
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

/// The key's flow `id` (its tenant and mode, not deleted); `lock` takes a row lock.
async fn fetch(
    conn: &mut PgConnection,
    who: (Uuid, Mode),
    id: Uuid,
    lock: bool,
) -> ApiResult<FlowRow> {
    let row = if lock {
        sqlx::query_as!(
            FlowRow,
            "SELECT id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at FROM flows
              WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND deleted_at IS NULL FOR UPDATE",
            who.0,
            who.1.as_str(),
            id,
        )
        .fetch_optional(conn)
        .await?
    } else {
        sqlx::query_as!(
            FlowRow,
            "SELECT id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at FROM flows
              WHERE tenant_id = $1 AND mode = $2 AND id = $3 AND deleted_at IS NULL",
            who.0,
            who.1.as_str(),
            id,
        )
        .fetch_optional(conn)
        .await?
    };
    row.ok_or_else(|| ApiError::not_found("flow"))
}

/// Appends the audit row of a flow change on the change's transaction.
async fn audit(
    conn: &mut PgConnection,
    actor: &shared::audit::Actor,
    who: (Uuid, Mode),
    action: &str,
    id: Uuid,
    before: Option<Value>,
    after: Option<Value>,
) -> ApiResult<()> {
    shared::audit::record(
        conn,
        actor,
        Change {
            tenant_id: Some(who.0),
            mode: Some(who.1),
            action,
            target_type: "flow",
            target_id: Some(id.to_string()),
            before,
            after,
        },
    )
    .await?;
    Ok(())
}

/// Creates a flow in `who`'s mode from a definition (validated like every flow) with its
/// audit row (`POST /v1/flows` and the dashboard's "new flow").
pub async fn create(
    st: &AppState,
    who: (Uuid, Mode),
    actor: &shared::audit::Actor,
    def: Value,
) -> ApiResult<FlowRow> {
    let def = validated(def)?;
    let mut tx = st.pools.primary.begin().await?;
    let row = sqlx::query_as!(
        FlowRow,
        "INSERT INTO flows (id, tenant_id, mode, name, language, ranking_score, is_default, draft)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at",
        Uuid::now_v7(),
        who.0,
        who.1.as_str(),
        &def.name,
        &def.language,
        def.ranking_score,
        def.is_default,
        serde_json::to_value(&def).map_err(ApiError::internal)?,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx,
        actor,
        who,
        "flow.create",
        row.id,
        None,
        Some(row.summary()),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// A mode's flows, highest ranking first.
pub async fn list(st: &AppState, who: (Uuid, Mode)) -> ApiResult<Vec<FlowRow>> {
    Ok(sqlx::query_as!(
        FlowRow,
        "SELECT id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at FROM flows WHERE tenant_id = $1 AND mode = $2 AND deleted_at IS NULL
         ORDER BY ranking_score DESC, created_at",
        who.0,
        who.1.as_str(),
    )
    .fetch_all(&st.pools.primary)
    .await?)
}

/// `who`'s flow `id` (its tenant and mode, not deleted), read from the primary (the caller's
/// own writes are visible at once).
pub async fn find(st: &AppState, who: (Uuid, Mode), id: Uuid) -> ApiResult<FlowRow> {
    let mut conn = st.pools.primary.acquire().await?;
    fetch(&mut conn, who, id, false).await
}

/// Replaces flow `id`'s draft with a definition (validated like every flow) with its audit
/// row; the published version is untouched until the next publish. The dashboard's editor
/// and "restore as draft" call it too.
pub async fn update(
    st: &AppState,
    who: (Uuid, Mode),
    actor: &shared::audit::Actor,
    id: Uuid,
    def: Value,
) -> ApiResult<FlowRow> {
    let def = validated(def)?;
    let mut tx = st.pools.primary.begin().await?;
    let before = fetch(&mut tx, who, id, true).await?;
    let row = sqlx::query_as!(
        FlowRow,
        "UPDATE flows SET name = $4, language = $5, ranking_score = $6, is_default = $7, draft = $8, updated_at = now()
         WHERE tenant_id = $1 AND mode = $2 AND id = $3 RETURNING id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at",
        who.0,
        who.1.as_str(),
        id,
        &def.name,
        &def.language,
        def.ranking_score,
        def.is_default,
        serde_json::to_value(&def).map_err(ApiError::internal)?,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx,
        actor,
        who,
        "flow.update",
        id,
        Some(before.summary()),
        Some(row.summary()),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Removes flow `id` (and its published version) from the widget, with its audit row, then
/// every process's flow cache is invalidated; versions are kept.
pub async fn delete(
    st: &AppState,
    who: (Uuid, Mode),
    actor: &shared::audit::Actor,
    id: Uuid,
) -> ApiResult<()> {
    let mut tx = st.pools.primary.begin().await?;
    let before = fetch(&mut tx, who, id, true).await?;
    sqlx::query!(
        "UPDATE flows SET deleted_at = now() WHERE tenant_id = $1 AND mode = $2 AND id = $3",
        who.0,
        who.1.as_str(),
        id,
    )
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        actor,
        who,
        "flow.delete",
        id,
        Some(before.summary()),
        None,
    )
    .await?;
    tx.commit().await?;
    st.flow_cache
        .invalidate_everywhere(&st.redis, who.0, who.1)
        .await;
    Ok(())
}

/// Publishes `definition` as the flow's next immutable version on `tx` (the flow row must be
/// locked): the flow's `published_version` moves to it and a default flow takes the default
/// role from the other flows of its mode. Returns the version.
async fn publish_definition(
    tx: &mut PgConnection,
    who: (Uuid, Mode),
    id: Uuid,
    definition: &Value,
    is_default: bool,
) -> ApiResult<i32> {
    let version = sqlx::query_scalar!(
        "INSERT INTO flow_versions (tenant_id, mode, flow_id, version, definition)
         SELECT $1, $2, $3, coalesce(max(version), 0) + 1, $4 FROM flow_versions WHERE flow_id = $3
         RETURNING version",
        who.0,
        who.1.as_str(),
        id,
        definition,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE flows SET published_version = $4, updated_at = now() WHERE tenant_id = $1 AND mode = $2 AND id = $3",
        who.0,
        who.1.as_str(),
        id,
        version,
    )
    .execute(&mut *tx)
    .await?;
    if is_default {
        sqlx::query!(
            "UPDATE flows SET is_default = false
              WHERE tenant_id = $1 AND mode = $2 AND id <> $3 AND is_default",
            who.0,
            who.1.as_str(),
            id,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(version)
}

/// Publishes flow `id`'s draft as a new immutable version in its tenant's mode, atomically
/// (`POST /v1/flows/{id}/publish` and the dashboard's publish button): one transaction with
/// the audit row (a default flow takes the default role from the other flows of its mode),
/// then every process's flow cache is invalidated.
pub async fn publish(
    st: &AppState,
    who: (Uuid, Mode),
    actor: &shared::audit::Actor,
    id: Uuid,
) -> ApiResult<i32> {
    let mut tx = st.pools.primary.begin().await?;
    let row = fetch(&mut tx, who, id, true).await?;
    let version = publish_definition(&mut tx, who, id, &row.draft, row.is_default).await?;
    audit(
        &mut tx,
        actor,
        who,
        "flow.publish",
        id,
        Some(json!({ "published_version": row.published_version })),
        Some(json!({ "published_version": version, "is_default": row.is_default })),
    )
    .await?;
    tx.commit().await?;
    st.flow_cache
        .invalidate_everywhere(&st.redis, who.0, who.1)
        .await;
    tracing::info!(flow_id = %id, version, mode = who.1.as_str(), "flow published");
    Ok(version)
}

/// One published version of a flow.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlowVersion {
    pub version: i32,
    #[schema(value_type = shared::flows::FlowDefinition)]
    pub definition: Value,
    pub published_at: DateTime<Utc>,
}

/// Every published version of `who`'s flow `id`, newest first (a 404 for another tenant's
/// or mode's flow).
pub async fn versions(st: &AppState, who: (Uuid, Mode), id: Uuid) -> ApiResult<Vec<FlowVersion>> {
    let mut conn = st.pools.primary.acquire().await?;
    fetch(&mut conn, who, id, false).await?;
    Ok(sqlx::query_as!(
        FlowVersion,
        "SELECT version, definition, published_at FROM flow_versions
          WHERE tenant_id = $1 AND mode = $2 AND flow_id = $3 ORDER BY version DESC",
        who.0,
        who.1.as_str(),
        id,
    )
    .fetch_all(&mut *conn)
    .await?)
}
