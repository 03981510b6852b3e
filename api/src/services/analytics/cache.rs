//! The analytics cache: Redis entries per tenant and mode under the tenant's analytics
//! generation, which every rollup bumps (an entry of an older generation is never read).

use std::time::Duration;

use serde_json::Value;
use shared::tenants::Mode;
use uuid::Uuid;

use crate::{error::ApiResult, AppState};

/// Reads through the tenant's generation-keyed cache (per mode: test and live figures
/// never share an entry).
pub(super) async fn cached<F, Fut>(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    name: &str,
    params: &str,
    ttl: Duration,
    compute: F,
) -> ApiResult<Value>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<Value>>,
{
    let params = format!("{}:{params}", mode.as_str());
    let mut conn = st.redis.conn.clone();
    let gen_key = st.redis.key(&format!("cache:{tenant}:analytics:gen"));
    let gen: Option<i64> = redis::cmd("GET")
        .arg(&gen_key)
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    let gen = gen.unwrap_or(0);
    let key = st
        .redis
        .key(&format!("cache:{tenant}:analytics:{name}:g{gen}:{params}"));
    let hit: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or(None);
    if let Some(v) = hit.and_then(|h| serde_json::from_str::<Value>(&h).ok()) {
        metrics::counter!("analytics_cache_total", "result" => "hit").increment(1);
        return Ok(v);
    }
    metrics::counter!("analytics_cache_total", "result" => "miss").increment(1);
    let v = compute().await?;
    let _: Result<(), _> = redis::cmd("SET")
        .arg(&key)
        .arg(v.to_string())
        .arg("EX")
        .arg(ttl.as_secs())
        .query_async(&mut conn)
        .await;
    Ok(v)
}
