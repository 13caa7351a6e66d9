//! Paired binary outcomes: candidate and baseline pass/fail on the same cases.

use statrs::distribution::{Binomial, ContinuousCDF, Discrete, DiscreteCDF};

use super::{Interval, norm_cdf, norm_ppf};

/// The 2×2 table of paired outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PairedCounts {
    /// Both pass.
    pub n11: u64,
    /// Candidate passes, baseline fails.
    pub n10: u64,
    /// Candidate fails, baseline passes.
    pub n01: u64,
    /// Both fail.
    pub n00: u64,
}

impl PairedCounts {
    /// Count from paired 0/1 outcomes (`true` = pass).
    pub fn from_pairs(candidate: &[bool], baseline: &[bool]) -> PairedCounts {
        let mut c = PairedCounts::default();
        for (&a, &b) in candidate.iter().zip(baseline) {
            match (a, b) {
                (true, true) => c.n11 += 1,
                (true, false) => c.n10 += 1,
                (false, true) => c.n01 += 1,
                (false, false) => c.n00 += 1,
            }
        }
        c
    }

    pub fn n(&self) -> u64 {
        self.n11 + self.n10 + self.n01 + self.n00
    }

    pub fn p_candidate(&self) -> f64 {
        (self.n11 + self.n10) as f64 / self.n() as f64
    }

    pub fn p_baseline(&self) -> f64 {
        (self.n11 + self.n01) as f64 / self.n() as f64
    }

    /// Δ̂ = p̂_candidate − p̂_baseline = (n10 − n01)/n.
    pub fn delta(&self) -> f64 {
        (self.n10 as f64 - self.n01 as f64) / self.n() as f64
    }
}

/// McNemar's exact test and its mid-p version.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Conditional exact two-sided p: min(1, 2·min(P(X ≤ n10), P(X ≥ n10))), X ~ Bin(n10+n01, ½).
    pub two_sided: f64,
    /// Mid-p two-sided (Fagerland, Lydersen & Laake 2013): the exact p minus P(X = n10).
    pub mid_p_two_sided: f64,
    /// P(X ≥ n10): evidence the candidate is better.
    pub one_sided_better: f64,
    /// P(X ≤ n10): evidence the candidate is worse.
    pub one_sided_worse: f64,
}

/// McNemar's exact conditional test (McNemar 1947; exact form as in statsmodels
/// `mcnemar(exact=True)`). With no discordant pairs every p-value is 1.
pub fn mcnemar_exact(c: &PairedCounts) -> McNemar {
    let m = c.n10 + c.n01;
    if m == 0 {
        return McNemar {
            two_sided: 1.0,
            mid_p_two_sided: 1.0,
            one_sided_better: 1.0,
            one_sided_worse: 1.0,
        };
    }
    let bin = Binomial::new(0.5, m).expect("p = 0.5 is valid");
    let k = c.n10;
    let le = bin.cdf(k);
    let ge = if k == 0 { 1.0 } else { 1.0 - bin.cdf(k - 1) };
    let pk = bin.pmf(k);
    let two = (2.0 * le.min(ge)).min(1.0);
    McNemar {
        two_sided: two,
        mid_p_two_sided: (2.0 * le.min(ge) - pk).min(1.0),
        one_sided_better: ge,
        one_sided_worse: le,
    }
}

/// Tango's score statistic for H₀: Δ = δ₀ (Tango 1998, "Equivalence test and confidence
/// interval for the difference in proportions for the paired-sample design", Stat Med 17:
/// 891–908, eqs. 3–4), and the restricted MLE of the baseline-only cell probability.
pub fn tango_z(c: &PairedCounts, delta0: f64) -> (f64, f64) {
    let n = c.n() as f64;
    let (b, cc) = (c.n10 as f64, c.n01 as f64);
    let w = -b - cc + (2.0 * n - b + cc) * delta0;
    let disc = w * w - 8.0 * n * (-cc * delta0 * (1.0 - delta0));
    let q = ((disc.max(0.0)).sqrt() - w) / (4.0 * n);
    let var = n * (2.0 * q + delta0 * (1.0 - delta0));
    let num = b - cc - n * delta0;
    let z = if var <= 0.0 {
        // At the edge of the parameter space: the sign of the numerator decides.
        if num > 0.0 {
            f64::INFINITY
        } else if num < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    } else {
        num / var.sqrt()
    };
    (z, q)
}

/// Tango's score confidence interval for Δ at two-sided level `conf`: the δ₀ whose score test
/// is not rejected, found by bisection (the statistic is monotone in δ₀). Unlike the Wald
/// interval it does not collapse with no discordant pairs.
pub fn tango_interval(c: &PairedCounts, conf: f64) -> Interval {
    tango_interval_inflated(c, norm_ppf(1.0 - (1.0 - conf) / 2.0), 1.0)
}

/// Tango's interval for clustered cases: the score statistic's variance multiplied by the
/// design effect `deff` (≥ 1), i.e. the counts divided by it — Rao & Scott's (1992, "A simple
/// method for the analysis of clustered binary data", Biometrics 48:577–585) adjustment of a
/// score statistic — and `crit` the critical value (z, or t with G − 1 degrees of freedom for
/// G clusters). With `deff` = 1 and `crit` = z₁₋α/₂ it is [`tango_interval`]; a larger `deff`
/// or `crit` only widens it.
pub fn tango_interval_inflated(c: &PairedCounts, crit: f64, deff: f64) -> Interval {
    let scale = deff.max(1.0).sqrt();
    let z_of = |delta: f64| tango_z(c, delta).0 / scale;
    let solve = |target: f64| -> f64 {
        // Find δ with z(δ) = target; z is decreasing in δ on (−1, 1).
        let (mut lo, mut hi) = (-1.0 + 1e-12, 1.0 - 1e-12);
        if z_of(lo) < target {
            return -1.0;
        }
        if z_of(hi) > target {
            return 1.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if z_of(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-15 {
                break;
            }
        }
        0.5 * (lo + hi)
    };
    Interval::new(solve(crit), solve(-crit))
}

/// Nam–Tango non-inferiority test: H₀ Δ ≤ −margin vs H₁ Δ > −margin. Returns (z, one-sided p).
pub fn tango_noninferiority(c: &PairedCounts, margin: f64) -> (f64, f64) {
    let (z, _) = tango_z(c, -margin);
    (z, 1.0 - norm_cdf(z))
}

/// The same test with the variance inflated by `deff` and, for G clusters, the p-value from
/// t with `df` = G − 1 degrees of freedom (as [`tango_interval_inflated`]).
pub fn tango_noninferiority_inflated(
    c: &PairedCounts,
    margin: f64,
    deff: f64,
    df: Option<f64>,
) -> (f64, f64) {
    let z = tango_z(c, -margin).0 / deff.max(1.0).sqrt();
    let p = match df {
        Some(df) => 1.0 - super::t_cdf(z, df),
        None => 1.0 - norm_cdf(z),
    };
    (z, p)
}

/// Wilson's score interval for one proportion (Wilson 1927).
pub fn wilson(successes: u64, n: u64, conf: f64) -> Interval {
    if n == 0 {
        return Interval::new(0.0, 1.0);
    }
    let z = norm_ppf(1.0 - (1.0 - conf) / 2.0);
    let (nf, p) = (n as f64, successes as f64 / n as f64);
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
    Interval::new((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Newcombe's hybrid score interval for a paired difference (Newcombe 1998, "Improved
/// confidence intervals for the difference between binomial proportions based on paired data",
/// Stat Med 17:2635–2650, method 10), with φ* as defined there: the numerator n11·n00 − n10·n01
/// is reduced by n/2 when it exceeds n/2 and set to 0 when it lies in (0, n/2].
pub fn newcombe_interval(c: &PairedCounts, conf: f64) -> (Interval, f64) {
    let n = c.n();
    let (a, b, cc, d) = (c.n11 as f64, c.n10 as f64, c.n01 as f64, c.n00 as f64);
    let p1 = c.p_candidate();
    let p2 = c.p_baseline();
    let w1 = wilson(c.n11 + c.n10, n, conf);
    let w2 = wilson(c.n11 + c.n01, n, conf);
    let denom = ((a + b) * (cc + d) * (a + cc) * (b + d)).sqrt();
    let phi = if denom == 0.0 {
        0.0
    } else {
        let num = a * d - b * cc;
        let half = n as f64 / 2.0;
        let adj = if num > half {
            num - half
        } else if num >= 0.0 {
            0.0
        } else {
            num
        };
        adj / denom
    };
    let dl = ((p1 - w1.lower).powi(2) - 2.0 * phi * (p1 - w1.lower) * (w2.upper - p2)
        + (w2.upper - p2).powi(2))
    .max(0.0)
    .sqrt();
    let du = ((w1.upper - p1).powi(2) - 2.0 * phi * (w1.upper - p1) * (p2 - w2.lower)
        + (p2 - w2.lower).powi(2))
    .max(0.0)
    .sqrt();
    let delta = p1 - p2;
    (
        Interval::new((delta - dl).max(-1.0), (delta + du).min(1.0)),
        phi,
    )
}

/// One-sided Clopper–Pearson lower confidence bound for a proportion (Clopper & Pearson 1934):
/// the α quantile of Beta(x, n − x + 1); 0 when x = 0.
pub fn clopper_pearson_lower(successes: u64, n: u64, conf: f64) -> f64 {
    if successes == 0 || n == 0 {
        return 0.0;
    }
    let beta = statrs::distribution::Beta::new(successes as f64, (n - successes + 1) as f64)
        .expect("valid shape");
    beta.inverse_cdf(1.0 - conf)
}

/// One-sided Wilson lower bound (the lower end of the two-sided interval at 1 − 2α).
pub fn wilson_lower(successes: u64, n: u64, conf: f64) -> f64 {
    wilson(successes, n, 1.0 - 2.0 * (1.0 - conf)).lower
}
