//! Overload protection: admission control that sheds load with 503 + `Retry-After` before
//! latency collapses, per-IP and per-tenant rate limits (429 + `Retry-After`), and a
//! database health flag so requests fail fast instead of waiting on a dead PostgreSQL.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

use crate::{error::ApiError, state::AppState};

/// Routes that are never shed or limited (probes and scrapes must see the truth).
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// GCRA rate limiter (in process): `rate` per second with bursts of `2 * rate`.
#[derive(Default)]
pub struct RateLimiter {
    tat: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `Ok` when admitted, else the seconds to wait.
    pub fn check(&self, key: &str, rate: u32) -> Result<(), u64> {
        if rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let burst = interval * (2 * rate);
        let mut map = self.tat.lock().expect("lock");
        if map.len() > 100_000 {
            map.retain(|_, t| *t > now);
        }
        let tat = map.get(key).copied().filter(|t| *t > now).unwrap_or(now);
        if tat.duration_since(now) >= burst {
            let wait = tat.duration_since(now) - burst + interval;
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        map.insert(key.to_string(), tat + interval);
        Ok(())
    }
}

pub fn rate_limited(scope: &'static str, retry_after: u64) -> ApiError {
    metrics::counter!("http_rate_limited_total", "scope" => scope).increment(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limited",
        format!("Too many requests for this {scope}; retry after {retry_after} s."),
    )
    .with_retry_after(retry_after)
}

/// Shared overload state of one api process.
pub struct Overload {
    pub admission: Arc<Semaphore>,
    pub limiter: RateLimiter,
    pub db_up: AtomicBool,
}

impl Overload {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            admission: Arc::new(Semaphore::new(max_concurrent.max(1))),
            limiter: RateLimiter::default(),
            db_up: AtomicBool::new(true),
        }
    }
}

/// The client's address: the peer's, or behind our proxies (`TRUST_FORWARDED_FOR`) the
/// `X-Forwarded-For` entry `hops` from the right. Each proxy appends the address it saw, so
/// the right-most `hops` entries were written by ours and the one our outermost proxy
/// appended is the client as it saw it; anything further left is the client's own text
/// (spoofable) and is never used. With fewer entries than `hops` (or one that is not an IP
/// address) the peer address is used. Several headers count as one list, in order.
fn client_ip(req: &Request, trust_forwarded: bool, hops: usize) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if !trust_forwarded || hops == 0 {
        return peer;
    }
    forwarded_client(req.headers(), hops).or(peer)
}

fn forwarded_client(headers: &axum::http::HeaderMap, hops: usize) -> Option<IpAddr> {
    let mut entries: Vec<&str> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        entries.extend(v.to_str().ok()?.split(','));
    }
    let entry = entries.len().checked_sub(hops).map(|i| entries[i])?;
    entry.trim().parse().ok()
}

/// Admission (bounded concurrency with a short queue), per-IP limit and the database gate.
pub async fn protect(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = &st.config.limits;
    let ip = client_ip(&req, limits.trust_forwarded_for, limits.trusted_proxy_hops);
    if let Some(ip) = ip {
        req.extensions_mut().insert(crate::audit::ClientIp(ip));
    }
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    if let Some(ip) = ip {
        if let Err(wait) = st
            .overload
            .limiter
            .check(&format!("ip:{ip}"), limits.ip_per_second)
        {
            return rate_limited("client IP", wait).into_response();
        }
    }
    if !st.overload.db_up.load(Ordering::Relaxed) {
        metrics::counter!("http_requests_shed_total", "reason" => "database_down").increment(1);
        return ApiError::unavailable(
            "database_unavailable",
            "The database is unavailable; retry shortly.",
        )
        .into_response();
    }
    let permit = match tokio::time::timeout(
        limits.shed_queue_timeout,
        st.overload.admission.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            metrics::counter!("http_requests_shed_total", "reason" => "overload").increment(1);
            return ApiError::unavailable(
                "overloaded",
                "The service is at capacity; retry shortly.",
            )
            .into_response();
        }
    };
    let res = next.run(req).await;
    drop(permit);
    res
}

/// Checks the per-tenant limit of the key's mode (from that mode's settings, else the
/// default). Test and live have separate budgets, so test traffic (or a test key's settings)
/// never throttles live.
pub async fn check_tenant(
    st: &AppState,
    tenant: uuid::Uuid,
    mode: shared::tenants::Mode,
) -> Result<(), ApiError> {
    let settings = st
        .settings_cache
        .get(&st.pools.primary, tenant, mode)
        .await?;
    let rate = if settings.rate_limit_per_second > 0 {
        settings.rate_limit_per_second
    } else {
        st.config.limits.tenant_per_second
    };
    st.overload
        .limiter
        .check(&format!("tenant:{tenant}:{}", mode.as_str()), rate)
        .map_err(|wait| rate_limited("tenant", wait))
}

/// Pings PostgreSQL every second; while it fails, requests are refused at once.
///
/// A ping that errors (connection refused, reset, authentication) means down at once. A ping
/// that is only slow (over a second) may just be a busy pool or a loaded host, and flagging
/// the database down then would refuse requests it could serve: only two slow pings in a row
/// count as down (a hung server or a partition is flagged within ~3 s).
pub fn spawn_db_watch(st: AppState) {
    tokio::spawn(async move {
        let mut slow_in_a_row = 0u32;
        loop {
            let ok = match tokio::time::timeout(
                Duration::from_millis(1000),
                sqlx::query_scalar!("SELECT 1").fetch_one(&st.pools.primary),
            )
            .await
            {
                Ok(Ok(_)) => {
                    slow_in_a_row = 0;
                    true
                }
                Ok(Err(_)) => false,
                Err(_) => {
                    slow_in_a_row += 1;
                    slow_in_a_row < 2
                }
            };
            let was = st.overload.db_up.swap(ok, Ordering::Relaxed);
            if was != ok {
                if ok {
                    tracing::info!("database reachable again");
                } else {
                    tracing::error!("database unreachable: failing requests fast");
                }
            }
            metrics::gauge!("database_up").set(if ok { 1.0 } else { 0.0 });
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn req(xff: &[&str]) -> Request {
        let mut r = Request::new(axum::body::Body::empty());
        for v in xff {
            r.headers_mut()
                .append("x-forwarded-for", v.parse().unwrap());
        }
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        r
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// A client writing its own `X-Forwarded-For` cannot choose its rate-limit bucket: the
    /// entry our proxy appended (right-most, one hop) is used, whatever comes before it.
    #[test]
    fn the_client_cannot_pick_its_ip_by_spoofing_x_forwarded_for() {
        // Through one proxy of ours, the client sent "1.2.3.4" itself; the proxy saw 9.9.9.9.
        let spoofed = req(&["1.2.3.4, 9.9.9.9"]);
        assert_eq!(client_ip(&spoofed, true, 1), ip("9.9.9.9"));
        let many = req(&["5.5.5.5, 6.6.6.6, 7.7.7.7, 9.9.9.9"]);
        assert_eq!(client_ip(&many, true, 1), ip("9.9.9.9"));
        // Two proxies of ours: the second from the right is what the outer one saw.
        let two = req(&["1.2.3.4, 9.9.9.9, 172.16.0.2"]);
        assert_eq!(client_ip(&two, true, 2), ip("9.9.9.9"));
        // Split over several headers, in order.
        let split = req(&["1.2.3.4", "9.9.9.9"]);
        assert_eq!(client_ip(&split, true, 1), ip("9.9.9.9"));
        // Fewer entries than hops, garbage, or no header: the peer.
        assert_eq!(client_ip(&req(&["9.9.9.9"]), true, 2), ip("10.0.0.1"));
        assert_eq!(
            client_ip(&req(&["1.2.3.4, nonsense"]), true, 1),
            ip("10.0.0.1")
        );
        assert_eq!(client_ip(&req(&[]), true, 1), ip("10.0.0.1"));
        // Not behind a proxy: the header is ignored entirely.
        assert_eq!(client_ip(&spoofed, false, 1), ip("10.0.0.1"));
        // IPv6 entries.
        assert_eq!(
            forwarded_client(
                &HeaderMap::from_iter([(
                    axum::http::header::HeaderName::from_static("x-forwarded-for"),
                    "1.2.3.4, 2001:db8::1".parse().unwrap()
                )]),
                1
            ),
            ip("2001:db8::1")
        );
    }
}
