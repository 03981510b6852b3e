//! Master-key rotation: [`rotate_master`] re-encrypts every ciphertext at rest under the
//! current `MASTER_KEY`, reading with the current or a previous key
//! (`MASTER_KEY_PREVIOUS`). Run by `retentionos-api secrets rotate-master`; once it reports
//! nothing unreadable, the previous key can be removed from the configuration.
//!
//! The encrypted columns: `stripe_settings.api_key_enc`, `stripe_settings.webhook_secrets_enc`
//! (a JSON array of ciphertexts) and `token_signing_secrets.secret_enc` (usable rows:
//! revoked or expired secrets are never decrypted again).

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    audit::{self, Actor, Change},
    crypto::{Aad, Column, MasterKey},
    tenants::Mode,
};

/// What happened to the ciphertexts of one column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Ciphertexts looked at.
    pub checked: u64,
    /// Rewritten under the current key (the rest already were, or are unreadable).
    pub reencrypted: u64,
    /// Not decryptable with the current or any previous key (left as they are).
    pub unreadable: u64,
}

impl Counts {
    fn add(&mut self, master: &MasterKey, ct: &str, aad: &Aad) -> Option<String> {
        self.checked += 1;
        match master.reencrypt(ct, aad) {
            Ok(None) => None,
            Ok(Some(new)) => {
                self.reencrypted += 1;
                Some(new)
            }
            Err(e) => {
                self.unreadable += 1;
                tracing::error!(column = aad.column.as_str(), tenant_id = %aad.tenant, mode = aad.mode.as_str(), error = %e, "ciphertext unreadable");
                None
            }
        }
    }
}

/// The outcome of a rotation, per column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// Id of the current master key (as in `v1.<kid>.…`), which now seals everything readable.
    pub master_key_id: String,
    pub stripe_api_keys: Counts,
    pub stripe_webhook_secrets: Counts,
    pub token_signing_secrets: Counts,
}

impl RotationReport {
    pub fn unreadable(&self) -> u64 {
        self.stripe_api_keys.unreadable
            + self.stripe_webhook_secrets.unreadable
            + self.token_signing_secrets.unreadable
    }
}

/// Re-encrypts every ciphertext under the current master key, `batch` rows per
/// transaction (rows locked while rewritten, so a concurrent settings change is not lost).
/// Idempotent and restartable: rows already under the current key are left alone. Writes
/// one audit row (`secrets.rotate_master`, the counts) at the end.
pub async fn rotate_master(
    pool: &PgPool,
    master: &MasterKey,
    actor: &Actor,
    batch: i64,
) -> Result<RotationReport, sqlx::Error> {
    let batch = batch.max(1);
    let mut api = Counts::default();
    let mut hooks = Counts::default();
    let mut signing = Counts::default();

    let mut after: (Uuid, String) = (Uuid::nil(), String::new());
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT tenant_id, mode, api_key_enc, webhook_secrets_enc FROM stripe_settings
             WHERE (tenant_id, mode) > ($1, $2) ORDER BY tenant_id, mode LIMIT $3 FOR UPDATE",
            after.0,
            &after.1,
            batch,
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (last.tenant_id, last.mode.clone());
        for row in rows {
            let (tenant, mode_s, api_enc, hooks_enc) = (
                row.tenant_id,
                row.mode,
                row.api_key_enc,
                row.webhook_secrets_enc,
            );
            let Some(mode) = Mode::parse(&mode_s) else {
                continue;
            };
            let new_api = api.add(
                master,
                &api_enc,
                &Aad::new(Column::StripeApiKey, tenant, mode),
            );
            let hook_aad = Aad::new(Column::StripeWebhookSecret, tenant, mode);
            let mut changed = false;
            let new_hooks: Vec<Value> = hooks_enc
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(
                    |c| match c.as_str().and_then(|ct| hooks.add(master, ct, &hook_aad)) {
                        Some(new) => {
                            changed = true;
                            Value::String(new)
                        }
                        None => c,
                    },
                )
                .collect();
            if new_api.is_none() && !changed {
                continue;
            }
            sqlx::query!(
                "UPDATE stripe_settings SET api_key_enc = coalesce($3, api_key_enc), webhook_secrets_enc = $4
                 WHERE tenant_id = $1 AND mode = $2",
                tenant,
                &mode_s,
                new_api,
                Value::Array(new_hooks),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }

    let mut after_id = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT id, tenant_id, mode, secret_enc FROM token_signing_secrets
             WHERE id > $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
             ORDER BY id LIMIT $2 FOR UPDATE",
            after_id,
            batch,
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after_id = last.id;
        for row in rows {
            let Some(mode) = Mode::parse(&row.mode) else {
                continue;
            };
            let aad = Aad::new(Column::TokenSigningSecret, row.tenant_id, mode);
            if let Some(new) = signing.add(master, &row.secret_enc, &aad) {
                sqlx::query!(
                    "UPDATE token_signing_secrets SET secret_enc = $2 WHERE id = $1",
                    row.id,
                    new,
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }

    let report = RotationReport {
        master_key_id: master.current_kid().to_string(),
        stripe_api_keys: api,
        stripe_webhook_secrets: hooks,
        token_signing_secrets: signing,
    };
    let mut conn = pool.acquire().await?;
    audit::record(
        &mut conn,
        actor,
        Change {
            tenant_id: None,
            mode: None,
            action: "secrets.rotate_master",
            target_type: "master_key",
            target_id: Some(master.current_kid().to_string()),
            before: None,
            after: Some(serde_json::to_value(&report).expect("report serializes")),
        },
    )
    .await?;
    Ok(report)
}
