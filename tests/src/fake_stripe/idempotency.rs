//! Idempotency keys per API key: claiming a key for a POST/DELETE (or answering with a
//! replay, a 409 or a 400), the in-flight guard that releases it, and saving the answer.

use serde_json::Value;

use super::{
    server::{ApiError, Request},
    store::{lock, Shared},
    FakeStripe,
};

/// An answer saved for an idempotency key.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) request_id: String,
}

#[derive(Debug, Clone)]
pub(super) enum IdemState {
    InFlight,
    Done(Saved),
}

#[derive(Debug, Clone)]
pub(super) struct IdemEntry {
    pub(super) fingerprint: (String, String, Vec<(String, String)>),
    pub(super) state: IdemState,
}

/// Removes the idempotency key's in-flight marker if the request ends without saving an
/// answer (it failed validation, it hung, or the client went away and hyper dropped us).
pub(super) struct InFlight {
    pub(super) store: Shared,
    pub(super) key: Option<(String, String)>,
}

impl InFlight {
    pub(super) fn finish(mut self, saved: Option<Saved>) {
        if let Some(key) = self.key.take() {
            let mut store = lock(&self.store);
            match saved {
                Some(saved) => {
                    if let Some(entry) = store.idempotency.get_mut(&key) {
                        entry.state = IdemState::Done(saved);
                    }
                }
                None => {
                    store.idempotency.remove(&key);
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.store).idempotency.remove(&key);
        }
    }
}

/// What [`claim_key`] decided for a POST/DELETE with an idempotency key.
pub(super) enum Claim {
    /// The key is ours while the request runs.
    Claimed(InFlight),
    /// Answer now: a replay, a 409 (in flight), or a 400 (too long, other parameters).
    Answer(u16, Value, Vec<(&'static str, String)>),
}

pub(super) fn claim_key(store: &Shared, req: &Request, api_key: &str, key: &str) -> Claim {
    if key.len() > 255 {
        let e = ApiError::invalid(
            "Idempotency-Key is too long: keys are at most 255 characters.",
            None,
        )
        .with_code("idempotency_key_too_long");
        return Claim::Answer(400, e.body(), Vec::new());
    }
    // Stripe compares the parsed parameters, not their order.
    let mut sorted = req.params.clone();
    sorted.sort();
    let fingerprint = (req.method.to_string(), req.path.clone(), sorted);
    let map_key = (api_key.to_string(), key.to_string());
    let mut s = lock(store);
    match s.idempotency.get(&map_key) {
        Some(entry) if entry.fingerprint != fingerprint => {
            let e = ApiError {
                kind: "idempotency_error",
                ..ApiError::invalid(
                    format!(
                        "Keys for idempotent requests can only be used with the same parameters \
                         they were first used with. Try using a key other than '{key}' if you \
                         meant to execute a different request."
                    ),
                    None,
                )
            };
            Claim::Answer(400, e.body(), Vec::new())
        }
        Some(IdemEntry {
            state: IdemState::InFlight,
            ..
        }) => {
            let e = ApiError {
                status: 409,
                kind: "idempotency_error",
                ..ApiError::invalid(
                    "There is currently another in-progress request using this \
                     Idempotency-Key. Please try again later.",
                    None,
                )
            }
            .with_code("idempotency_key_in_use");
            Claim::Answer(409, e.body(), vec![("stripe-should-retry", "true".into())])
        }
        Some(IdemEntry {
            state: IdemState::Done(saved),
            ..
        }) => Claim::Answer(
            saved.status,
            saved.body.clone(),
            vec![
                ("idempotent-replayed", "true".into()),
                ("original-request", saved.request_id.clone()),
            ],
        ),
        None => {
            s.idempotency.insert(
                map_key.clone(),
                IdemEntry {
                    fingerprint,
                    state: IdemState::InFlight,
                },
            );
            Claim::Claimed(InFlight {
                store: store.clone(),
                key: Some(map_key),
            })
        }
    }
}

/// Ends a claimed key: Stripe saves successes and 5xx answers for replay, and nothing for
/// 4xx (validation failed, so the request never executed).
pub(super) fn settle(in_flight: Option<InFlight>, status: u16, body: &Value, request_id: &str) {
    let Some(guard) = in_flight else { return };
    let saved = (!(400..500).contains(&status)).then(|| Saved {
        status,
        body: body.clone(),
        request_id: request_id.to_string(),
    });
    guard.finish(saved);
}

impl FakeStripe {
    /// How many idempotency keys a request is executing under right now (claimed and not
    /// yet answered, nor released because the request failed or its client went away).
    /// Tests wait for 0 before retrying with the same key when the first attempt was cut
    /// short on the client's side.
    pub fn keys_in_flight(&self) -> usize {
        lock(&self.store)
            .idempotency
            .values()
            .filter(|e| matches!(e.state, IdemState::InFlight))
            .count()
    }
}
