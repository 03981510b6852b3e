//! Tenant settings and Stripe settings, one set of each per mode: a caller reads and changes
//! its own mode's settings only. The settings routes (`/v1/settings`, `/v1/settings/stripe`)
//! and the dashboard's settings and Stripe pages call these functions.
//!
//! - [`update`]: origins, cooldowns, cancel mode, time zone, rate limit; checks the given
//!   fields, applies them (all of them for a replace), validates the result and writes a
//!   `settings.update` audit row (before/after) in the change's transaction.
//! - [`put_stripe`], [`put_stripe_if`], [`stripe_summary`], [`stripe_credentials`]: the
//!   restricted key and webhook signing secrets per mode, encrypted at rest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use shared::{
    audit::Change,
    crypto::{Aad, Column},
    tenants::{Mode, TenantSettings},
};
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// Checks the given fields, locks the key's mode's settings, applies the fields over them
/// (`PUT` gives them all), validates the result, stores it and audits the change, in one
/// transaction. Nothing changes when any field is bad. The dashboard's settings form calls
/// it too (with the dashboard user as the actor).
pub async fn update(
    st: &AppState,
    (tenant, mode): (uuid::Uuid, Mode),
    actor: shared::audit::Actor,
    body: Map<String, Value>,
    replace: bool,
) -> ApiResult<TenantSettings> {
    check_fields(&body)?;
    let mut tx = st.pools.primary.begin().await?;
    let before = shared::tenants::lock_settings(&mut tx, tenant, mode).await?;
    let mut doc = if replace {
        Map::new()
    } else {
        as_map(&before)?
    };
    doc.extend(body);
    let s: TenantSettings = serde_json::from_value(Value::Object(doc))
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    validate(&mut tx, st, &s).await?;
    if s != before {
        shared::tenants::store_settings(&mut *tx, tenant, mode, &s).await?;
        shared::audit::record(
            &mut tx,
            &actor,
            Change {
                tenant_id: Some(tenant),
                mode: Some(mode),
                action: "settings.update",
                target_type: "settings",
                target_id: Some(mode.as_str().to_string()),
                before: Some(serde_json::to_value(&before).map_err(ApiError::internal)?),
                after: Some(serde_json::to_value(&s).map_err(ApiError::internal)?),
            },
        )
        .await?;
    }
    tx.commit().await?;
    st.settings_cache.forget(tenant);
    Ok(s)
}

fn as_map(s: &TenantSettings) -> ApiResult<Map<String, Value>> {
    match serde_json::to_value(s).map_err(ApiError::internal)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "settings are not an object"
        ))),
    }
}

/// Every given field is a known setting of the right type: a 400 naming the first that is
/// not (`unknown_field` or `invalid_field`).
fn check_fields(body: &Map<String, Value>) -> ApiResult<()> {
    let defaults = as_map(&TenantSettings::default())?;
    for (k, v) in body {
        if !defaults.contains_key(k) {
            return Err(ApiError::invalid(
                "unknown_field",
                format!(
                    "unknown field `{k}`, expected one of {}",
                    TenantSettings::field_names().join(", ")
                ),
            )
            .with_param(k.clone()));
        }
        let mut one = defaults.clone();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<TenantSettings>(Value::Object(one)) {
            return Err(
                ApiError::invalid("invalid_field", format!("{k}: {e}")).with_param(k.clone())
            );
        }
    }
    Ok(())
}

// Documentation only: `PUT /v1/settings` reads its body as a map (to name a missing or
// unknown field) and [`update`] checks it; this type says what those checks accept (printable
// ASCII where they count bytes).
/// Every setting of the key's mode (PUT replaces them all: each is required).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the document only
pub struct SettingsReplace {
    /// Origins allowed to call the widget API from a browser, each exactly
    /// `scheme://host[:port]`: `http://` or `https://`, no trailing slash, no `*` (no
    /// wildcard: list each origin), under 300 characters. Otherwise a 400 parameter_invalid
    /// naming `allowed_origins[i]`.
    #[schema(
        pattern = r"^https?://[\x20-\x29\x2b-\x7e]*[\x20-\x29\x2b-\x2e\x30-\x7e]$",
        max_length = 299
    )]
    allowed_origins: Vec<String>,
    /// No second discount offer within this many days of an accepted one (at most 3650).
    #[schema(minimum = 0, maximum = 3650)]
    discount_cooldown_days: u32,
    /// No second pause offer within this many days of an accepted one (at most 3650).
    #[schema(minimum = 0, maximum = 3650)]
    pause_cooldown_days: u32,
    /// No second trial extension within this many days of an accepted one (at most 3650).
    #[schema(minimum = 0, maximum = 3650)]
    trial_extension_cooldown_days: u32,
    /// No second plan change within this many days of an accepted one (at most 3650).
    #[schema(minimum = 0, maximum = 3650)]
    plan_change_cooldown_days: u32,
    cancel_mode: CancelMode,
    /// IANA time zone for analytics buckets (e.g. `Europe/Paris`): one PostgreSQL knows
    /// (`pg_timezone_names`, case-sensitive), otherwise a 400 parameter_invalid.
    #[schema(pattern = r"^[A-Za-z][A-Za-z0-9_+/-]*$", max_length = 64)]
    timezone: String,
    /// Requests per second for this tenant's keys of this mode (test and live have separate
    /// budgets); 0 means the platform's default. At most the deployment's
    /// RATE_LIMIT_TENANT_PER_SECOND (1000 by default; 100000 when that is 0): a tenant can
    /// lower its limit, not raise it; more is a 400 parameter_invalid.
    #[schema(minimum = 0, maximum = 1000)]
    rate_limit_per_second: u32,
}

// Documentation only, like [`SettingsReplace`]: `PATCH /v1/settings`' body.
/// Some settings of the key's mode: the fields given change, the others keep their values
/// (`{}` changes nothing). A field is never null.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the document only
pub struct SettingsChange {
    /// As in PUT: exact origins (`http(s)://host[:port]`, no trailing slash, no `*`).
    #[schema(
        required = false,
        pattern = r"^https?://[\x20-\x29\x2b-\x7e]*[\x20-\x29\x2b-\x2e\x30-\x7e]$",
        max_length = 299
    )]
    allowed_origins: Vec<String>,
    /// At most 3650.
    #[schema(required = false, minimum = 0, maximum = 3650)]
    discount_cooldown_days: u32,
    /// At most 3650.
    #[schema(required = false, minimum = 0, maximum = 3650)]
    pause_cooldown_days: u32,
    /// At most 3650.
    #[schema(required = false, minimum = 0, maximum = 3650)]
    trial_extension_cooldown_days: u32,
    /// At most 3650.
    #[schema(required = false, minimum = 0, maximum = 3650)]
    plan_change_cooldown_days: u32,
    #[schema(required = false)]
    cancel_mode: CancelMode,
    /// An IANA time zone PostgreSQL knows (`pg_timezone_names`).
    #[schema(
        required = false,
        pattern = r"^[A-Za-z][A-Za-z0-9_+/-]*$",
        max_length = 64
    )]
    timezone: String,
    /// 0 (the platform's default) up to the deployment's RATE_LIMIT_TENANT_PER_SECOND
    /// (1000 by default).
    #[schema(required = false, minimum = 0, maximum = 1000)]
    rate_limit_per_second: u32,
}

/// Who performs a confirmed cancel: `record_only` (the tenant's own cancel path, via the
/// widget's onCancel) or `cancel_at_period_end` (we set it on the Stripe subscription).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // read by the document only
enum CancelMode {
    RecordOnly,
    CancelAtPeriodEnd,
}

async fn validate(
    conn: &mut sqlx::PgConnection,
    st: &AppState,
    s: &TenantSettings,
) -> ApiResult<()> {
    for (i, o) in s.allowed_origins.iter().enumerate() {
        // No wildcard: `*` would let any site's page drive a tenant's widget API.
        let ok = (o.starts_with("https://") || o.starts_with("http://"))
            && !o.ends_with('/')
            && !o.contains('*')
            && o.len() < 300;
        if !ok {
            return Err(ApiError::invalid_param(
                &format!("allowed_origins[{i}]"),
                "an origin is scheme://host[:port] without a trailing slash (no wildcard: list each origin)",
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
    let tz_ok = sqlx::query_scalar!(
        r#"SELECT true AS "known!" FROM pg_timezone_names WHERE name = $1"#,
        &s.timezone,
    )
    .fetch_optional(conn)
    .await?;
    if tz_ok.is_none() {
        return Err(ApiError::invalid_param(
            "timezone",
            "timezone must be an IANA time zone such as Europe/Paris",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StripeSettingsBody {
    /// Which mode these settings are for (`test` or `live`); must be the presented key's
    /// (400 parameter_invalid naming `mode` otherwise).
    pub mode: Mode,
    /// A restricted API key (`rk_…`) or secret key (`sk_…`) of the tenant's Stripe account,
    /// of the same mode (`rk_test_…`/`sk_test_…` for test), at most 255 bytes (printable
    /// ASCII).
    #[schema(pattern = r"^[rs]k_(test|live)_[\x20-\x7e]*$", max_length = 255)]
    pub api_key: String,
    /// One to five webhook signing secrets (`whsec_…`, at most 255 bytes each, printable
    /// ASCII); several are active during a roll.
    #[schema(
        min_items = 1,
        max_items = 5,
        pattern = r"^whsec_[\x20-\x7e]*$",
        max_length = 255
    )]
    pub webhook_secrets: Vec<String>,
}

/// Validates and stores a mode's Stripe settings (the key and the webhook signing secrets,
/// encrypted; the whole set is replaced) and audits `stripe_settings.update` (summaries
/// only: the key's last four characters, the number of secrets), in one transaction.
/// `mode` is the caller's own (the API key's, the dashboard's switch); the body must name
/// it. The dashboard's Stripe page calls it too (with the dashboard user as the actor).
pub async fn put_stripe(
    st: &AppState,
    auth: (uuid::Uuid, Mode),
    actor: shared::audit::Actor,
    b: StripeSettingsBody,
) -> ApiResult<StripeSaved> {
    put_stripe_if(st, auth, actor, b, None).await
}

/// What `PUT /v1/settings/stripe` answers: a summary of what was stored (never the key or
/// a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct StripeSaved {
    pub mode: Mode,
    /// The Stripe key's last four characters.
    pub api_key_last4: String,
    /// How many webhook signing secrets are stored.
    pub webhook_secrets: usize,
}

/// [`put_stripe`] as a compare-and-set, for an edit of what was read (the dashboard adds or
/// removes one secret of the stored list): `expected` is the [`StripeCredentials::revision`]
/// the edit started from (`Some(None)`: no settings yet). When the stored settings changed
/// since (another admin, another tab), nothing is written and the answer is 409
/// `stripe_settings_changed`; `None` writes unconditionally (the API's PUT replaces the whole).
pub async fn put_stripe_if(
    st: &AppState,
    (tenant, mode): (uuid::Uuid, Mode),
    actor: shared::audit::Actor,
    b: StripeSettingsBody,
    expected: Option<Option<&str>>,
) -> ApiResult<StripeSaved> {
    if b.mode != mode {
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
    let webhook_aad = Aad::new(Column::StripeWebhookSecret, tenant, b.mode);
    let secrets: Vec<String> = b
        .webhook_secrets
        .iter()
        .map(|s| st.master.encrypt(s, &webhook_aad))
        .collect();
    let last4 = last4(&b.api_key);
    let mut tx = st.pools.primary.begin().await?;
    let before = sqlx::query!(
        "SELECT api_key_last4, webhook_secrets_enc, api_key_enc FROM stripe_settings
         WHERE tenant_id = $1 AND mode = $2 FOR UPDATE",
        tenant,
        b.mode.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let changed = || {
        ApiError::conflict(
            "stripe_settings_changed",
            "the Stripe settings changed since they were read; reload and try again",
        )
    };
    if let Some(expected) = expected {
        if expected != before.as_ref().map(|b| b.api_key_enc.as_str()) {
            return Err(changed());
        }
    }
    // A row locked above matched `expected`; a row inserted since the read (no row to lock
    // then) by a concurrent first save is only overwritten by an unconditional write ($6).
    let written = sqlx::query!(
        "INSERT INTO stripe_settings (tenant_id, mode, api_key_enc, api_key_last4, webhook_secrets_enc)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, mode) DO UPDATE SET api_key_enc = $3, api_key_last4 = $4, webhook_secrets_enc = $5, updated_at = now()
         WHERE $6",
        tenant,
        b.mode.as_str(),
        st.master.encrypt(&b.api_key, &Aad::new(Column::StripeApiKey, tenant, b.mode)),
        &last4,
        json!(secrets),
        expected.is_none() || before.is_some(),
    )
    .execute(&mut *tx)
    .await?;
    if written.rows_affected() == 0 {
        return Err(changed());
    }
    // Summaries only: the Stripe key by its last four characters, secrets by count.
    shared::audit::record(
        &mut tx,
        &actor,
        shared::audit::Change {
            tenant_id: Some(tenant),
            mode: Some(b.mode),
            action: "stripe_settings.update",
            target_type: "stripe_settings",
            target_id: Some(b.mode.as_str().to_string()),
            before: before.map(|old| {
                json!({
                    "api_key_last4": old.api_key_last4,
                    "webhook_secrets": old.webhook_secrets_enc.as_array().map(Vec::len).unwrap_or(0),
                })
            }),
            after: Some(json!({
                "api_key_last4": last4,
                "webhook_secrets": secrets.len(),
            })),
        },
    )
    .await?;
    tx.commit().await?;
    st.settings_cache.forget(tenant);
    Ok(StripeSaved {
        mode: b.mode,
        api_key_last4: last4,
        webhook_secrets: b.webhook_secrets.len(),
    })
}

/// The last four characters of a key (what is stored and shown of it in clear).
pub fn last4(key: &str) -> String {
    let n = key.chars().count();
    key.chars().skip(n.saturating_sub(4)).collect()
}

/// What `GET /v1/settings/stripe` shows of a mode's Stripe settings (never a key or a
/// secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct StripeSummary {
    pub mode: Mode,
    /// The Stripe key's last four characters.
    pub api_key_last4: String,
    /// How many webhook signing secrets are stored.
    pub webhook_secrets: usize,
    /// When the settings were last stored.
    pub updated_at: DateTime<Utc>,
}

/// [`stripe_settings`] as JSON (the dashboard's Stripe page reads `updated_at` of it).
pub async fn stripe_summary(st: &AppState, who: (uuid::Uuid, Mode)) -> ApiResult<Value> {
    serde_json::to_value(stripe_settings(st, who).await?).map_err(ApiError::internal)
}

/// What `GET /v1/settings/stripe` shows of a mode's Stripe settings (never a key or a
/// secret): the key's last four characters, the number of secrets, when they changed.
/// A 404 `stripe_settings` when the mode has none.
pub async fn stripe_settings(
    st: &AppState,
    (tenant, mode): (uuid::Uuid, Mode),
) -> ApiResult<StripeSummary> {
    let row = sqlx::query!(
        "SELECT api_key_last4, webhook_secrets_enc, updated_at FROM stripe_settings WHERE tenant_id = $1 AND mode = $2",
        tenant,
        mode.as_str(),
    )
    .fetch_optional(&st.pools.primary)
    .await?
    .ok_or_else(|| ApiError::not_found("stripe_settings"))?;
    Ok(StripeSummary {
        mode,
        api_key_last4: row.api_key_last4,
        webhook_secrets: row
            .webhook_secrets_enc
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        updated_at: row.updated_at,
    })
}

/// A mode's stored Stripe key and webhook signing secrets, decrypted (oldest secret
/// first), or `None` when the mode has none. For the server only (the dashboard's roll of
/// secrets and its connection test); never shown.
pub async fn stripe_credentials(
    st: &AppState,
    (tenant, mode): (uuid::Uuid, Mode),
) -> ApiResult<Option<StripeCredentials>> {
    let row = sqlx::query!(
        "SELECT api_key_enc, webhook_secrets_enc FROM stripe_settings WHERE tenant_id = $1 AND mode = $2",
        tenant,
        mode.as_str(),
    )
    .fetch_optional(&st.pools.primary)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (key_enc, secrets_enc) = (row.api_key_enc, row.webhook_secrets_enc);
    let key = st
        .master
        .decrypt(&key_enc, &Aad::new(Column::StripeApiKey, tenant, mode))
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored Stripe key unreadable: {e}")))?;
    let aad = Aad::new(Column::StripeWebhookSecret, tenant, mode);
    let secrets = secrets_enc
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|enc| {
            st.master.decrypt(enc, &aad).map_err(|e| {
                ApiError::internal(anyhow::anyhow!("stored webhook secret unreadable: {e}"))
            })
        })
        .collect::<ApiResult<Vec<String>>>()?;
    Ok(Some(StripeCredentials {
        api_key: key,
        webhook_secrets: secrets,
        revision: key_enc,
    }))
}

/// A mode's Stripe settings in clear, as [`stripe_credentials`] read them.
pub struct StripeCredentials {
    pub api_key: String,
    pub webhook_secrets: Vec<String>,
    /// Names this stored version for [`put_stripe_if`]: the key's ciphertext, which every
    /// write renews (a fresh nonce), so equal revisions mean nothing was written between.
    pub revision: String,
}
