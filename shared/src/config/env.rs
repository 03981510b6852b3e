//! Typed reads of single environment variables (through the lookup `Config::from_lookup`
//! is given): a parsed value, a boolean flag, seconds and milliseconds, each with its
//! default when unset.

use std::{str::FromStr, time::Duration};

use super::ConfigError;

pub(super) fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// A boolean variable: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.
pub(super) fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!("expected 1/0 or true/false, got {v:?}"),
            }),
        },
    }
}

pub(super) fn secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parse(get, name, default).map(Duration::from_secs)
}

pub(super) fn millis(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parse(get, name, default).map(Duration::from_millis)
}
