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
    error::{ApiError, ApiResult, ErrorEnvelope},
    extract::{ApiJson, TenantAuth},
    services::settings::{
        self, SettingsChange, SettingsReplace, StripeSaved, StripeSettingsBody, StripeSummary,
    },
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

/// The OpenAPI description of these routes (merged by `routes::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    get_settings,
    put_settings,
    patch_settings,
    get_stripe_settings,
    put_stripe_settings
))]
pub(crate) struct Doc;

#[utoipa::path(
    get,
    path = "/v1/settings",
    operation_id = "get_settings",
    tag = "settings",
    summary = "Tenant settings of the key's mode",
    description = "Settings are per mode: a test key reads the test settings, a live key the live ones.",
    security(("secretKey" = [])),
    responses((status = 200, description = "The settings of the key's mode", body = TenantSettings))
)]
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
#[utoipa::path(
    put,
    path = "/v1/settings",
    operation_id = "put_settings",
    tag = "settings",
    summary = "Replace the tenant settings of the key's mode (every field required)",
    description = "Every field is required: an omitted field is a 400 missing_field naming it (never a silent reset to its default); an unknown field is a 400 unknown_field, a wrong type a 400 invalid_field, a bad value a 400 parameter_invalid, each with param; nothing changes then. Changes only the key's mode's settings. Audited (settings.update, before/after).",
    security(("secretKey" = [])),
    request_body = SettingsReplace,
    responses(
        (status = 200, description = "The settings as stored", body = TenantSettings),
        (status = 400, description = "missing_field, unknown_field or invalid_field (a wrong type), or parameter_invalid (a bad value: an origin, a cooldown over 3650, a rate limit over the deployment's, an unknown time zone), each with param naming the field; or the body does not parse (malformed_json)", body = ErrorEnvelope),
    )
)]
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
#[utoipa::path(
    patch,
    path = "/v1/settings",
    operation_id = "patch_settings",
    tag = "settings",
    summary = "Change some tenant settings of the key's mode",
    description = "Changes only the fields given; the others keep their values. Same validation and errors as PUT (unknown_field, invalid_field, parameter_invalid, with param); nothing changes on error. The read-modify-write is one transaction under a row lock. Audited (settings.update, before/after).",
    security(("secretKey" = [])),
    request_body = SettingsChange,
    responses(
        (status = 200, description = "The settings as stored", body = TenantSettings),
        (status = 400, description = "unknown_field or invalid_field (a wrong type, or null), or parameter_invalid (a bad value: an origin, a cooldown over 3650, a rate limit over the deployment's, an unknown time zone), each with param naming the field; or the body does not parse (malformed_json, not an object)", body = ErrorEnvelope),
    )
)]
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

#[utoipa::path(
    put,
    path = "/v1/settings/stripe",
    operation_id = "put_stripe_settings",
    tag = "settings",
    summary = "Store Stripe settings (encrypted at rest)",
    description = "The Stripe key and webhook secrets are encrypted under MASTER_KEY, each bound to its column, tenant and mode. Audited (stripe_settings.update: api_key_last4 and the number of webhook secrets before and after, never the secrets).",
    security(("secretKey" = [])),
    request_body = StripeSettingsBody,
    responses(
        (status = 200, description = "What was stored (never the key or a secret)", body = StripeSaved),
        (status = 400, description = "parameter_invalid: param mode (not the presented key's mode), api_key (not a Stripe key of that mode: rk_test_…/sk_test_… or rk_live_…/sk_live_…; over 255 bytes), webhook_secrets (not 1 to 5 of them), webhook_secrets[i] (not whsec_…; over 255 bytes); or the body does not parse (malformed_json, unknown_field, missing_field, invalid_field)", body = ErrorEnvelope),
    )
)]
async fn put_stripe_settings(
    TenantAuth(auth): TenantAuth,
    meta: ReqMeta,
    State(st): State<AppState>,
    ApiJson(b): ApiJson<StripeSettingsBody>,
) -> ApiResult<Json<StripeSaved>> {
    settings::put_stripe(&st, (auth.tenant_id, auth.mode), meta.key_actor(&auth), b)
        .await
        .map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/settings/stripe",
    operation_id = "get_stripe_settings",
    tag = "settings",
    summary = "Stripe settings of the key's mode (masked)",
    security(("secretKey" = [])),
    responses(
        (status = 200, description = "A summary (never the key or a secret)", body = StripeSummary),
        (status = 404, description = "stripe_settings_not_found: the key's mode has no Stripe settings yet", body = ErrorEnvelope),
    )
)]
async fn get_stripe_settings(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<StripeSummary>> {
    settings::stripe_settings(&st, (auth.tenant_id, auth.mode))
        .await
        .map(Json)
}
