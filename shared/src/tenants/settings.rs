//! Tenant settings: one row per tenant and mode in `tenant_settings`, with defaults for
//! missing fields; reading, reading under a row lock, and storing them.

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Mode;

// Stored in `tenant_settings`, one row per tenant and mode. Its schema is what the settings
// routes answer; what a request may send is documented by
// `api::services::settings::{SettingsReplace, SettingsChange}`.
/// A tenant's settings of one mode (a test key reads and changes only the test ones).
/// Fields missing from a stored row take their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Origins allowed to call the widget API from a browser (e.g. `https://app.acme.com`).
    #[serde(default)]
    #[schema(required = true)]
    pub allowed_origins: Vec<String>,
    /// No second discount offer within this many days of an accepted one.
    #[serde(default = "default_cooldown")]
    #[schema(required = true, maximum = 3650)]
    pub discount_cooldown_days: u32,
    /// No second pause offer within this many days of an accepted one.
    #[serde(default = "default_cooldown")]
    #[schema(required = true, maximum = 3650)]
    pub pause_cooldown_days: u32,
    /// No second trial extension within this many days of an accepted one.
    #[serde(default = "default_cooldown")]
    #[schema(required = true, maximum = 3650)]
    pub trial_extension_cooldown_days: u32,
    /// No second plan change within this many days of an accepted one.
    #[serde(default = "default_plan_change_cooldown")]
    #[schema(required = true, maximum = 3650)]
    pub plan_change_cooldown_days: u32,
    /// Who performs a confirmed cancel: `record_only` (the tenant's own cancel path, via
    /// the widget's onCancel) or `cancel_at_period_end` (we set it on the Stripe subscription).
    #[serde(default = "default_cancel_mode")]
    #[schema(required = true, pattern = "^(record_only|cancel_at_period_end)$")]
    pub cancel_mode: String,
    /// IANA time zone for analytics buckets.
    #[serde(default = "default_tz")]
    #[schema(required = true)]
    pub timezone: String,
    /// Requests per second allowed for this tenant's keys of this mode (0 = the deployment
    /// default).
    #[serde(default)]
    #[schema(required = true)]
    pub rate_limit_per_second: u32,
}

fn default_cooldown() -> u32 {
    90
}
fn default_plan_change_cooldown() -> u32 {
    30
}
fn default_cancel_mode() -> String {
    "record_only".into()
}
fn default_tz() -> String {
    "UTC".into()
}

impl Default for TenantSettings {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

impl TenantSettings {
    /// The names of every field (what `PUT /v1/settings` requires).
    pub fn field_names() -> Vec<String> {
        match serde_json::to_value(TenantSettings::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

fn decode_settings(v: serde_json::Value) -> TenantSettings {
    serde_json::from_value(v).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "stored tenant settings do not decode; using the defaults");
        TenantSettings::default()
    })
}

/// The tenant's settings of `mode` (the defaults when none are stored).
pub async fn settings<'e>(
    db: impl PgExecutor<'e>,
    tenant_id: Uuid,
    mode: Mode,
) -> Result<TenantSettings, sqlx::Error> {
    let row = sqlx::query_scalar!(
        "SELECT settings FROM tenant_settings WHERE tenant_id = $1 AND mode = $2",
        tenant_id,
        mode.as_str(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(decode_settings).unwrap_or_default())
}

/// The tenant's settings of `mode`, locked until `tx` ends (a read-modify-write such as
/// `PATCH /v1/settings` cannot lose a concurrent change). Creates the default row if absent.
pub async fn lock_settings(
    tx: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    mode: Mode,
) -> Result<TenantSettings, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO tenant_settings (tenant_id, mode, settings) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, mode) DO NOTHING",
        tenant_id,
        mode.as_str(),
        sqlx::types::Json(TenantSettings::default()) as _,
    )
    .execute(&mut *tx)
    .await?;
    let v = sqlx::query_scalar!(
        "SELECT settings FROM tenant_settings WHERE tenant_id = $1 AND mode = $2 FOR UPDATE",
        tenant_id,
        mode.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(decode_settings(v))
}

/// Stores the tenant's settings of `mode` (every field).
pub async fn store_settings<'e>(
    db: impl PgExecutor<'e>,
    tenant_id: Uuid,
    mode: Mode,
    s: &TenantSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO tenant_settings (tenant_id, mode, settings) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, mode) DO UPDATE SET settings = $3, updated_at = now()",
        tenant_id,
        mode.as_str(),
        sqlx::types::Json(s) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}
