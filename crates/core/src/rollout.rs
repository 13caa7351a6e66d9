//! Guarded rollouts: the policy (`rollout:` in `promptgate.yaml`) and the guard's decision at
//! one look — hold, advance the canary to its next weight, finish, roll back, or pause —
//! from the signals of the canary and stable versions since the rollout started. A pure
//! function of its inputs, like the gate's decision; `serve` looks, acts and records.
//!
//! Each metric's comparison is an always-valid confidence sequence
//! ([`crate::stats::sequential`]) over every window since the rollout started (both versions
//! are observed over the same minutes, whatever the weight), at level α / (number of metrics):
//! the probability of ever rolling back a canary that is worse by no more than any tolerance
//! is at most α, however often the guard looks and however long the rollout runs. Advancing
//! needs every metric shown within its tolerance *and* the step's minimum time and canary
//! calls; a step that still cannot tell after its maximum time pauses and alerts — it never
//! advances on no evidence.

use serde::{Deserialize, Serialize};

use crate::artifact::locate::KeyPath;
use crate::error::{Diagnostic, Result};
use crate::signals::Window;
use crate::stats::Interval;
use crate::stats::sequential::{self, Call, Direction, Moments, Scale};

/// The built-in metrics, read from every span.
pub const ERROR_RATE: &str = "error_rate";
pub const LATENCY_MS: &str = "latency_ms";

/// `rollout:` — how a canary is rolled out and guarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The canary's weight at each step, in percent, increasing; the last is 100 (the canary
    /// becomes the label's only target).
    #[serde(default = "default_steps")]
    pub steps: Vec<u8>,
    /// Seconds each step lasts at least before it may advance.
    #[serde(default = "default_min_step_secs")]
    pub min_step_secs: u64,
    /// Canary calls each step needs at least before it may advance.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// A step that cannot tell after this many seconds pauses and alerts.
    #[serde(default = "default_max_step_secs")]
    pub max_step_secs: u64,
    /// Probability of ever rolling back a canary that is within every tolerance.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// What a regression does: roll the label back to the stable version, or pause there.
    #[serde(default)]
    pub on_regression: OnRegression,
    /// What is compared (default: the error rate, at most one point worse).
    #[serde(default = "default_metrics")]
    pub metrics: Vec<MetricRule>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            steps: default_steps(),
            min_step_secs: default_min_step_secs(),
            min_samples: default_min_samples(),
            max_step_secs: default_max_step_secs(),
            alpha: default_alpha(),
            on_regression: OnRegression::default(),
            metrics: default_metrics(),
        }
    }
}

fn default_steps() -> Vec<u8> {
    vec![5, 25, 50, 100]
}
fn default_min_step_secs() -> u64 {
    600
}
fn default_min_samples() -> u64 {
    500
}
fn default_max_step_secs() -> u64 {
    4 * 3600
}
fn default_alpha() -> f64 {
    0.05
}
fn default_metrics() -> Vec<MetricRule> {
    vec![MetricRule {
        metric: ERROR_RATE.into(),
        worse: Some(Worse::Higher),
        tolerance: Some(0.01),
        tolerance_pct: None,
    }]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRegression {
    #[default]
    Rollback,
    Pause,
}

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Worse {
    Higher,
    Lower,
}

/// One compared metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRule {
    /// `error_rate`, `latency_ms` (the mean), or a numeric span attribute or feedback metric
    /// (`app.feedback.score`).
    pub metric: String,
    /// Which way it gets worse (`higher` for the built-ins; required for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worse: Option<Worse>,
    /// How much worse the canary may be, in the metric's units (0.01: one point of error rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// … or in percent of the stable version's value (10: at most 10 % slower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_pct: Option<f64>,
}

impl MetricRule {
    fn direction(&self) -> Direction {
        match self.worse.unwrap_or(Worse::Higher) {
            Worse::Higher => Direction::LowerIsBetter,
            Worse::Lower => Direction::HigherIsBetter,
        }
    }

    fn builtin(&self) -> bool {
        self.metric == ERROR_RATE || self.metric == LATENCY_MS
    }

    /// The moments compared, and how they are read.
    fn moments(&self, w: &Window) -> Option<(Moments, Scale)> {
        match self.metric.as_str() {
            ERROR_RATE => Some((w.error_moments(), Scale::Binary)),
            LATENCY_MS => Some((w.latency_ms, Scale::Continuous)),
            name => w.metrics.get(name).map(|m| (*m, Scale::Continuous)),
        }
    }
}

impl Policy {
    /// Every problem with the policy, each placed at its key (`rollout.steps`,
    /// `rollout.metrics[1].tolerance`): `place` turns the key path into a location.
    pub fn problems(&self, place: impl Fn(Diagnostic, KeyPath) -> Diagnostic) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let key = |k: &str| KeyPath::default().key("rollout").key(k);
        let increasing = self.steps.windows(2).all(|w| w[0] < w[1]);
        if self.steps.is_empty()
            || !increasing
            || self.steps.last() != Some(&100)
            || self.steps[0] == 0
        {
            out.push(place(
                Diagnostic::error(format!(
                    "`steps` must be canary weights in percent, increasing, ending at 100 (got {:?})",
                    self.steps
                ))
                .hint("e.g. `steps: [5, 25, 50, 100]`"),
                key("steps"),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            out.push(place(
                Diagnostic::error(format!(
                    "`alpha` must be between 0 and 0.5, not {}",
                    self.alpha
                ))
                .hint("the chance of rolling back a good canary: 0.05 is usual"),
                key("alpha"),
            ));
        }
        if self.max_step_secs < self.min_step_secs {
            out.push(place(
                Diagnostic::error(format!(
                    "`max_step_secs` ({}) is shorter than `min_step_secs` ({}): no step could ever advance",
                    self.max_step_secs, self.min_step_secs
                )),
                key("max_step_secs"),
            ));
        }
        if self.min_samples == 0 {
            out.push(place(
                Diagnostic::error("`min_samples` must be at least 1")
                    .hint("canary calls a step needs before it may advance, e.g. 500"),
                key("min_samples"),
            ));
        }
        if self.metrics.is_empty() {
            out.push(place(
                Diagnostic::error("a rollout compares at least one metric")
                    .hint("e.g. `metrics: [{ metric: error_rate, tolerance: 0.01 }]`"),
                key("metrics"),
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let at = |d: Diagnostic, k: &str| place(d, key("metrics").index(i).key(k));
            match (m.tolerance, m.tolerance_pct) {
                (Some(_), Some(_)) => out.push(at(
                    Diagnostic::error(format!(
                        "metric `{}` has both `tolerance` and `tolerance_pct`",
                        m.metric
                    ))
                    .hint("keep one: an amount in the metric's units, or a percent of the stable version's"),
                    "tolerance_pct",
                )),
                (None, None) => out.push(at(
                    Diagnostic::error(format!("metric `{}` has no tolerance", m.metric)).hint(
                        "how much worse the canary may be: `tolerance: 0.01` (units) or `tolerance_pct: 10`",
                    ),
                    "metric",
                )),
                (Some(t), None) | (None, Some(t)) if !(t >= 0.0 && t.is_finite()) => {
                    out.push(at(
                        Diagnostic::error(format!(
                            "metric `{}`: a tolerance is a non-negative number, not {t}",
                            m.metric
                        )),
                        if m.tolerance.is_some() { "tolerance" } else { "tolerance_pct" },
                    ))
                }
                _ => {}
            }
            if !m.builtin() && m.worse.is_none() {
                out.push(at(
                    Diagnostic::error(format!(
                        "metric `{}` does not say which way is worse",
                        m.metric
                    ))
                    .hint("add `worse: lower` (a score) or `worse: higher` (a cost)"),
                    "metric",
                ));
            }
        }
        out
    }

    /// The numeric attributes the signals must keep for this policy.
    pub fn tracked(&self) -> impl Iterator<Item = String> + '_ {
        self.metrics
            .iter()
            .filter(|m| !m.builtin())
            .map(|m| m.metric.clone())
    }
}

/// Where a rollout is: its step, and when it and the step started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Index into the policy's steps.
    pub step: usize,
    pub started_unix_s: u64,
    pub step_started_unix_s: u64,
}

/// One metric at one look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricLook {
    pub metric: String,
    pub canary: Option<f64>,
    pub stable: Option<f64>,
    pub canary_n: u64,
    pub stable_n: u64,
    /// How much worse the canary is, with its always-valid interval (negative: better).
    pub worse_by: Option<f64>,
    pub interval: Option<Interval>,
    /// The tolerance in the metric's units.
    pub tolerance: Option<f64>,
    pub call: Call,
}

/// What the guard does after a look.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Keep the current weight; `why` says what it waits for.
    Hold { why: String },
    /// Move the canary to its next weight.
    Advance { weight: u8 },
    /// Make the canary the label's only target.
    Finish,
    /// Send every call back to the stable version.
    RollBack { why: String },
    /// Stop where it is and alert.
    Pause { why: String },
}

/// The guard's decision at `now`, from the canary's and stable version's signals since the
/// rollout started (`canary_step_calls`: the canary's calls since the step started).
pub fn decide(
    policy: &Policy,
    progress: &Progress,
    canary: &Window,
    stable: &Window,
    canary_step_calls: u64,
    now_unix_s: u64,
) -> (Action, Vec<MetricLook>) {
    let weight = policy.steps.get(progress.step).copied().unwrap_or(100);
    let alpha = policy.alpha / policy.metrics.len().max(1) as f64;
    // Tightest where the step's minimum canary calls are reached.
    let share = f64::from(100 - weight.min(99)) / 100.0;
    let planned = (policy.min_samples as f64 * share).max(1.0);
    let looks: Vec<MetricLook> = policy
        .metrics
        .iter()
        .map(|rule| look(rule, canary, stable, alpha, planned))
        .collect();
    let action = if let Some(bad) = looks.iter().find(|l| l.call == Call::Regressed) {
        let why = format!(
            "{} is worse by {:.4} (interval {:.4} to {:.4}, tolerance {:.4}; {} canary and {} stable observations)",
            bad.metric,
            bad.worse_by.unwrap_or(f64::NAN),
            bad.interval.map_or(f64::NAN, |i| i.lower),
            bad.interval.map_or(f64::NAN, |i| i.upper),
            bad.tolerance.unwrap_or(f64::NAN),
            bad.canary_n,
            bad.stable_n
        );
        match policy.on_regression {
            OnRegression::Rollback => Action::RollBack { why },
            OnRegression::Pause => Action::Pause { why },
        }
    } else {
        let in_step = now_unix_s.saturating_sub(progress.step_started_unix_s);
        let mut unclear: Vec<&str> = looks
            .iter()
            .filter(|l| l.call != Call::WithinTolerance)
            .map(|l| l.metric.as_str())
            .collect();
        // Nothing compared shows nothing: a policy without metrics never advances.
        if looks.is_empty() {
            unclear.push("(no metric in the policy)");
        }
        if in_step < policy.min_step_secs {
            Action::Hold {
                why: format!(
                    "step {}% for {in_step} s of at least {} s",
                    weight, policy.min_step_secs
                ),
            }
        } else if canary_step_calls < policy.min_samples {
            Action::Hold {
                why: format!(
                    "{canary_step_calls} canary calls in this step of at least {}",
                    policy.min_samples
                ),
            }
        } else if unclear.is_empty() {
            match policy.steps.get(progress.step + 1) {
                Some(100) | None => Action::Finish,
                Some(&w) => Action::Advance { weight: w },
            }
        } else if in_step >= policy.max_step_secs {
            Action::Pause {
                why: format!(
                    "after {in_step} s the canary is neither shown within tolerance nor worse on {}",
                    unclear.join(", ")
                ),
            }
        } else {
            Action::Hold {
                why: format!("not yet shown within tolerance: {}", unclear.join(", ")),
            }
        }
    };
    (action, looks)
}

fn look(
    rule: &MetricRule,
    canary: &Window,
    stable: &Window,
    alpha: f64,
    planned: f64,
) -> MetricLook {
    let (c, s) = (rule.moments(canary), rule.moments(stable));
    let (cm, sm) = (
        c.map(|x| x.0).unwrap_or_default(),
        s.map(|x| x.0).unwrap_or_default(),
    );
    let scale = c.or(s).map_or(Scale::Continuous, |x| x.1);
    let direction = rule.direction();
    let tolerance = match (rule.tolerance, rule.tolerance_pct) {
        (Some(t), _) => Some(t),
        (None, Some(pct)) if sm.n > 0 => Some(sm.mean.abs() * pct / 100.0),
        _ => None,
    };
    let d = sequential::difference(&cm, &sm, scale, alpha, planned);
    let call = match (&d, tolerance) {
        (Some(d), Some(t)) => sequential::call(d, direction, t),
        _ => Call::Unclear,
    };
    let worse = d.map(|d| sequential::worse_by(&d, direction));
    MetricLook {
        metric: rule.metric.clone(),
        canary: (cm.n > 0).then_some(cm.mean),
        stable: (sm.n > 0).then_some(sm.mean),
        canary_n: cm.n,
        stable_n: sm.n,
        worse_by: d.map(|d| match direction {
            Direction::LowerIsBetter => d.estimate,
            Direction::HigherIsBetter => -d.estimate,
        }),
        interval: worse,
        tolerance,
        call,
    }
}

/// The policy from `promptgate.yaml`'s `rollout:` (its problems placed in the file), or the
/// defaults when it has none.
pub fn check(policy: &Policy, place: impl Fn(Diagnostic, KeyPath) -> Diagnostic) -> Result<()> {
    let problems = policy.problems(place);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::many(crate::ErrorKind::Usage, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{Key, Observation, Signals};

    const T0: u64 = 1_800_000_000;

    /// Calls over `secs` seconds from T0: (canary, stable) counts and error rates.
    fn windows(calls: (u64, u64), errors: (f64, f64), secs: u64) -> (Window, Window) {
        let mut s = Signals::default();
        let key = |v: &str| Key {
            prompt: "p".into(),
            label: Some("production".into()),
            version_id: v.into(),
        };
        let mut rng = fastrand::Rng::with_seed(5);
        for (v, n, rate) in [("c", calls.0, errors.0), ("s", calls.1, errors.1)] {
            for i in 0..n {
                s.record(
                    &key(v),
                    &Observation {
                        at_unix_s: T0 + i * secs / n.max(1),
                        call: true,
                        error: rng.f64() < rate,
                        latency_ms: Some(100.0 + rng.f64() * 10.0),
                        ..Observation::default()
                    },
                );
            }
        }
        (s.since(&key("c"), 0), s.since(&key("s"), 0))
    }

    fn at(step: usize, step_started: u64) -> Progress {
        Progress {
            step,
            started_unix_s: T0,
            step_started_unix_s: step_started,
        }
    }

    #[test]
    fn a_regression_rolls_back_at_once_and_a_healthy_canary_advances_after_its_step() {
        let policy = Policy::default();
        // Errors 5 % → 20 %: rolled back before the step's minimum time.
        let (c, s) = windows((400, 7600), (0.20, 0.05), 300);
        let (action, looks) = decide(&policy, &at(0, T0), &c, &s, 400, T0 + 300);
        assert!(
            matches!(action, Action::RollBack { .. }),
            "{action:?} {looks:?}"
        );
        let Action::RollBack { why } = action else {
            unreachable!()
        };
        assert!(why.starts_with("error_rate is worse by"), "{why}");
        // The same data under `on_regression: pause`.
        let pause = Policy {
            on_regression: OnRegression::Pause,
            ..Policy::default()
        };
        assert!(matches!(
            decide(&pause, &at(0, T0), &c, &s, 400, T0 + 300).0,
            Action::Pause { .. }
        ));

        // Equal error rates, plenty of calls: holds for the step's time, then advances.
        let (c, s) = windows((5000, 95_000), (0.02, 0.02), 700);
        let (hold, _) = decide(&policy, &at(0, T0), &c, &s, 5000, T0 + 300);
        assert!(
            matches!(&hold, Action::Hold { why } if why.contains("at least 600 s")),
            "{hold:?}"
        );
        let (few, _) = decide(&policy, &at(0, T0), &c, &s, 100, T0 + 700);
        assert!(
            matches!(&few, Action::Hold { why } if why.contains("of at least 500")),
            "{few:?}"
        );
        let (go, looks) = decide(&policy, &at(0, T0), &c, &s, 5000, T0 + 700);
        assert_eq!(go, Action::Advance { weight: 25 }, "{looks:?}");
        // The minimums are reached at exactly the time and the calls asked for.
        let (just, _) = decide(&policy, &at(0, T0), &c, &s, 500, T0 + 600);
        assert_eq!(just, Action::Advance { weight: 25 });
        let (short, _) = decide(&policy, &at(0, T0), &c, &s, 499, T0 + 600);
        assert!(matches!(short, Action::Hold { .. }), "{short:?}");
        // At the step before 100 %, advancing finishes.
        let (done, _) = decide(&policy, &at(2, T0), &c, &s, 5000, T0 + 700);
        assert_eq!(done, Action::Finish);
    }

    #[test]
    fn a_step_that_cannot_tell_pauses_instead_of_advancing() {
        let policy = Policy {
            max_step_secs: 3600,
            ..Policy::default()
        };
        // Too few calls to show 1 point either way.
        let (c, s) = windows((600, 600), (0.05, 0.05), 600);
        let (hold, _) = decide(&policy, &at(0, T0), &c, &s, 600, T0 + 1200);
        assert!(
            matches!(&hold, Action::Hold { why } if why.contains("error_rate")),
            "{hold:?}"
        );
        let (pause, _) = decide(&policy, &at(0, T0), &c, &s, 600, T0 + 4000);
        assert!(
            matches!(&pause, Action::Pause { why } if why.contains("neither")),
            "{pause:?}"
        );
        // A metric nobody reports cannot be shown within tolerance.
        let policy = Policy {
            metrics: vec![MetricRule {
                metric: "app.feedback.score".into(),
                worse: Some(Worse::Lower),
                tolerance: Some(0.1),
                tolerance_pct: None,
            }],
            ..Policy::default()
        };
        let (c, s) = windows((5000, 95_000), (0.02, 0.02), 700);
        let (action, looks) = decide(&policy, &at(0, T0), &c, &s, 5000, T0 + 700);
        assert!(matches!(action, Action::Hold { .. }), "{action:?}");
        assert_eq!((looks[0].canary, looks[0].call), (None, Call::Unclear));
    }

    #[test]
    fn a_policy_without_metrics_never_advances() {
        let policy = Policy {
            metrics: vec![],
            ..Policy::default()
        };
        let (c, s) = windows((5000, 95_000), (0.02, 0.02), 700);
        let (action, _) = decide(&policy, &at(0, T0), &c, &s, 5000, T0 + 700);
        assert!(
            matches!(&action, Action::Hold { why } if why.contains("no metric")),
            "{action:?}"
        );
    }

    #[test]
    fn a_relative_tolerance_is_a_share_of_the_stable_value() {
        let policy = Policy {
            metrics: vec![MetricRule {
                metric: LATENCY_MS.into(),
                worse: None,
                tolerance: None,
                tolerance_pct: Some(10.0),
            }],
            ..Policy::default()
        };
        let (c, s) = windows((5000, 95_000), (0.0, 0.0), 700);
        let (action, looks) = decide(&policy, &at(0, T0), &c, &s, 5000, T0 + 700);
        let t = looks[0].tolerance.unwrap();
        assert!((t - 10.5).abs() < 0.1, "{looks:?}");
        assert_eq!(action, Action::Advance { weight: 25 });
    }

    /// Each metric is compared at α / (number of metrics), tightest at the step's minimum
    /// canary calls times the stable version's share of the traffic.
    #[test]
    fn the_level_is_split_over_the_metrics_and_tuned_to_the_step() {
        let (c, s) = windows((400, 3600), (0.05, 0.04), 600);
        let one = Policy {
            min_samples: 150,
            ..Policy::default()
        };
        let two = Policy {
            metrics: vec![
                one.metrics[0].clone(),
                MetricRule {
                    metric: LATENCY_MS.into(),
                    worse: None,
                    tolerance: None,
                    tolerance_pct: Some(10.0),
                },
            ],
            ..one.clone()
        };
        let width = |p: &Policy| {
            let (_, looks) = decide(p, &at(0, T0), &c, &s, 400, T0 + 10);
            let i = looks[0].interval.unwrap();
            (i, i.upper - i.lower)
        };
        let (i1, w1) = width(&one);
        let (_, w2) = width(&two);
        assert!(w2 > w1 * 1.02, "α / 2 is wider: {w1} vs {w2}");
        // At step 0 (5 %), tuned to 150 × 0.95 effective observations.
        let d = sequential::difference(
            &c.error_moments(),
            &s.error_moments(),
            Scale::Binary,
            0.05,
            150.0 * 0.95,
        )
        .unwrap();
        assert_eq!(i1, d.interval);
    }

    #[test]
    fn every_policy_mistake_is_named_at_its_key() {
        let bad = Policy {
            steps: vec![5, 5, 50],
            alpha: 0.7,
            min_step_secs: 600,
            max_step_secs: 60,
            min_samples: 0,
            metrics: vec![
                MetricRule {
                    metric: "app.score".into(),
                    worse: None,
                    tolerance: Some(0.1),
                    tolerance_pct: Some(5.0),
                },
                MetricRule {
                    metric: ERROR_RATE.into(),
                    worse: None,
                    tolerance: Some(-1.0),
                    tolerance_pct: None,
                },
            ],
            ..Policy::default()
        };
        let keys = std::cell::RefCell::new(Vec::new());
        let problems = bad.problems(|d, path| {
            keys.borrow_mut().push(path.to_string());
            d
        });
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 7, "{text:#?}");
        assert_eq!(
            keys.into_inner(),
            [
                "rollout.steps",
                "rollout.alpha",
                "rollout.max_step_secs",
                "rollout.min_samples",
                "rollout.metrics[0].tolerance_pct",
                "rollout.metrics[0].metric",
                "rollout.metrics[1].tolerance"
            ]
        );
        assert!(Policy::default().problems(|d, _| d).is_empty());
    }
}

/// Where a guarded rollout is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Watched and moved by the guard.
    Active,
    /// Held where it is (by a person, or by the guard when it could not tell); `resume`
    /// hands it back.
    Paused { why: String },
    /// The canary is the label's only target.
    Finished,
    /// The label went back to the stable version.
    RolledBack { why: String },
    /// Stopped by a person, or because the label was moved by someone else.
    Aborted { why: String },
}

/// One guarded rollout: `label` of `prompt` moving from `stable` to `canary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub prompt: String,
    pub label: String,
    pub canary: String,
    pub stable: String,
    pub progress: Progress,
    pub status: Status,
    /// Who started it.
    pub actor: String,
    /// The guard's last look: when, what it decided and what it saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look: Option<Look>,
}

/// What the guard saw and decided at one look (the evidence of its moves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Look {
    pub at_unix_s: u64,
    pub action: serde_json::Value,
    pub metrics: serde_json::Value,
}

impl Rollout {
    /// The canary's weight now.
    pub fn weight(&self, policy: &Policy) -> u8 {
        policy.steps.get(self.progress.step).copied().unwrap_or(100)
    }

    pub fn active(&self) -> bool {
        self.status == Status::Active
    }
}

/// Every rollout by `prompt@label`; one per label at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollouts {
    pub rollouts: Vec<Rollout>,
}

impl Rollouts {
    pub fn get(&self, prompt: &str, label: &str) -> Option<&Rollout> {
        self.rollouts
            .iter()
            .find(|r| r.prompt == prompt && r.label == label)
    }

    pub fn get_mut(&mut self, prompt: &str, label: &str) -> Option<&mut Rollout> {
        self.rollouts
            .iter_mut()
            .find(|r| r.prompt == prompt && r.label == label)
    }

    /// Record a new rollout, replacing a finished one of the same label; refused while one is
    /// active or paused there.
    pub fn start(&mut self, r: Rollout) -> std::result::Result<(), String> {
        if let Some(old) = self.get(&r.prompt, &r.label)
            && matches!(old.status, Status::Active | Status::Paused { .. })
        {
            return Err(format!(
                "`{}@{}` is already rolling out `{}` (started by {}); `promptgate rollout abort {} --label {}` first",
                r.prompt, r.label, old.canary, old.actor, r.prompt, r.label
            ));
        }
        self.rollouts
            .retain(|o| !(o.prompt == r.prompt && o.label == r.label));
        self.rollouts.push(r);
        Ok(())
    }
}
