//! Rotation and revocation: retiring a tenant's keys or signing secrets of one mode (at once
//! or after a grace period), rotating an API key and revoking one, each audited in the same
//! transaction.

use sqlx::PgPool;
use uuid::Uuid;

use super::keys::{issue_key, IssuedKey, KeyKind};
use super::Mode;
use crate::audit::{self, Actor, Change};

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
