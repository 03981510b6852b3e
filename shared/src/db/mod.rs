//! PostgreSQL pools (primary and optional read replica), the embedded migrations, and the
//! data layer: one module per table family, each owning every statement on its tables
//! (handlers and jobs call its typed functions). The other owners: `crate::tenants` (tenants,
//! api_keys, tenant_settings), `crate::signing_secrets` (token_signing_secrets),
//! `crate::accounts` (dashboard_users, dashboard_sessions, dashboard_tokens),
//! `crate::audit` (audit_events), `jobs::outbox` (job_outbox).
//!
//! | module | tables |
//! |---|---|
//! | [`sessions`] | cancel_sessions, session_events, offer_events, churn_reasons (and `record_widget_events`) |
//! | [`flows`] | flows, flow_versions |
//! | [`stripe`] | stripe_settings, stripe_events |
//! | [`subscriptions`] | users (the tenants' customers), subscriptions: what we mirror from Stripe |
//! | [`analytics`] | rollup_sessions_hourly, rollup_offers_hourly, rollup_reasons_hourly, rollup_state |
//! | [`ops`] | probe_runs, probe_gates, probe_effects, scheduler_runs |
//!
//! One reader builds its SQL at run time: the listings (`api::services::listings`: users,
//! subscriptions and cancel sessions with filters, field selection and cursors) push only
//! allow-listed table, column and filter names into a `QueryBuilder`, every value bound.

pub mod analytics;
pub mod flows;
pub mod ops;
pub mod sessions;
pub mod stripe;
pub mod subscriptions;

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
    ConnectOptions, PgPool,
};
use std::str::FromStr;

use crate::config::{Config, PoolConfig};

/// The schema, embedded at compile time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The primary pool and the pool analytics reads use (the replica when
/// `DATABASE_READ_URL` is set, otherwise the primary).
#[derive(Clone, Debug)]
pub struct Pools {
    pub primary: PgPool,
    pub read: PgPool,
}

/// Builds a lazily-connecting pool: the process starts even while PostgreSQL is down, and
/// `/readyz` reports it. Queries fail after the connect timeout instead of hanging.
pub fn lazy_pool(url: &str, cfg: &PoolConfig, app: &str) -> Result<PgPool, sqlx::Error> {
    let mut opts = PgConnectOptions::from_str(url)?;
    if plain_by_default(url, opts.get_host()) {
        opts = opts.ssl_mode(PgSslMode::Disable);
    }
    let opts = opts
        .application_name(app)
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(
            tracing::log::LevelFilter::Warn,
            std::time::Duration::from_millis(500),
        );
    Ok(PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.connect_timeout)
        .idle_timeout(cfg.idle_timeout)
        .max_lifetime(cfg.max_lifetime)
        .connect_lazy_with(opts))
}

/// TLS to a server on this machine protects nothing and costs CPU on both ends of every
/// query (Debian's PostgreSQL enables TLS, and `sslmode` defaults to `prefer`), so a loopback
/// URL without an explicit `sslmode` connects in plain text. Any other host, or a URL that
/// names `sslmode`, keeps libpq's behaviour.
fn plain_by_default(url: &str, host: &str) -> bool {
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback && !url.contains("sslmode=")
}

impl Pools {
    pub fn from_config(cfg: &Config, app: &str) -> Result<Self, sqlx::Error> {
        let primary = lazy_pool(cfg.database_url.expose(), &cfg.pool, app)?;
        let read = match &cfg.database_read_url {
            Some(url) => lazy_pool(url.expose(), &cfg.pool, app)?,
            None => primary.clone(),
        };
        Ok(Self { primary, read })
    }
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// True when every embedded migration is recorded as applied.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied = sqlx::query_scalar!(
        r#"SELECT coalesce(max(version), 0) AS "version!" FROM _sqlx_migrations WHERE success"#
    )
    .fetch_optional(pool)
    .await
    .or_else(|e| match &e {
        // The bookkeeping table does not exist before the first migration.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(None),
        _ => Err(e),
    })?;
    Ok(applied.is_some_and(|v| v >= latest))
}

/// Creates the database named in `url` if it does not exist (used by `migrate` and the
/// run script on a fresh machine).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let opts = PgConnectOptions::from_str(url)?;
    let name = opts
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL names no database"))?
        .to_string();
    let mut conn = match opts.clone().database("postgres").connect().await {
        Ok(c) => c,
        Err(_) => opts.clone().database("template1").connect().await?,
    };
    let exists = sqlx::query_scalar!(
        r#"SELECT 1 AS "one!" FROM pg_database WHERE datname = $1"#,
        &name
    )
    .fetch_optional(&mut conn)
    .await?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        // Not a macro: DDL with an identifier (quoted above) cannot be a bind parameter.
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            // Another process may have created it concurrently.
            if !e.to_string().contains("already exists") {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Maps database errors deliberately (unique violation, foreign key violation).
pub trait DbErrorExt {
    fn is_unique_violation(&self) -> bool;
    fn is_foreign_key_violation(&self) -> bool;
}

impl DbErrorExt for sqlx::Error {
    fn is_unique_violation(&self) -> bool {
        matches!(self, sqlx::Error::Database(e) if e.code().as_deref() == Some("23505"))
    }
    fn is_foreign_key_violation(&self) -> bool {
        matches!(self, sqlx::Error::Database(e) if e.code().as_deref() == Some("23503"))
    }
}

#[cfg(test)]
mod tests {
    use super::plain_by_default;

    #[test]
    fn loopback_is_plain_unless_the_url_says_otherwise() {
        assert!(plain_by_default("postgres://p@127.0.0.1/db", "127.0.0.1"));
        assert!(plain_by_default("postgres://p@localhost/db", "localhost"));
        assert!(plain_by_default("postgres://p@[::1]/db", "::1"));
        assert!(!plain_by_default(
            "postgres://p@127.0.0.1/db?sslmode=require",
            "127.0.0.1"
        ));
        assert!(!plain_by_default(
            "postgres://p@db.internal/db",
            "db.internal"
        ));
        assert!(!plain_by_default("postgres://p@10.0.0.5/db", "10.0.0.5"));
    }
}
