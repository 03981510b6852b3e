//! Short-lived per-process cache of tenant settings (per tenant and mode), decrypted
//! customer-token signing secrets and webhook signing secrets for the hot paths (widget,
//! webhooks). Writes through the settings API and key rotation clear it at once on that
//! process; other processes pick changes up within `TTL`.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::{
    crypto::{Aad, Column, MasterKey},
    tenants::{Mode, TenantSettings},
};
use sqlx::PgPool;
use uuid::Uuid;

pub const TTL: Duration = Duration::from_secs(5);

type Keys = Arc<Vec<String>>;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Secrets {
    TokenSigning,
    Webhook,
}

/// A cached value with when it was loaded.
type Stamped<T> = (T, Instant);
type SettingsMap = HashMap<(Uuid, Mode), Stamped<Arc<TenantSettings>>>;
type KeysMap = HashMap<(Uuid, Mode, Secrets), Stamped<Keys>>;

#[derive(Default)]
pub struct SettingsCache {
    settings: Mutex<SettingsMap>,
    keys: Mutex<KeysMap>,
    /// Every origin some tenant allows (for CORS preflights, which carry no key).
    origins: Mutex<Option<Stamped<Arc<HashSet<String>>>>>,
}

impl SettingsCache {
    /// The tenant's settings of `mode` (a test key's requests never see live settings).
    pub async fn get(
        &self,
        pool: &PgPool,
        tenant: Uuid,
        mode: Mode,
    ) -> Result<Arc<TenantSettings>, sqlx::Error> {
        if let Some((s, at)) = self.settings.lock().expect("lock").get(&(tenant, mode)) {
            if at.elapsed() < TTL {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(shared::tenants::settings(pool, tenant, mode).await?);
        let mut map = self.settings.lock().expect("lock");
        if map.len() > 50_000 {
            map.clear();
        }
        map.insert((tenant, mode), (s.clone(), Instant::now()));
        Ok(s)
    }

    /// The tenant's usable customer-token signing secrets of `mode`, decrypted (customer
    /// tokens are HMACs with one of them; several during a rotation's grace period).
    pub async fn signing_secrets(
        &self,
        pool: &PgPool,
        master: &MasterKey,
        tenant: Uuid,
        mode: Mode,
    ) -> Result<Keys, sqlx::Error> {
        self.keys_of((tenant, mode, Secrets::TokenSigning), async {
            shared::signing_secrets::usable(pool, master, tenant, mode).await
        })
        .await
    }

    /// The tenant's Stripe webhook signing secrets of `mode`, decrypted (none when unset).
    pub async fn webhook_secrets(
        &self,
        pool: &PgPool,
        master: &MasterKey,
        tenant: Uuid,
        mode: Mode,
    ) -> Result<Keys, sqlx::Error> {
        self.keys_of((tenant, mode, Secrets::Webhook), async {
            let row = sqlx::query_scalar!(
                "SELECT webhook_secrets_enc FROM stripe_settings WHERE tenant_id = $1 AND mode = $2",
                tenant,
                mode.as_str(),
            )
            .fetch_optional(pool)
            .await?;
            let aad = Aad::new(Column::StripeWebhookSecret, tenant, mode);
            Ok(row
                .map(|v| {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| match master.decrypt(c.as_str()?, &aad) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                tracing::error!(%tenant, error = %e, "webhook signing secret unreadable");
                                None
                            }
                        })
                        .collect()
                })
                .unwrap_or_default())
        })
        .await
    }

    async fn keys_of(
        &self,
        key: (Uuid, Mode, Secrets),
        load: impl std::future::Future<Output = Result<Vec<String>, sqlx::Error>>,
    ) -> Result<Keys, sqlx::Error> {
        if let Some((k, at)) = self.keys.lock().expect("lock").get(&key) {
            if at.elapsed() < TTL {
                return Ok(k.clone());
            }
        }
        let k = Arc::new(load.await?);
        let mut map = self.keys.lock().expect("lock");
        if map.len() > 50_000 {
            map.clear();
        }
        map.insert(key, (k.clone(), Instant::now()));
        Ok(k)
    }

    /// Whether some tenant lists `origin` in its `allowed_origins`: a CORS preflight carries
    /// no key, so it can only be answered for the union of every tenant's origins (the real
    /// request is then checked against its own tenant's list). One small set, reloaded at
    /// most every `TTL`, never one query per preflight a stranger sends.
    pub async fn origin_allowed_by_some_tenant(
        &self,
        pool: &PgPool,
        origin: &str,
    ) -> Result<bool, sqlx::Error> {
        if let Some((set, at)) = &*self.origins.lock().expect("lock") {
            if at.elapsed() < TTL {
                return Ok(set.contains(origin));
            }
        }
        let rows = sqlx::query_scalar!(
            r#"SELECT DISTINCT o AS "o!" FROM tenant_settings t,
                    jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.settings->'allowed_origins') = 'array'
                                                   THEN t.settings->'allowed_origins' ELSE '[]'::jsonb END) AS o"#,
        )
        .fetch_all(pool)
        .await?;
        let set: Arc<HashSet<String>> = Arc::new(rows.into_iter().collect());
        let allowed = set.contains(origin);
        *self.origins.lock().expect("lock") = Some((set, Instant::now()));
        Ok(allowed)
    }

    /// Drops everything cached for the tenant (both modes) and the origin set.
    pub fn forget(&self, tenant: Uuid) {
        *self.origins.lock().expect("lock") = None;
        self.settings
            .lock()
            .expect("lock")
            .retain(|(t, _), _| *t != tenant);
        self.keys
            .lock()
            .expect("lock")
            .retain(|(t, _, _), _| *t != tenant);
    }
}
