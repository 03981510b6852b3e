//! Time units (everything is Unix microseconds), PostgreSQL's epoch, the safety margin
//! before `now`, and the conversion to `DateTime`.

use chrono::{DateTime, Utc};

pub(crate) const SEC: i64 = 1_000_000;
pub(crate) const DAY: i64 = 86_400 * SEC;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_US: i64 = 946_684_800 * SEC;
/// Sessions end this long before `now` at the latest, so every derived timestamp is past.
pub(crate) const MARGIN: i64 = 15 * 60 * SEC;

pub(crate) fn to_datetime(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("timestamp in range")
}
