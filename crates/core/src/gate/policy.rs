//! The gate policy (`gate:` in `suite.yaml`): its typed form, its defaults, and its decoding
//! from the suite's YAML — every key checked, every value typed and ranged, each problem
//! placed at its line and column with a did-you-mean.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use super::defaults;
use crate::artifact::locate::KeyPath;
use crate::error::{Error, ErrorKind, Result, did_you_mean, list_names};
use crate::yaml::{Decoder, Node, Value, child};

/// How a metric's interval is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Tango's score interval for binary metrics, the t interval for continuous ones, and the
    /// clustered t interval when cases have groups.
    #[default]
    Auto,
    Tango,
    Newcombe,
    T,
    Bootstrap,
}

/// Per-metric settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
}

/// `gate.cost`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostPolicy {
    /// Mean cost may grow by at most this fraction (0.10 = +10 %).
    pub max_increase: f64,
}

/// `gate.latency`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyPolicy {
    /// p95 latency may grow by at most this ratio (1.2 = +20 %).
    pub p95_max_ratio: f64,
}

/// `gate.sequential`: look at the data at planned fractions and stop the calls early.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequentialPolicy {
    /// Looks in all, equally spaced, the last at every case (2 to 4).
    pub looks: usize,
    /// One-sided α of each interim look (Haybittle–Peto; default 0.001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_alpha: Option<f64>,
}

impl SequentialPolicy {
    pub fn interim_alpha(&self) -> f64 {
        self.interim_alpha.unwrap_or(defaults::INTERIM_ALPHA)
    }

    /// Cases seen at each look, for `n` cases in all.
    pub fn look_sizes(&self, n: usize) -> Vec<usize> {
        let k = self.looks.max(1);
        let mut sizes: Vec<usize> = (1..=k).map(|i| (n * i).div_ceil(k)).collect();
        sizes.dedup();
        sizes
    }
}

/// What INCONCLUSIVE does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnInconclusive {
    /// It blocks (exit 3).
    #[default]
    Block,
    /// It lets the promotion through (exit 3 is still reported by `gate`).
    Allow,
}

/// The `gate:` section of `suite.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Policy {
    /// Gated metrics; empty means the `pass` metric with the defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, MetricPolicy>,
    /// Absolute floors: the candidate's mean of a metric must be at least this.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub floors: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cases: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_budget: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_inconclusive: Option<OnInconclusive>,
    /// Let a breaking change to the output or tool schemas through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_breaking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Opt-in early stopping (group-sequential, Haybittle–Peto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialPolicy>,
}

/// The keys of `gate:`.
const KEYS: &[&str] = &[
    "metrics",
    "floors",
    "cost",
    "latency",
    "min_cases",
    "error_budget",
    "on_inconclusive",
    "allow_breaking",
    "seed",
    "sequential",
];
const METRIC_KEYS: &[&str] = &["margin", "alpha", "method"];
const METHODS: &[(&str, Method)] = &[
    ("auto", Method::Auto),
    ("tango", Method::Tango),
    ("newcombe", Method::Newcombe),
    ("t", Method::T),
    ("bootstrap", Method::Bootstrap),
];

/// An enumerated value: one of `choices`, or a problem naming them.
fn choice<T: Copy>(
    d: &mut Decoder<'_>,
    node: &Node,
    path: &KeyPath,
    choices: &[(&str, T)],
) -> Option<T> {
    let s = d.str(node, path)?;
    if let Some((_, v)) = choices.iter().find(|(n, _)| *n == s) {
        return Some(*v);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let problem = d.problem(node, format!("`{s}` is not a valid value for `{path}`"));
    problem
        .notes
        .push(format!("expected one of {}", list_names(&names)));
    if let Some(m) = did_you_mean(s, names.iter().copied()) {
        problem.hint = Some(format!("did you mean `{m}`?"));
    }
    None
}

/// A number in the open interval (lo, hi).
fn open_range(d: &mut Decoder<'_>, node: &Node, path: &KeyPath, lo: f64, hi: f64) -> Option<f64> {
    let v = d.number(node, path)?;
    if v > lo && v < hi {
        return Some(v);
    }
    d.problem(
        node,
        format!("`{path}` must be greater than {lo} and less than {hi}, not {v}"),
    );
    None
}

/// Each entry of a mapping of metric names, decoded by `each`.
fn per_metric<T>(
    d: &mut Decoder<'_>,
    node: &Node,
    path: &KeyPath,
    mut each: impl FnMut(&mut Decoder<'_>, &Node, &KeyPath) -> Option<T>,
) -> BTreeMap<String, T> {
    let Value::Map(entries) = &node.value else {
        d.wrong_type(node, path, "a mapping of metric names");
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|(k, v)| Some((k.name.clone(), each(d, v, &child(path, &k.name))?)))
        .collect()
}

impl Policy {
    /// Decode `gate:` (the node at `path`), reporting every problem into the decoder.
    pub fn decode(d: &mut Decoder<'_>, node: &Node, path: &KeyPath) -> Policy {
        let mut p = Policy::default();
        if node.value == Value::Null {
            return p;
        }
        let Some(fields) = d.map(node, path, KEYS, "`gate`") else {
            return p;
        };
        let at = |k: &str| child(path, k);
        if let Some(n) = fields.get("metrics") {
            p.metrics = per_metric(d, n, &at("metrics"), |d, n, mp| {
                let f = d.map(n, mp, METRIC_KEYS, "a gated metric")?;
                Some(MetricPolicy {
                    margin: f.get("margin").and_then(|m| {
                        d.number(m, &child(mp, "margin")).and_then(|v| {
                            if (0.0..1.0).contains(&v) {
                                Some(v)
                            } else {
                                let problem = d.problem(
                                    m,
                                    format!(
                                        "`{}` must be at least 0 and less than 1, not {v}",
                                        child(mp, "margin")
                                    ),
                                );
                                problem.hint = Some(
                                    "the margin is absolute on a [0, 1] score: 0.05 is 5 points"
                                        .into(),
                                );
                                None
                            }
                        })
                    }),
                    alpha: f
                        .get("alpha")
                        .and_then(|a| open_range(d, a, &child(mp, "alpha"), 0.0, 0.5)),
                    method: f
                        .get("method")
                        .and_then(|m| choice(d, m, &child(mp, "method"), METHODS)),
                })
            });
        }
        if let Some(n) = fields.get("floors") {
            p.floors = per_metric(d, n, &at("floors"), |d, n, fp| d.number_in(n, fp, 0.0, 1.0));
        }
        if let Some(n) = fields.get("cost") {
            let cp = at("cost");
            if let Some(f) = d.map(n, &cp, &["max_increase"], "`gate.cost`") {
                match f.get("max_increase") {
                    Some(m) => {
                        p.cost = d
                            .number(m, &child(&cp, "max_increase"))
                            .and_then(|v| {
                                if v >= 0.0 {
                                    Some(v)
                                } else {
                                    d.problem(
                                        m,
                                        format!(
                                            "`{}` must not be negative, not {v}",
                                            child(&cp, "max_increase")
                                        ),
                                    );
                                    None
                                }
                            })
                            .map(|max_increase| CostPolicy { max_increase });
                    }
                    None => {
                        d.problem(n, format!("`{cp}` needs `max_increase`")).hint =
                            Some("e.g. `cost: { max_increase: 0.10 }` for at most +10 %".into());
                    }
                }
            }
        }
        if let Some(n) = fields.get("latency") {
            let lp = at("latency");
            if let Some(f) = d.map(n, &lp, &["p95_max_ratio"], "`gate.latency`") {
                match f.get("p95_max_ratio") {
                    Some(m) => {
                        p.latency =
                            open_range(d, m, &child(&lp, "p95_max_ratio"), 0.0, f64::INFINITY)
                                .map(|p95_max_ratio| LatencyPolicy { p95_max_ratio });
                    }
                    None => {
                        d.problem(n, format!("`{lp}` needs `p95_max_ratio`")).hint =
                            Some("e.g. `latency: { p95_max_ratio: 1.2 }` for at most +20 %".into());
                    }
                }
            }
        }
        if let Some(n) = fields.get("min_cases") {
            p.min_cases = d.count(n, &at("min_cases")).and_then(|c| {
                if c >= 1 {
                    Some(c as usize)
                } else {
                    d.problem(n, format!("`{}` must be at least 1", at("min_cases")));
                    None
                }
            });
        }
        if let Some(n) = fields.get("error_budget") {
            p.error_budget = d.number_in(n, &at("error_budget"), 0.0, 1.0);
        }
        if let Some(n) = fields.get("on_inconclusive") {
            p.on_inconclusive = choice(
                d,
                n,
                &at("on_inconclusive"),
                &[
                    ("block", OnInconclusive::Block),
                    ("allow", OnInconclusive::Allow),
                ],
            );
        }
        if let Some(n) = fields.get("allow_breaking") {
            p.allow_breaking = d.bool(n, &at("allow_breaking"));
        }
        if let Some(n) = fields.get("seed") {
            p.seed = d.count(n, &at("seed"));
        }
        if let Some(n) = fields.get("sequential") {
            let sp = at("sequential");
            if let Some(f) = d.map(n, &sp, &["looks", "interim_alpha"], "`gate.sequential`") {
                let looks = match f.get("looks") {
                    Some(l) => d.count(l, &child(&sp, "looks")).and_then(|k| {
                        if (2..=4).contains(&k) {
                            Some(k as usize)
                        } else {
                            d.problem(
                                l,
                                format!("`{}` must be 2, 3 or 4, not {k}", child(&sp, "looks")),
                            );
                            None
                        }
                    }),
                    None => {
                        d.problem(n, format!("`{sp}` needs `looks`")).hint =
                            Some("e.g. `sequential: { looks: 3 }`".into());
                        None
                    }
                };
                let interim_alpha = match f.get("interim_alpha") {
                    None => Some(None),
                    Some(a) => d.number(a, &child(&sp, "interim_alpha")).and_then(|v| {
                        if v > 0.0 && v <= 0.01 {
                            Some(Some(v))
                        } else {
                            d.problem(
                                a,
                                format!(
                                    "`{}` must be greater than 0 and at most 0.01, not {v}",
                                    child(&sp, "interim_alpha")
                                ),
                            )
                            .hint =
                                Some("Haybittle–Peto looks use a very small α, e.g. 0.001".into());
                            None
                        }
                    }),
                };
                if let (Some(looks), Some(interim_alpha)) = (looks, interim_alpha) {
                    p.sequential = Some(SequentialPolicy {
                        looks,
                        interim_alpha,
                    });
                }
            }
        }
        p
    }

    /// Decode a `gate:` value given as JSON (tests, tools), naming `file` in errors.
    pub fn from_value(v: Option<&Json>, file: &str) -> Result<Policy> {
        let Some(v) = v else {
            return Ok(Policy::default());
        };
        let mut d = Decoder::for_context(file.to_string());
        let p = Policy::decode(
            &mut d,
            &Node::from_json(v, 0),
            &child(&KeyPath::default(), "gate"),
        );
        if d.problems.is_empty() {
            Ok(p)
        } else {
            Err(Error::many(ErrorKind::Usage, d.problems))
        }
    }
    /// The policy of one look of a sequential gate. Interim looks test every metric at the
    /// interim α; the final look at α − (looks − 1)·interim α, so that by the union bound the
    /// chance of a false PASS over all looks stays at most α (Haybittle 1971; Peto et al. 1976).
    /// Without `sequential`, the policy itself.
    pub fn at_look(&self, look: usize, looks: usize) -> Policy {
        let Some(seq) = &self.sequential else {
            return self.clone();
        };
        let interim = seq.interim_alpha();
        let mut p = self.clone();
        p.metrics = self
            .gated()
            .into_iter()
            .map(|(name, margin, alpha, method)| {
                let a = if look + 1 < looks {
                    interim
                } else {
                    (alpha - (looks.saturating_sub(1)) as f64 * interim).max(interim)
                };
                (
                    name,
                    MetricPolicy {
                        margin: Some(margin),
                        alpha: Some(a),
                        method: Some(method),
                    },
                )
            })
            .collect();
        p
    }

    /// The gated metrics with their effective settings.
    pub fn gated(&self) -> Vec<(String, f64, f64, Method)> {
        if self.metrics.is_empty() {
            return vec![(
                defaults::METRIC.to_string(),
                defaults::MARGIN,
                defaults::ALPHA,
                Method::Auto,
            )];
        }
        self.metrics
            .iter()
            .map(|(n, m)| {
                (
                    n.clone(),
                    m.margin.unwrap_or(defaults::MARGIN),
                    m.alpha.unwrap_or(defaults::ALPHA),
                    m.method.unwrap_or_default(),
                )
            })
            .collect()
    }

    pub fn min_cases(&self) -> usize {
        self.min_cases.unwrap_or(defaults::MIN_CASES)
    }

    pub fn error_budget(&self) -> f64 {
        self.error_budget.unwrap_or(defaults::ERROR_BUDGET)
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(defaults::SEED)
    }
}
