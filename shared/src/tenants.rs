//! Tenants, their API keys and their customer-token signing secrets. Keys and secrets are
//! shown once; keys are stored as SHA-256 hashes only, signing secrets encrypted under the
//! master key (HMAC verification needs them). Both rotate with an optional grace period
//! for the old one; keys can be revoked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, Change},
    crypto::{hash_key, random_token, MasterKey, KEY_RANDOM_LEN},
    signing_secrets::{self, IssuedSigningSecret},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Secret,
    Publishable,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret" => Some(KeyKind::Secret),
            "publishable" => Some(KeyKind::Publishable),
            _ => None,
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk",
            KeyKind::Publishable => "pk",
        }
    }
}

/// Splits `sk_test_xxx` into its kind and mode; `None` when the shape is wrong.
pub fn parse_key_shape(key: &str) -> Option<(KeyKind, Mode)> {
    let mut parts = key.splitn(3, '_');
    let kind = match parts.next()? {
        "sk" => KeyKind::Secret,
        "pk" => KeyKind::Publishable,
        _ => return None,
    };
    let mode = Mode::parse(parts.next()?)?;
    let rest = parts.next()?;
    if rest.len() != KEY_RANDOM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((kind, mode))
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A key as listed (never the plaintext).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub kind: String,
    pub mode: String,
    pub display: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly issued key: the only time the plaintext exists outside the caller.
#[derive(Clone, Serialize)]
pub struct IssuedKey {
    pub id: Uuid,
    pub kind: KeyKind,
    pub mode: Mode,
    pub key: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("mode", &self.mode)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The four keys and two token signing secrets of a new tenant.
#[derive(Clone, Debug, Serialize)]
pub struct TenantWithKeys {
    pub tenant: Tenant,
    pub keys: Vec<IssuedKey>,
    pub token_signing_secrets: Vec<IssuedSigningSecret>,
}

impl TenantWithKeys {
    pub fn key(&self, kind: KeyKind, mode: Mode) -> &str {
        &self
            .keys
            .iter()
            .find(|k| k.kind == kind && k.mode == mode)
            .expect("a tenant is created with every kind and mode")
            .key
    }

    /// The customer-token signing secret of `mode`.
    pub fn signing_secret(&self, mode: Mode) -> &str {
        &self
            .token_signing_secrets
            .iter()
            .find(|s| s.mode == mode)
            .expect("a tenant is created with a signing secret per mode")
            .secret
    }
}

/// The identity behind a valid key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub kind: KeyKind,
    pub mode: Mode,
}

/// Issues a key: only its SHA-256 is stored (customer tokens are signed with a separate
/// signing secret, so nothing needs the plaintext again).
async fn issue_key<'e>(
    db: impl PgExecutor<'e>,
    tenant_id: Uuid,
    kind: KeyKind,
    mode: Mode,
) -> Result<IssuedKey, sqlx::Error> {
    let key = format!(
        "{}_{}_{}",
        kind.prefix(),
        mode.as_str(),
        random_token(KEY_RANDOM_LEN)
    );
    let id = Uuid::now_v7();
    let display = format!("{}…", &key[..12]);
    sqlx::query!(
        "INSERT INTO api_keys (id, tenant_id, kind, mode, key_hash, display) VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        tenant_id,
        kind.as_str(),
        mode.as_str(),
        hash_key(&key),
        display,
    )
    .execute(db)
    .await?;
    Ok(IssuedKey {
        id,
        kind,
        mode,
        key,
    })
}

/// Creates a tenant with a secret and a publishable key and a customer-token signing
/// secret for test and for live mode, and the default settings of each mode.
pub async fn create_tenant(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
) -> Result<TenantWithKeys, sqlx::Error> {
    create_tenant_as(pool, master, name, false, None).await
}

/// Creates a tenant (a demo tenant when `demo`); with an actor, the `tenant.create` audit
/// event (name and demo flag, never keys or secrets) is written in the same transaction.
pub async fn create_tenant_as(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
    demo: bool,
    actor: Option<&crate::audit::Actor>,
) -> Result<TenantWithKeys, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let tenant = sqlx::query_as!(
        Tenant,
        "INSERT INTO tenants (id, name, demo) VALUES ($1, $2, $3) RETURNING id, name, created_at",
        Uuid::now_v7(),
        name,
        demo,
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(actor) = actor {
        crate::audit::record(
            &mut tx,
            actor,
            crate::audit::Change {
                tenant_id: Some(tenant.id),
                mode: None,
                action: "tenant.create",
                target_type: "tenant",
                target_id: Some(tenant.id.to_string()),
                before: None,
                after: Some(serde_json::json!({ "name": name, "demo": demo })),
            },
        )
        .await?;
    }
    let defaults = TenantSettings::default();
    let mut keys = Vec::with_capacity(4);
    let mut token_signing_secrets = Vec::with_capacity(2);
    for mode in [Mode::Test, Mode::Live] {
        store_settings(&mut *tx, tenant.id, mode, &defaults).await?;
        for kind in [KeyKind::Secret, KeyKind::Publishable] {
            keys.push(issue_key(&mut *tx, tenant.id, kind, mode).await?);
        }
        token_signing_secrets
            .push(signing_secrets::issue(&mut *tx, master, tenant.id, mode).await?);
    }
    tx.commit().await?;
    Ok(TenantWithKeys {
        tenant,
        keys,
        token_signing_secrets,
    })
}

pub async fn get_tenant(pool: &PgPool, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, name, created_at FROM tenants WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

pub async fn list_tenants(pool: &PgPool) -> Result<Vec<Tenant>, sqlx::Error> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, name, created_at FROM tenants ORDER BY created_at"
    )
    .fetch_all(pool)
    .await
}

pub async fn list_keys(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as!(
        ApiKeyInfo,
        "SELECT id, kind, mode, display, created_at, expires_at, revoked_at, last_used_at
         FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC",
        tenant_id
    )
    .fetch_all(pool)
    .await
}

/// What a rotation retires: the tenant's API keys of one kind, or its token signing secrets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Retiring {
    ApiKeys(KeyKind),
    SigningSecrets,
}

/// A retired key or secret, for the audit row.
#[derive(Clone, Debug)]
pub(crate) struct Retired {
    pub id: Uuid,
    pub display: String,
}

/// Retires the usable keys or secrets of the tenant's `mode`: at once when `grace_seconds`
/// is 0, otherwise when the grace period ends (an earlier expiry is kept).
pub(crate) async fn retire(
    conn: &mut sqlx::PgConnection,
    what: Retiring,
    tenant_id: Uuid,
    mode: Mode,
    grace_seconds: i64,
) -> Result<Vec<Retired>, sqlx::Error> {
    let grace = grace_seconds.max(0) as f64;
    match what {
        Retiring::ApiKeys(kind) => {
            sqlx::query_as!(
                Retired,
                "UPDATE api_keys
                    SET revoked_at = CASE WHEN $3::float8 = 0 THEN now() ELSE revoked_at END,
                        expires_at = CASE WHEN $3::float8 = 0 THEN expires_at
                                          ELSE least(coalesce(expires_at, 'infinity'),
                                                     now() + make_interval(secs => $3::float8)) END
                  WHERE tenant_id = $1 AND mode = $2 AND kind = $4 AND revoked_at IS NULL
                    AND (expires_at IS NULL OR expires_at > now())
                  RETURNING id, display",
                tenant_id,
                mode.as_str(),
                grace,
                kind.as_str(),
            )
            .fetch_all(conn)
            .await
        }
        Retiring::SigningSecrets => {
            sqlx::query_as!(
                Retired,
                "UPDATE token_signing_secrets
                    SET revoked_at = CASE WHEN $3::float8 = 0 THEN now() ELSE revoked_at END,
                        expires_at = CASE WHEN $3::float8 = 0 THEN expires_at
                                          ELSE least(coalesce(expires_at, 'infinity'),
                                                     now() + make_interval(secs => $3::float8)) END
                  WHERE tenant_id = $1 AND mode = $2 AND revoked_at IS NULL
                    AND (expires_at IS NULL OR expires_at > now())
                  RETURNING id, display",
                tenant_id,
                mode.as_str(),
                grace,
            )
            .fetch_all(conn)
            .await
        }
    }
}

pub(crate) fn retired_summary(retired: &[Retired], grace_seconds: i64) -> serde_json::Value {
    serde_json::json!({
        "retired": retired.iter().map(|r| serde_json::json!({"id": r.id, "display": r.display})).collect::<Vec<_>>(),
        "grace_seconds": grace_seconds.max(0),
    })
}

/// Issues a new key of `kind`/`mode` and retires the tenant's current ones of the same kind
/// and mode: at once when `grace_seconds` is 0, otherwise when the grace period ends.
/// Audited (`api_key.rotate`) in the same transaction.
pub async fn rotate_key(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    kind: KeyKind,
    mode: Mode,
    grace_seconds: i64,
) -> Result<IssuedKey, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let retired = retire(
        &mut tx,
        Retiring::ApiKeys(kind),
        tenant_id,
        mode,
        grace_seconds,
    )
    .await?;
    let key = issue_key(&mut *tx, tenant_id, kind, mode).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            tenant_id: Some(tenant_id),
            mode: Some(mode),
            action: "api_key.rotate",
            target_type: "api_key",
            target_id: Some(key.id.to_string()),
            before: Some(retired_summary(&retired, grace_seconds)),
            after: Some(serde_json::json!({
                "id": key.id, "kind": kind, "display": format!("{}…", &key.key[..12]),
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(key)
}

/// Revokes one of the tenant's keys (of `mode` when given). `false` when the tenant has no
/// such key. Audited (`api_key.revoke`) in the same transaction.
pub async fn revoke_key(
    pool: &PgPool,
    actor: &Actor,
    tenant_id: Uuid,
    mode: Option<Mode>,
    key_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        "SELECT kind, mode, display, revoked_at FROM api_keys
         WHERE id = $1 AND tenant_id = $2 AND ($3::text IS NULL OR mode = $3) FOR UPDATE",
        key_id,
        tenant_id,
        mode.map(Mode::as_str),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let (kind, key_mode, display, revoked_at) = (row.kind, row.mode, row.display, row.revoked_at);
    sqlx::query!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
        key_id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            tenant_id: Some(tenant_id),
            mode: Mode::parse(&key_mode),
            action: "api_key.revoke",
            target_type: "api_key",
            target_id: Some(key_id.to_string()),
            before: Some(serde_json::json!({
                "kind": kind, "display": display, "revoked_at": revoked_at,
            })),
            after: Some(serde_json::json!({ "revoked": true })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Resolves a presented key; `None` for unknown, revoked or expired keys.
pub async fn authenticate(pool: &PgPool, key: &str) -> Result<Option<KeyIdentity>, sqlx::Error> {
    if parse_key_shape(key).is_none() {
        return Ok(None);
    }
    let row = sqlx::query!(
        "SELECT id, tenant_id, kind, mode FROM api_keys
         WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        hash_key(key),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| {
        Some(KeyIdentity {
            key_id: r.id,
            tenant_id: r.tenant_id,
            kind: KeyKind::parse(&r.kind)?,
            mode: Mode::parse(&r.mode)?,
        })
    }))
}

/// A tenant's settings of one mode (stored in `tenant_settings`, one row per tenant and mode;
/// a test key reads and changes only the test row). Fields missing from a stored row take
/// their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Origins allowed to call the widget API from a browser (e.g. `https://app.acme.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// No second discount offer within this many days of an accepted one.
    #[serde(default = "default_cooldown")]
    pub discount_cooldown_days: u32,
    /// No second pause offer within this many days of an accepted one.
    #[serde(default = "default_cooldown")]
    pub pause_cooldown_days: u32,
    /// No second trial extension within this many days of an accepted one.
    #[serde(default = "default_cooldown")]
    pub trial_extension_cooldown_days: u32,
    /// No second plan change within this many days of an accepted one.
    #[serde(default = "default_plan_change_cooldown")]
    pub plan_change_cooldown_days: u32,
    /// Who performs a confirmed cancel: `record_only` (the tenant's own cancel path, via
    /// the widget's onCancel) or `cancel_at_period_end` (we set it on the Stripe subscription).
    #[serde(default = "default_cancel_mode")]
    pub cancel_mode: String,
    /// IANA time zone for analytics buckets.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Requests per second allowed for this tenant's keys of this mode (0 = the deployment
    /// default).
    #[serde(default)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        let k = format!("sk_test_{}", random_token(KEY_RANDOM_LEN));
        assert_eq!(parse_key_shape(&k), Some((KeyKind::Secret, Mode::Test)));
        let k = format!("pk_live_{}", random_token(KEY_RANDOM_LEN));
        assert_eq!(
            parse_key_shape(&k),
            Some((KeyKind::Publishable, Mode::Live))
        );
        assert_eq!(parse_key_shape("sk_test_short"), None);
        assert_eq!(parse_key_shape("xx_test_abc"), None);
        assert_eq!(parse_key_shape(""), None);
        let bad = format!("sk_prod_{}", random_token(KEY_RANDOM_LEN));
        assert_eq!(parse_key_shape(&bad), None);
    }
}
