//! Code shared by the `api` and `workers` processes: configuration from the environment,
//! the PostgreSQL pools and migrations, the Redis connection manager, telemetry (logs and
//! Prometheus metrics), secret handling and the tenant/key model.
//!
//! Nothing here knows about HTTP or about job execution; those live in `api` and `workers`.

pub mod accounts;
pub mod audit;
pub mod config;
pub mod crypto;
pub mod db;
pub mod flows;
pub mod mail;
pub mod privacy;
pub mod process;
pub mod redis_conn;
pub mod secret;
pub mod secrets;
pub mod signing_secrets;
pub mod stripe;
pub mod telemetry;
pub mod tenants;
pub mod text;
pub mod widget_token;

pub use config::Config;
pub use secret::Secret;
