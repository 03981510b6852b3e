//! Tenants and their API keys. Keys are shown once, stored as SHA-256 hashes, and can be
//! rotated (with an optional grace period for the old key) and revoked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::crypto::{hash_key, random_token, MasterKey, KEY_RANDOM_LEN};

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
    pub timezone: String,
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

/// The four keys of a new tenant.
#[derive(Clone, Debug, Serialize)]
pub struct TenantWithKeys {
    pub tenant: Tenant,
    pub keys: Vec<IssuedKey>,
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
}

/// The identity behind a valid key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub kind: KeyKind,
    pub mode: Mode,
}

async fn issue_key<'e>(
    db: impl PgExecutor<'e>,
    master: &MasterKey,
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
    // Secret keys sign customer tokens, so an encrypted copy is kept to verify them.
    let secret_enc = (kind == KeyKind::Secret).then(|| master.encrypt(&key, &id.to_string()));
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, kind, mode, key_hash, display, secret_enc) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(kind.as_str())
    .bind(mode.as_str())
    .bind(hash_key(&key))
    .bind(display)
    .bind(secret_enc)
    .execute(db)
    .await?;
    Ok(IssuedKey {
        id,
        kind,
        mode,
        key,
    })
}

/// Creates a tenant with a secret and a publishable key for test and for live mode.
pub async fn create_tenant(
    pool: &PgPool,
    master: &MasterKey,
    name: &str,
) -> Result<TenantWithKeys, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let tenant: Tenant = sqlx::query_as(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, timezone, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let mut keys = Vec::with_capacity(4);
    for mode in [Mode::Test, Mode::Live] {
        for kind in [KeyKind::Secret, KeyKind::Publishable] {
            keys.push(issue_key(&mut *tx, master, tenant.id, kind, mode).await?);
        }
    }
    tx.commit().await?;
    Ok(TenantWithKeys { tenant, keys })
}

pub async fn get_tenant(pool: &PgPool, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, timezone, created_at FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list_tenants(pool: &PgPool) -> Result<Vec<Tenant>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, timezone, created_at FROM tenants ORDER BY created_at")
        .fetch_all(pool)
        .await
}

pub async fn list_keys(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, mode, display, created_at, expires_at, revoked_at, last_used_at
         FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Issues a new key of `kind`/`mode` and retires the tenant's current ones of the same kind
/// and mode: at once when `grace_seconds` is 0, otherwise when the grace period ends.
pub async fn rotate_key(
    pool: &PgPool,
    master: &MasterKey,
    tenant_id: Uuid,
    kind: KeyKind,
    mode: Mode,
    grace_seconds: i64,
) -> Result<IssuedKey, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if grace_seconds <= 0 {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = now()
             WHERE tenant_id = $1 AND kind = $2 AND mode = $3 AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(mode.as_str())
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE api_keys SET expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $4))
             WHERE tenant_id = $1 AND kind = $2 AND mode = $3 AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(mode.as_str())
        .bind(grace_seconds as f64)
        .execute(&mut *tx)
        .await?;
    }
    let key = issue_key(&mut *tx, master, tenant_id, kind, mode).await?;
    tx.commit().await?;
    Ok(key)
}

/// Revokes one of the tenant's keys. `false` when the tenant has no such key.
pub async fn revoke_key(pool: &PgPool, tenant_id: Uuid, key_id: Uuid) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2",
    )
    .bind(key_id)
    .bind(tenant_id)
    .execute(pool)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Resolves a presented key; `None` for unknown, revoked or expired keys.
pub async fn authenticate(pool: &PgPool, key: &str) -> Result<Option<KeyIdentity>, sqlx::Error> {
    if parse_key_shape(key).is_none() {
        return Ok(None);
    }
    let row: Option<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "SELECT id, tenant_id, kind, mode FROM api_keys
         WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(hash_key(key))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(key_id, tenant_id, kind, mode)| {
        Some(KeyIdentity {
            key_id,
            tenant_id,
            kind: KeyKind::parse(&kind)?,
            mode: Mode::parse(&mode)?,
        })
    }))
}

/// The tenant's usable secret keys of `mode`, decrypted (customer tokens are signed with
/// one of them; several are valid during a rotation's grace period).
pub async fn secret_keys(
    pool: &PgPool,
    master: &MasterKey,
    tenant_id: Uuid,
    mode: Mode,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, secret_enc FROM api_keys
         WHERE tenant_id = $1 AND mode = $2 AND kind = 'secret' AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(tenant_id)
    .bind(mode.as_str())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, enc)| master.decrypt(enc.as_deref()?, &id.to_string()).ok())
        .collect())
}

/// Per-tenant settings (stored in `tenants.settings`).
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
    /// Requests per second allowed for this tenant (0 = the deployment default).
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

pub async fn settings(pool: &PgPool, tenant_id: Uuid) -> Result<TenantSettings, sqlx::Error> {
    let row: Option<(serde_json::Value, String)> =
        sqlx::query_as("SELECT settings, timezone FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?;
    Ok(row
        .and_then(|(v, tz)| {
            let mut s: TenantSettings = serde_json::from_value(v).ok()?;
            s.timezone = tz;
            Some(s)
        })
        .unwrap_or_default())
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
