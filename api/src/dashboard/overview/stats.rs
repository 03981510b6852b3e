//! The experiments' statistics: Wilson score intervals and the lift of a variant's save
//! rate over the holdout's with its 95 % confidence interval.

/// 1.959964: the standard normal quantile for a two-sided 95 % interval.
pub(super) const Z95: f64 = 1.959_963_984_540_054;

/// Wilson's score interval of a proportion `x / n` (`n > 0`) at normal quantile `z`.
pub(super) fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The lift of a variant's save rate over the holdout's, `x1/n1 − x2/n2`, with its 95 %
/// confidence interval: Newcombe's hybrid score interval for a difference of two independent
/// proportions (Newcombe 1998, "Interval estimation for the difference between independent
/// proportions", Statistics in Medicine 17, method 10), built from each group's Wilson score
/// interval. Unlike the normal (Wald) approximation it stays inside [−1, 1] and behaves with
/// small groups and rates near 0 or 1. `None` when either group is empty.
///
/// Returns `(lift, lower, upper)` as proportions (multiply by 100 for percentage points).
pub fn lift_interval(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64, f64)> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let (l1, u1) = wilson(x1, n1, Z95);
    let (l2, u2) = wilson(x2, n2, Z95);
    let d = p1 - p2;
    let lower = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let upper = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((d, lower.max(-1.0), upper.min(1.0)))
}
