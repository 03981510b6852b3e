//! Copying a tested flow to live, the "build in test, go live" step behind
//! `POST /v1/flows/{id}/copy_to_live` and the dashboard's "copy to live":
//!
//! - The first copy creates a live flow whose `copied_from` is the test flow; later copies
//!   update that same live flow. A live flow made by the migration from a tenant-wide flow
//!   already names its test copy, so copying it updates the original. Deleting the live
//!   counterpart frees the link: the next copy creates a new one.
//! - The live draft (name, language, ranking, default role, steps) becomes the test flow's
//!   draft. Without `publish` nothing changes for live customers until someone publishes the
//!   live flow ([`publish`](super::publish)).
//! - With `publish` the test flow's *published* version (what test customers saw, not an
//!   untested draft) becomes the live flow's next version and is published at once (as
//!   `publish` does: a default flow takes the default role among live flows). A test flow
//!   with no published version is a 409 `flow_not_published` and nothing changes.
//! - A live flow id, another tenant's flow or a deleted flow is a 404. The copy is one
//!   transaction with its `flow.copy_to_live` audit row.

use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{audit, publish_definition, FlowRow};
use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// Copies the tenant's test flow `source_id` to live (see the module docs); `true` when the
/// live flow was created. The dashboard's "copy to live" calls it too (the caller has checked
/// that the actor may change live configuration).
pub async fn copy(
    st: &AppState,
    tenant_id: Uuid,
    actor: &shared::audit::Actor,
    source_id: Uuid,
    publish: bool,
) -> ApiResult<(bool, FlowRow)> {
    let mut tx = st.pools.primary.begin().await?;
    // Locking the test flow serialises copies of it (one live counterpart, never two).
    let source = sqlx::query_as!(
        FlowRow,
        "SELECT id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at FROM flows
          WHERE tenant_id = $1 AND mode = 'test' AND id = $2 AND deleted_at IS NULL FOR UPDATE",
        tenant_id,
        source_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("flow"))?;
    let published: Option<(i32, Value)> = match (publish, source.published_version) {
        (false, _) => None,
        (true, None) => {
            return Err(ApiError::conflict(
                "flow_not_published",
                "The test flow has no published version to publish to live; publish it in test first, or copy without publish.",
            ))
        }
        (true, Some(v)) => {
            let def = sqlx::query_scalar!(
                "SELECT definition FROM flow_versions
                  WHERE tenant_id = $1 AND mode = 'test' AND flow_id = $2 AND version = $3",
                tenant_id,
                source_id,
                v,
            )
            .fetch_one(&mut *tx)
            .await?;
            Some((v, def))
        }
    };
    let before = sqlx::query_as!(
        FlowRow,
        "SELECT id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at FROM flows
          WHERE tenant_id = $1 AND mode = 'live' AND copied_from = $2 AND deleted_at IS NULL FOR UPDATE",
        tenant_id,
        source_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let live = match &before {
        None => {
            sqlx::query_as!(
                FlowRow,
                "INSERT INTO flows (id, tenant_id, mode, name, language, ranking_score, is_default, draft, copied_from)
                 VALUES ($1, $2, 'live', $3, $4, $5, $6, $7, $8) RETURNING id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at",
                Uuid::now_v7(),
                tenant_id,
                &source.name,
                &source.language,
                source.ranking_score,
                source.is_default,
                &source.draft,
                source_id,
            )
            .fetch_one(&mut *tx)
            .await?
        }
        Some(b) => {
            sqlx::query_as!(
                FlowRow,
                "UPDATE flows SET name = $3, language = $4, ranking_score = $5, is_default = $6, draft = $7,
                        updated_at = now()
                  WHERE id = $1 AND tenant_id = $2 AND copied_from = $8 RETURNING id, mode, name, language, ranking_score, is_default, draft, published_version, copied_from, created_at, updated_at",
                b.id,
                tenant_id,
                &source.name,
                &source.language,
                source.ranking_score,
                source.is_default,
                &source.draft,
                source_id,
            )
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let live = match &published {
        Some((_, def)) => {
            let version = publish_definition(
                &mut tx,
                (tenant_id, Mode::Live),
                live.id,
                def,
                live.is_default,
            )
            .await?;
            FlowRow {
                published_version: Some(version),
                ..live
            }
        }
        None => live,
    };
    let mut after = live.summary();
    after["source_flow_id"] = json!(source_id);
    after["source_version"] = json!(published.as_ref().map(|p| p.0));
    after["published"] = json!(published.is_some());
    audit(
        &mut tx,
        actor,
        (tenant_id, Mode::Live),
        "flow.copy_to_live",
        live.id,
        before.as_ref().map(FlowRow::summary),
        Some(after),
    )
    .await?;
    tx.commit().await?;
    st.flow_cache
        .invalidate_everywhere(&st.redis, tenant_id, Mode::Live)
        .await;
    tracing::info!(source = %source_id, flow_id = %live.id, published = published.is_some(), "flow copied to live");
    Ok((before.is_none(), live))
}
