//! Customer-token signing secrets (`tsk_test_…` / `tsk_live_…`): one per tenant and mode
//! (several during a rotation's grace period), shown once, stored encrypted under the master
//! key because verifying an HMAC needs the secret itself. Customer tokens are signed with
//! these, never with an API key, so API keys are stored as hashes only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    audit::{self, Actor, Change},
    crypto::{random_token, Aad, Column, MasterKey, KEY_RANDOM_LEN},
    tenants::{retire, retired_summary, Mode, Retiring},
};

/// Prefix of customer-token signing secrets: `tsk_test_…` / `tsk_live_…`.
pub const PREFIX: &str = "tsk";

/// A freshly issued customer-token signing secret (shown once, like a key).
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedSigningSecret {
    pub id: Uuid,
    pub mode: Mode,
    /// The secret's first characters (`tsk_test_abcd…`), to recognise it.
    pub display: String,
    /// The secret itself (`tsk_test_…` / `tsk_live_…`), shown this once.
    pub secret: String,
}

impl std::fmt::Debug for IssuedSigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSigningSecret")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("display", &self.display)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// A signing secret as listed (never the plaintext).
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SigningSecretInfo {
    pub id: Uuid,
    /// `test` or `live`.
    #[schema(pattern = "^(test|live)$")]
    pub mode: String,
    /// The secret's first characters (`tsk_test_abcd…`), to recognise it.
    pub display: String,
    pub created_at: DateTime<Utc>,
    /// When a rotated secret stops verifying (the end of its grace period); null when not set.
    pub expires_at: Option<DateTime<Utc>>,
    /// When a rotation without grace retired it; null when none did.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Issues a customer-token signing secret, stored encrypted under the master key (it must
/// be recoverable to verify HMACs).
pub(crate) async fn issue<'e>(
    db: impl PgExecutor<'e>,
    master: &MasterKey,
    tenant_id: Uuid,
    mode: Mode,
) -> Result<IssuedSigningSecret, sqlx::Error> {
    let secret = format!(
        "{PREFIX}_{}_{}",
        mode.as_str(),
        random_token(KEY_RANDOM_LEN)
    );
    let id = Uuid::now_v7();
    let display = format!("{}…", &secret[..13]);
    let enc = master.encrypt(
        &secret,
        &Aad::new(Column::TokenSigningSecret, tenant_id, mode),
    );
    sqlx::query!(
        "INSERT INTO token_signing_secrets (id, tenant_id, mode, secret_enc, display) VALUES ($1, $2, $3, $4, $5)",
        id,
        tenant_id,
        mode.as_str(),
        enc,
        &display,
    )
    .execute(db)
    .await?;
    Ok(IssuedSigningSecret {
        id,
        mode,
        display,
        secret,
    })
}

/// Issues a new customer-token signing secret for `mode` and retires the current ones: at
/// once when `grace_seconds` is 0, otherwise when the grace period ends (tokens signed
/// with either verify meanwhile). Audited (`token_signing_secret.rotate`).
pub async fn rotate(
    pool: &PgPool,
    master: &MasterKey,
    actor: &Actor,
    tenant_id: Uuid,
    mode: Mode,
    grace_seconds: i64,
) -> Result<IssuedSigningSecret, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let retired = retire(
        &mut tx,
        Retiring::SigningSecrets,
        tenant_id,
        mode,
        grace_seconds,
    )
    .await?;
    let issued = issue(&mut *tx, master, tenant_id, mode).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            tenant_id: Some(tenant_id),
            mode: Some(mode),
            action: "token_signing_secret.rotate",
            target_type: "token_signing_secret",
            target_id: Some(issued.id.to_string()),
            before: Some(retired_summary(&retired, grace_seconds)),
            after: Some(serde_json::json!({ "id": issued.id, "display": issued.display })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Gives every tenant and mode without a usable signing secret one (not shown to anyone:
/// it is what `POST /v1/widget_tokens` signs with; a tenant that signs tokens itself
/// rotates to see one). For tenants created before signing secrets existed (all of them,
/// or `only` one). Returns how many were issued; running it again issues none.
pub async fn issue_missing(
    pool: &PgPool,
    master: &MasterKey,
    actor: &Actor,
    only: Option<Uuid>,
) -> Result<u64, sqlx::Error> {
    let missing = sqlx::query!(
        r#"SELECT t.id AS tenant_id, m.mode AS "mode!"
             FROM tenants t CROSS JOIN (VALUES ('test'), ('live')) AS m(mode)
            WHERE NOT EXISTS (SELECT 1 FROM token_signing_secrets s
                              WHERE s.tenant_id = t.id AND s.mode = m.mode AND s.revoked_at IS NULL
                                AND (s.expires_at IS NULL OR s.expires_at > now()))
              AND ($1::uuid IS NULL OR t.id = $1)
            ORDER BY t.id, m.mode"#,
        only,
    )
    .fetch_all(pool)
    .await?;
    let mut issued = 0;
    for row in missing {
        let tenant_id = row.tenant_id;
        let mode = Mode::parse(&row.mode).expect("test or live");
        let mut tx = pool.begin().await?;
        // Serialises with a concurrent run for this tenant and mode.
        sqlx::query!(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            format!("token_signing_secrets:{tenant_id}:{}", mode.as_str()),
        )
        .execute(&mut *tx)
        .await?;
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM token_signing_secrets WHERE tenant_id = $1 AND mode = $2
                              AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
                      AS "exists!""#,
            tenant_id,
            mode.as_str(),
        )
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            continue;
        }
        let s = issue(&mut *tx, master, tenant_id, mode).await?;
        audit::record(
            &mut tx,
            actor,
            Change {
                tenant_id: Some(tenant_id),
                mode: Some(mode),
                action: "token_signing_secret.issue",
                target_type: "token_signing_secret",
                target_id: Some(s.id.to_string()),
                before: None,
                after: Some(serde_json::json!({ "id": s.id, "display": s.display })),
            },
        )
        .await?;
        tx.commit().await?;
        issued += 1;
    }
    Ok(issued)
}

/// The tenant's signing secrets of `mode` (never the plaintext), newest first.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    mode: Mode,
) -> Result<Vec<SigningSecretInfo>, sqlx::Error> {
    sqlx::query_as!(
        SigningSecretInfo,
        "SELECT id, mode, display, created_at, expires_at, revoked_at FROM token_signing_secrets
         WHERE tenant_id = $1 AND mode = $2 ORDER BY created_at DESC, id DESC",
        tenant_id,
        mode.as_str(),
    )
    .fetch_all(pool)
    .await
}

/// The tenant's usable customer-token signing secrets of `mode`, decrypted, newest (the
/// one to sign with) first; several verify during a rotation's grace period. A secret the
/// configured master keys cannot read is skipped (and logged), never a panic.
pub async fn usable(
    pool: &PgPool,
    master: &MasterKey,
    tenant_id: Uuid,
    mode: Mode,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, secret_enc FROM token_signing_secrets
         WHERE tenant_id = $1 AND mode = $2 AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())
         ORDER BY created_at DESC, id DESC",
        tenant_id,
        mode.as_str(),
    )
    .fetch_all(pool)
    .await?;
    let aad = Aad::new(Column::TokenSigningSecret, tenant_id, mode);
    Ok(rows
        .into_iter()
        .filter_map(|r| match master.decrypt(&r.secret_enc, &aad) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(secret_id = %r.id, %tenant_id, error = %e, "token signing secret unreadable");
                None
            }
        })
        .collect())
}
