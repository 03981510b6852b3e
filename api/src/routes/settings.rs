//! Tenant settings (origins, cooldowns, cancel mode, time zone, rate limit), one set per
//! mode: a key reads and changes its own mode's settings only. `PUT` replaces them and needs
//! every field; `PATCH` changes the fields it names. Both validate the result the same way
//! and write a `settings.update` audit row (before/after) in the change's transaction.
//! Stripe settings (restricted key and webhook signing secrets per mode, encrypted at rest)
//! are served here too. The handlers parse the request and answer; what they do is
//! [`crate::services::settings`].

use axum::{extract::State, routing::get, Json, Router};
use serde_json::{Map, Value};
use shared::tenants::TenantSettings;

use crate::{
    audit::ReqMeta,
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    services::settings::{self, StripeSettingsBody},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/settings",
            get(get_settings).put(put_settings).patch(patch_settings),
        )
        .route(
            "/v1/settings/stripe",
            get(get_stripe_settings).put(put_stripe_settings),
        )
}

async fn get_settings(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<TenantSettings>> {
    Ok(Json(
        shared::tenants::settings(&st.pools.primary, auth.tenant_id, auth.mode).await?,
    ))
}

/// `PUT /v1/settings`: every field is required (an omitted field is a 400
/// `missing_field`, never a silent reset to its default).
async fn put_settings(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<TenantSettings>> {
    if let Some(missing) = TenantSettings::field_names()
        .into_iter()
        .find(|f| !body.contains_key(f))
    {
        return Err(ApiError::invalid(
            "missing_field",
            format!("PUT replaces every setting: {missing} is missing (PATCH /v1/settings changes only the fields it names)"),
        )
        .with_param(missing));
    }
    settings::update(
        &st,
        (auth.tenant_id, auth.mode),
        meta.key_actor(&auth),
        body,
        true,
    )
    .await
    .map(Json)
}

/// `PATCH /v1/settings`: changes the fields given, keeps the others.
async fn patch_settings(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<TenantSettings>> {
    settings::update(
        &st,
        (auth.tenant_id, auth.mode),
        meta.key_actor(&auth),
        body,
        false,
    )
    .await
    .map(Json)
}

async fn put_stripe_settings(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(b): ApiJson<StripeSettingsBody>,
) -> ApiResult<Json<Value>> {
    settings::put_stripe(&st, (auth.tenant_id, auth.mode), meta.key_actor(&auth), b)
        .await
        .map(Json)
}

async fn get_stripe_settings(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    settings::stripe_summary(&st, (auth.tenant_id, auth.mode))
        .await
        .map(Json)
}
