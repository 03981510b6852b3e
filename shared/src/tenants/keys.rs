//! API keys: their kinds and `sk_test_...` shape, issuing one (only its SHA-256 is stored),
//! listing a tenant's keys and resolving a presented key to its identity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::Mode;
use crate::crypto::{hash_key, random_token, KEY_RANDOM_LEN};

/// A secret key (`sk_…`, the server's) or a publishable key (`pk_…`, the widget's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A key as listed (never the plaintext).
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    /// `secret` or `publishable`.
    #[schema(pattern = "^(secret|publishable)$")]
    pub kind: String,
    /// `test` or `live`.
    #[schema(pattern = "^(test|live)$")]
    pub mode: String,
    /// The key's first characters (`sk_test_abcd…`), to recognise it.
    pub display: String,
    pub created_at: DateTime<Utc>,
    /// When a rotated key stops working (the end of its grace period); null when not set.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked (by a rotation without grace, or DELETE /v1/keys/{id}); null when
    /// it was not.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request (approximate); null when never.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly issued key: the only time the plaintext exists outside the caller.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    pub id: Uuid,
    pub kind: KeyKind,
    pub mode: Mode,
    /// The key itself (`sk_test_…`, `pk_live_…`), shown this once.
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
pub(super) async fn issue_key<'e>(
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
