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
//!
//! The handler checks the key and parses the body; the copy itself is
//! [`crate::services::flows::copy`] (the dashboard's "copy to live" calls it too).

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use shared::tenants::Mode;

use super::parse_id;
use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::TenantAuth,
    services::flows::{self, FlowRow},
    AppState,
};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CopyToLive {
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

#[utoipa::path(
    post,
    path = "/v1/flows/{id}/copy_to_live",
    operation_id = "copy_to_live",
    tag = "flows",
    summary = "Copy a test flow to live (build in test, go live)",
    description = "Needs a LIVE secret key (sk_live_…); a test key is a 403 live_key_required. {id} names a TEST-mode flow of the tenant (a live flow id, another tenant's or a deleted flow is a 404 flow_not_found). The first copy creates a live flow whose copied_from is the test flow (201); later copies update that same live flow (200); after the live counterpart is deleted the next copy creates a new one. Flows that existed before modes were introduced are already linked to their test copy. The live draft becomes the test flow's draft. With {\"publish\": true} the test flow's published version (what test customers saw, not the draft) becomes the live flow's next version and is published at once (a default flow takes the default role among live flows); a test flow with no published version is then a 409 flow_not_published and nothing changes. Without publish, live customers see no change until the live flow is published. One transaction, audited (flow.copy_to_live, in live mode).",
    security(("secretKey" = [])),
    params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<CopyToLive>, description = "Optional: an empty body means {}"),
    responses((status = 200, description = "The live counterpart, updated", body = FlowRow), (status = 201, description = "The live counterpart, created", body = FlowRow), (status = 403, description = "live_key_required: a test key never changes live configuration", body = ErrorEnvelope), (status = 404, description = "flow_not_found: no such test flow", body = ErrorEnvelope), (status = 409, description = "flow_not_published: publish requested but the test flow has no published version", body = ErrorEnvelope))
)]
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
    let (created, live) = flows::copy(
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
