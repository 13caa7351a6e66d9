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

/// The probability that a candidate identical to the baseline passes Tango's non-inferiority
/// test (the gate's method for a pass/fail metric) on `n` cases, when a share `discordance` of
/// cases come out differently on the two sides, half each way — computed exactly, not by the
/// normal approximation: the number of discordant cases D is Binomial(n, discordance), the
/// candidate's wins among them Binomial(D, ½), and for each D the test passes from a smallest
/// number of wins on (Tango's statistic grows with them). `deff` inflates the variance as
/// the clustered gate does.
pub fn tango_pass_probability(
    n: usize,
    discordance: f64,
    margin: f64,
    alpha: f64,
    deff: f64,
    df: Option<f64>,
) -> f64 {
    use statrs::distribution::{Binomial, DiscreteCDF};
    if n == 0 {
        return 0.0;
    }
    // Gates simulated by the thousand ask the same questions again: remember the answers.
    type Key = (usize, u64, u64, u64, u64, u64);
    static SEEN: std::sync::Mutex<Option<std::collections::HashMap<Key, f64>>> =
        std::sync::Mutex::new(None);
    let key: Key = (
        n,
        discordance.to_bits(),
        margin.to_bits(),
        alpha.to_bits(),
        deff.to_bits(),
        df.map(f64::to_bits).unwrap_or(u64::MAX),
    );
    if let Some(v) = SEEN
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).copied()))
    {
        return v;
    }
    let q = discordance.clamp(0.0, 1.0);
    let crit = match df {
        Some(df) => super::t_ppf(1.0 - alpha, df),
        None => norm_ppf(1.0 - alpha),
    };
    let passes = |d: u64, k: u64| {
        let c = super::binary::PairedCounts {
            n11: n as u64 - d,
            n10: k,
            n01: d - k,
            n00: 0,
        };
        super::binary::tango_noninferiority_inflated(&c, margin, deff, None).0 > crit
    };
    // The fewest wins among d discordant cases that pass, if any do. It moves by about half a
    // win per discordant case, so each is found from the last one's in a step or two.
    let mut guess: u64 = 0;
    let mut threshold = |d: u64| -> Option<u64> {
        if !passes(d, d) {
            return None;
        }
        let mut k = guess.min(d);
        if passes(d, k) {
            while k > 0 && passes(d, k - 1) {
                k -= 1;
            }
        } else {
            while !passes(d, k) {
                k += 1;
            }
        }
        guess = k;
        Some(k)
    };
    let nf = n as f64;
    let (lo, hi) = if q == 0.0 {
        (0, 0)
    } else {
        let (mean, sd) = (nf * q, (nf * q * (1.0 - q)).sqrt());
        (
            (mean - 10.0 * sd - 1.0).floor().max(0.0) as u64,
            ((mean + 10.0 * sd + 1.0).ceil() as u64).min(n as u64),
        )
    };
    // P(D = d) for d from lo up, by the ratio of successive binomial terms (one log-gamma
    // evaluation, not one per term).
    let ln_pmf = |d: u64| -> f64 {
        let (n, d) = (nf, d as f64);
        ln_gamma(n + 1.0) - ln_gamma(d + 1.0) - ln_gamma(n - d + 1.0)
            + d * q.ln()
            + (n - d) * (1.0 - q).ln()
    };
    let mut weight = if q == 0.0 { 1.0 } else { ln_pmf(lo).exp() };
    let mut total = 0.0;
    for d in lo..=hi {
        if d > lo && q > 0.0 {
            weight *= (nf - (d - 1) as f64) / d as f64 * q / (1.0 - q);
        }
        if weight < 1e-15 {
            continue;
        }
        let Some(k) = threshold(d) else { continue };
        let wins = if d == 0 {
            1.0
        } else {
            let half = Binomial::new(0.5, d).expect("p = ½ is valid");
            if k == 0 { 1.0 } else { 1.0 - half.cdf(k - 1) }
        };
        total += weight * wins;
    }
    let total = total.clamp(0.0, 1.0);
    if let Ok(mut m) = SEEN.lock() {
        let m = m.get_or_insert_with(Default::default);
        // Bounded: a long-lived process forgets rather than grows.
        if m.len() >= 100_000 {
            m.clear();
        }
        m.insert(key, total);
    }
    total
}

fn ln_gamma(x: f64) -> f64 {
    statrs::function::gamma::ln_gamma(x)
}

/// The fewest cases at which an identical candidate passes Tango's test with probability at
/// least `power` (see [`tango_pass_probability`]). The probability saw-tooths a little with n;
/// the n returned is one where the promise holds.
pub fn tango_cases_needed(
    discordance: f64,
    margin: f64,
    alpha: f64,
    power: f64,
    deff: f64,
    df: Option<f64>,
) -> usize {
    const MOST: usize = 10_000_000;
    let p = |n: usize| tango_pass_probability(n, discordance, margin, alpha, deff, df);
    let mut hi = binary_floor_cases(margin, alpha).max(1);
    while p(hi) < power {
        if hi >= MOST {
            return MOST;
        }
        hi = (hi * 2).min(MOST);
    }
    smallest_reaching(hi / 2, hi, p, power)
}

/// The smallest n in (lo, hi] with p(n) ≥ power, by bisection, given p(hi) ≥ power and p
/// (about) increasing.
fn smallest_reaching(mut lo: usize, mut hi: usize, p: impl Fn(usize) -> f64, power: f64) -> usize {
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if p(mid) >= power {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The probability that an identical candidate passes the paired t gate on `n` cases with
/// difference standard deviation `sd`: Φ(δ·√n/σ − t₁₋α,ₙ₋₁) (the normal approximation with
/// Student's critical value).
pub fn t_pass_probability(n: usize, sd: f64, margin: f64, alpha: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    if sd.is_nan() || sd <= 0.0 {
        return if margin > 0.0 { 1.0 } else { 0.0 };
    }
    let q = super::t_ppf(1.0 - alpha, n as f64 - 1.0);
    norm_cdf(margin * (n as f64).sqrt() / sd - q)
}

/// The fewest cases at which [`t_pass_probability`] reaches `power` (it grows with n: the
/// normal approximation's n is a lower bound, and a binary search finds the rest).
pub fn t_cases_needed(sd: f64, margin: f64, alpha: f64, power: f64) -> usize {
    const MOST: usize = 10_000_000;
    let p = |n: usize| t_pass_probability(n, sd, margin, alpha);
    let mut lo = cases_needed(sd, margin, alpha, power).max(2) - 1;
    let mut hi = (lo + 1).max(2);
    while p(hi) < power {
        if hi >= MOST {
            return MOST;
        }
        lo = hi;
        hi = (hi * 2).min(MOST);
    }
    smallest_reaching(lo, hi, p, power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_tango_power_agrees_with_the_floor_and_grows_with_n() {
        // No discordance: an identical candidate passes exactly from the floor on.
        let floor = binary_floor_cases(0.05, 0.05);
        assert_eq!(
            tango_pass_probability(floor - 1, 0.0, 0.05, 0.05, 1.0, None),
            0.0
        );
        assert_eq!(
            tango_pass_probability(floor, 0.0, 0.05, 0.05, 1.0, None),
            1.0
        );
        assert_eq!(tango_cases_needed(0.0, 0.05, 0.05, 0.8, 1.0, None), floor);
        let n = tango_cases_needed(0.2, 0.05, 0.05, 0.8, 1.0, None);
        assert!(tango_pass_probability(n, 0.2, 0.05, 0.05, 1.0, None) >= 0.8);
        assert!(tango_pass_probability(n / 2, 0.2, 0.05, 0.05, 1.0, None) < 0.8);
        // A design effect inflates the cases needed (less than proportionally: it widens the
        // null's spread, not the estimate's).
        let n2 = tango_cases_needed(0.2, 0.05, 0.05, 0.8, 2.0, None);
        assert!(n2 as f64 > 1.5 * n as f64, "{n} vs {n2}");
        assert!(tango_pass_probability(n2, 0.2, 0.05, 0.05, 2.0, None) >= 0.8);
    }

    #[test]
    fn the_t_power_reaches_its_promise_at_the_fewest_cases() {
        for sd in [0.05, 0.2, 0.35, 0.9] {
            let n = t_cases_needed(sd, 0.05, 0.05, 0.8);
            assert!(t_pass_probability(n, sd, 0.05, 0.05) >= 0.8, "{sd}: {n}");
            assert!(
                n == 2 || t_pass_probability(n - 1, sd, 0.05, 0.05) < 0.8,
                "{sd}: {n}"
            );
            // The t quantile asks for at least as many as the normal approximation.
            assert!(n >= cases_needed(sd, 0.05, 0.05, 0.8), "{sd}: {n}");
        }
    }
}
