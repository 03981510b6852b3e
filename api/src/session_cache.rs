//! The immutable part of recent cancel sessions (who, which flow version and variant), kept
//! in process so an event does not read its session before writing: the session that this
//! process started is known, another process's is read once. What changes (the outcome) is
//! never cached: the batched write checks it under the session's row lock. The offers a
//! session rendered are immutable too: an event naming another offer is refused here,
//! without a write (and again by the batched write).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sqlx::PgPool;
use uuid::Uuid;

/// Long enough for a cancel flow (minutes); a later event reads its session once more.
pub const TTL: Duration = Duration::from_secs(600);
/// Expired entries are dropped every this many inserts, so the cache holds about ten minutes
/// of sessions instead of growing until it is full; `MAX_ENTRIES` bounds it under a burst.
const PRUNE_EVERY: u64 = 1024;
const MAX_ENTRIES: usize = 50_000;

pub use shared::db::sessions::SessionMeta;

/// Each session's metadata with when it was cached.
type Entries = HashMap<Uuid, (SessionMeta, Instant)>;

#[derive(Default)]
pub struct SessionCache {
    /// The entries and how many inserts there have been (pruning runs every PRUNE_EVERY).
    entries: Mutex<(Entries, u64)>,
}

impl SessionCache {
    pub fn insert(&self, id: Uuid, meta: SessionMeta) {
        let mut guard = self.entries.lock().expect("lock");
        let (map, inserts) = &mut *guard;
        *inserts += 1;
        if *inserts % PRUNE_EVERY == 0 || map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.shrink_to(map.len() * 2);
        }
        map.insert(id, (meta, Instant::now()));
    }

    /// Forgets the sessions of one customer (after an erasure).
    pub fn forget_customer(&self, tenant: Uuid, customer_id: &str) {
        self.entries
            .lock()
            .expect("lock")
            .0
            .retain(|_, (m, _)| !(m.tenant_id == tenant && m.customer_id == customer_id));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("lock").0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The session if it belongs to this tenant and mode (else `None`, as if it did not exist).
    pub async fn get(
        &self,
        pool: &PgPool,
        tenant: Uuid,
        mode: &str,
        id: Uuid,
    ) -> Result<Option<SessionMeta>, sqlx::Error> {
        let cached = self
            .entries
            .lock()
            .expect("lock")
            .0
            .get(&id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(m, _)| m.clone());
        let meta = match cached {
            Some(m) => m,
            None => {
                let row = shared::db::sessions::meta(pool, tenant, id).await?;
                let Some(m) = row else { return Ok(None) };
                self.insert(id, m.clone());
                m
            }
        };
        Ok((meta.tenant_id == tenant && meta.mode == mode).then_some(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SessionMeta {
        SessionMeta {
            tenant_id: Uuid::nil(),
            mode: "test".into(),
            customer_id: "cus".into(),
            user_id: None,
            flow_id: None,
            flow_version: None,
            variant: None,
            mrr_cents: 0,
            rendered_offers: Vec::new(),
        }
    }

    /// However many sessions start, the cache stays within its bound.
    #[test]
    fn the_cache_is_bounded() {
        let c = SessionCache::default();
        for _ in 0..(MAX_ENTRIES + 10) {
            c.insert(Uuid::now_v7(), meta());
        }
        assert!(c.len() <= MAX_ENTRIES, "{} entries", c.len());
        assert!(!c.is_empty());
    }
}
