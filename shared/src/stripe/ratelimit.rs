//! A per-Stripe-account rate limiter in Redis, shared by every worker process.
//!
//! Stripe allows 100 requests/s per account in live mode and 25 in test mode, and answers
//! 429 beyond that. Every process calls [`AccountRateLimiter::acquire`] before a Stripe
//! request; the limiter spaces requests with GCRA (the generic cell rate algorithm), stored
//! as one "theoretical arrival time" per account and updated by one atomic Lua script using
//! Redis's clock, so processes on different machines agree without sharing a clock.
//!
//! `acquire` *reserves* the next free slot and sleeps until it: waiters are served in
//! arrival order with one round trip each, instead of polling. A reservation dropped before
//! its slot (the caller was cancelled) leaves one slot unused, which only errs on the safe
//! side.
//!
//! Bursts: up to `max(1, per_second / 5)` requests may go out back to back, so in any one
//! second at most `1.2 × per_second` requests are sent. With the default rates of
//! [`RateLimits`] (80 % of Stripe's) that stays under 96 % of Stripe's limit.
//!
//! A 429 still happens (another integration on the tenant's account, Stripe's own
//! per-endpoint limits): [`AccountRateLimiter::penalize`] then holds every process back for
//! the server's `Retry-After` (or a backoff the caller chooses).

use std::{sync::LazyLock, time::Duration};

use redis::aio::ConnectionManager;

/// Requests per second to allow per Stripe account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// For test-mode keys (`sk_test_`, `rk_test_`). Stripe allows 25/s.
    pub test_per_second: u32,
    /// For live-mode keys (`sk_live_`, `rk_live_`). Stripe allows 100/s.
    pub live_per_second: u32,
}

impl Default for RateLimits {
    /// 80 % of Stripe's limits: 20/s in test mode, 80/s live.
    fn default() -> Self {
        Self {
            test_per_second: 20,
            live_per_second: 80,
        }
    }
}

impl RateLimits {
    /// The rate for the mode of this API key; a key of unknown shape gets the (lower)
    /// test-mode rate.
    pub fn for_key(&self, api_key: &str) -> u32 {
        if is_live_key(api_key) {
            self.live_per_second
        } else {
            self.test_per_second
        }
    }
}

/// Whether an API key is a live-mode secret or restricted key.
pub fn is_live_key(api_key: &str) -> bool {
    api_key.starts_with("sk_live_") || api_key.starts_with("rk_live_")
}

/// GCRA with reservation, plus a hold for 429s. The account's hash has `tat`, the
/// theoretical arrival time in microseconds of Redis's clock (the next request may go at
/// `tat - tau`), and `hold`, the earliest time any request may go after a penalty.
///
/// KEYS[1]: the account's key. ARGV[1]: mode. `acquire`: ARGV[2] is the emission interval T
/// and ARGV[3] the burst tolerance tau (µs); books the next slot and returns how long to
/// wait for it (µs). A slot after a hold starts a fresh, burst-less spacing. `penalize`:
/// ARGV[2] is the delay (µs); moves `hold` to at least now + delay and returns 0.
/// ARGV[4]: the clock in µs since the Unix epoch, or `''` for Redis's own (`TIME`); tests
/// pass a fixed clock to check the exact schedule.
/// Numbers are written with `%.0f`: Lua 5.1's default conversion keeps 14 significant
/// digits, fewer than a microsecond timestamp has.
const SCRIPT: &str = r"
local now
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0') or 0
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold') or '0') or 0
local wait = 0
if ARGV[1] == 'acquire' then
  local interval = tonumber(ARGV[2])
  local tau = tonumber(ARGV[3])
  if tat < now then tat = now end
  local at = tat - tau
  if at < hold then
    at = hold
    tat = hold + tau
  end
  if at > now then wait = at - now end
  tat = tat + interval
else
  local h = now + tonumber(ARGV[2])
  if h > hold then hold = h end
end
local last = tat
if hold > last then last = hold end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'hold', string.format('%.0f', hold))
redis.call('PEXPIRE', KEYS[1], math.floor((last - now) / 1000) + 1000)
return string.format('%.0f', wait)
";

static GCRA: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SCRIPT));

/// The distributed per-account limiter. Cheap to clone.
#[derive(Clone)]
pub struct AccountRateLimiter {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for AccountRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRateLimiter")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl AccountRateLimiter {
    /// Keys are `{prefix}stripe:rl:{account}`, `prefix` being the deployment's Redis prefix.
    pub fn new(conn: ConnectionManager, prefix: String) -> Self {
        Self { conn, prefix }
    }

    /// The Redis key of one account's limiter.
    pub fn key(&self, account: &str) -> String {
        format!("{}stripe:rl:{}", self.prefix, account)
    }

    /// Waits until this process may send one request to `account` (the tenant's Stripe
    /// account id, or any stable name for its API key), at most `per_second` requests per
    /// second across all processes (clamped to 1..=1,000,000). Cancel-safe.
    pub async fn acquire(&self, account: &str, per_second: u32) -> Result<(), redis::RedisError> {
        let wait = self.reserve(account, per_second, None).await?;
        metrics::histogram!("stripe_ratelimit_wait_seconds").record(wait.as_secs_f64());
        if !wait.is_zero() {
            tracing::trace!(
                account,
                wait_us = wait.as_micros() as u64,
                "waiting for a Stripe rate-limit slot"
            );
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Books the next slot for `account` like [`acquire`](Self::acquire) and returns how long
    /// the caller must wait for it, without waiting. `now` is the clock to judge by (time
    /// since the Unix epoch); `None` means Redis's clock, which is what production uses so
    /// that every process agrees. Tests pass a fixed clock to check the exact schedule.
    pub async fn reserve(
        &self,
        account: &str,
        per_second: u32,
        now: Option<Duration>,
    ) -> Result<Duration, redis::RedisError> {
        let (interval_us, tau_us) = spacing(per_second);
        let wait_us = self
            .run("acquire", account, interval_us, tau_us, now)
            .await?;
        Ok(Duration::from_micros(wait_us))
    }

    /// Holds back every process's next request to `account` for at least `delay` from now
    /// (after a 429: its `Retry-After`, or the caller's backoff). Requests already waiting
    /// for an earlier slot are not recalled; later ones queue behind the delay, one interval
    /// apart and without a burst.
    pub async fn penalize(&self, account: &str, delay: Duration) -> Result<(), redis::RedisError> {
        self.penalize_at(account, delay, None).await
    }

    /// [`penalize`](Self::penalize) judged by the clock `now` (time since the Unix epoch;
    /// `None`: Redis's clock), for tests with a fixed clock.
    pub async fn penalize_at(
        &self,
        account: &str,
        delay: Duration,
        now: Option<Duration>,
    ) -> Result<(), redis::RedisError> {
        let delay_us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX / 4);
        metrics::counter!("stripe_ratelimit_penalties_total").increment(1);
        self.run("penalize", account, delay_us, 0, now)
            .await
            .map(|_| ())
    }

    async fn run(
        &self,
        mode: &str,
        account: &str,
        a_us: u64,
        tau_us: u64,
        now: Option<Duration>,
    ) -> Result<u64, redis::RedisError> {
        let mut conn = self.conn.clone();
        let now_us = now.map(|d| d.as_micros().to_string()).unwrap_or_default();
        let wait: String = GCRA
            .key(self.key(account))
            .arg(mode)
            .arg(a_us)
            .arg(tau_us)
            .arg(now_us)
            .invoke_async(&mut conn)
            .await?;
        Ok(wait.parse().unwrap_or(0))
    }
}

/// The GCRA parameters for `per_second` (clamped to 1..=1,000,000): the emission interval
/// and the burst tolerance, in µs. A burst is `max(1, per_second / 5)` back-to-back slots.
fn spacing(per_second: u32) -> (u64, u64) {
    let per_second = u64::from(per_second.clamp(1, 1_000_000));
    let interval_us = 1_000_000 / per_second;
    let burst = (per_second / 5).max(1);
    (interval_us, (burst - 1) * interval_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rates_are_80_percent_of_stripes() {
        let r = RateLimits::default();
        assert_eq!(r.for_key("rk_test_abc"), 20);
        assert_eq!(r.for_key("sk_test_abc"), 20);
        assert_eq!(r.for_key("rk_live_abc"), 80);
        assert_eq!(r.for_key("sk_live_abc"), 80);
        assert_eq!(r.for_key("weird"), 20);
    }

    #[test]
    fn spacing_and_burst_follow_the_rate() {
        // 20/s: a slot every 50 ms, bursts of 4 (a tolerance of 3 intervals).
        assert_eq!(spacing(20), (50_000, 150_000));
        assert_eq!(spacing(80), (12_500, 15 * 12_500));
        // Under 10/s the burst is a single request.
        assert_eq!(spacing(4), (250_000, 0));
        assert_eq!(spacing(1), (1_000_000, 0));
        // Clamped to 1..=1,000,000.
        assert_eq!(spacing(0), spacing(1));
        assert_eq!(spacing(u32::MAX), (1, 199_999));
    }
}
