//! Budgets: cost not more than +Y % of the baseline's, and p95 latency compared with a paired
//! bootstrap, with the sample size below which no distribution-free bound exists.

use statrs::distribution::{Binomial, DiscreteCDF};

use super::{Interval, mean, quantile_type7, sd, t_cdf, t_ppf};

/// The cost budget test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CostTest {
    pub mean_baseline: f64,
    pub mean_candidate: f64,
    pub ratio_of_means: f64,
    /// mean of eᵢ = cᵢ − (1+Y)·bᵢ.
    pub mean_excess: f64,
    pub t: f64,
    /// One-sided p of H₀ mean(e) ≥ 0 (over budget).
    pub p: f64,
    /// One-sided upper confidence bound of mean(e).
    pub upper_bound: f64,
    /// One-sided lower confidence bound of mean(e): above 0, over budget with confidence.
    pub lower_bound: f64,
    /// Within budget with confidence: the upper bound is below 0.
    pub within: bool,
}

/// Cost non-inferiority: with eᵢ = cᵢ − (1+Y)·bᵢ, a one-sided t test of H₀ mean(e) ≥ 0 and the
/// one-sided `conf` upper bound of mean(e) (a paired-difference form of the ratio test; Fieller
/// 1954 gives the same decision for a ratio of means).
pub fn cost_budget(candidate: &[f64], baseline: &[f64], plus: f64, conf: f64) -> CostTest {
    let e: Vec<f64> = candidate
        .iter()
        .zip(baseline)
        .map(|(c, b)| c - (1.0 + plus) * b)
        .collect();
    let n = e.len() as f64;
    let me = mean(&e);
    let se = sd(&e) / n.sqrt();
    let (t, p, ub, lb) = if se > 0.0 {
        let t = me / se;
        let half = t_ppf(conf, n - 1.0) * se;
        (t, t_cdf(t, n - 1.0), me + half, me - half)
    } else {
        (f64::NAN, if me < 0.0 { 0.0 } else { 1.0 }, me, me)
    };
    let (mb, mc) = (mean(baseline), mean(candidate));
    CostTest {
        mean_baseline: mb,
        mean_candidate: mc,
        ratio_of_means: mc / mb,
        mean_excess: me,
        t,
        p,
        upper_bound: ub,
        lower_bound: lb,
        within: ub < 0.0,
    }
}

/// The smallest n for which the sample maximum is a one-sided `conf` upper bound of the `q`
/// quantile: 1 − qⁿ ≥ conf.
pub fn min_n_for_max_ucb(q: f64, conf: f64) -> usize {
    ((1.0 - conf).ln() / q.ln()).ceil() as usize
}

/// A distribution-free one-sided `conf` upper bound of the `q` quantile (order statistic
/// X₍ₖ₎ with the smallest k such that P(Bin(n, q) ≤ k − 1) ≥ conf; Conover 1999 §3.2), or
/// `None` when n is too small for any order statistic to be one.
pub fn quantile_upper_bound(sorted: &[f64], q: f64, conf: f64) -> Option<f64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let bin = Binomial::new(q, n).ok()?;
    (1..=n)
        .find(|&k| bin.cdf(k - 1) >= conf)
        .map(|k| sorted[(k - 1) as usize])
}

/// The p95 latency comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyTest {
    pub p95_baseline: f64,
    pub p95_candidate: f64,
    pub ratio: f64,
    /// Paired case-bootstrap percentile interval of the ratio.
    pub ratio_interval: Interval,
    /// Whether n reaches the size at which a distribution-free bound of p95 exists; below it
    /// the comparison is reported as not statistically supported.
    pub supported: bool,
    pub min_n: usize,
}

fn p95(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile_type7(v, 0.95)
}

/// Compare p95 latency (type-7 quantiles) with a paired case bootstrap of the ratio.
pub fn latency_p95(
    candidate: &[f64],
    baseline: &[f64],
    conf: f64,
    resamples: usize,
    seed: u64,
) -> LatencyTest {
    let (mut c, mut b) = (candidate.to_vec(), baseline.to_vec());
    let (pc, pb) = (p95(&mut c), p95(&mut b));
    let min_n = min_n_for_max_ucb(0.95, conf);
    LatencyTest {
        p95_baseline: pb,
        p95_candidate: pc,
        ratio: pc / pb,
        ratio_interval: super::bootstrap::paired_ratio_bootstrap(
            candidate, baseline, p95, resamples, conf, seed,
        ),
        supported: candidate.len() >= min_n,
        min_n,
    }
}
