//! Power of the non-inferiority gate, by the normal approximation of the paired difference
//! (Chow, Shao & Wang 2008, "Sample Size Calculations in Clinical Research", §3.2.2): with
//! per-case difference standard deviation σ_d, the lower one-sided (1−α) bound of Δ is
//! Δ̂ − z₁₋α·σ_d/√n.

use super::{norm_cdf, norm_ppf};

/// The smallest true drop the gate detects with probability `power` (minimum detectable
/// effect): (z₁₋α + z_power)·σ_d/√n.
pub fn minimum_detectable_effect(n: usize, sd_diff: f64, alpha: f64, power: f64) -> f64 {
    (norm_ppf(1.0 - alpha) + norm_ppf(power)) * sd_diff / (n as f64).sqrt()
}

/// The probability that a candidate whose true difference is `delta` passes a margin-`margin`
/// non-inferiority gate: P(Δ̂ − z₁₋α·σ/√n > −margin) = Φ((delta + margin)·√n/σ − z₁₋α).
/// With `delta` = 0: the probability that an **identical** candidate passes.
pub fn pass_probability(n: usize, sd_diff: f64, margin: f64, alpha: f64, delta: f64) -> f64 {
    if sd_diff.is_nan() || sd_diff <= 0.0 {
        return if delta + margin > 0.0 { 1.0 } else { 0.0 };
    }
    norm_cdf((delta + margin) * (n as f64).sqrt() / sd_diff - norm_ppf(1.0 - alpha))
}

/// Cases needed for an identical candidate to pass with probability `power`:
/// ⌈((z₁₋α + z_power)·σ_d / margin)²⌉.
pub fn cases_needed(sd_diff: f64, margin: f64, alpha: f64, power: f64) -> usize {
    let n = ((norm_ppf(1.0 - alpha) + norm_ppf(power)) * sd_diff / margin).powi(2);
    n.ceil().max(1.0) as usize
}

/// Cases a pass/fail metric needs before an identical candidate can pass at all: even with no
/// discordant pair, the score interval's bound on the difference is z²/(n + z²) (z = z₁₋α),
/// which must be inside the margin, so n ≥ z²·(1 − margin)/margin. The normal approximation
/// above says nothing here when σ_d = 0 (a baseline that passes every case).
pub fn binary_floor_cases(margin: f64, alpha: f64) -> usize {
    let z2 = norm_ppf(1.0 - alpha).powi(2);
    (z2 * (1.0 - margin) / margin).ceil().max(1.0) as usize
}

/// σ_d of a paired binary difference from the discordance rates p₁₀ and p₀₁:
/// √(p₁₀ + p₀₁ − (p₁₀ − p₀₁)²).
pub fn binary_sd_diff(p10: f64, p01: f64) -> f64 {
    (p10 + p01 - (p10 - p01).powi(2)).max(0.0).sqrt()
}
