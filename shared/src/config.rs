//! Configuration from environment variables. Every variable is documented in README.md and
//! has a default that works on a developer's localhost.
//!
//! This file holds the settings types and `Config::from_lookup` (every variable with its
//! default) plus the end-to-end tests; `env` reads single variables and `checks` decides
//! whether a configuration is safe to run.

mod checks;
mod env;

use std::{net::SocketAddr, time::Duration};

use crate::secret::{redact_url, Secret};

pub use checks::{is_loopback_http_base, is_stripe_api_base};
use env::{flag, millis, parse, secs};

/// Development defaults for secrets. They work on localhost only: with `APP_ENV=production`
/// the process refuses to start while either is still in use.
pub const DEV_MASTER_KEY: &str = "ZGV2LW9ubHktbWFzdGVyLWtleS0zMi1ieXRlcyEhISE=";
pub const DEV_OPS_TOKEN: &str = "dev-ops-token";
/// The From address of outbound mail unless `MAIL_FROM` says otherwise.
pub const DEFAULT_MAIL_FROM: &str = "RetentionOS <no-reply@localhost>";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Compact,
}

/// PostgreSQL pool settings (defaults from the specification: 10-20 connections, 5 s connect
/// timeout, 30 s idle timeout, 1 h maximum lifetime).
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub app_env: String,
    pub database_url: Secret,
    pub database_read_url: Option<Secret>,
    pub pool: PoolConfig,
    pub redis_url: Secret,
    /// Prefix of every Redis key this deployment uses (queues, caches, locks).
    pub redis_prefix: String,
    pub redis_timeout: Duration,
    pub api_addr: SocketAddr,
    /// Optional internal listener for `/metrics`, `/readyz`, `/healthz`, `/v1/ops/*` and
    /// `/v1/tenants`; when set, the public `api_addr` no longer serves `/metrics`, `/v1/ops/*`
    /// or `/v1/tenants`.
    pub ops_addr: Option<SocketAddr>,
    pub worker_metrics_addr: SocketAddr,
    pub public_base_url: String,
    pub log_format: LogFormat,
    /// Current master key: encrypts every new ciphertext.
    pub master_key: Secret,
    /// Earlier master keys still accepted for decryption (`MASTER_KEY_PREVIOUS`,
    /// comma-separated) until `retentionos-api secrets rotate-master` has run.
    pub master_key_previous: Vec<Secret>,
    pub ops_token: Secret,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub shutdown_timeout: Duration,
    pub jobs: JobsConfig,
    pub stripe_api_base: String,
    /// Serve the `/demo` page (signs customer tokens for test-mode publishable keys).
    pub demo_enabled: bool,
    /// How long a cancel session accepts events (`SESSION_TTL_SECS`, default 24 h); expired
    /// open sessions are marked `abandoned` by the workers' expiry tick.
    pub session_ttl: Duration,
    pub limits: LimitsConfig,
    /// How long personal data is kept (the retention job; see `crate::privacy`).
    pub retention: crate::privacy::Retention,
    /// Outbound mail relay (`SMTP_URL`: `smtp://host:port`, `smtps://user:pass@host`, ...);
    /// a secret because it can carry credentials. Unset: mail is written to the log
    /// (`crate::mail`, log mode).
    pub smtp_url: Option<Secret>,
    /// From address of outbound mail (`MAIL_FROM`); parsed by `crate::mail::Mailer`.
    pub mail_from: String,
}

/// Overload protection of the api process.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Requests per second per client IP (0 disables); bursts of twice that.
    pub ip_per_second: u32,
    /// Requests per second per tenant unless the tenant's settings say otherwise.
    pub tenant_per_second: u32,
    /// Stripe webhook deliveries per second per tenant (0 disables): a bucket of its own, so
    /// forged deliveries to a tenant's public webhook URL never use its API or widget budget.
    pub webhook_per_second: u32,
    /// Requests served at once; more wait up to `shed_queue_timeout`, then get 503.
    pub max_concurrent_requests: usize,
    pub shed_queue_timeout: Duration,
    /// Take the client IP from `X-Forwarded-For` (behind trusted proxies): the entry
    /// `trusted_proxy_hops` from the right, i.e. the address our outermost proxy saw.
    pub trust_forwarded_for: bool,
    /// How many proxies of ours append to `X-Forwarded-For` (1: one load balancer). Entries
    /// left of those are the client's to write and are never trusted.
    pub trusted_proxy_hops: usize,
}

/// Worker-side settings for the job platform.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// How long a fetched task is leased; a worker renews its leases every third of this.
    /// A killed worker's tasks return to the queue when the lease runs out.
    pub lease: Duration,
    pub idempotency_ttl: Duration,
    /// Finished-task records older than this are pruned.
    pub done_retention: Duration,
    /// Period of the scheduler's rollup tick (an hour in production).
    pub rollup_interval: Duration,
    /// Period of the reconciler tick.
    pub reconcile_interval: Duration,
    /// Period of the retention sweep.
    pub retention_interval: Duration,
    /// Optional override of every queue's backoff base delay (tests use milliseconds).
    pub retry_base_override: Option<Duration>,
    /// Optional multiplier of every queue's concurrency.
    pub concurrency_override: Option<usize>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut cfg = Config {
            app_env: get("APP_ENV").unwrap_or_else(|| "development".into()),
            database_url: Secret::new(
                get("DATABASE_URL")
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/retentionos".into()),
            ),
            database_read_url: get("DATABASE_READ_URL").map(Secret::new),
            pool: PoolConfig {
                max_connections: parse(&get, "DATABASE_MAX_CONNECTIONS", 20)?,
                min_connections: parse(&get, "DATABASE_MIN_CONNECTIONS", 2)?,
                connect_timeout: secs(&get, "DATABASE_CONNECT_TIMEOUT_SECS", 5)?,
                idle_timeout: secs(&get, "DATABASE_IDLE_TIMEOUT_SECS", 30)?,
                max_lifetime: secs(&get, "DATABASE_MAX_LIFETIME_SECS", 3600)?,
            },
            redis_url: Secret::new(
                get("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            ),
            redis_prefix: get("REDIS_PREFIX").unwrap_or_else(|| "rtos:".into()),
            redis_timeout: millis(&get, "REDIS_TIMEOUT_MS", 5000)?,
            api_addr: parse(&get, "API_ADDR", "127.0.0.1:8080".parse().expect("addr"))?,
            ops_addr: match get("OPS_ADDR") {
                Some(_) => Some(parse(
                    &get,
                    "OPS_ADDR",
                    "127.0.0.1:0".parse().expect("addr"),
                )?),
                None => None,
            },
            worker_metrics_addr: parse(
                &get,
                "WORKER_METRICS_ADDR",
                "127.0.0.1:9091".parse().expect("addr"),
            )?,
            public_base_url: get("PUBLIC_BASE_URL").unwrap_or_default(),
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("compact") | Some("text") => LogFormat::Compact,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "LOG_FORMAT",
                        reason: format!("expected json or compact, got {other:?}"),
                    })
                }
            },
            master_key: Secret::new(get("MASTER_KEY").unwrap_or_else(|| DEV_MASTER_KEY.into())),
            master_key_previous: get("MASTER_KEY_PREVIOUS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(Secret::new)
                        .collect()
                })
                .unwrap_or_default(),
            ops_token: Secret::new(get("OPS_TOKEN").unwrap_or_else(|| DEV_OPS_TOKEN.into())),
            request_timeout: millis(&get, "REQUEST_TIMEOUT_MS", 10_000)?,
            body_limit_bytes: parse(&get, "BODY_LIMIT_BYTES", 256 * 1024)?,
            shutdown_timeout: secs(&get, "SHUTDOWN_TIMEOUT_SECS", 30)?,
            jobs: JobsConfig {
                lease: secs(&get, "JOB_LEASE_SECS", 30)?,
                idempotency_ttl: secs(&get, "JOB_IDEMPOTENCY_TTL_SECS", 86_400)?,
                done_retention: secs(&get, "JOB_DONE_RETENTION_SECS", 3600)?,
                rollup_interval: secs(&get, "ROLLUP_INTERVAL_SECS", 3600)?,
                reconcile_interval: secs(&get, "RECONCILE_INTERVAL_SECS", 60)?,
                retention_interval: secs(&get, "RETENTION_INTERVAL_SECS", 3600)?,
                retry_base_override: match get("JOB_RETRY_BASE_MS") {
                    Some(_) => Some(millis(&get, "JOB_RETRY_BASE_MS", 0)?),
                    None => None,
                },
                concurrency_override: match get("WORKER_CONCURRENCY") {
                    Some(_) => Some(parse(&get, "WORKER_CONCURRENCY", 1)?),
                    None => None,
                },
            },
            stripe_api_base: get("STRIPE_API_BASE")
                .unwrap_or_else(|| "https://api.stripe.com".into()),
            limits: LimitsConfig {
                ip_per_second: parse(&get, "RATE_LIMIT_IP_PER_SECOND", 1000)?,
                tenant_per_second: parse(&get, "RATE_LIMIT_TENANT_PER_SECOND", 1000)?,
                webhook_per_second: parse(&get, "RATE_LIMIT_WEBHOOK_PER_SECOND", 1000)?,
                max_concurrent_requests: parse(&get, "MAX_CONCURRENT_REQUESTS", 32)?,
                shed_queue_timeout: millis(&get, "SHED_QUEUE_TIMEOUT_MS", 20)?,
                trust_forwarded_for: flag(&get, "TRUST_FORWARDED_FOR", false)?,
                trusted_proxy_hops: parse(&get, "TRUSTED_PROXY_HOPS", 1)?,
            },
            session_ttl: secs(&get, "SESSION_TTL_SECS", 86_400)?,
            retention: crate::privacy::Retention {
                stripe_payload_days: parse(&get, "RETENTION_STRIPE_PAYLOAD_DAYS", 30)?,
                feedback_days: parse(&get, "RETENTION_FEEDBACK_DAYS", 365)?,
                audit_days: parse(&get, "RETENTION_AUDIT_DAYS", 2555)?,
            },
            smtp_url: get("SMTP_URL").map(Secret::new),
            mail_from: get("MAIL_FROM").unwrap_or_else(|| DEFAULT_MAIL_FROM.into()),
            // Decided in `validate`: off wherever the deployment is exposed.
            demo_enabled: false,
        };
        let demo = match get("DEMO_ENABLED") {
            Some(_) => Some(flag(&get, "DEMO_ENABLED", false)?),
            None => None,
        };
        cfg.demo_enabled = demo.unwrap_or(!cfg.is_exposed());
        if demo == Some(true) && cfg.is_exposed() {
            return Err(ConfigError::Invalid {
                name: "DEMO_ENABLED",
                reason: "the demo page is for localhost only: it cannot be served with APP_ENV=production or on a non-loopback API_ADDR".into(),
            });
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Secret-free summary for the startup log line.
    pub fn describe(&self) -> String {
        format!(
            "env={} database={} read_replica={} redis={} prefix={} api_addr={} ops_addr={} worker_metrics_addr={} smtp={}",
            self.app_env,
            redact_url(self.database_url.expose()),
            self.database_read_url
                .as_ref()
                .map(|u| redact_url(u.expose()))
                .unwrap_or_else(|| "none".into()),
            redact_url(self.redis_url.expose()),
            self.redis_prefix,
            self.api_addr,
            self.ops_addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none".into()),
            self.worker_metrics_addr,
            self.smtp_url
                .as_ref()
                .map(|u| redact_url(u.expose()))
                .unwrap_or_else(|| "none (mail is logged)".into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_work_on_localhost() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.pool.max_connections, 20);
        assert_eq!(c.pool.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.pool.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.pool.max_lifetime, Duration::from_secs(3600));
        assert_eq!(c.log_format, LogFormat::Compact);
        assert_eq!(c.redis_timeout, Duration::from_secs(5));
        assert!(c.smtp_url.is_none());
        assert_eq!(c.mail_from, DEFAULT_MAIL_FROM);
        // Empty counts as unset, as for every variable.
        let c = cfg(&[("SMTP_URL", " "), ("MAIL_FROM", "")]).unwrap();
        assert!(c.smtp_url.is_none());
        assert_eq!(c.mail_from, DEFAULT_MAIL_FROM);
    }

    #[test]
    fn previous_master_keys_are_a_comma_separated_list() {
        let a = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let c = cfg(&[("MASTER_KEY_PREVIOUS", &format!(" {a} , {DEV_MASTER_KEY},"))]).unwrap();
        let prev: Vec<&str> = c.master_key_previous.iter().map(Secret::expose).collect();
        assert_eq!(prev, [a, DEV_MASTER_KEY]);
        assert!(cfg(&[]).unwrap().master_key_previous.is_empty());
        assert!(!format!("{c:?}").contains(a));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = cfg(&[
            ("DATABASE_URL", "postgres://u:pgpass123@h/db"),
            ("OPS_TOKEN", "opsopsops-secret"),
            ("SMTP_URL", "smtps://mailer:smtppass456@smtp.example.com"),
        ])
        .unwrap();
        let dbg = format!("{c:?} {}", c.describe());
        assert!(dbg.contains("smtp.example.com"), "{dbg}");
        assert!(!dbg.contains("pgpass123"), "{dbg}");
        assert!(!dbg.contains("smtppass456"), "{dbg}");
        assert!(!dbg.contains("opsopsops-secret"), "{dbg}");
        assert!(!dbg.contains(DEV_MASTER_KEY), "{dbg}");
    }

    #[test]
    fn trusted_proxy_hops_default_to_one_and_must_be_positive_behind_proxies() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.limits.trusted_proxy_hops, 1);
        assert!(!c.limits.trust_forwarded_for);
        let c = cfg(&[("TRUST_FORWARDED_FOR", "true"), ("TRUSTED_PROXY_HOPS", "2")]).unwrap();
        assert_eq!(c.limits.trusted_proxy_hops, 2);
        assert!(cfg(&[("TRUST_FORWARDED_FOR", "true"), ("TRUSTED_PROXY_HOPS", "0")]).is_err());
        assert!(cfg(&[("TRUSTED_PROXY_HOPS", "-1")]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(cfg(&[("LOG_FORMAT", "xml")]).is_err());
        assert!(cfg(&[("DATABASE_MAX_CONNECTIONS", "abc")]).is_err());
        assert!(cfg(&[("MASTER_KEY", "short")]).is_err());
        assert!(cfg(&[("MASTER_KEY_PREVIOUS", "short")]).is_err());
        assert!(cfg(&[("MASTER_KEY_PREVIOUS", &format!("{DEV_MASTER_KEY},short"))]).is_err());
        assert!(cfg(&[("APP_ENV", "production")]).is_err());
    }

    const STRONG: &str = "3f9a1c0e7b2d48a6905e1f3c7d2b8a40";
    const MASTER: &str = "cHJvZHVjdGlvbi1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=";

    #[test]
    fn production_refuses_a_stripe_api_base_that_is_not_stripe() {
        let prod = [
            ("APP_ENV", "production"),
            ("MASTER_KEY", MASTER),
            ("OPS_TOKEN", STRONG),
        ];
        let with = |base: &'static str| {
            let mut v = prod.to_vec();
            v.push(("STRIPE_API_BASE", base));
            cfg(&v)
        };
        // The default, and Stripe's own hosts over TLS.
        assert_eq!(
            cfg(&prod).unwrap().stripe_api_base,
            "https://api.stripe.com"
        );
        for ok in [
            "https://api.stripe.com",
            "https://api.stripe.com/",
            "https://files.stripe.com",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:12111",
            "http://api.stripe.com",
            "https://api.stripe.com.evil.example",
            "https://evilstripe.com",
            "https://user:pw@api.stripe.com",
            "https://127.0.0.1:12111",
            "not a url",
        ] {
            match with(bad) {
                Err(ConfigError::Invalid { name, reason }) => {
                    assert_eq!(name, "STRIPE_API_BASE", "{bad}");
                    assert!(reason.contains("development only"), "{bad}: {reason}");
                }
                Ok(_) => panic!("{bad} accepted in production"),
            }
        }
        // Development keeps accepting a local stand-in (the sandbox, the tests' fake).
        let dev = cfg(&[("STRIPE_API_BASE", "http://127.0.0.1:12111")]).unwrap();
        assert_eq!(dev.stripe_api_base, "http://127.0.0.1:12111");
    }

    #[test]
    fn exposed_deployments_refuse_development_secrets_and_weak_tokens() {
        // On loopback in development, the defaults only warn.
        let dev = cfg(&[]).unwrap();
        assert!(!dev.is_exposed());
        assert_eq!(dev.warnings().len(), 2);
        assert!(dev.demo_enabled);
        for exposure in [
            vec![("APP_ENV", "production")],
            vec![("API_ADDR", "0.0.0.0:8080")],
            vec![("API_ADDR", "10.1.2.3:8080")],
            vec![("API_ADDR", "[::]:8080")],
            vec![("OPS_ADDR", "0.0.0.0:9090")],
        ] {
            let with = |extra: &[(&'static str, &'static str)]| {
                let mut v = exposure.clone();
                v.extend_from_slice(extra);
                cfg(&v)
            };
            let err = |r: Result<Config, ConfigError>| match r {
                Err(ConfigError::Invalid { name, .. }) => name,
                Ok(_) => "accepted",
            };
            assert_eq!(
                err(with(&[("OPS_TOKEN", STRONG)])),
                "MASTER_KEY",
                "{exposure:?}"
            );
            assert_eq!(
                err(with(&[("MASTER_KEY", MASTER)])),
                "OPS_TOKEN",
                "{exposure:?}"
            );
            for weak in ["short-token-1", "abababababababababababababababab12"] {
                assert_eq!(
                    err(with(&[("MASTER_KEY", MASTER), ("OPS_TOKEN", weak)])),
                    "OPS_TOKEN",
                    "{exposure:?} {weak}"
                );
            }
            assert_eq!(
                err(with(&[
                    ("MASTER_KEY", MASTER),
                    ("OPS_TOKEN", STRONG),
                    ("DEMO_ENABLED", "1")
                ])),
                "DEMO_ENABLED",
                "{exposure:?}"
            );
            let ok = with(&[("MASTER_KEY", MASTER), ("OPS_TOKEN", STRONG)]).unwrap();
            assert!(ok.is_exposed() && !ok.demo_enabled, "{exposure:?}");
            assert!(ok.warnings().is_empty());
        }
        // A loopback development stack may turn the demo off, and keeps short tokens.
        let off = cfg(&[("DEMO_ENABLED", "0"), ("OPS_TOKEN", "8charsok")]).unwrap();
        assert!(!off.demo_enabled);
    }
}
