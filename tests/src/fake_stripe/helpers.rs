//! Small helpers: the clock, billing-period ends, Stripe-like random ids, the API-key shape
//! and `Retry-After` formatting.

use std::time::Duration;

use chrono::{Months, Utc};
use rand::{distr::Alphanumeric, Rng};

pub(super) fn now() -> i64 {
    Utc::now().timestamp()
}

pub(super) fn period_end(start: i64, interval: &str) -> i64 {
    let start_dt = chrono::DateTime::from_timestamp(start, 0).expect("valid timestamp");
    let end = match interval {
        "day" => start_dt + chrono::Duration::days(1),
        "week" => start_dt + chrono::Duration::weeks(1),
        "year" => start_dt + Months::new(12),
        _ => start_dt + Months::new(1),
    };
    end.timestamp()
}

pub(super) fn random_chars(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `{prefix}_` + 14 random alphanumerics, like Stripe's ids.
pub(super) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_chars(14))
}

pub(super) fn valid_api_key(key: &str) -> bool {
    ["sk_test_", "sk_live_", "rk_test_", "rk_live_"]
        .iter()
        .any(|p| key.starts_with(p) && key.len() > p.len())
}

pub(super) fn format_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}
