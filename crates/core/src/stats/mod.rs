//! Statistics of the gate: pure functions, no I/O. Paired binary outcomes (Tango's score
//! interval, McNemar exact and mid-p, Newcombe's hybrid interval), paired continuous scores
//! (t, Wilcoxon signed-rank, sign-flip permutation, bootstrap), clustered standard errors,
//! one-sample floors, budgets, power and multiplicity — and, for the rollout guard, always-valid
//! confidence sequences (`sequential`). Each function cites its source; each is tested against
//! values computed independently with SciPy/statsmodels or `confseq`
//! (`tests/stats_reference.rs`).

pub mod binary;
pub mod bootstrap;
pub mod budgets;
pub mod continuous;
pub mod power;
pub mod sequential;

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// A two-sided interval [lower, upper].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

impl Interval {
    pub fn new(lower: f64, upper: f64) -> Interval {
        Interval { lower, upper }
    }
}

fn std_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal is valid")
}

/// Φ(x), the standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// Φ⁻¹(p), the standard normal quantile.
pub fn norm_ppf(p: f64) -> f64 {
    std_normal().inverse_cdf(p)
}

/// The CDF of Student's t with `df` degrees of freedom.
pub fn t_cdf(x: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.cdf(x),
        Err(_) => f64::NAN,
    }
}

/// The quantile of Student's t with `df` degrees of freedom.
pub fn t_ppf(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Mean of a slice (NaN when empty).
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (ddof = 1).
pub fn sd(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Quantile with linear interpolation between order statistics (Hyndman & Fan type 7, NumPy's
/// default). `sorted` must be sorted ascending.
pub fn quantile_type7(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Per-case means of k samples (repeats are averaged per case before pairing).
pub fn per_case_means(draws: &[Vec<f64>]) -> Vec<f64> {
    draws.iter().map(|d| mean(d)).collect()
}

/// Holm's step-down adjustment (Holm 1979, "A simple sequentially rejective multiple test
/// procedure"): adjusted pᵢ = max over j ≤ i of min(1, (m − j + 1)·p₍ⱼ₎), returned in the input
/// order. Use it for "improved on at least one metric" claims; the gate's all-metrics PASS is
/// an intersection–union test and needs no adjustment.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let v = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(v);
        adjusted[i] = running;
    }
    adjusted
}

/// Clustered (sandwich) standard error of a mean (Miller 2024, "Adding Error Bars to Evals",
/// eq. 4): SE² = C/(C−1) · (1/n²) · Σ_c (Σ_{i∈c} (xᵢ − x̄))². `clusters[i]` names the cluster
/// of `x[i]`. With a single cluster the correction is undefined: returns NaN.
pub fn clustered_se<K: std::hash::Hash + Eq>(x: &[f64], clusters: &[K]) -> f64 {
    let n = x.len();
    if n == 0 || clusters.len() != n {
        return f64::NAN;
    }
    let m = mean(x);
    let mut sums: std::collections::HashMap<&K, f64> = std::collections::HashMap::new();
    for (v, c) in x.iter().zip(clusters) {
        *sums.entry(c).or_default() += v - m;
    }
    let c = sums.len() as f64;
    if c < 2.0 {
        return f64::NAN;
    }
    let s: f64 = sums.values().map(|v| v * v).sum();
    (c / (c - 1.0) * s / (n * n) as f64).sqrt()
}

/// The one-sided p-value of H₀ Δ ≤ −margin that a family of intervals implies, by test
/// inversion: the α at which the one-sided (1 − α) lower bound — the lower end of the
/// two-sided (1 − 2α) interval — touches −margin. `interval_at(conf)` is the two-sided interval
/// at confidence `conf`; `estimate` the point estimate (where the interval shrinks to).
pub fn inverted_p(interval_at: impl Fn(f64) -> Interval, estimate: f64, margin: f64) -> f64 {
    let target = -margin;
    if estimate == target {
        return 0.5;
    }
    // g(a) is monotone in a ∈ (0, ½): the bound at one-sided level a moves towards the
    // estimate as a grows.
    let above = estimate > target;
    let bound = |a: f64| {
        let i = interval_at(1.0 - 2.0 * a);
        if above { i.lower } else { i.upper }
    };
    let (mut lo, mut hi) = (1e-12, 0.5 - 1e-12);
    let crosses = |a: f64| {
        if above {
            bound(a) > target
        } else {
            bound(a) < target
        }
    };
    if crosses(lo) {
        return if above { lo } else { 1.0 - lo };
    }
    if !crosses(hi) {
        return 0.5;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if crosses(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    let a = 0.5 * (lo + hi);
    if above { a } else { 1.0 - a }
}
