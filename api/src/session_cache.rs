//! The immutable part of recent cancel sessions (who, which flow version and variant), kept
//! in process so an event does not read its session before writing: the session that this
//! process started is known, another process's is read once. What changes (the outcome) is
//! never cached: the batched write checks it under the session's row lock.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sqlx::PgPool;
use uuid::Uuid;

/// Long enough for a cancel flow; entries are dropped after it.
pub const TTL: Duration = Duration::from_secs(1800);
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionMeta {
    pub tenant_id: Uuid,
    pub mode: String,
    pub customer_id: String,
    pub user_id: Option<Uuid>,
    pub flow_id: Option<Uuid>,
    pub flow_version: Option<i32>,
    pub variant: Option<String>,
    pub mrr_cents: i64,
}

#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<Uuid, (SessionMeta, Instant)>>,
}

impl SessionCache {
    pub fn insert(&self, id: Uuid, meta: SessionMeta) {
        let mut map = self.entries.lock().expect("lock");
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(id, (meta, Instant::now()));
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
            .get(&id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(m, _)| m.clone());
        let meta = match cached {
            Some(m) => m,
            None => {
                let row: Option<SessionMeta> = sqlx::query_as(
                    "SELECT tenant_id, mode, customer_id, user_id, flow_id, flow_version, variant, mrr_cents
                       FROM cancel_sessions WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?;
                let Some(m) = row else { return Ok(None) };
                self.insert(id, m.clone());
                m
            }
        };
        Ok((meta.tenant_id == tenant && meta.mode == mode).then_some(meta))
    }
}
