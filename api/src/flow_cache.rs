//! Published flows, cached per tenant and mode in process and in Redis (5 minutes, as the
//! specification says for flow data). Publishing deletes the Redis copy and announces the
//! change on the `{prefix}invalidate` channel; every api process listens and drops its own
//! copy, so a publish is visible everywhere within a second. Published versions (immutable)
//! are cached by tenant, mode, flow and version: a lookup never answers another tenant's or
//! mode's version.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use shared::{flows::PublishedFlow, redis_conn::Redis, tenants::Mode};
use sqlx::PgPool;
use uuid::Uuid;

pub const TTL: Duration = Duration::from_secs(300);

type Entry = (Arc<Vec<PublishedFlow>>, Instant);

#[derive(Default)]
pub struct FlowCache {
    local: Mutex<HashMap<(Uuid, Mode), Entry>>,
    versions: Mutex<HashMap<VersionKey, Arc<shared::flows::FlowDefinition>>>,
}

/// (tenant, mode, flow, version).
type VersionKey = (Uuid, Mode, Uuid, i32);

fn redis_key(redis: &Redis, tenant: Uuid, mode: Mode) -> String {
    redis.key(&format!("cache:{tenant}:{}:flows:published", mode.as_str()))
}

impl FlowCache {
    pub async fn published(
        &self,
        pool: &PgPool,
        redis: &Redis,
        tenant: Uuid,
        mode: Mode,
    ) -> Result<Arc<Vec<PublishedFlow>>, sqlx::Error> {
        if let Some((flows, at)) = self.local.lock().expect("lock").get(&(tenant, mode)) {
            if at.elapsed() < TTL {
                return Ok(flows.clone());
            }
        }
        let mut conn = redis.conn.clone();
        let cached: Option<String> = redis::cmd("GET")
            .arg(redis_key(redis, tenant, mode))
            .query_async(&mut conn)
            .await
            .unwrap_or(None);
        let flows = match cached.and_then(|c| serde_json::from_str::<Vec<PublishedFlow>>(&c).ok()) {
            Some(f) => f,
            None => {
                let f = load(pool, tenant, mode).await?;
                if let Ok(json) = serde_json::to_string(&f) {
                    let _: Result<(), _> = redis::cmd("SET")
                        .arg(redis_key(redis, tenant, mode))
                        .arg(json)
                        .arg("EX")
                        .arg(TTL.as_secs())
                        .query_async(&mut conn)
                        .await;
                }
                f
            }
        };
        let flows = Arc::new(flows);
        self.local
            .lock()
            .expect("lock")
            .insert((tenant, mode), (flows.clone(), Instant::now()));
        Ok(flows)
    }

    /// One published version (immutable, so cached without expiry).
    pub async fn version(
        &self,
        pool: &PgPool,
        tenant: Uuid,
        mode: Mode,
        flow: Uuid,
        version: i32,
    ) -> Result<Option<Arc<shared::flows::FlowDefinition>>, sqlx::Error> {
        let key = (tenant, mode, flow, version);
        if let Some(d) = self.versions.lock().expect("lock").get(&key) {
            return Ok(Some(d.clone()));
        }
        let row = sqlx::query_scalar!(
            "SELECT definition FROM flow_versions WHERE tenant_id = $1 AND mode = $2 AND flow_id = $3 AND version = $4",
            tenant,
            mode.as_str(),
            flow,
            version,
        )
        .fetch_optional(pool)
        .await?;
        let Some(def) = row else { return Ok(None) };
        let def: shared::flows::FlowDefinition =
            serde_json::from_value(def).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let def = Arc::new(def);
        let mut map = self.versions.lock().expect("lock");
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(key, def.clone());
        Ok(Some(def))
    }

    /// Drops this process's copy of the tenant's published flows of `mode` (both modes when
    /// `None`).
    pub fn forget(&self, tenant: Uuid, mode: Option<Mode>) {
        self.local
            .lock()
            .expect("lock")
            .retain(|(t, m), _| *t != tenant || mode.is_some_and(|mode| mode != *m));
    }

    /// Drops every copy of the tenant's published flows of `mode`, here and in every api
    /// process.
    pub async fn invalidate_everywhere(&self, redis: &Redis, tenant: Uuid, mode: Mode) {
        self.forget(tenant, Some(mode));
        let mut conn = redis.conn.clone();
        let msg =
            serde_json::json!({ "tenant_id": tenant, "mode": mode, "scope": "flows" }).to_string();
        let res: redis::RedisResult<()> = redis::pipe()
            .del(redis_key(redis, tenant, mode))
            .publish(redis.key("invalidate"), msg)
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            // Other processes fall back to the TTL.
            tracing::warn!(error = %e, "could not broadcast a flow invalidation");
        }
    }
}

async fn load(pool: &PgPool, tenant: Uuid, mode: Mode) -> Result<Vec<PublishedFlow>, sqlx::Error> {
    // The default role lives on the flow row (publishing another default flow takes it).
    let rows = sqlx::query!(
        "SELECT f.id, v.version, v.definition, f.is_default FROM flows f
           JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.published_version
          WHERE f.tenant_id = $1 AND f.mode = $2 AND f.deleted_at IS NULL
            AND f.published_version IS NOT NULL",
        tenant,
        mode.as_str(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let mut definition: shared::flows::FlowDefinition =
                serde_json::from_value(r.definition).ok()?;
            definition.is_default = r.is_default;
            Some(PublishedFlow {
                id: r.id,
                version: r.version,
                definition,
            })
        })
        .collect())
}

/// Listens for invalidations from other processes (reconnects forever).
pub fn spawn_listener(cache: Arc<FlowCache>, redis_url: String, channel: String) {
    tokio::spawn(async move {
        loop {
            match listen(&cache, &redis_url, &channel).await {
                Ok(()) => tracing::warn!("invalidation stream ended; resubscribing"),
                Err(e) => tracing::warn!(error = %e, "invalidation listener failed; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

async fn listen(cache: &FlowCache, url: &str, channel: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Anything published while we were not subscribed is unknown: start clean.
    cache.local.lock().expect("lock").clear();
    let mut stream = pubsub.on_message();
    while let Some(msg) = stream.next().await {
        let payload: String = msg.get_payload().unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) {
            if let Some(t) = v["tenant_id"]
                .as_str()
                .and_then(|t| Uuid::parse_str(t).ok())
            {
                // An announcement without a mode (an older process) drops both.
                let mode = v["mode"].as_str().and_then(Mode::parse);
                cache.forget(t, mode);
            }
        }
    }
    Ok(())
}
