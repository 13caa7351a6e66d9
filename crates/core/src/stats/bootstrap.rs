//! The paired bootstrap of a mean difference: percentile and BCa intervals (Efron 1987,
//! "Better bootstrap confidence intervals", JASA 82:171–185; Efron & Tibshirani 1993 §14.3),
//! resampling whole cases or whole clusters, in parallel and reproducible from the seed
//! whatever the number of threads: replicate b draws from its own generator seeded with
//! (seed, b).

use rayon::prelude::*;

use super::{Interval, norm_cdf, norm_ppf, quantile_type7};

/// Bootstrap intervals of the mean of `d`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bootstrap {
    pub estimate: f64,
    pub resamples: usize,
    pub se: f64,
    pub percentile: Interval,
    pub bca: Interval,
    /// BCa's bias correction z₀ and acceleration a.
    pub z0: f64,
    pub acceleration: f64,
}

/// The generator of replicate `b`: SplitMix64 of (seed, b), so each replicate's draws do not
/// depend on which thread runs it.
fn replicate_rng(seed: u64, b: u64) -> fastrand::Rng {
    let mut z = seed ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    fastrand::Rng::with_seed(z ^ (z >> 31))
}

/// Paired bootstrap of mean(d) at two-sided level `conf`, resampling cases, or clusters when
/// `clusters` gives each case's cluster index (then the statistic is the mean over the cases of
/// the drawn clusters).
pub fn paired_bootstrap(
    d: &[f64],
    clusters: Option<&[usize]>,
    resamples: usize,
    conf: f64,
    seed: u64,
) -> Bootstrap {
    // Units: (sum, count) per resampled unit (a case, or a cluster).
    let units: Vec<(f64, f64)> = match clusters {
        None => d.iter().map(|v| (*v, 1.0)).collect(),
        Some(c) => {
            let k = c.iter().copied().max().map(|m| m + 1).unwrap_or(0);
            let mut u = vec![(0.0, 0.0); k];
            for (v, &ci) in d.iter().zip(c) {
                u[ci].0 += v;
                u[ci].1 += 1.0;
            }
            u.into_iter().filter(|(_, n)| *n > 0.0).collect()
        }
    };
    let m = units.len();
    let total: (f64, f64) = units.iter().fold((0.0, 0.0), |a, u| (a.0 + u.0, a.1 + u.1));
    let estimate = if total.1 > 0.0 {
        total.0 / total.1
    } else {
        f64::NAN
    };
    if m == 0 {
        let nan = Interval::new(f64::NAN, f64::NAN);
        return Bootstrap {
            estimate,
            resamples: 0,
            se: f64::NAN,
            percentile: nan,
            bca: nan,
            z0: f64::NAN,
            acceleration: f64::NAN,
        };
    }
    let mut stats: Vec<f64> = (0..resamples as u64)
        .into_par_iter()
        .map(|b| {
            let mut rng = replicate_rng(seed, b);
            let (mut s, mut n) = (0.0, 0.0);
            for _ in 0..m {
                let u = units[rng.usize(..m)];
                s += u.0;
                n += u.1;
            }
            s / n
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let bm = super::mean(&stats);
    let se = (stats.iter().map(|v| (v - bm) * (v - bm)).sum::<f64>()
        / (stats.len().max(2) - 1) as f64)
        .sqrt();
    let alpha = (1.0 - conf) / 2.0;
    let percentile = Interval::new(
        quantile_type7(&stats, alpha),
        quantile_type7(&stats, 1.0 - alpha),
    );

    // BCa: bias correction from the share of replicates below the estimate, acceleration
    // from the jackknife (leave one unit out).
    if stats.first() == stats.last() {
        return Bootstrap {
            estimate,
            resamples,
            se,
            percentile,
            bca: percentile,
            z0: 0.0,
            acceleration: 0.0,
        };
    }
    let below = stats.iter().filter(|v| **v < estimate).count() as f64;
    let z0 = norm_ppf((below / resamples as f64).clamp(1e-12, 1.0 - 1e-12));
    let jack: Vec<f64> = units
        .iter()
        .map(|u| {
            if total.1 - u.1 > 0.0 {
                (total.0 - u.0) / (total.1 - u.1)
            } else {
                estimate
            }
        })
        .collect();
    let jm = super::mean(&jack);
    let num: f64 = jack.iter().map(|j| (jm - j).powi(3)).sum();
    let den: f64 = jack.iter().map(|j| (jm - j).powi(2)).sum();
    let a = if den > 0.0 {
        num / (6.0 * den.powf(1.5))
    } else {
        0.0
    };
    let adjust = |zq: f64| norm_cdf(z0 + (z0 + zq) / (1.0 - a * (z0 + zq)));
    let (a1, a2) = (adjust(norm_ppf(alpha)), adjust(norm_ppf(1.0 - alpha)));
    let bca = Interval::new(quantile_type7(&stats, a1), quantile_type7(&stats, a2));
    Bootstrap {
        estimate,
        resamples,
        se,
        percentile,
        bca,
        z0,
        acceleration: a,
    }
}

/// Paired bootstrap percentile interval of a ratio of statistics of two paired samples (e.g.
/// p95 latency candidate / baseline), resampling cases.
pub fn paired_ratio_bootstrap(
    candidate: &[f64],
    baseline: &[f64],
    stat: fn(&mut [f64]) -> f64,
    resamples: usize,
    conf: f64,
    seed: u64,
) -> Interval {
    let n = candidate.len().min(baseline.len());
    if n == 0 {
        return Interval::new(f64::NAN, f64::NAN);
    }
    let mut ratios: Vec<f64> = (0..resamples as u64)
        .into_par_iter()
        .map(|b| {
            let mut rng = replicate_rng(seed, b);
            let mut c = Vec::with_capacity(n);
            let mut bl = Vec::with_capacity(n);
            for _ in 0..n {
                let i = rng.usize(..n);
                c.push(candidate[i]);
                bl.push(baseline[i]);
            }
            stat(&mut c) / stat(&mut bl)
        })
        .collect();
    ratios.retain(|r| r.is_finite());
    ratios.sort_by(f64::total_cmp);
    let alpha = (1.0 - conf) / 2.0;
    Interval::new(
        quantile_type7(&ratios, alpha),
        quantile_type7(&ratios, 1.0 - alpha),
    )
}
