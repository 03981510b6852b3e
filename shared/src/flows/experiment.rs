//! A/B assignment: a deterministic bucket per customer and flow, split into the holdout and
//! the weighted variants of the flow's experiment.

use sha2::{Digest, Sha256};

use super::model::Experiment;

/// Deterministic bucket in 0..10000 for a customer within a flow.
pub fn bucket(flow_id: uuid::Uuid, customer_id: &str) -> u32 {
    let h = Sha256::digest(format!("{flow_id}:{customer_id}").as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 10_000
}

/// The A/B assignment: `(variant key, holdout)`.
pub fn assign(
    exp: Option<&Experiment>,
    flow_id: uuid::Uuid,
    customer_id: &str,
) -> (Option<String>, bool) {
    let Some(exp) = exp else { return (None, false) };
    let b = bucket(flow_id, customer_id);
    let holdout_cut = exp.holdout_percent * 100;
    if b < holdout_cut {
        return (None, true);
    }
    let total: u32 = exp.variants.iter().map(|v| v.weight).sum();
    // Rescale the remaining range onto the weights.
    let pos = ((b - holdout_cut) as u64 * total as u64 / (10_000 - holdout_cut) as u64) as u32;
    let mut acc = 0;
    for v in &exp.variants {
        acc += v.weight;
        if pos < acc {
            return (Some(v.key.clone()), false);
        }
    }
    (exp.variants.last().map(|v| v.key.clone()), false)
}
