//! Paired continuous scores: the paired t interval and test, the Wilcoxon signed-rank test and
//! the sign-flip permutation test, on differences dᵢ = candidateᵢ − baselineᵢ.

use super::{Interval, mean, norm_cdf, sd, t_cdf, t_ppf};

/// The paired t analysis of differences (Student 1908).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PairedT {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub se: f64,
    pub t: f64,
    pub df: f64,
    pub p_two_sided: f64,
    pub ci: Interval,
}

/// The paired t test of mean(d) = 0 and the two-sided `conf` interval of mean(d). With fewer
/// than two differences, or all of them equal, the interval is the point itself and p is 1
/// when the mean is 0 (0 otherwise).
pub fn paired_t(d: &[f64], conf: f64) -> PairedT {
    let n = d.len();
    let m = mean(d);
    let s = sd(d);
    let se = s / (n as f64).sqrt();
    let df = n as f64 - 1.0;
    if n < 2 || se.is_nan() || se <= 0.0 {
        let p = if m == 0.0 || m.is_nan() { 1.0 } else { 0.0 };
        return PairedT {
            n,
            mean: m,
            sd: s,
            se: if n < 2 { f64::NAN } else { 0.0 },
            t: f64::NAN,
            df,
            p_two_sided: p,
            ci: Interval::new(m, m),
        };
    }
    let t = m / se;
    let q = t_ppf(1.0 - (1.0 - conf) / 2.0, df);
    PairedT {
        n,
        mean: m,
        sd: s,
        se,
        t,
        df,
        p_two_sided: 2.0 * (1.0 - t_cdf(t.abs(), df)),
        ci: Interval::new(m - q * se, m + q * se),
    }
}

/// One-sided t test of non-inferiority, H₀ mean(d) ≤ −margin: (t, p).
pub fn t_noninferiority(d: &[f64], margin: f64) -> (f64, f64) {
    let n = d.len() as f64;
    let se = sd(d) / n.sqrt();
    let m = mean(d);
    if se.is_nan() || se <= 0.0 {
        return if m > -margin {
            (f64::INFINITY, 0.0)
        } else {
            (f64::NEG_INFINITY, 1.0)
        };
    }
    let t = (m + margin) / se;
    (t, 1.0 - t_cdf(t, n - 1.0))
}

/// How zero differences enter the Wilcoxon test (SciPy's `zero_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroMethod {
    /// Drop zeros (Wilcoxon 1945).
    Wilcox,
    /// Rank zeros with the rest, then drop them (Pratt 1959).
    Pratt,
    /// Rank zeros and split their ranks between the positive and negative sums.
    Zsplit,
}

/// Which distribution of the statistic was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WilcoxonMethod {
    /// The exact permutation distribution of T⁺ over the 2^m sign patterns of the nonzero
    /// differences, conditional on the observed ranks (ties included), counted by dynamic
    /// programming.
    Exact,
    /// The normal approximation with the tie correction of the variance.
    Normal,
}

/// A Wilcoxon signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Wilcoxon {
    pub method: WilcoxonMethod,
    pub zero_method: ZeroMethod,
    pub t_plus: f64,
    pub null_mean: f64,
    pub null_sd: f64,
    /// The normal-approximation z of the two-sided statistic min(T⁺, T⁻), as SciPy reports it.
    pub z: f64,
    pub p_two_sided: f64,
    /// H₁: differences tend to be positive.
    pub p_greater: f64,
}

/// Average ranks of `x` (ties get the mean of their positions), 1-based.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Largest number of nonzero differences for which the exact distribution is used.
pub const WILCOXON_EXACT_MAX: usize = 50;

/// The Wilcoxon signed-rank test (Wilcoxon 1945; zero handling and the normal approximation as
/// in SciPy's `scipy.stats.wilcoxon`, which follows Pratt 1959 and Cureton 1967). `method`
/// `None` picks exact for at most [`WILCOXON_EXACT_MAX`] nonzero differences, else normal.
/// `correction` applies the continuity correction to the normal approximation.
pub fn wilcoxon(
    d: &[f64],
    zero_method: ZeroMethod,
    correction: bool,
    method: Option<WilcoxonMethod>,
) -> Wilcoxon {
    wilcoxon_with_tolerance(d, 0.0, zero_method, correction, method)
}

/// [`wilcoxon`] on the differences rounded to multiples of `tolerance` (none when 0), so that
/// differences equal on paper but not in floating point (0.7 − 0.6 and 0.4 − 0.3) are ties.
/// The rounding happens while the test copies the differences: no second copy.
pub fn wilcoxon_with_tolerance(
    d: &[f64],
    tolerance: f64,
    zero_method: ZeroMethod,
    correction: bool,
    method: Option<WilcoxonMethod>,
) -> Wilcoxon {
    let round = |v: f64| {
        if tolerance > 0.0 {
            (v / tolerance).round() * tolerance
        } else {
            v
        }
    };
    let all = d.iter().map(|v| round(*v));
    let kept: Vec<f64> = match zero_method {
        ZeroMethod::Wilcox => all.filter(|v| *v != 0.0).collect(),
        _ => all.collect(),
    };
    let n_zero = match zero_method {
        ZeroMethod::Wilcox => d.len() - kept.len(),
        _ => kept.iter().filter(|v| **v == 0.0).count(),
    };
    let count = kept.len();
    let abs: Vec<f64> = kept.iter().map(|v| v.abs()).collect();
    let ranks = average_ranks(&abs);
    let mut t_plus: f64 = kept
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let mut t_minus: f64 = kept
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v < 0.0)
        .map(|(_, r)| r)
        .sum();
    let zero_rank_sum: f64 = kept
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v == 0.0)
        .map(|(_, r)| r)
        .sum();
    if zero_method == ZeroMethod::Zsplit {
        t_plus += zero_rank_sum / 2.0;
        t_minus += zero_rank_sum / 2.0;
    }
    let cf = count as f64;
    let mut mn = cf * (cf + 1.0) * 0.25;
    let mut var = cf * (cf + 1.0) * (2.0 * cf + 1.0);
    // Ranks that take part in the tie correction.
    let tie_ranks: Vec<f64> = if zero_method == ZeroMethod::Pratt {
        let z = n_zero as f64;
        mn -= z * (z + 1.0) * 0.25;
        var -= z * (z + 1.0) * (2.0 * z + 1.0);
        kept.iter()
            .zip(&ranks)
            .filter(|(v, _)| **v != 0.0)
            .map(|(_, r)| *r)
            .collect()
    } else {
        ranks.clone()
    };
    let mut sorted = tie_ranks.clone();
    sorted.sort_by(f64::total_cmp);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        if t > 1.0 {
            var -= 0.5 * t * (t * t - 1.0);
        }
        i = j + 1;
    }
    let null_sd = (var / 24.0).max(0.0).sqrt();

    // z of the two-sided statistic, as SciPy reports it.
    let t_two = t_plus.min(t_minus);
    let z_of = |stat: f64, one_sided_greater: bool| -> f64 {
        let mut diff = stat - mn;
        if correction {
            if one_sided_greater {
                diff -= 0.5;
            } else {
                diff -= 0.5 * diff.signum();
            }
        }
        if null_sd > 0.0 { diff / null_sd } else { 0.0 }
    };
    let z = z_of(t_two, false);

    // Exact distribution over the signs of the nonzero differences.
    let signed_ranks: Vec<f64> = kept
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v != 0.0)
        .map(|(_, r)| *r)
        .collect();
    let m = signed_ranks.len();
    let use_exact = match method {
        Some(WilcoxonMethod::Exact) => true,
        Some(WilcoxonMethod::Normal) => false,
        None => m <= WILCOXON_EXACT_MAX,
    };
    if m == 0 {
        return Wilcoxon {
            method: WilcoxonMethod::Exact,
            zero_method,
            t_plus,
            null_mean: mn,
            null_sd,
            z: 0.0,
            p_two_sided: 1.0,
            p_greater: 1.0,
        };
    }
    if use_exact {
        // Ranks are multiples of ½: count sign patterns by their doubled positive-rank sum.
        let doubled: Vec<usize> = signed_ranks
            .iter()
            .map(|r| (r * 2.0).round() as usize)
            .collect();
        let total: usize = doubled.iter().sum();
        let mut ways = vec![0.0f64; total + 1];
        ways[0] = 1.0;
        for &r in &doubled {
            for s in (r..=total).rev() {
                ways[s] += ways[s - r];
            }
        }
        let patterns = 2f64.powi(m as i32);
        // T⁺ over the signed ranks only (zsplit's fixed zero share does not vary).
        let fixed = if zero_method == ZeroMethod::Zsplit {
            zero_rank_sum / 2.0
        } else {
            0.0
        };
        let observed = ((t_plus - fixed) * 2.0).round() as usize;
        let ge: f64 = ways[observed.min(total)..].iter().sum::<f64>() / patterns;
        let le: f64 = ways[..=observed.min(total)].iter().sum::<f64>() / patterns;
        return Wilcoxon {
            method: WilcoxonMethod::Exact,
            zero_method,
            t_plus,
            null_mean: mn,
            null_sd,
            z,
            p_two_sided: (2.0 * ge.min(le)).min(1.0),
            p_greater: ge,
        };
    }
    Wilcoxon {
        method: WilcoxonMethod::Normal,
        zero_method,
        t_plus,
        null_mean: mn,
        null_sd,
        z,
        p_two_sided: (2.0 * norm_cdf(-z.abs())).min(1.0),
        p_greater: 1.0 - norm_cdf(z_of(t_plus, true)),
    }
}

/// A sign-flip permutation test of the mean difference.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SignFlip {
    /// Whether all 2ⁿ sign patterns were enumerated (else Monte Carlo).
    pub exact: bool,
    pub patterns: u64,
    pub p_two_sided: f64,
    pub p_greater: f64,
    pub p_less: f64,
}

/// Largest n for which every sign pattern is enumerated.
pub const SIGN_FLIP_EXACT_MAX: usize = 20;

/// The sign-flip (randomization) test of mean(d) = 0 (Fisher 1935; Good 2005, "Permutation,
/// Parametric and Bootstrap Tests of Hypotheses" §3.1): under H₀ each difference is equally
/// likely to have either sign. p = #{s ∈ {−1,1}ⁿ : stat(s·d) ≥ stat(d)} / 2ⁿ, the identity
/// included; exact for n ≤ 20, otherwise `resamples` random patterns from `seed` with
/// p = (1 + #{…}) / (1 + B). Comparisons allow a relative tolerance of 1e-9 for float ties.
pub fn sign_flip(d: &[f64], resamples: u64, seed: u64) -> SignFlip {
    let n = d.len();
    if n == 0 {
        return SignFlip {
            exact: true,
            patterns: 0,
            p_two_sided: 1.0,
            p_greater: 1.0,
            p_less: 1.0,
        };
    }
    let obs: f64 = d.iter().sum();
    let scale = d
        .iter()
        .map(|v| v.abs())
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let tol = 1e-9 * scale;
    let (mut two, mut ge, mut le) = (0u64, 0u64, 0u64);
    let mut tally = |s: f64| {
        if s.abs() >= obs.abs() - tol {
            two += 1;
        }
        if s >= obs - tol {
            ge += 1;
        }
        if s <= obs + tol {
            le += 1;
        }
    };
    if n <= SIGN_FLIP_EXACT_MAX {
        let total: f64 = d.iter().sum();
        let patterns = 1u64 << n;
        for mask in 0..patterns {
            // Flipping the signs in `mask` subtracts twice their sum.
            let mut flipped = 0.0;
            let mut m = mask;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                flipped += d[i];
                m &= m - 1;
            }
            tally(total - 2.0 * flipped);
        }
        let p = patterns as f64;
        return SignFlip {
            exact: true,
            patterns,
            p_two_sided: two as f64 / p,
            p_greater: ge as f64 / p,
            p_less: le as f64 / p,
        };
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..resamples {
        let s: f64 = d.iter().map(|v| if rng.bool() { *v } else { -*v }).sum();
        tally(s);
    }
    let b = resamples as f64 + 1.0;
    SignFlip {
        exact: false,
        patterns: resamples,
        p_two_sided: (two as f64 + 1.0) / b,
        p_greater: (ge as f64 + 1.0) / b,
        p_less: (le as f64 + 1.0) / b,
    }
}
