//! `POST /v1/flows/{id}/copy_to_live`: the "build in test, go live" step. Needs a live secret
//! key; `{id}` names a test-mode flow of the tenant.
//!
//! - The first copy creates a live flow whose `copied_from` is the test flow (201); later
//!   copies update that same live flow (200). A live flow made by the migration from a
//!   tenant-wide flow already names its test copy, so copying it updates the original.
//!   Deleting the live counterpart frees the link: the next copy creates a new one.
//! - The live draft (name, language, ranking, default role, steps) becomes the test flow's
//!   draft. Without `publish` nothing changes for live customers until someone publishes the
//!   live flow (`POST /v1/flows/{live id}/publish`).
//! - With `{"publish": true}` the test flow's *published* version (what test customers saw,
//!   not an untested draft) becomes the live flow's next version and is published at once
//!   (as `publish` does: a default flow takes the default role among live flows). A test
//!   flow with no published version is a 409 `flow_not_published` and nothing changes.
//! - A test key is a 403 `live_key_required`; a live flow id, another tenant's flow or a
//!   deleted flow is a 404. The copy is one transaction with its `flow.copy_to_live` audit
//!   row.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::tenants::Mode;
use uuid::Uuid;

use super::{audit, parse_id, publish_definition, FlowRow};
use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult},
    extract::TenantAuth,
    AppState,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyToLive {
    /// Publish the test flow's published version to live at once (default false: the live
    /// draft is updated only).
    #[serde(default)]
    publish: bool,
}

/// The body is optional: empty means `{}`.
fn parse_body(body: &[u8]) -> ApiResult<CopyToLive> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CopyToLive::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            return ApiError::invalid("malformed_json", format!("The body is not valid JSON: {e}"));
        }
        let text = e.to_string();
        if text.contains("unknown field") {
            let field = text.split('`').nth(1).unwrap_or_default().to_string();
            ApiError::invalid("unknown_field", text).with_param(field)
        } else {
            ApiError::invalid("invalid_field", text).with_param("publish")
        }
    })
}

pub(super) async fn copy_to_live(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<FlowRow>)> {
    if auth.mode != Mode::Live {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "live_key_required",
            "Copying a flow to live needs a live secret key (sk_live_…); a test key never changes live configuration.",
        ));
    }
    let body = parse_body(&body)?;
    let source_id = parse_id(&id)?;
    let (created, live) = copy(
        &st,
        auth.tenant_id,
        &meta.key_actor(&auth),
        source_id,
        body.publish,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(live)))
}

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
