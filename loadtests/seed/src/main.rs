//! `retentionos-seed`: fills the configured database (`DATABASE_URL`, `MASTER_KEY` as for
//! the api) with realistic analytics data, fast (COPY), for benchmarks (loadtests/analytics,
//! loadtests/dashboard) and by hand. Not part of the product's processes. Prints a JSON
//! report (tenants, rows written, seconds).

use clap::Parser;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(
    name = "retentionos-seed",
    about = "Generate realistic analytics data (COPY)"
)]
struct Cli {
    /// New tenants to create (ignored with --tenant).
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Total offer events to write (exact).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Spread sessions over this many past days.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// PRNG seed (same seed, same data).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seed into these existing tenants instead of creating new ones.
    #[arg(long = "tenant")]
    tenant_ids: Vec<Uuid>,
    /// Stamp ingested_at = now (new data for the next rollup) instead of created_at.
    #[arg(long)]
    ingested_now: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    shared::process::entrypoint(|config| async move {
        let url = config.database_url.expose().to_string();
        let pool = shared::db::lazy_pool(&url, &config.pool, "retentionos-seed")?;
        let master = shared::crypto::MasterKey::from_config(&config)?;
        let opts = seed::SeedOptions {
            tenants: cli.tenants,
            events: cli.events,
            days: cli.days,
            seed: cli.seed,
            tenant_ids: cli.tenant_ids,
            ingested_now: cli.ingested_now,
        };
        let report = seed::run(&pool, &master, &opts).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(())
    })
}
