//! `retentionos-workers` command line: run the worker (default), or operate the queues.

use clap::{Parser, Subcommand};
use jobs::{ops, Queues};
use shared::{db::Pools, redis_conn::Redis, Config};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(
    name = "retentionos-workers",
    version,
    about = "RetentionOS background workers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the worker process (the default).
    Run,
    /// Per-queue counts (ready, scheduled, in flight, dead, oldest ready age) as JSON.
    Queues,
    /// Run the analytics rollup now (it also runs on every hourly tick) and print what it did.
    Rollup,
    /// Queue benchmark (loadtests/queue/bench): enqueues N no-op probes on the `ops` queue
    /// with no worker running (bulk, 1,000 per round trip), then runs this process's worker
    /// at the given concurrency until they are drained; prints both rates as JSON. Use a
    /// REDIS_PREFIX of its own: the `ops` queue must be empty at the start.
    BenchQueue {
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
    },
    /// Dead-letter operations.
    Dlq {
        #[command(subcommand)]
        action: Dlq,
    },
}

#[derive(Subcommand, Debug)]
pub enum Dlq {
    /// List dead tasks, newest first (JSON).
    List {
        /// Queue (every queue when omitted).
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one dead task.
    Show {
        #[arg(long)]
        queue: String,
        id: Uuid,
    },
    /// Put one dead task back on its queue (it runs once more, with a fresh attempt budget).
    Retry {
        #[arg(long)]
        queue: String,
        id: Uuid,
    },
    /// Put every dead task of a queue back (optionally only one kind).
    RetryAll {
        #[arg(long)]
        queue: String,
        #[arg(long)]
        kind: Option<String>,
    },
    /// Delete dead tasks: one id, or every one of the queue (optionally only one kind).
    Purge {
        #[arg(long)]
        queue: String,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        id: Option<Uuid>,
    },
}

/// Runs a queue or dead-letter command, printing JSON to stdout.
pub async fn run_ops(config: Config, cmd: Command) -> anyhow::Result<()> {
    let pools = Pools::from_config(&config, "retentionos-workers-cli")?;
    let q = Queues::new(Redis::from_config(&config)?);
    let pool = &pools.primary;
    let out = match cmd {
        Command::Run => unreachable!("handled by main"),
        Command::Queues => serde_json::to_value(ops::overview(&q).await?)?,
        Command::BenchQueue { n, concurrency } => {
            bench_queue(config.clone(), n, concurrency).await?
        }
        Command::Rollup => {
            let st = crate::WorkerState::new(config.clone())?;
            let started = std::time::Instant::now();
            let out = crate::handlers::rollup::rollup_new_events(&st)
                .await
                .map_err(|e| anyhow::anyhow!("rollup failed: {e:?}"))?;
            crate::handlers::rollup::bump_generations(&st, &out.tenants).await;
            serde_json::json!({ "hours": out.hours, "tenants": out.tenants.len(), "seconds": started.elapsed().as_secs_f64() })
        }
        Command::Dlq { action } => match action {
            Dlq::List {
                queue,
                limit,
                cursor,
            } => match queue {
                Some(queue) => serde_json::to_value(
                    ops::list_dead(&q, &queue, limit, cursor.as_deref()).await?,
                )?,
                None => {
                    let mut all = Vec::new();
                    for name in jobs::queues::ALL {
                        all.extend(ops::list_dead(&q, name, limit, None).await?.data);
                    }
                    all.sort_by_key(|t| std::cmp::Reverse(t.failed_at));
                    all.truncate(limit);
                    serde_json::json!({ "data": all })
                }
            },
            Dlq::Show { queue, id } => match q.dead_show(ops::check_queue(&queue)?, id).await? {
                Some(t) => serde_json::to_value(t)?,
                None => anyhow::bail!("no dead task {id} in queue {queue}"),
            },
            Dlq::Retry { queue, id } => {
                if !ops::retry_dead(pool, &q, &queue, id).await? {
                    anyhow::bail!("no dead task {id} in queue {queue}");
                }
                serde_json::json!({ "retried": [id] })
            }
            Dlq::RetryAll { queue, kind } => {
                let ids = ops::retry_all_dead(pool, &q, &queue, kind.as_deref()).await?;
                serde_json::json!({ "retried": ids, "count": ids.len() })
            }
            Dlq::Purge { queue, kind, id } => {
                let ids =
                    ops::purge_dead(pool, &q, &queue, kind.as_deref(), id.map(|i| vec![i])).await?;
                if id.is_some() && ids.is_empty() {
                    anyhow::bail!("no dead task {} in queue {queue}", id.unwrap_or_default());
                }
                serde_json::json!({ "purged": ids, "count": ids.len() })
            }
        },
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The binary's entry point (shared with the test harness's wrapper binary).
pub fn entrypoint() -> std::process::ExitCode {
    let cli = Cli::parse();
    shared::process::entrypoint(|config| async move {
        match cli.command {
            None | Some(Command::Run) => {
                shared::telemetry::init_tracing(config.log_format);
                crate::run(config).await
            }
            Some(cmd) => run_ops(config, cmd).await,
        }
    })
}

/// See [`Command::BenchQueue`].
async fn bench_queue(
    mut config: Config,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<serde_json::Value> {
    use std::time::{Duration, Instant};
    config.jobs.concurrency_override = Some(concurrency);
    let st = crate::WorkerState::new(config.clone())?;
    let before = st.queues.stats(jobs::queues::OPS).await?;
    anyhow::ensure!(
        before.ready + before.scheduled + before.in_flight == 0,
        "the ops queue is not empty (use a REDIS_PREFIX of its own)"
    );
    let probes = vec![
        jobs::Probe {
            noop: true,
            ..Default::default()
        };
        n
    ];
    let t = Instant::now();
    let created = st.jobs.enqueue_batch(&probes).await?.len();
    let enqueue_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(created == n, "enqueued {created} of {n}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let q = st.queues.clone();
    let t = Instant::now();
    let running = crate::start(st, listener).await?;
    loop {
        let s = q.stats(jobs::queues::OPS).await?;
        if s.ready + s.scheduled + s.in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = t.elapsed().as_secs_f64();
    running.shutdown().await;
    Ok(serde_json::json!({
        "queue": "retentionos", "n": n, "concurrency": concurrency,
        "enqueue_secs": enqueue_secs, "enqueue_per_sec": n as f64 / enqueue_secs,
        "drain_secs": drain_secs, "drain_per_sec": n as f64 / drain_secs,
    }))
}
