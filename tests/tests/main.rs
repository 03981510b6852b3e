//! The integration tests, one binary (`cargo test -p retentionos-tests --test integration`):
//! every module below starts what it needs (a database per test, the api and workers in
//! process or as child processes, throwaway Redis/PostgreSQL/SMTP servers) on the real
//! PostgreSQL and Redis, so the modules run side by side in one process. One binary links
//! the whole stack once instead of once per file.
//!
//! `ops_kit.rs` is its own binary (`--test ops_kit`): it checks which metrics are exported,
//! and the metrics recorder is process-wide.
//!
//! Run one area with a name filter: `cargo test -p retentionos-tests --test integration
//! jobs::` (or `scripts/test -- -p retentionos-tests --test integration jobs::`).

mod acceptance;
mod analytics;
mod apalis_canary;
mod dashboard;
mod flows;
mod foundation;
mod hygiene;
mod jobs;
mod mail;
mod modes;
mod overload;
mod privacy;
mod safety;
mod schema;
mod secrets;
mod stripe_client;
mod stripe_flow;
mod stripe_signature;
mod widget_writes;
