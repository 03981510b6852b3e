//! The range of an analytics query: `from`/`to` as RFC 3339 instants (widened to whole
//! hours) or local dates in the tenant's time zone, defaulting to the last 30 days, at most
//! 2 years; and its bounded part of a cache key.

use chrono::{DateTime, NaiveDate, Utc};
use shared::tenants::Mode;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// A validated range in UTC, with the tenant's time zone.
pub(super) struct Range {
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    pub(super) tz: String,
}

impl Range {
    /// The range's part of a cache key. Bounded key space: exact bounds are whole hours
    /// ([`to_hour`]), local-date bounds one instant per date, so a caller varying the seconds
    /// of `from`/`to` cannot mint new entries.
    pub(super) fn key(&self) -> String {
        format!("{}:{}", self.from.timestamp(), self.to.timestamp())
    }
}

/// An exact bound widened to the rollups' granularity (whole UTC hours): `from` down, `to`
/// up, so the answer covers every hour the asked range touches and says so in its
/// `from`/`to`. A range of whole hours is unchanged; a partial hour at either end is counted
/// whole (an hourly rollup cannot be split).
fn to_hour(t: DateTime<Utc>, end: bool) -> DateTime<Utc> {
    let s = t.timestamp();
    let floor = s - s.rem_euclid(3600);
    let secs = if end && (floor != s || t.timestamp_subsec_nanos() != 0) {
        floor + 3600
    } else {
        floor
    };
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// A bound as given: an exact instant, or a local date (a whole day in the tenant's zone).
enum Bound {
    Exact(DateTime<Utc>),
    Local(chrono::NaiveDateTime),
}

fn parse_bound(param: &str, v: &str, end: bool) -> ApiResult<Bound> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Bound::Exact(to_hour(t.with_timezone(&Utc), end)));
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_param(
            param,
            format!("{param} must be a date (YYYY-MM-DD) or an RFC 3339 time"),
        )
    })?;
    // `to` includes its whole day.
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(Bound::Local(d.and_hms_opt(0, 0, 0).expect("midnight")))
}

async fn resolve(st: &AppState, b: Bound, tz: &str) -> ApiResult<DateTime<Utc>> {
    match b {
        Bound::Exact(t) => Ok(t),
        // PostgreSQL knows every IANA zone and its offsets at that date.
        Bound::Local(naive) => {
            let t =
                sqlx::query_scalar!(r#"SELECT $1::timestamp AT TIME ZONE $2 AS "t!""#, naive, tz)
                    .fetch_one(&st.pools.read)
                    .await?;
            Ok(t)
        }
    }
}

pub(super) async fn range(
    st: &AppState,
    (tenant, mode): (Uuid, Mode),
    from: &Option<String>,
    to: &Option<String>,
) -> ApiResult<Range> {
    let tz = st
        .settings_cache
        .get(&st.pools.primary, tenant, mode)
        .await?
        .timezone
        .clone();
    // Rollups are hourly: the default range ends at the next hour boundary, so it stays the
    // same (and cacheable) for a whole hour.
    let now = {
        let t = Utc::now().timestamp();
        DateTime::from_timestamp(t - t.rem_euclid(3600) + 3600, 0).unwrap_or_else(Utc::now)
    };
    let from = match from {
        Some(v) => resolve(st, parse_bound("from", v, false)?, &tz).await?,
        None => now - chrono::Duration::days(30),
    };
    let to = match to {
        Some(v) => resolve(st, parse_bound("to", v, true)?, &tz).await?,
        None => now,
    };
    if from >= to {
        return Err(ApiError::invalid_param("from", "from must be before to"));
    }
    if to - from > chrono::Duration::days(732) {
        return Err(ApiError::invalid_param(
            "to",
            "a range covers at most 2 years",
        ));
    }
    Ok(Range { from, to, tz })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(from: &str, to: &str) -> String {
        let exact = |v: &str, end| match parse_bound("x", v, end) {
            Ok(Bound::Exact(t)) => t,
            _ => panic!("{v} is exact"),
        };
        Range {
            from: exact(from, false),
            to: exact(to, true),
            tz: "UTC".into(),
        }
        .key()
    }

    /// Every second of an hour (and sub-second instants) gives the same cache key: the key
    /// space grows with hours, not with seconds a caller can vary.
    #[test]
    fn cache_keys_are_bounded_to_whole_hours() {
        let mut keys = std::collections::HashSet::new();
        for s in 0..3600 {
            let (m, sec) = (s / 60, s % 60);
            keys.insert(key_of(
                &format!("2026-03-01T10:{m:02}:{sec:02}Z"),
                &format!("2026-03-02T09:{m:02}:{sec:02}.5+00:00"),
            ));
        }
        assert_eq!(keys.len(), 1, "{keys:?}");
        let from = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap();
        let to = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z").unwrap();
        assert_eq!(
            keys.into_iter().next().unwrap(),
            format!("{}:{}", from.timestamp(), to.timestamp())
        );
        // Whole hours stay as they are (`to` is exclusive); offsets are normalised to UTC.
        assert_eq!(
            key_of("2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z"),
            key_of("2026-03-01T11:00:00+01:00", "2026-03-01T11:59:59Z")
        );
        assert_ne!(
            key_of("2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z"),
            key_of("2026-03-01T10:00:00Z", "2026-03-01T12:00:01Z")
        );
    }
}
