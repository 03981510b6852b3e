//! Session shapes, everything that decides the number of offer events: the per-tenant
//! event budgets, each session's outcome, reason and shown/accepted offers, and how many
//! sessions use a budget exactly.

use crate::{
    flow::{DISCOUNT, REASON_WEIGHTS},
    rng::Rng,
};

/// Splits `events` across `n` tenants with weights `1/(i+1)`; the first tenant takes the
/// rounding remainder. Sums to `events` exactly.
pub(crate) fn split_events(events: u64, n: usize) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let w: Vec<f64> = (0..n).map(|i| 1.0 / (i + 1) as f64).collect();
    let total: f64 = w.iter().sum();
    let mut shares: Vec<u64> = w
        .iter()
        .map(|x| (events as f64 * x / total).floor() as u64)
        .collect();
    let assigned: u64 = shares.iter().sum();
    shares[0] += events.saturating_sub(assigned);
    // Floating point could (in theory) over-assign; take any excess from the largest.
    let mut excess = shares.iter().sum::<u64>().saturating_sub(events);
    for s in shares.iter_mut() {
        let take = excess.min(*s);
        *s -= take;
        excess -= take;
    }
    shares
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Saved,
    Canceled,
    Abandoned,
    Deflected,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Saved => "saved",
            Outcome::Canceled => "canceled",
            Outcome::Abandoned => "abandoned",
            Outcome::Deflected => "deflected",
        }
    }
}

pub(crate) const VARIANTS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) holdout: bool,
    /// Index into [`VARIANTS`]; meaningless for holdout sessions.
    pub(crate) variant: u8,
    /// `None`: still in progress.
    pub(crate) outcome: Option<Outcome>,
    pub(crate) reason: Option<u8>,
    /// The accepted offer (saved sessions only).
    pub(crate) accepted: Option<u8>,
    pub(crate) shown: [u8; 3],
    pub(crate) nshown: u8,
}

impl Shape {
    pub(crate) fn events(&self) -> u64 {
        self.nshown as u64 + self.accepted.is_some() as u64
    }
}

/// Draws one session's shape; `remaining` (≥ 1) is the tenant's unused event budget, and
/// the shape never needs more than that (the last session is trimmed).
pub(crate) fn draw_shape(rng: &mut Rng, remaining: u64) -> Shape {
    let holdout = rng.chance(0.10);
    let variant = if holdout { 0 } else { rng.below(2) as u8 };
    // saved 30 %, canceled 40 %, abandoned 20 %, deflected 5 %, in progress 5 %.
    let mut outcome = match rng.weighted(&[30, 40, 20, 5, 5]) {
        0 => Some(Outcome::Saved),
        1 => Some(Outcome::Canceled),
        2 => Some(Outcome::Abandoned),
        3 => Some(Outcome::Deflected),
        _ => None,
    };
    // The holdout sees no offer, so it cannot be saved by one.
    if holdout && outcome == Some(Outcome::Saved) {
        outcome = Some(Outcome::Canceled);
    }
    let mut accepted = (outcome == Some(Outcome::Saved)).then(|| {
        if variant == 0 {
            // discount 45 % / pause 30 % / plan change 15 % / trial extension 10 %.
            rng.weighted(&[45, 30, 15, 10]) as u8
        } else {
            // Variant b only offers pause2 and downgrade.
            1 + rng.weighted(&[30, 15]) as u8
        }
    });
    // The discount is shown only for too_expensive, so discount saves carry that reason.
    let reason = if accepted == Some(DISCOUNT) {
        Some(0)
    } else if rng.chance(0.9) {
        Some(rng.weighted(&REASON_WEIGHTS) as u8)
    } else {
        None
    };
    let mut shape = Shape {
        holdout,
        variant,
        outcome,
        reason,
        accepted,
        shown: [0; 3],
        nshown: 0,
    };
    if holdout {
        return shape;
    }
    let mut eligible = [0u8; 4];
    let mut ne = 0;
    let offers: &[u8] = if variant == 0 { &[0, 1, 2, 3] } else { &[1, 2] };
    for &o in offers {
        if o != DISCOUNT || reason == Some(0) {
            eligible[ne] = o;
            ne += 1;
        }
    }
    let mut k = (1 + rng.below(3) as usize).min(ne);
    // Trim to the budget.
    let need = k as u64 + accepted.is_some() as u64;
    if need > remaining {
        if accepted.is_some() && remaining >= 2 {
            k = remaining as usize - 1;
        } else {
            if accepted.is_some() {
                accepted = None;
                outcome = Some(Outcome::Canceled);
            }
            k = (remaining as usize).min(k);
        }
        shape.accepted = accepted;
        shape.outcome = outcome;
    }
    // Partial Fisher-Yates: the first k of `eligible` become the shown offers.
    for i in 0..k {
        let j = i + rng.below((ne - i) as u64) as usize;
        eligible.swap(i, j);
    }
    if let Some(a) = accepted {
        if !eligible[..k].contains(&a) {
            let slot = rng.below(k as u64) as usize;
            eligible[slot] = a;
        }
    }
    shape.shown[..k].copy_from_slice(&eligible[..k]);
    shape.nshown = k as u8;
    shape
}

/// The number of sessions needed to use `budget` events with shapes from `rng`.
pub(crate) fn count_sessions(mut rng: Rng, budget: u64) -> u64 {
    let mut remaining = budget;
    let mut n = 0;
    while remaining > 0 {
        remaining -= draw_shape(&mut rng, remaining).events();
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::mix;

    #[test]
    fn events_split_exactly_and_unevenly() {
        for (events, n) in [(0, 1), (1, 5), (7, 3), (1_000_000, 5), (999_999_937, 17)] {
            let s = split_events(events, n);
            assert_eq!(s.len(), n);
            assert_eq!(s.iter().sum::<u64>(), events);
            assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
        }
        let s = split_events(1_000_000, 5);
        assert!(s[0] > 2 * s[2], "{s:?}");
    }

    #[test]
    fn shapes_use_the_budget_exactly_and_follow_the_flow() {
        for budget in (1..300).chain([10_000, 123_457]) {
            let mut rng = Rng::new(mix(7, budget));
            let n = count_sessions(rng.clone(), budget);
            let mut remaining = budget;
            for _ in 0..n {
                let s = draw_shape(&mut rng, remaining);
                assert!(s.events() <= remaining);
                remaining -= s.events();
                if s.holdout {
                    assert_eq!(s.events(), 0);
                    assert_ne!(s.outcome, Some(Outcome::Saved));
                } else {
                    assert!(s.nshown >= 1);
                }
                let shown = &s.shown[..s.nshown as usize];
                for (i, o) in shown.iter().enumerate() {
                    assert!(!shown[..i].contains(o), "distinct offers");
                    if s.variant == 1 {
                        assert!([1, 2].contains(o), "variant b shows pause2/downgrade");
                    }
                    if *o == DISCOUNT {
                        assert_eq!(s.reason, Some(0), "disc20 needs too_expensive");
                    }
                }
                assert_eq!(s.accepted.is_some(), s.outcome == Some(Outcome::Saved));
                if let Some(a) = s.accepted {
                    assert!(shown.contains(&a));
                }
            }
            assert_eq!(remaining, 0);
        }
    }

    #[test]
    fn shape_distribution_is_roughly_as_specified() {
        let mut rng = Rng::new(1);
        let n = 200_000;
        let (mut saved, mut canceled, mut open, mut holdout, mut reason) = (0, 0, 0, 0, 0);
        for _ in 0..n {
            let s = draw_shape(&mut rng, u64::MAX);
            saved += (s.outcome == Some(Outcome::Saved)) as u32;
            canceled += (s.outcome == Some(Outcome::Canceled)) as u32;
            open += s.outcome.is_none() as u32;
            holdout += s.holdout as u32;
            reason += s.reason.is_some() as u32;
        }
        let pct = |x: u32| x as f64 * 100.0 / n as f64;
        assert!((pct(holdout) - 10.0).abs() < 0.5);
        assert!((pct(saved) - 27.0).abs() < 0.7); // 30 % outside the holdout
        assert!((pct(canceled) - 43.0).abs() < 0.7);
        assert!((pct(open) - 5.0).abs() < 0.5);
        assert!((pct(reason) - 90.6).abs() < 0.7);
    }
}
