//! The request log: what the fake received ([`LoggedRequest`]) and how tests read it, plus
//! the count of applied changes.

use super::{store::lock, FakeStripe};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// Query-string parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Form-body parameters, decoded, in order.
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// The API key from `Authorization: Bearer ...`.
    pub api_key: Option<String>,
    pub stripe_version: Option<String>,
    pub request_id: String,
    /// The status answered; `None` while in flight (or if the client went away first).
    pub status: Option<u16>,
    /// Whether the answer was an idempotent replay.
    pub replayed: bool,
}

impl FakeStripe {
    /// Requests received after the first `n` (in arrival order), for a log that follows
    /// the fake without copying everything each time.
    pub fn requests_since(&self, n: usize) -> Vec<LoggedRequest> {
        lock(&self.store).log.iter().skip(n).cloned().collect()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.store).log.clone()
    }

    /// Requests whose `"METHOD path"` starts with `prefix` (e.g. `"POST /v1/subscriptions"`).
    pub fn requests_to(&self, prefix: &str) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| format!("{} {}", r.method, r.path).starts_with(prefix))
            .collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.store).log.clear();
    }

    /// How many changes were applied (successful POST/DELETE executions; replays and
    /// rejected requests do not count).
    pub fn mutations(&self) -> u64 {
        lock(&self.store).mutations
    }
}
