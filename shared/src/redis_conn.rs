//! The Redis connection manager. Built by hand rather than through `apalis_redis::connect`,
//! whose 500 ms response timeout turns a slow reply into a fatal stream error (apalis-redis
//! #76): here connect and response timeouts are 5 s by default, reconnection is automatic
//! with exponential backoff, and the first connection is lazy so a process starts (and
//! reports "not ready") while Redis is down.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Config;

/// A cheap-to-clone Redis handle plus the key prefix of this deployment.
#[derive(Clone)]
pub struct Redis {
    pub conn: ConnectionManager,
    pub prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Redis {
    pub fn from_config(cfg: &Config) -> redis::RedisResult<Self> {
        Self::connect_lazy(cfg.redis_url.expose(), &cfg.redis_prefix, cfg.redis_timeout)
    }

    pub fn connect_lazy(url: &str, prefix: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_lazy(config)?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    /// A key under this deployment's prefix.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    /// `PING`, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let mut c = self.conn.clone();
        matches!(
            tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut c)).await,
            Ok(Ok(_))
        )
    }
}
