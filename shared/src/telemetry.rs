//! Logging (compact or JSON, `RUST_LOG` filter) and the Prometheus metrics recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global tracing subscriber. Safe to call more than once (later calls are
/// ignored), so tests and binaries share it.
pub fn init_tracing(format: LogFormat) {
    init_tracing_or(format, "info,sqlx=warn,tower_http=info");
}

/// As `init_tracing`, with `default_filter` when `RUST_LOG` is unset (the test harness runs
/// quiet this way without touching the process environment, which other threads read).
pub fn init_tracing_or(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Compact => registry.with(fmt::layer().compact()).try_init(),
    };
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds): fine-grained at the low end, where our targets are.
/// 0.2, 0.25 and 0.4 s are the specification's SLO thresholds (admin, widget, analytics).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("valid buckets")
            .install_recorder()
            .expect("the metrics recorder is installed once");
        let upkeep = handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(process_metrics_loop());
        }
        // Histograms are drained into summaries periodically; without upkeep memory grows.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
        }
        handle
    })
}

/// Process CPU and memory, read from `/proc/self` (Linux), for the CPU and memory alerts.
async fn process_metrics_loop() {
    // Linux reports CPU time in clock ticks (USER_HZ, 100 on every mainstream
    // architecture) and RSS in pages (4 KiB on x86_64 and aarch64 defaults).
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_SIZE: f64 = 4096.0;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    metrics::gauge!("process_start_time_seconds").set(start);
    loop {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(u), Some(s)) = (f.get(11), f.get(12)) {
                    let secs = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0))
                        / TICKS_PER_SECOND;
                    metrics::gauge!("process_cpu_seconds_total").set(secs);
                }
            }
        }
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            if let Some(rss) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
            {
                metrics::gauge!("process_resident_memory_bytes").set(rss * PAGE_SIZE);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            metrics::gauge!("process_open_fds").set(dir.count() as f64);
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
