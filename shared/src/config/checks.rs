//! Safety checks of a loaded [`Config`]: whether the deployment is exposed, the validation
//! `Config::from_lookup` ends with (refusing development secrets, weak tokens and a
//! non-Stripe API base where they would be dangerous), warnings about development defaults,
//! and the URL predicates behind the `STRIPE_API_BASE` rule.

use super::{Config, ConfigError, DEV_MASTER_KEY, DEV_OPS_TOKEN};

impl Config {
    /// Whether this deployment can be reached from other machines (or says it is
    /// production): then the development secrets are refused and the demo is off.
    pub fn is_exposed(&self) -> bool {
        self.is_production()
            || !self.api_addr.ip().is_loopback()
            || self.ops_addr.is_some_and(|a| !a.ip().is_loopback())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.trust_forwarded_for && self.limits.trusted_proxy_hops == 0 {
            return Err(ConfigError::Invalid {
                name: "TRUSTED_PROXY_HOPS",
                reason: "must be at least 1 when TRUST_FORWARDED_FOR is on (the proxies of ours that append to X-Forwarded-For)".into(),
            });
        }
        if self.pool.max_connections == 0 || self.pool.min_connections > self.pool.max_connections {
            return Err(ConfigError::Invalid {
                name: "DATABASE_MAX_CONNECTIONS",
                reason: "must be at least 1 and at least DATABASE_MIN_CONNECTIONS".into(),
            });
        }
        if crate::crypto::MasterKey::parse(self.master_key.expose()).is_err() {
            return Err(ConfigError::Invalid {
                name: "MASTER_KEY",
                reason: "must be 32 bytes, base64-encoded (openssl rand -base64 32)".into(),
            });
        }
        if self
            .master_key_previous
            .iter()
            .any(|k| crate::crypto::MasterKey::parse(k.expose()).is_err())
        {
            return Err(ConfigError::Invalid {
                name: "MASTER_KEY_PREVIOUS",
                reason: "must be a comma-separated list of 32-byte base64 keys".into(),
            });
        }
        if self.ops_token.expose().len() < 8 {
            return Err(ConfigError::Invalid {
                name: "OPS_TOKEN",
                reason: "must be at least 8 characters".into(),
            });
        }
        if self.session_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "SESSION_TTL_SECS",
                reason: "must be at least 1 second".into(),
            });
        }
        // A stand-in (the development sandbox, a test fake) accepts any key and applies
        // nothing: production talks to Stripe itself, over TLS.
        if self.is_production() && !is_stripe_api_base(&self.stripe_api_base) {
            return Err(ConfigError::Invalid {
                name: "STRIPE_API_BASE",
                reason: format!(
                    "with APP_ENV=production it must be an https:// URL on stripe.com (the default https://api.stripe.com), got {:?}; the Stripe sandbox (rtos-stripe-sandbox) and other stand-ins are for development only",
                    self.stripe_api_base
                ),
            });
        }
        if self.is_exposed() {
            let why = "with APP_ENV=production or a non-loopback API_ADDR/OPS_ADDR";
            if self.master_key.expose() == DEV_MASTER_KEY {
                return Err(ConfigError::Invalid {
                    name: "MASTER_KEY",
                    reason: format!("the public development default cannot be used {why}"),
                });
            }
            if self.ops_token.expose() == DEV_OPS_TOKEN {
                return Err(ConfigError::Invalid {
                    name: "OPS_TOKEN",
                    reason: format!("the public development default cannot be used {why}"),
                });
            }
            if !strong_token(self.ops_token.expose()) {
                return Err(ConfigError::Invalid {
                    name: "OPS_TOKEN",
                    reason: format!(
                        "must be at least 32 random characters {why} (openssl rand -hex 32)"
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.app_env == "production"
    }

    /// Warnings about development defaults still in use.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.master_key.expose() == DEV_MASTER_KEY {
            w.push("MASTER_KEY is the development default; set your own outside localhost");
        }
        if self.ops_token.expose() == DEV_OPS_TOKEN {
            w.push("OPS_TOKEN is the development default; set your own outside localhost");
        }
        w
    }
}

/// Whether `base` is Stripe's own API: `https://` on `stripe.com` or a subdomain of it,
/// without credentials (what production requires of `STRIPE_API_BASE`).
pub fn is_stripe_api_base(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url
            .host_str()
            .is_some_and(|h| h == "stripe.com" || h.ends_with(".stripe.com"))
}

/// Whether `base` is a plain `http://` URL on a loopback address (`127.0.0.0/8`, `[::1]`,
/// `localhost`): where the development Stripe sandbox listens.
pub fn is_loopback_http_base(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    url.scheme() == "http"
        && url.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// At least 32 characters, and not a short pattern repeated: at least 12 distinct
/// characters (a 32-character random hex or base64 token has ~16 or more).
fn strong_token(t: &str) -> bool {
    let distinct: std::collections::HashSet<char> = t.chars().collect();
    t.chars().count() >= 32 && distinct.len() >= 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_base_kinds() {
        assert!(is_stripe_api_base("https://api.stripe.com"));
        assert!(!is_stripe_api_base("https://stripe.com.example"));
        for local in [
            "http://127.0.0.1:9",
            "http://localhost:9/",
            "http://[::1]:9",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback_http_base(local), "{local}");
        }
        for not_local in [
            "https://127.0.0.1:9",
            "http://10.0.0.1:9",
            "http://api.stripe.com",
            "http://localhost.example",
            "",
        ] {
            assert!(!is_loopback_http_base(not_local), "{not_local}");
        }
    }
}
