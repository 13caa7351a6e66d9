//! The gate: the policy language (`gate:` in `suite.yaml`) and the decision — PASS, FAIL or
//! INCONCLUSIVE — from paired candidate/baseline scores, with the reasons in plain language.
//!
//! For each gated metric, with [L, U] the two-sided (1 − 2α) interval of Δ = candidate −
//! baseline: PASS if L > −δ, FAIL if U < −δ, INCONCLUSIVE otherwise. Overall: FAIL if any
//! metric, floor or budget fails; PASS only if all pass; otherwise INCONCLUSIVE. Requiring every
//! metric to pass is an intersection–union test (Berger 1982), whose level is the largest of
//! the individual levels: no multiplicity correction is needed for PASS.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::stats::{self, Interval, binary, bootstrap, budgets, continuous, power};

/// The defaults of every gate setting, in one table (documented in `docs/formats.md`).
pub mod defaults {
    /// Non-inferiority margin δ, absolute (5 points on a pass rate).
    pub const MARGIN: f64 = 0.05;
    /// One-sided α of each metric's test.
    pub const ALPHA: f64 = 0.05;
    /// Fewer paired cases than this is INCONCLUSIVE.
    pub const MIN_CASES: usize = 30;
    /// Largest share of errored calls before the run is invalid (exit 4).
    pub const ERROR_BUDGET: f64 = crate::config::defaults::ERROR_BUDGET;
    /// Bootstrap resamples (method `bootstrap`, latency ratios).
    pub const RESAMPLES: usize = 10_000;
    /// Seed of every resampling, so a gate is reproducible.
    pub const SEED: u64 = 20_261_125;
    /// Power the "cases needed" note aims for.
    pub const POWER: f64 = 0.8;
    /// The metric gated when the policy names none.
    pub const METRIC: &str = "pass";
    /// One-sided α of each interim look of a sequential gate (Haybittle–Peto).
    pub const INTERIM_ALPHA: f64 = 0.001;
    /// Fewest groups from which a design effect is estimated. Cluster-robust variances from
    /// fewer clusters are biased down and too noisy to trust (Cameron & Miller 2015, "A
    /// Practitioner's Guide to Cluster-Robust Inference", J. Human Resources 50:317–372, §VI,
    /// put "few" at 20–50); below it, cases are treated as independent and the report says so.
    pub const MIN_CLUSTERS: usize = 20;
    /// Differences closer than this are ties for the rank test.
    pub const TIE_TOLERANCE: f64 = 1e-9;
}

pub mod policy;

pub use policy::{
    CostPolicy, LatencyPolicy, Method, MetricPolicy, OnInconclusive, Policy, SequentialPolicy,
};

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
    /// Too many errored calls: the comparison does not count (exit 4).
    Invalid,
}

/// Paired per-case scores of one metric.
#[derive(Debug, Clone, Default)]
pub struct MetricData {
    pub name: String,
    pub candidate: Vec<f64>,
    pub baseline: Vec<f64>,
    /// Each case's group, for clustered errors (empty: no groups).
    pub groups: Vec<String>,
}

impl MetricData {
    /// dᵢ = candidateᵢ − baselineᵢ.
    pub fn differences(&self) -> Vec<f64> {
        self.candidate
            .iter()
            .zip(&self.baseline)
            .map(|(c, b)| c - b)
            .collect()
    }
}

/// Fail-closed pairing: an errored candidate case scores 0 (its worst), an errored baseline
/// case scores 1 (its best, in the candidate's disfavour).
pub fn fail_closed(candidate: Option<f64>, baseline: Option<f64>) -> (f64, f64) {
    (candidate.unwrap_or(0.0), baseline.unwrap_or(1.0))
}

/// Everything the decision needs.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub metrics: Vec<MetricData>,
    /// Per-case cost (candidate, baseline).
    pub cost: Option<(Vec<f64>, Vec<f64>)>,
    /// Per-case latency in ms (candidate, baseline).
    pub latency: Option<(Vec<f64>, Vec<f64>)>,
    pub calls: usize,
    pub errored_calls: usize,
    /// Breaking schema changes between baseline and candidate.
    pub breaking: Vec<String>,
    /// Metrics the baseline fails only where a check could not apply.
    pub unscorable: BTreeMap<String, Unscorable>,
}

/// A metric the suite cannot score: every baseline failure of it is a check that could not
/// apply (a template that does not render, a schema the version lacks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unscorable {
    /// Baseline outputs that failed the metric.
    pub failures: usize,
    /// The first check that could not apply, and why.
    pub check: String,
    pub reason: String,
}

/// One gated metric's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricResult {
    pub name: String,
    pub n: usize,
    pub binary: bool,
    pub baseline_mean: f64,
    pub candidate_mean: f64,
    pub delta: f64,
    pub interval: Interval,
    /// Two-sided confidence of the interval (1 − 2α).
    pub confidence: f64,
    pub method: String,
    /// One-sided p of the non-inferiority test (H₀: Δ ≤ −δ).
    pub p_noninferiority: f64,
    /// Two-sided p of "no difference" (McNemar exact, or Wilcoxon signed-rank).
    pub p_difference: f64,
    pub margin: f64,
    pub alpha: f64,
    /// Standard deviation of the per-case differences (for the power note).
    pub sd_diff: f64,
    pub verdict: Verdict,
    /// L > 0 and the exact test agrees.
    pub superior: bool,
    pub reason: String,
    /// Cases on which the two sides differ (pass/fail metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discordant: Option<u64>,
    /// Groups the interval accounts for (absent: cases treated as independent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    /// The variance inflation from those groups (≥ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub design_effect: Option<f64>,
    /// What a reader must know about how the interval was made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A floor's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorResult {
    pub metric: String,
    pub floor: f64,
    pub candidate_mean: f64,
    pub lower_bound: f64,
    pub verdict: Verdict,
    pub reason: String,
}

/// The power note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerNote {
    pub metric: String,
    pub n: usize,
    pub sd_diff: f64,
    /// The probability that a candidate identical to the baseline passes.
    pub identical_pass_probability: f64,
    pub minimum_detectable_effect: f64,
    pub cases_needed: usize,
    pub margin: f64,
    /// An identical candidate passes less often than [`defaults::POWER`].
    pub underpowered: bool,
    /// What the estimate comes from.
    pub source: String,
    pub text: String,
}

/// The gate's decision: what reports render and the audit log digests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub n: usize,
    pub metrics: Vec<MetricResult>,
    pub floors: Vec<FloorResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<budgets::CostTest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<budgets::LatencyTest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_verdict: Option<Verdict>,
    pub power: Vec<PowerNote>,
    pub calls: usize,
    pub errored_calls: usize,
    pub breaking: Vec<String>,
    /// INVALID because the suite cannot score what it gates (a configuration problem, exit 2),
    /// not because calls failed (exit 4).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub misconfigured: bool,
}

fn is_binary(x: &[f64]) -> bool {
    x.iter().all(|v| *v == 0.0 || *v == 1.0)
}

fn points(x: f64) -> String {
    format!("{:.1}", (x * 100.0).abs())
}

/// What a power note is estimated from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PowerBasis {
    /// A pass/fail metric: the share of cases on which two runs of an identical prompt would
    /// differ, the design effect of the cases' groups and, when groups count, the t degrees of
    /// freedom of the gate's interval.
    Discordance {
        rate: f64,
        deff: f64,
        df: Option<f64>,
    },
    /// A continuous metric: the standard deviation of the per-case differences.
    Spread { sd: f64 },
}

/// The power note of a metric: how often an identical candidate passes with `n` cases, and how
/// many cases make that at least [`defaults::POWER`] — computed for the method the gate uses
/// (Tango's score test, exactly, for a pass/fail metric; the t test otherwise). `source` says
/// what the estimate comes from, so that two notes from different sources are told apart.
pub fn power_note(
    metric: &str,
    n: usize,
    basis: PowerBasis,
    source: &str,
    margin: f64,
    alpha: f64,
) -> PowerNote {
    let (pass, needed, sd) = match basis {
        PowerBasis::Discordance { rate, deff, df } => (
            power::tango_pass_probability(n, rate, margin, alpha, deff, df),
            power::tango_cases_needed(rate, margin, alpha, defaults::POWER, deff, df),
            rate.max(0.0).sqrt(),
        ),
        PowerBasis::Spread { sd } => {
            let sd = if sd.is_finite() { sd } else { 0.5 };
            (
                power::t_pass_probability(n, sd, margin, alpha),
                power::t_cases_needed(sd, margin, alpha, defaults::POWER),
                sd,
            )
        }
    };
    let mde = power::minimum_detectable_effect(n.max(1), sd, alpha, defaults::POWER);
    let text = format!(
        "with {n} cases an identical prompt passes {:.0} % of the time; {needed} cases are needed for a {}-point margin ({source})",
        pass * 100.0,
        points(margin)
    );
    PowerNote {
        metric: metric.into(),
        n,
        sd_diff: sd,
        identical_pass_probability: pass,
        minimum_detectable_effect: mde,
        cases_needed: needed,
        margin,
        underpowered: pass < defaults::POWER,
        source: source.to_string(),
        text,
    }
}

/// The cases' groups as cluster indices, when they cluster at all: every case has a group,
/// and there are at least two groups and fewer groups than cases.
fn clusters_of(m: &MetricData, n: usize) -> Option<(usize, Vec<usize>)> {
    if m.groups.len() != n {
        return None;
    }
    let mut index: BTreeMap<&String, usize> = BTreeMap::new();
    let ids: Vec<usize> = m
        .groups
        .iter()
        .map(|g| {
            let k = index.len();
            *index.entry(g).or_insert(k)
        })
        .collect();
    let g = index.len();
    (g >= 2 && g < n).then_some((g, ids))
}

/// The design effect of the mean difference: its clustered (CR1 sandwich) variance over its
/// variance with independent cases, never below 1 — clustering may widen an interval, never
/// narrow it. With no spread at all there is nothing to inflate: 1.
fn design_effect(d: &[f64], ids: &[usize]) -> f64 {
    let n = d.len() as f64;
    let iid = stats::sd(d).powi(2) / n;
    let clustered = stats::clustered_se(d, ids).powi(2);
    if iid > 0.0 && iid.is_finite() && clustered.is_finite() {
        (clustered / iid).max(1.0)
    } else {
        1.0
    }
}

/// The smallest interval containing both.
fn hull(a: Interval, b: Interval) -> Interval {
    Interval::new(a.lower.min(b.lower), a.upper.max(b.upper))
}

/// One metric's paired differences, with what every method needs to know about them.
struct Paired<'a> {
    d: &'a [f64],
    n: usize,
    mean_d: f64,
    /// The 2×2 table, for a pass/fail metric.
    counts: Option<binary::PairedCounts>,
    /// The groups accounted for (how many, and each case's), when clustering applies.
    groups: Option<(usize, &'a [usize])>,
    /// Their design effect, and the degrees of freedom they leave (groups − 1).
    deff: Option<f64>,
    df: Option<f64>,
}

impl Paired<'_> {
    fn groups_note(&self) -> String {
        self.groups
            .map(|(g, _)| {
                format!(
                    ", {g} groups, design effect {:.2}",
                    self.deff.unwrap_or(1.0)
                )
            })
            .unwrap_or_default()
    }

    /// Tango's score interval and non-inferiority p (inflated by the design effect): a
    /// pass/fail metric's interval is never narrower than this, so it cannot collapse to a
    /// point.
    fn tango(&self, margin: f64, alpha: f64) -> Option<(Interval, f64)> {
        let c = self.counts?;
        let crit = match self.df {
            Some(df) => stats::t_ppf(1.0 - alpha, df),
            None => stats::norm_ppf(1.0 - alpha),
        };
        let deff = self.deff.unwrap_or(1.0);
        Some((
            binary::tango_interval_inflated(&c, crit, deff),
            binary::tango_noninferiority_inflated(&c, margin, deff, self.df).1,
        ))
    }

    /// The interval, the non-inferiority p and the method's name, by the method chosen.
    fn estimate(
        &self,
        method: Method,
        margin: f64,
        alpha: f64,
        seed: u64,
    ) -> (Interval, f64, String) {
        let conf = 1.0 - 2.0 * alpha;
        let groups_note = self.groups_note();
        let tango = self.tango(margin, alpha);
        match (method, self.counts, tango) {
            (Method::Tango, Some(_), Some((interval, p))) => {
                (interval, p, format!("Tango score interval{groups_note}"))
            }
            (Method::Newcombe, Some(c), Some((floor, floor_p))) => {
                let own = |conf: f64| binary::newcombe_interval(&c, conf).0;
                let p = stats::inverted_p(own, c.delta(), margin);
                if self.groups.is_some() {
                    (
                        hull(own(conf), floor),
                        p.max(floor_p),
                        format!("Newcombe hybrid score interval, widened to Tango's{groups_note}"),
                    )
                } else {
                    (own(conf), p, "Newcombe hybrid score interval".to_string())
                }
            }
            (Method::Bootstrap, _, floor) => self.bootstrap(margin, conf, seed, floor),
            _ => self.t(margin, alpha),
        }
    }

    /// BCa bootstrap (whole groups resampled when they apply), its p from a sign-flip test;
    /// widened to Tango's for a pass/fail metric.
    fn bootstrap(
        &self,
        margin: f64,
        conf: f64,
        seed: u64,
        floor: Option<(Interval, f64)>,
    ) -> (Interval, f64, String) {
        let b = bootstrap::paired_bootstrap(
            self.d,
            self.groups.map(|(_, ids)| ids),
            defaults::RESAMPLES,
            conf,
            seed,
        );
        let shifted: Vec<f64> = self.d.iter().map(|x| x + margin).collect();
        let sf = continuous::sign_flip(&shifted, 20_000, seed);
        let name = format!(
            "BCa bootstrap ({} resamples{})",
            defaults::RESAMPLES,
            if self.groups.is_some() {
                ", whole groups resampled"
            } else {
                ""
            }
        );
        match floor {
            Some((t, tp)) => (
                hull(b.bca, t),
                sf.p_greater.max(tp),
                format!("{name}, widened to Tango's score interval"),
            ),
            None => (b.bca, sf.p_greater, name),
        }
    }

    /// The paired t interval; with groups, on the clustered standard error (never narrower
    /// than the case-level one) and groups − 1 degrees of freedom.
    fn t(&self, margin: f64, alpha: f64) -> (Interval, f64, String) {
        let (d, mean_d) = (self.d, self.mean_d);
        match (self.groups, self.df) {
            (Some((g, ids)), Some(df)) => {
                let se = stats::clustered_se(d, ids).max(stats::sd(d) / (self.n as f64).sqrt());
                let q = stats::t_ppf(1.0 - alpha, df);
                let t = (mean_d + margin) / se;
                let p = if se > 0.0 {
                    1.0 - stats::t_cdf(t, df)
                } else if mean_d > -margin {
                    0.0
                } else {
                    1.0
                };
                (
                    Interval::new(mean_d - q * se, mean_d + q * se),
                    p,
                    format!("t interval, clustered SE ({g} groups)"),
                )
            }
            _ => {
                let t = continuous::paired_t(d, 1.0 - 2.0 * alpha);
                (
                    t.ci,
                    continuous::t_noninferiority(d, margin).1,
                    "paired t interval".to_string(),
                )
            }
        }
    }

    /// "No difference" at all: McNemar exact for pass/fail, else Wilcoxon signed-rank (Pratt);
    /// two-sided, and one-sided for "better".
    fn difference_p(&self) -> (f64, f64) {
        match self.counts {
            Some(c) => {
                let mc = binary::mcnemar_exact(&c);
                (mc.two_sided, mc.one_sided_better)
            }
            None => {
                let w = continuous::wilcoxon_with_tolerance(
                    self.d,
                    defaults::TIE_TOLERANCE,
                    continuous::ZeroMethod::Pratt,
                    false,
                    None,
                );
                (w.p_two_sided, w.p_greater)
            }
        }
    }
}

/// Why a metric is INCONCLUSIVE, when no interval is to blame.
enum Unclear {
    NoPairs,
    /// Every difference is equal, from fewer cases than the policy's minimum.
    TooFew(usize),
    BothZero,
    Wide,
}

fn metric_result(
    m: &MetricData,
    margin: f64,
    alpha: f64,
    method: Method,
    policy: &Policy,
) -> MetricResult {
    let n = m.candidate.len().min(m.baseline.len());
    let d = m.differences();
    let binary_metric = is_binary(&m.candidate) && is_binary(&m.baseline);
    let mut notes = Vec::new();
    // Too few groups say nothing reliable about how cases in a group move together: the
    // case-level method, said so.
    let applied = match clusters_of(m, n) {
        Some((g, ids)) if g >= defaults::MIN_CLUSTERS => Some((g, ids)),
        Some((g, _)) => {
            notes.push(format!(
                "clustering not applied: {g} groups, fewer than the {} a design effect needs; cases are treated as independent",
                defaults::MIN_CLUSTERS
            ));
            None
        }
        None => None,
    };
    let paired = Paired {
        d: &d,
        n,
        mean_d: stats::mean(&d),
        counts: binary_metric.then(|| {
            let c: Vec<bool> = m.candidate.iter().map(|v| *v == 1.0).collect();
            let b: Vec<bool> = m.baseline.iter().map(|v| *v == 1.0).collect();
            binary::PairedCounts::from_pairs(&c, &b)
        }),
        groups: applied.as_ref().map(|(g, ids)| (*g, ids.as_slice())),
        deff: applied.as_ref().map(|(_, ids)| design_effect(&d, ids)),
        df: applied.as_ref().map(|(g, _)| (*g - 1) as f64),
    };
    let method = match method {
        Method::Auto if binary_metric => Method::Tango,
        Method::Auto => Method::T,
        Method::Tango | Method::Newcombe if !binary_metric => Method::T,
        other => other,
    };
    let (interval, p_ni, method_name) = paired.estimate(method, margin, alpha, policy.seed());
    let (p_diff, exact_better_p) = paired.difference_p();
    // A continuous metric whose differences are all equal has a zero standard error: with
    // fewer cases than the policy's minimum that is a coincidence, not certainty.
    let zero_spread = !binary_metric && n > 0 && interval.upper - interval.lower == 0.0;
    let too_few = zero_spread && n < policy.min_cases();
    if too_few {
        notes.push(format!(
            "all {n} differences are equal: a zero spread from fewer than {} cases is not evidence",
            policy.min_cases()
        ));
    }
    let (baseline_mean, candidate_mean) = (stats::mean(&m.baseline), stats::mean(&m.candidate));
    // Both sides scoring nothing tells nothing, however narrow the interval.
    let both_zero = n > 0 && baseline_mean == 0.0 && candidate_mean == 0.0;
    let verdict = if n == 0 || interval.lower.is_nan() || too_few {
        Verdict::Inconclusive
    } else if interval.lower > -margin {
        if both_zero {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        }
    } else if interval.upper < -margin {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    let unclear = if n == 0 {
        Unclear::NoPairs
    } else if too_few {
        Unclear::TooFew(policy.min_cases())
    } else if both_zero {
        Unclear::BothZero
    } else {
        Unclear::Wide
    };
    let mut r = MetricResult {
        name: m.name.clone(),
        n,
        binary: binary_metric,
        baseline_mean,
        candidate_mean,
        discordant: paired.counts.map(|c| c.n10 + c.n01),
        delta: paired.mean_d,
        interval,
        confidence: 1.0 - 2.0 * alpha,
        method: method_name,
        p_noninferiority: p_ni,
        p_difference: p_diff,
        margin,
        alpha,
        sd_diff: stats::sd(&d),
        verdict,
        superior: interval.lower > 0.0 && exact_better_p < alpha,
        reason: String::new(),
        groups: paired.groups.map(|(g, _)| g),
        design_effect: paired.deff,
        notes,
    };
    r.reason = reason(&r, unclear);
    r
}

/// A metric's verdict in a sentence.
fn reason(r: &MetricResult, unclear: Unclear) -> String {
    let (name, interval, margin) = (&r.name, r.interval, r.margin);
    let conf_pct = format!("{:.0} %", (1.0 - r.alpha) * 100.0);
    let side = |x: f64| if x < 0.0 { "worse" } else { "better" };
    match (r.verdict, unclear) {
        (Verdict::Pass, _) => format!(
            "`{name}`: candidate is {} with {conf_pct} confidence, within the {}-point margin",
            if interval.lower < 0.0 {
                format!("at most {} points worse", points(interval.lower))
            } else {
                format!("at least {} points better", points(interval.lower))
            },
            points(margin)
        ),
        (Verdict::Fail, _) => format!(
            "`{name}`: candidate is at least {} points worse with {conf_pct} confidence, beyond the {}-point margin",
            points(interval.upper),
            points(margin)
        ),
        (_, Unclear::NoPairs) => format!("`{name}`: no paired cases"),
        (_, Unclear::TooFew(min)) => format!(
            "`{name}`: cannot tell — every one of the {} cases has the same difference ({:+.1} points), and fewer than {min} cases cannot show that this is more than chance",
            r.n,
            r.delta * 100.0,
        ),
        (_, Unclear::BothZero) => format!(
            "`{name}`: both versions score 0 on every case — nothing to compare; check the suite's checks for this metric"
        ),
        (_, Unclear::Wide) => format!(
            "`{name}`: cannot tell — candidate is between {} points {} and {} points {} ({conf_pct} confidence), and the margin is {} points",
            points(interval.lower),
            side(interval.lower),
            points(interval.upper),
            side(interval.upper),
            points(margin)
        ),
    }
}

/// Whether a sequential gate may stop at an interim look with this decision: the answer is
/// already clear (PASS or FAIL at the interim α).
pub fn stops_early(d: &Decision) -> bool {
    matches!(d.verdict, Verdict::Pass | Verdict::Fail)
}

/// Whether `errored` of `calls` exceed the error budget (a share of calls): a run over it does
/// not count. At the budget exactly is allowed. The one rule for `gate` and `eval`.
pub fn over_error_budget(errored: usize, calls: usize, budget: f64) -> bool {
    calls > 0 && errored as f64 > budget * calls as f64
}

/// Decide.
pub fn decide(policy: &Policy, input: &Input) -> Decision {
    let n = input
        .metrics
        .iter()
        .map(|m| m.candidate.len())
        .max()
        .unwrap_or(0);
    let mut decision = Decision {
        verdict: Verdict::Pass,
        reasons: Vec::new(),
        n,
        metrics: Vec::new(),
        floors: Vec::new(),
        cost: None,
        cost_verdict: None,
        latency: None,
        latency_verdict: None,
        power: Vec::new(),
        calls: input.calls,
        errored_calls: input.errored_calls,
        breaking: input.breaking.clone(),
        misconfigured: false,
    };
    if let Some((reasons, misconfigured)) = refusal(policy, input) {
        decision.verdict = Verdict::Invalid;
        decision.reasons = reasons;
        decision.misconfigured = misconfigured;
        return decision;
    }
    let mut tally = Tally::default();
    if !input.breaking.is_empty() && !policy.allow_breaking.unwrap_or(false) {
        tally.push(
            Verdict::Fail,
            format!("breaking schema change: {}", input.breaking.join("; ")),
        );
    }
    for (name, margin, alpha, method) in policy.gated() {
        let Some(m) = input.metrics.iter().find(|m| m.name == name) else {
            tally.push(
                Verdict::Inconclusive,
                format!("`{name}`: no check scores this metric"),
            );
            continue;
        };
        let r = metric_result(m, margin, alpha, method, policy);
        decision.power.push(power_of(&r));
        tally.push(r.verdict, r.reason.clone());
        decision.metrics.push(r);
    }
    for (metric, floor) in &policy.floors {
        let Some(m) = input.metrics.iter().find(|m| &m.name == metric) else {
            tally.push(
                Verdict::Inconclusive,
                format!("floor on `{metric}`: no check scores this metric"),
            );
            continue;
        };
        let f = floor_result(policy, m, *floor);
        tally.verdicts.push(f.verdict);
        if f.verdict != Verdict::Pass {
            tally.reasons.push(f.reason.clone());
        }
        decision.floors.push(f);
    }
    if let (Some(p), Some((c, b))) = (&policy.cost, &input.cost) {
        let (t, v) = cost_result(p, c, b, &mut tally);
        decision.cost = Some(t);
        decision.cost_verdict = Some(v);
    }
    if let (Some(p), Some((c, b))) = (&policy.latency, &input.latency) {
        let (t, v) = latency_result(p, c, b, policy.seed(), &mut tally);
        decision.latency = Some(t);
        decision.latency_verdict = v;
    }
    if n < policy.min_cases() {
        let needed = decision
            .power
            .iter()
            .map(|p| p.cases_needed)
            .max()
            .unwrap_or(policy.min_cases())
            .max(policy.min_cases());
        tally.push(
            Verdict::Inconclusive,
            format!(
                "only {n} paired cases: at least {} are required, and {needed} are needed for the margin",
                policy.min_cases()
            ),
        );
    }
    decision.verdict = if tally.verdicts.contains(&Verdict::Fail) {
        Verdict::Fail
    } else if tally.verdicts.iter().all(|v| *v == Verdict::Pass) {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    };
    decision.reasons = tally.reasons;
    decision
}

/// Every part's verdict, and the reasons worth telling (a part that passes usually has none).
#[derive(Default)]
struct Tally {
    verdicts: Vec<Verdict>,
    reasons: Vec<String>,
}

impl Tally {
    fn push(&mut self, v: Verdict, reason: String) {
        self.verdicts.push(v);
        self.reasons.push(reason);
    }
}

/// Why the comparison does not count at all (INVALID), failing closed: too many errored
/// calls, or a suite that cannot score what it gates (then `true`: a misconfiguration).
fn refusal(policy: &Policy, input: &Input) -> Option<(Vec<String>, bool)> {
    if over_error_budget(input.errored_calls, input.calls, policy.error_budget()) {
        return Some((
            vec![format!(
                "{} of {} calls errored, over the {:.0} % error budget: the comparison does not count",
                input.errored_calls,
                input.calls,
                policy.error_budget() * 100.0
            )],
            false,
        ));
    }
    let judged: Vec<String> = policy
        .gated()
        .into_iter()
        .map(|g| g.0)
        .chain(policy.floors.keys().cloned())
        .collect();
    let unscorable: Vec<String> = judged
        .iter()
        .filter_map(|m| {
            let u = input.unscorable.get(m)?;
            Some(format!(
                "`{m}` cannot be scored: all {} baseline failures are check `{}` that could not apply ({}) — a problem of the suite or the version, not of the outputs",
                u.failures, u.check, u.reason
            ))
        })
        .collect();
    (!unscorable.is_empty()).then_some((unscorable, true))
}

/// The power note of a gated metric, estimated from the comparison itself.
fn power_of(r: &MetricResult) -> PowerNote {
    let (basis, source) = match r.discordant {
        Some(discordant) => (
            PowerBasis::Discordance {
                rate: discordant as f64 / r.n.max(1) as f64,
                deff: r.design_effect.unwrap_or(1.0),
                df: r.groups.map(|g| (g - 1) as f64),
            },
            format!(
                "estimated from this comparison: {discordant} of {} cases came out differently",
                r.n
            ),
        ),
        None => (
            PowerBasis::Spread { sd: r.sd_diff },
            format!(
                "estimated from this comparison's spread of differences, σ {:.3}",
                r.sd_diff
            ),
        ),
    };
    power_note(&r.name, r.n, basis, &source, r.margin, r.alpha)
}

/// The candidate alone against a floor: its one-sided lower bound (Wilson for pass/fail, t
/// otherwise) at the metric's own α when it is gated, else the default.
fn floor_result(policy: &Policy, m: &MetricData, floor: f64) -> FloorResult {
    let metric = &m.name;
    let n = m.candidate.len();
    let mean = stats::mean(&m.candidate);
    let alpha = policy
        .metrics
        .get(metric)
        .and_then(|p| p.alpha)
        .unwrap_or(defaults::ALPHA);
    let (lower, upper) = if is_binary(&m.candidate) {
        let k = m.candidate.iter().filter(|v| **v == 1.0).count() as u64;
        let w = binary::wilson(k, n as u64, 1.0 - 2.0 * alpha);
        (w.lower, w.upper)
    } else {
        let t = continuous::paired_t(&m.candidate, 1.0 - 2.0 * alpha);
        (t.ci.lower, t.ci.upper)
    };
    let verdict = if lower >= floor {
        Verdict::Pass
    } else if upper < floor {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    let reason = format!(
        "floor `{metric}` ≥ {}: candidate {} ({:.0} % lower bound {})",
        points(floor),
        points(mean),
        (1.0 - alpha) * 100.0,
        points(lower)
    );
    FloorResult {
        metric: metric.clone(),
        floor,
        candidate_mean: mean,
        lower_bound: lower,
        verdict,
        reason,
    }
}

/// The cost budget: the candidate's mean cost over the baseline's, within `+max_increase`.
fn cost_result(
    p: &CostPolicy,
    c: &[f64],
    b: &[f64],
    tally: &mut Tally,
) -> (budgets::CostTest, Verdict) {
    let t = budgets::cost_budget(c, b, p.max_increase, 1.0 - defaults::ALPHA);
    let v = if t.within {
        Verdict::Pass
    } else if t.lower_bound > 0.0 {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    tally.verdicts.push(v);
    if v != Verdict::Pass {
        tally.reasons.push(format!(
            "cost: candidate costs {:+.1} % of the baseline, budget +{:.0} %",
            (t.ratio_of_means - 1.0) * 100.0,
            p.max_increase * 100.0
        ));
    }
    (t, v)
}

/// The p95 latency budget: the ratio's interval against `p95_max_ratio`. Too few cases for a
/// distribution-free bound is INCONCLUSIVE (cannot tell is not a pass), with no verdict of
/// its own.
fn latency_result(
    p: &LatencyPolicy,
    c: &[f64],
    b: &[f64],
    seed: u64,
    tally: &mut Tally,
) -> (budgets::LatencyTest, Option<Verdict>) {
    let t = budgets::latency_p95(c, b, 1.0 - 2.0 * defaults::ALPHA, defaults::RESAMPLES, seed);
    if !t.supported {
        tally.push(
            Verdict::Inconclusive,
            format!(
                "p95 latency ratio {:.2}: not statistically supported with {} cases ({} needed for a distribution-free bound), so the latency budget cannot be shown to hold",
                t.ratio,
                c.len(),
                t.min_n
            ),
        );
        return (t, None);
    }
    let v = if t.ratio_interval.upper <= p.p95_max_ratio {
        tally.verdicts.push(Verdict::Pass);
        Verdict::Pass
    } else if t.ratio_interval.lower > p.p95_max_ratio {
        tally.push(
            Verdict::Fail,
            format!(
                "p95 latency is {:.2}× the baseline's, over the {:.2}× budget",
                t.ratio, p.p95_max_ratio
            ),
        );
        Verdict::Fail
    } else {
        tally.push(
            Verdict::Inconclusive,
            format!(
                "p95 latency ratio {:.2} (interval {:.2}–{:.2}) straddles the {:.2}× budget",
                t.ratio, t.ratio_interval.lower, t.ratio_interval.upper, p.p95_max_ratio
            ),
        );
        Verdict::Inconclusive
    };
    (t, Some(v))
}
