//! A short-lived in-process cache of authenticated keys, so the hot path (widget, events)
//! does not query PostgreSQL for every request. Revoking or rotating through this process
//! clears it at once; other api processes see a revocation within `TTL`.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use shared::tenants::KeyIdentity;
use sqlx::PgPool;

pub const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<Vec<u8>, (KeyIdentity, Instant)>>,
}

impl AuthCache {
    pub async fn authenticate(
        &self,
        pool: &PgPool,
        key: &str,
    ) -> Result<Option<KeyIdentity>, sqlx::Error> {
        let hash = shared::crypto::hash_key(key);
        if let Some((id, at)) = self.entries.lock().expect("lock").get(&hash) {
            if at.elapsed() < TTL {
                return Ok(Some(*id));
            }
        }
        let found = shared::tenants::authenticate(pool, key).await?;
        let mut map = self.entries.lock().expect("lock");
        match found {
            Some(id) => {
                if map.len() >= MAX_ENTRIES {
                    map.retain(|_, (_, at)| at.elapsed() < TTL);
                    if map.len() >= MAX_ENTRIES {
                        map.clear();
                    }
                }
                map.insert(hash, (id, Instant::now()));
            }
            None => {
                map.remove(&hash);
            }
        }
        Ok(found)
    }

    /// Forgets every cached key of a tenant (after a rotation or revocation).
    pub fn forget_tenant(&self, tenant_id: uuid::Uuid) {
        self.entries
            .lock()
            .expect("lock")
            .retain(|_, (id, _)| id.tenant_id != tenant_id);
    }
}
