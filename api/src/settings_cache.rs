//! Short-lived per-process cache of tenant settings and decrypted secret keys for the widget
//! hot path. Writes through the settings API and key rotation clear it at once on that
//! process; other processes pick changes up within `TTL`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::{
    crypto::MasterKey,
    tenants::{Mode, TenantSettings},
};
use sqlx::PgPool;
use uuid::Uuid;

pub const TTL: Duration = Duration::from_secs(5);

type Keys = Arc<Vec<String>>;

#[derive(Default)]
pub struct SettingsCache {
    settings: Mutex<HashMap<Uuid, (Arc<TenantSettings>, Instant)>>,
    keys: Mutex<HashMap<(Uuid, Mode), (Keys, Instant)>>,
}

impl SettingsCache {
    pub async fn get(
        &self,
        pool: &PgPool,
        tenant: Uuid,
    ) -> Result<Arc<TenantSettings>, sqlx::Error> {
        if let Some((s, at)) = self.settings.lock().expect("lock").get(&tenant) {
            if at.elapsed() < TTL {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(shared::tenants::settings(pool, tenant).await?);
        let mut map = self.settings.lock().expect("lock");
        if map.len() > 50_000 {
            map.clear();
        }
        map.insert(tenant, (s.clone(), Instant::now()));
        Ok(s)
    }

    pub async fn secret_keys(
        &self,
        pool: &PgPool,
        master: &MasterKey,
        tenant: Uuid,
        mode: Mode,
    ) -> Result<Keys, sqlx::Error> {
        if let Some((k, at)) = self.keys.lock().expect("lock").get(&(tenant, mode)) {
            if at.elapsed() < TTL {
                return Ok(k.clone());
            }
        }
        let k = Arc::new(shared::tenants::secret_keys(pool, master, tenant, mode).await?);
        let mut map = self.keys.lock().expect("lock");
        if map.len() > 50_000 {
            map.clear();
        }
        map.insert((tenant, mode), (k.clone(), Instant::now()));
        Ok(k)
    }

    pub fn forget(&self, tenant: Uuid) {
        self.settings.lock().expect("lock").remove(&tenant);
        self.keys
            .lock()
            .expect("lock")
            .retain(|(t, _), _| *t != tenant);
    }
}
