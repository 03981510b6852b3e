//! `POST /v1/widget_tokens` (secret key): signs a customer token server-side with the
//! tenant's current signing secret of the key's mode.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::widget_token::Claims;

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    AppState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateWidgetToken {
    customer_id: String,
    #[serde(default, deserialize_with = "shared::text::some_string")]
    subscription_id: Option<String>,
    /// Lifetime in seconds (default 900, at most 86400).
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
}

/// Server-side helper: signs a customer token with the tenant's current signing secret of
/// the presented key's mode.
pub(super) async fn create_widget_token(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateWidgetToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.customer_id.is_empty() || body.customer_id.len() > 255 {
        return Err(ApiError::invalid_param(
            "customer_id",
            "customer_id must be 1 to 255 characters",
        ));
    }
    let ttl = body.expires_in.unwrap_or(900);
    if !(1..=shared::widget_token::MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::invalid_param(
            "expires_in",
            "expires_in must be between 1 and 86400 seconds",
        ));
    }
    // Read from the database, not the settings cache: right after a rotation without
    // grace, a cached old secret would sign tokens that no longer verify.
    let secrets =
        shared::signing_secrets::usable(&st.pools.primary, &st.master, auth.tenant_id, auth.mode)
            .await?;
    let key = secrets.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request",
            "token_signing_secret_missing",
            "This tenant has no customer-token signing secret for this mode yet: create one with POST /v1/token_signing_secrets/rotate.",
        )
    })?;
    let exp = chrono::Utc::now().timestamp() + ttl;
    let claims = Claims {
        tid: auth.tenant_id,
        cus: body.customer_id,
        sub: body.subscription_id,
        exp,
        attrs: body.attributes,
    };
    let token = shared::widget_token::sign(&claims, key);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "expires_at": exp })),
    ))
}
