//! The worker process: runs every queue of `registry::register_all` with bounded
//! concurrency, the scheduler duty (hourly rollup and reconciler ticks, once per period
//! cluster-wide), lease heartbeats, queue metrics on its own port, and graceful shutdown.
//! Any number of worker processes on any number of machines share the queues.

pub mod backend;
pub mod cli;
pub mod handlers;
pub mod registry;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod stripe_ctx;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use jobs::{JobClient, Queues};
use shared::{db::Pools, redis_conn::Redis, Config};

/// Everything a handler may use.
pub struct WorkerState {
    pub config: Config,
    pub pools: Pools,
    pub queues: Queues,
    pub jobs: JobClient,
    /// Unique per process (host, pid, random suffix): two processes never share a name,
    /// and a restarted process never collides with its predecessor's leases.
    pub worker_name: String,
    /// Honour the probe job's fault-injection fields (`ALLOW_FAULT_INJECTION=1`).
    pub allow_fault_injection: bool,
    pub stripe: stripe_ctx::StripeCtx,
}

impl WorkerState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let pools = Pools::from_config(&config, "retentionos-workers")?;
        let redis = Redis::from_config(&config)?;
        let queues = Queues::new(redis);
        let jobs = JobClient::new(queues.clone(), config.jobs.idempotency_ttl);
        let master = shared::crypto::MasterKey::from_config(&config)?;
        let stripe = stripe_ctx::StripeCtx::new(&config.stripe_api_base, queues.redis(), master);
        Ok(Self {
            stripe,
            allow_fault_injection: std::env::var("ALLOW_FAULT_INJECTION").as_deref() == Ok("1"),
            worker_name: unique_worker_name(),
            config,
            pools,
            queues,
            jobs,
        })
    }
}

pub fn unique_worker_name() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        shared::crypto::random_token(6)
    )
}

/// A running worker: its metrics address and a way to stop it.
pub struct Running {
    pub metrics_addr: SocketAddr,
    pub name: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops fetching, waits for running jobs (up to `SHUTDOWN_TIMEOUT_SECS`), hands back the
    /// rest.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.handle.await;
    }
}

/// Starts the worker; returns once it is running.
pub async fn start(
    state: WorkerState,
    metrics_listener: tokio::net::TcpListener,
) -> anyhow::Result<Running> {
    let st = Arc::new(state);
    let registry = Arc::new(registry::register_all(st.config.jobs.retry_base_override));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let metrics_addr = metrics_listener.local_addr()?;
    let inflight = Arc::new(runtime::InFlight::default());
    let _ = runtime::register_heartbeat(&st.queues, &st.worker_name).await;
    tracing::info!(worker = %st.worker_name, %metrics_addr, "worker starting");

    // One apalis worker per queue, over our queue as its backend (crate::backend), run by
    // one Monitor until the shutdown signal; its shutdown timeout drops what is still
    // running, and the settle guards hand those tasks back.
    let mut runtimes = Vec::new();
    use apalis::prelude::WorkerBuilderExt;
    let mut monitor = apalis::prelude::Monitor::new();
    for spec in registry.specs.clone() {
        let router = registry.router(spec.name);
        let rt = backend::QueueRuntime::start(
            st.clone(),
            spec.clone(),
            router.kinds().collect(),
            inflight.clone(),
        );
        let factory = {
            let st = st.clone();
            let concurrency = rt.concurrency();
            let backend = rt.backend_factory();
            move |run: usize| {
                apalis::prelude::WorkerBuilder::new(format!(
                    "{}-{}-{run}",
                    spec.name, st.worker_name
                ))
                .backend(backend())
                .data(st.clone())
                .concurrency(concurrency)
                // apalis's order: the timeout outside the trace span.
                .timeout(spec.timeout)
                .enable_tracing()
                .catch_panic()
                .build(router.clone())
            }
        };
        monitor = monitor.register(factory);
        runtimes.push(rt);
    }
    let monitor = monitor
        .on_event(|w, ev| match ev {
            // apalis reports every failed task here too; the settle layer has logged it
            // with its outcome (retry or dead-letter), so this is only a debug line.
            apalis::prelude::Event::Error(e) => {
                tracing::debug!(worker = %w.name(), error = %e, "apalis worker event: error")
            }
            apalis::prelude::Event::Start | apalis::prelude::Event::Stop => {
                tracing::info!(worker = %w.name(), event = ?ev, "apalis worker")
            }
            _ => {}
        })
        .shutdown_timeout(st.config.shutdown_timeout);
    let mut aux = tokio::task::JoinSet::new();
    aux.spawn(runtime::heartbeat_loop(st.clone(), inflight.clone()));
    aux.spawn(scheduler::run(st.clone(), rx.clone()));
    aux.spawn(server::stats_loop(st.clone(), rx.clone()));
    aux.spawn(server::serve(metrics_listener, rx.clone()));
    let name = st.worker_name.clone();
    let mut stop = rx.clone();
    let handle = tokio::spawn(async move {
        let signal = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = monitor.run_with_signal(signal).await {
            tracing::error!(error = %e, "apalis monitor stopped with an error");
        }
        // Every worker future is gone: write the last acks and hand-backs. The heartbeat
        // keeps renewing leases until then, and stops with the rest afterwards.
        for rt in runtimes {
            rt.finish().await;
        }
        aux.abort_all();
        while aux.join_next().await.is_some() {}
        tracing::info!("worker stopped");
    });
    Ok(Running {
        metrics_addr,
        name,
        shutdown: tx,
        handle,
    })
}

/// The process entry point: run until SIGTERM or Ctrl-C, then shut down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    tracing::info!(config = %config.describe(), "configuration");
    let listener = tokio::net::TcpListener::bind(config.worker_metrics_addr).await?;
    let running = start(WorkerState::new(config)?, listener).await?;
    shutdown_signal().await;
    tracing::info!("shutdown signal received: finishing running jobs");
    running.shutdown().await;
    Ok(())
}

pub use shared::process::shutdown_signal;

/// Polls `f` until it returns true or `timeout` passes (used by the CLI and tests).
pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
