//! The analytics rollups (rollup_sessions_hourly, rollup_offers_hourly, rollup_reasons_hourly,
//! rollup_state): the hourly rollup's writes and the analytics endpoints' reads.
