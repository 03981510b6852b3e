//! Tenant settings (origins, cooldowns, cancel mode, time zone, rate limit) and Stripe
//! settings (restricted key and webhook signing secrets per mode, encrypted at rest).

use axum::{extract::State, routing::get, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::tenants::{Mode, TenantSettings};

use crate::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, TenantAuth},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/settings", get(get_settings).put(put_settings))
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
        shared::tenants::settings(&st.pools.primary, auth.tenant_id).await?,
    ))
}

async fn put_settings(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiJson(s): ApiJson<TenantSettings>,
) -> ApiResult<Json<TenantSettings>> {
    for (i, o) in s.allowed_origins.iter().enumerate() {
        let ok = o == "*"
            || ((o.starts_with("https://") || o.starts_with("http://"))
                && !o.ends_with('/')
                && o.len() < 300);
        if !ok {
            return Err(ApiError::invalid_param(
                &format!("allowed_origins[{i}]"),
                "an origin is scheme://host[:port] without a trailing slash",
            ));
        }
    }
    if s.discount_cooldown_days > 3650 {
        return Err(ApiError::invalid_param(
            "discount_cooldown_days",
            "at most 3650 days",
        ));
    }
    if s.pause_cooldown_days > 3650 {
        return Err(ApiError::invalid_param(
            "pause_cooldown_days",
            "at most 3650 days",
        ));
    }
    if s.trial_extension_cooldown_days > 3650 {
        return Err(ApiError::invalid_param(
            "trial_extension_cooldown_days",
            "at most 3650 days",
        ));
    }
    if s.plan_change_cooldown_days > 3650 {
        return Err(ApiError::invalid_param(
            "plan_change_cooldown_days",
            "at most 3650 days",
        ));
    }
    // A tenant may lower its own limit, never raise it past the operator's
    // (RATE_LIMIT_TENANT_PER_SECOND; when that is off, 100,000/s).
    let most = match st.config.limits.tenant_per_second {
        0 => 100_000,
        n => n,
    };
    if s.rate_limit_per_second > most {
        return Err(ApiError::invalid_param(
            "rate_limit_per_second",
            format!("at most {most} requests per second (0: the platform's default)"),
        ));
    }
    if !["record_only", "cancel_at_period_end"].contains(&s.cancel_mode.as_str()) {
        return Err(ApiError::invalid_param(
            "cancel_mode",
            "cancel_mode must be record_only or cancel_at_period_end",
        ));
    }
    let tz_ok: Option<(bool,)> =
        sqlx::query_as("SELECT true FROM pg_timezone_names WHERE name = $1")
            .bind(&s.timezone)
            .fetch_optional(&st.pools.primary)
            .await?;
    if tz_ok.is_none() {
        return Err(ApiError::invalid_param(
            "timezone",
            "timezone must be an IANA time zone such as Europe/Paris",
        ));
    }
    let mut stored = serde_json::to_value(&s).map_err(ApiError::internal)?;
    if let Some(o) = stored.as_object_mut() {
        o.remove("timezone");
    }
    sqlx::query("UPDATE tenants SET settings = $2, timezone = $3 WHERE id = $1")
        .bind(auth.tenant_id)
        .bind(stored)
        .bind(&s.timezone)
        .execute(&st.pools.primary)
        .await?;
    st.settings_cache.forget(auth.tenant_id);
    Ok(Json(s))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StripeSettingsBody {
    /// Which mode these settings are for (`test` or `live`); must match the presented key.
    mode: Mode,
    /// A restricted API key (`rk_…`) or secret key (`sk_…`) of the tenant's Stripe account.
    api_key: String,
    /// One or more webhook signing secrets (`whsec_…`); several are active during a roll.
    webhook_secrets: Vec<String>,
}

async fn put_stripe_settings(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
    ApiJson(b): ApiJson<StripeSettingsBody>,
) -> ApiResult<Json<Value>> {
    if b.mode != auth.mode {
        return Err(ApiError::invalid_param(
            "mode",
            "a key manages the Stripe settings of its own mode only",
        ));
    }
    let prefix_ok = match b.mode {
        Mode::Test => b.api_key.starts_with("rk_test_") || b.api_key.starts_with("sk_test_"),
        Mode::Live => b.api_key.starts_with("rk_live_") || b.api_key.starts_with("sk_live_"),
    };
    if !prefix_ok || b.api_key.len() > 255 {
        return Err(ApiError::invalid_param(
            "api_key",
            format!(
                "api_key must be a Stripe {} key (rk_{0}_… or sk_{0}_…)",
                b.mode.as_str()
            ),
        ));
    }
    if b.webhook_secrets.is_empty() || b.webhook_secrets.len() > 5 {
        return Err(ApiError::invalid_param(
            "webhook_secrets",
            "give 1 to 5 webhook signing secrets",
        ));
    }
    for (i, s) in b.webhook_secrets.iter().enumerate() {
        if !s.starts_with("whsec_") || s.len() > 255 {
            return Err(ApiError::invalid_param(
                &format!("webhook_secrets[{i}]"),
                "a webhook signing secret starts with whsec_",
            ));
        }
    }
    let ctx = format!("{}:{}", auth.tenant_id, b.mode.as_str());
    let secrets: Vec<String> = b
        .webhook_secrets
        .iter()
        .map(|s| st.master.encrypt(s, &ctx))
        .collect();
    let last4: String = b
        .api_key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    sqlx::query(
        "INSERT INTO stripe_settings (tenant_id, mode, api_key_enc, api_key_last4, webhook_secrets_enc)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, mode) DO UPDATE SET api_key_enc = $3, api_key_last4 = $4, webhook_secrets_enc = $5, updated_at = now()",
    )
    .bind(auth.tenant_id)
    .bind(b.mode.as_str())
    .bind(st.master.encrypt(&b.api_key, &ctx))
    .bind(&last4)
    .bind(json!(secrets))
    .execute(&st.pools.primary)
    .await?;
    st.settings_cache.forget(auth.tenant_id);
    Ok(Json(
        json!({ "mode": b.mode, "api_key_last4": last4, "webhook_secrets": b.webhook_secrets.len() }),
    ))
}

async fn get_stripe_settings(
    TenantAuth(auth): TenantAuth,
    State(st): State<AppState>,
) -> ApiResult<Json<Value>> {
    let row: Option<(String, Value, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT api_key_last4, webhook_secrets_enc, updated_at FROM stripe_settings WHERE tenant_id = $1 AND mode = $2",
    )
    .bind(auth.tenant_id)
    .bind(auth.mode.as_str())
    .fetch_optional(&st.pools.primary)
    .await?;
    let (last4, secrets, updated) = row.ok_or_else(|| ApiError::not_found("stripe_settings"))?;
    Ok(Json(json!({
        "mode": auth.mode,
        "api_key_last4": last4,
        "webhook_secrets": secrets.as_array().map(Vec::len).unwrap_or(0),
        "updated_at": updated,
    })))
}
