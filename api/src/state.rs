//! The shared state of every handler ([`AppState`]) and how it is built: pools, Redis, the
//! job client, the in-process caches, overload state and the widget's group-commit batchers
//! (their statements are in [`shared::db::sessions::widget`]).

use std::sync::Arc;

use jobs::{JobClient, Queues};
use shared::{
    db::{sessions::widget, Pools},
    redis_conn::Redis,
    Config,
};

use crate::{auth_cache, batch, dashboard, flow_cache, overload, session_cache, settings_cache};

/// Shared state of every handler: one `Arc`, because axum clones the state for every
/// middleware layer and extractor of every request (cloning a struct of a dozen `Arc`s and
/// pools per layer showed up at ~5 % of the api's CPU under load).
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

pub struct AppInner {
    pub config: Arc<Config>,
    pub pools: Pools,
    pub redis: Redis,
    pub jobs: JobClient,
    pub auth_cache: Arc<auth_cache::AuthCache>,
    pub master: shared::crypto::MasterKey,
    pub flow_cache: Arc<flow_cache::FlowCache>,
    pub settings_cache: Arc<settings_cache::SettingsCache>,
    pub overload: Arc<overload::Overload>,
    pub session_cache: Arc<session_cache::SessionCache>,
    /// Group commit of new cancel sessions and of widget events (see [`batch`]).
    pub session_writes: Arc<batch::Batcher<widget::SessionRow, ()>>,
    /// Session start's customer lookups, grouped the same way.
    pub customer_reads: Arc<batch::Batcher<widget::CustomerKey, widget::CustomerRow>>,
    pub event_writes: Arc<batch::Batcher<widget::EventRow, widget::EventWrite>>,
    /// Failed dashboard sign-ins per client address.
    pub login_throttle: Arc<dashboard::LoginThrottle>,
    /// Invitations and password resets (`SMTP_URL`; logged when unset).
    pub mailer: shared::mail::Mailer,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let pools = Pools::from_config(&config, "retentionos-api")?;
        let redis = Redis::from_config(&config)?;
        let mailer = shared::mail::Mailer::from_config(&config)?;
        let jobs = JobClient::new(Queues::new(redis.clone()), config.jobs.idempotency_ttl);
        let master = shared::crypto::MasterKey::from_config(&config)?;
        let flow_cache = Arc::new(flow_cache::FlowCache::default());
        flow_cache::spawn_listener(
            flow_cache.clone(),
            config.redis_url.expose().to_string(),
            redis.key("invalidate"),
        );
        let pool = &pools.primary;
        let session_writes = Arc::new(batch::Batcher::rows(
            "sessions",
            pool.clone(),
            widget::flush_sessions,
        ));
        let customer_reads = Arc::new(batch::Batcher::rows(
            "customers",
            pool.clone(),
            widget::read_customers,
        ));
        let event_writes = Arc::new(batch::Batcher::rows(
            "events",
            pool.clone(),
            widget::flush_events,
        ));
        Ok(Self(Arc::new(AppInner {
            session_cache: Arc::default(),
            session_writes,
            customer_reads,
            event_writes,
            master,
            flow_cache,
            settings_cache: Arc::default(),
            overload: Arc::new(overload::Overload::new(
                config.limits.max_concurrent_requests,
            )),
            config: Arc::new(config),
            pools,
            redis,
            jobs,
            auth_cache: Arc::default(),
            login_throttle: Arc::default(),
            mailer,
        })))
    }
}
