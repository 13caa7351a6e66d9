//! Always-valid inference for a guarded rollout: a confidence sequence for the difference
//! between a canary and its stable version that holds at every look at once, so that a guard
//! may compare them as often as it likes and still roll back a canary that is not worse with
//! probability at most α over the whole rollout. A fixed-n interval looked at again and again
//! does not: looked at every 50 events, its false-rollback rate is several times α (the tests
//! below show both).
//!
//! What is implemented:
//!
//! - the two-sided **normal-mixture boundary** (Robbins 1970; Howard, Ramdas, McAuliffe and
//!   Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", *Annals of
//!   Statistics* 49(2), §3.2 and eq. (14)), with its mixing precision chosen to be tightest at
//!   a planned intrinsic time (their eq. (15); the `confseq` package's `best_rho`);
//! - applied to the difference of two means with plug-in variances, the **asymptotic
//!   confidence sequence** of Waudby-Smith, Arnold, Wu and Ramdas (2024), "Time-uniform
//!   central limit theory and asymptotic confidence sequences", *Annals of Statistics* 52(6),
//!   Theorem 2.2, in the two-sample form of their §3 (sequential A/B tests). It is the same
//!   test as the mixture sequential probability ratio test of Johari, Koomen, Pekelis and Walsh
//!   (2017/2022), "Peeking at A/B tests", with a normal mixture.
//!
//! (The offline gate's `gate.sequential` looks a planned few times and spends α by
//! Haybittle–Peto; a guard watching live traffic looks whenever it likes, hence this.)
//!
//! The aggregates it reads are [`Moments`]: count, mean and squared deviations, mergeable
//! across time windows (Chan, Golub and LeVeque 1979), so that a guard keeps windows, never
//! events.

use serde::{Deserialize, Serialize};

use super::Interval;

/// Count, mean and sum of squared deviations of one metric on one arm; two windows merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    /// Σ (x − mean)².
    pub m2: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.merge(&Moments {
            n: 1,
            mean: x,
            m2: 0.0,
        });
    }

    /// Chan, Golub and LeVeque's pairwise update: exact for any split of the observations.
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        let (a, b) = (self.n as f64, other.n as f64);
        self.mean += delta * b / n as f64;
        self.m2 += other.m2 + delta * delta * a * b / n as f64;
        self.n = n;
    }

    /// `n` observations of 0 or 1, `ones` of them 1 (errors out of calls).
    pub fn binary(ones: u64, n: u64) -> Moments {
        if n == 0 {
            return Moments::default();
        }
        let p = ones.min(n) as f64 / n as f64;
        Moments {
            n,
            mean: p,
            m2: n as f64 * p * (1.0 - p),
        }
    }

    /// The plug-in variance Σ (x − mean)² / n (what the asymptotic sequence uses).
    pub fn variance(&self) -> Option<f64> {
        (self.n > 0).then(|| self.m2 / self.n as f64)
    }
}

/// How a metric's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// 0 or 1 (an error, a failed tool call): the variance is p̃(1 − p̃) with
    /// p̃ = (x + ½)/(n + 1), so that an arm with no error yet does not claim certainty.
    Binary,
    /// Any number (latency, a feedback score): the plug-in variance.
    Continuous,
}

/// The two-sided normal-mixture boundary at intrinsic time `v` (a process's variance): with
/// mixing precision ρ, P(∃t: |S_t| ≥ u(V_t)) ≤ α where
/// u(v) = √((v + ρ) · (ln(1 + v/ρ) + 2 ln(1/α))), and ρ = v_opt / (2 ln(1/α) + ln(1 + 2 ln(1/α)))
/// makes it tightest at `v_opt` (Howard et al. 2021, eqs. (14)–(15)).
pub fn normal_mixture_bound(v: f64, alpha: f64, v_opt: f64) -> f64 {
    let l = (1.0 / alpha).ln();
    let rho = v_opt / (2.0 * l + (1.0 + 2.0 * l).ln());
    ((v + rho) * ((1.0 + v / rho).ln() + 2.0 * l)).sqrt()
}

/// The always-valid half-width in standard errors after `n` observations of unit variance,
/// tightest at `n_opt`: u(n)/√n. It is wider than the fixed-n z (1.96 at α = 0.05) at every
/// n, which is the price of looking at every n.
pub fn z_boundary(n: f64, alpha: f64, n_opt: f64) -> f64 {
    normal_mixture_bound(n, alpha, n_opt) / n.sqrt()
}

/// The canary's difference from the stable version (canary − stable), with its always-valid
/// interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    pub estimate: f64,
    pub interval: Interval,
    /// Its standard error, √(σ²_c/n_c + σ²_s/n_s).
    pub se: f64,
    /// The effective sample size n_c·n_s/(n_c + n_s): the intrinsic time of the sequence.
    pub effective_n: f64,
}

/// The always-valid interval for mean(canary) − mean(stable) at level 1 − α, tightest when
/// the effective sample size reaches `planned` (the step's minimum samples, say). `None` when
/// an arm is empty or the difference has no spread to measure it by (every value equal).
pub fn difference(
    canary: &Moments,
    stable: &Moments,
    scale: Scale,
    alpha: f64,
    planned: f64,
) -> Option<Difference> {
    let valid = alpha > 0.0 && alpha < 1.0 && planned > 0.0; // false for NaN too
    if canary.n == 0 || stable.n == 0 || !valid {
        return None;
    }
    let variance = |m: &Moments| match scale {
        Scale::Binary => {
            let p = (m.mean * m.n as f64 + 0.5) / (m.n as f64 + 1.0);
            p * (1.0 - p)
        }
        Scale::Continuous => m.variance().unwrap_or(f64::NAN),
    };
    let (nc, ns) = (canary.n as f64, stable.n as f64);
    let se = (variance(canary) / nc + variance(stable) / ns).sqrt();
    if !se.is_finite() || se <= 0.0 {
        return None;
    }
    let effective_n = nc * ns / (nc + ns);
    let estimate = canary.mean - stable.mean;
    let half = z_boundary(effective_n, alpha, planned) * se;
    Some(Difference {
        estimate,
        interval: Interval::new(estimate - half, estimate + half),
        se,
        effective_n,
    })
}

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Errors, latency: higher is worse.
    LowerIsBetter,
    /// A feedback score, a tool call's success: lower is worse.
    HigherIsBetter,
}

/// What the interval says of a canary against a tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// Worse than the stable version by more than the tolerance, at every look's level α.
    Regressed,
    /// Worse by less than the tolerance (or better).
    WithinTolerance,
    /// Neither yet.
    Unclear,
}

/// How much worse the canary is (in the metric's units; negative: better), as an interval.
pub fn worse_by(d: &Difference, direction: Direction) -> Interval {
    match direction {
        Direction::LowerIsBetter => d.interval,
        Direction::HigherIsBetter => Interval::new(-d.interval.upper, -d.interval.lower),
    }
}

/// Regressed when the whole interval of how much worse it is lies beyond `tolerance` (≥ 0),
/// within tolerance when the whole of it lies below.
pub fn call(d: &Difference, direction: Direction, tolerance: f64) -> Call {
    let w = worse_by(d, direction);
    if w.lower > tolerance {
        Call::Regressed
    } else if w.upper < tolerance {
        Call::WithinTolerance
    } else {
        Call::Unclear
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(xs: &[f64]) -> Moments {
        let mut m = Moments::default();
        xs.iter().for_each(|&x| m.add(x));
        m
    }

    #[test]
    fn moments_merge_exactly_in_any_split() {
        let xs: Vec<f64> = (0..100)
            .map(|i| ((i * 37) % 101) as f64 * 1.5 + 1e6)
            .collect();
        let whole = of(&xs);
        let mut parts = of(&xs[..13]);
        parts.merge(&of(&xs[13..71]));
        parts.merge(&of(&xs[71..]));
        parts.merge(&Moments::default());
        let mean = xs.iter().sum::<f64>() / 100.0;
        let m2: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
        for m in [whole, parts] {
            assert_eq!(m.n, 100);
            assert!((m.mean - mean).abs() < 1e-6, "{m:?}");
            assert!((m.m2 - m2).abs() / m2 < 1e-9, "{m:?} vs {m2}");
        }
        assert_eq!(Moments::default().variance(), None);
        // Counts of errors are the same moments as the errors one by one.
        let ones = of(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let counted = Moments::binary(2, 8);
        assert_eq!(counted.n, ones.n);
        assert!((counted.mean - ones.mean).abs() < 1e-15 && (counted.m2 - ones.m2).abs() < 1e-12);
        assert_eq!(Moments::binary(3, 0), Moments::default());
    }

    #[test]
    fn the_boundary_is_wider_than_a_fixed_n_interval_and_tightest_where_planned() {
        let z = crate::stats::norm_ppf(0.975);
        for n in [10.0, 100.0, 450.0, 1e4, 1e6] {
            assert!(z_boundary(n, 0.05, 450.0) > z, "n = {n}");
        }
        // Tightest, relative to the fixed-n width, near the planned time.
        let ratio = |n: f64| z_boundary(n, 0.05, 450.0);
        assert!(ratio(450.0) < ratio(45.0) && ratio(450.0) < ratio(45_000.0));
        // Grows without bound, slowly (as √(log n)).
        assert!(ratio(1e12) > ratio(1e6));
    }

    #[test]
    fn no_interval_without_data_or_spread() {
        let none = Moments::default();
        let some = of(&[1.0, 2.0]);
        assert!(difference(&none, &some, Scale::Continuous, 0.05, 100.0).is_none());
        assert!(difference(&some, &none, Scale::Continuous, 0.05, 100.0).is_none());
        let flat = of(&[3.0; 50]);
        assert!(difference(&flat, &flat, Scale::Continuous, 0.05, 100.0).is_none());
        assert!(difference(&some, &some, Scale::Continuous, 0.0, 100.0).is_none());
        // No error yet on either side is not certainty.
        let zeros = of(&[0.0; 50]);
        let d = difference(&zeros, &zeros, Scale::Binary, 0.05, 100.0).unwrap();
        assert!(d.interval.lower < 0.0 && d.interval.upper > 0.0, "{d:?}");
    }

    #[test]
    fn a_call_reads_the_direction_and_the_tolerance() {
        let d = |lo: f64, hi: f64| Difference {
            estimate: (lo + hi) / 2.0,
            interval: Interval::new(lo, hi),
            se: 1.0,
            effective_n: 100.0,
        };
        use Direction::*;
        assert_eq!(call(&d(0.02, 0.05), LowerIsBetter, 0.01), Call::Regressed);
        assert_eq!(call(&d(0.02, 0.05), LowerIsBetter, 0.03), Call::Unclear);
        assert_eq!(
            call(&d(-0.01, 0.005), LowerIsBetter, 0.01),
            Call::WithinTolerance
        );
        // Higher is better: a canary whose score dropped is worse.
        assert_eq!(call(&d(-0.5, -0.2), HigherIsBetter, 0.1), Call::Regressed);
        assert_eq!(
            call(&d(-0.05, 0.3), HigherIsBetter, 0.1),
            Call::WithinTolerance
        );
        assert_eq!(
            call(&d(-0.5, -0.2), LowerIsBetter, 0.1),
            Call::WithinTolerance
        );
    }

    /// One simulated rollout: events go to the canary with probability `weight`, each an error
    /// with the arm's rate; the guard looks every `every` events up to `horizon`. The canary
    /// events seen when it was called regressed, if it was.
    fn rollout(
        rng: &mut fastrand::Rng,
        rates: (f64, f64),
        weight: f64,
        looks: (usize, usize),
        tolerance: f64,
        interval: impl Fn(&Moments, &Moments) -> Option<Difference>,
    ) -> Option<u64> {
        let (mut canary, mut stable) = (Moments::default(), Moments::default());
        let (every, horizon) = looks;
        for event in 1..=horizon {
            let to_canary = rng.f64() < weight;
            let rate = if to_canary { rates.0 } else { rates.1 };
            let error = f64::from(u8::from(rng.f64() < rate));
            if to_canary {
                canary.add(error);
            } else {
                stable.add(error);
            }
            if event % every == 0
                && canary.n >= 30
                && let Some(d) = interval(&canary, &stable)
                && call(&d, Direction::LowerIsBetter, tolerance) == Call::Regressed
            {
                return Some(canary.n);
            }
        }
        None
    }

    const ALPHA: f64 = 0.05;
    /// The planned effective sample size: 500 canary events at a 10 % split.
    const PLANNED: f64 = 450.0;

    #[test]
    fn looking_as_often_as_it_likes_keeps_false_rollbacks_below_alpha() {
        let mut rng = fastrand::Rng::with_seed(17);
        let runs = 600;
        let looks = (50, 20_000);
        let always_valid =
            |c: &Moments, s: &Moments| difference(c, s, Scale::Binary, ALPHA, PLANNED);
        let mut false_rollbacks = 0;
        for _ in 0..runs {
            false_rollbacks += usize::from(
                rollout(&mut rng, (0.05, 0.05), 0.1, looks, 0.0, always_valid).is_some(),
            );
        }
        let rate = false_rollbacks as f64 / runs as f64;
        let tolerance = 3.0 * (ALPHA * (1.0 - ALPHA) / runs as f64).sqrt();
        println!("A/A, 400 looks: {false_rollbacks}/{runs} false rollbacks = {rate:.3}");
        assert!(rate <= ALPHA + tolerance, "{rate}");

        // The fixed-n interval, looked at as often, rolls back far more often than α: what
        // this module exists to prevent (and proof that the simulation can fail).
        let z = crate::stats::norm_ppf(1.0 - ALPHA / 2.0);
        let naive = |c: &Moments, s: &Moments| {
            let d = difference(c, s, Scale::Binary, ALPHA, PLANNED)?;
            let half = z * d.se;
            Some(Difference {
                interval: Interval::new(d.estimate - half, d.estimate + half),
                ..d
            })
        };
        let mut naive_rollbacks = 0;
        for _ in 0..runs {
            naive_rollbacks +=
                usize::from(rollout(&mut rng, (0.05, 0.05), 0.1, looks, 0.0, naive).is_some());
        }
        let naive_rate = naive_rollbacks as f64 / runs as f64;
        println!("A/A, fixed-n interval at every look: {naive_rate:.3}");
        assert!(naive_rate > 2.0 * ALPHA, "{naive_rate}");
    }

    #[test]
    fn a_real_regression_is_caught_in_nearly_every_rollout() {
        // Errors 5 % → 10 % on the canary, tolerance +1 point, 10 % of traffic.
        let mut rng = fastrand::Rng::with_seed(29);
        let runs = 500;
        let always_valid =
            |c: &Moments, s: &Moments| difference(c, s, Scale::Binary, ALPHA, PLANNED);
        let mut caught: Vec<u64> = (0..runs)
            .filter_map(|_| {
                rollout(
                    &mut rng,
                    (0.10, 0.05),
                    0.1,
                    (50, 20_000),
                    0.01,
                    always_valid,
                )
            })
            .collect();
        caught.sort_unstable();
        let share = caught.len() as f64 / runs as f64;
        let median = caught.get(caught.len() / 2).copied().unwrap_or(0);
        println!(
            "regression 5 % → 10 %: caught in {share:.3} of rollouts, median {median} canary events"
        );
        assert!(share >= 0.95, "{share}");
    }
}
