//! The scoring engine: every check on every output of a run, in parallel with rayon, and the
//! per-metric summary `eval` prints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Check, CheckResult, Output, Scorer, metric_scores};
use crate::artifact::Artifact;
use crate::call::Completion;
use crate::dataset::Case;

/// One output to score.
pub struct Scorable<'a> {
    pub case_id: &'a str,
    pub sample: u32,
    /// `None`: the call errored.
    pub output: Option<&'a Completion>,
    pub latency_ms: f64,
    pub cost_usd: f64,
}

/// A metric's score on one output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricScore {
    pub score: f64,
    pub pass: bool,
}

/// An output's score on each metric, by metric name: a JSON object in `checks.jsonl`.
pub type MetricScores = crate::names::ByName<MetricScore>;

/// Every check's result on one output: a line of `checks.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub case_id: String,
    pub sample: u32,
    /// The call errored: no check ran (the gate scores it fail-closed).
    pub errored: bool,
    pub results: Vec<CheckResult>,
    pub metrics: MetricScores,
    /// Model-scored checks (judges, `similar`) that could not score this output after their
    /// attempts: the output counts as errored, not failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub judge_errors: Vec<String>,
}

/// Score every output. `contexts` gives what check templates see for a case.
pub fn score_all(
    checks: &[Check],
    artifact: &Artifact,
    contexts: &Contexts,
    outputs: &[Scorable<'_>],
) -> Vec<Scored> {
    score_with_case_checks(
        checks,
        &HashMap::new(),
        &BTreeMap::new(),
        artifact,
        contexts,
        outputs,
    )
}

/// Score every output with the suite's checks plus, for cases that declare them, their own;
/// `thresholds` are the suite's metric thresholds.
pub fn score_with_case_checks(
    checks: &[Check],
    case_checks: &HashMap<String, Vec<Check>>,
    thresholds: &BTreeMap<String, f64>,
    artifact: &Artifact,
    contexts: &Contexts,
    outputs: &[Scorable<'_>],
) -> Vec<Scored> {
    let weights: BTreeMap<String, f64> = checks.iter().map(|c| (c.id.clone(), c.weight)).collect();
    let scorer = Scorer::new(checks, artifact);
    outputs
        .par_iter()
        .map(|o| {
            let Some(completion) = o.output else {
                return Scored {
                    case_id: o.case_id.to_string(),
                    sample: o.sample,
                    errored: true,
                    results: vec![],
                    metrics: MetricScores::default(),
                    judge_errors: vec![],
                };
            };
            let out = Output {
                completion,
                latency_ms: o.latency_ms,
                cost_usd: o.cost_usd,
            };
            let ctx = &contexts.get(o.case_id);
            let (results, metrics) = match case_checks.get(o.case_id) {
                None => {
                    let results: Vec<CheckResult> = scorer.run_all(&out, ctx);
                    let metrics = metric_scores(&results, &weights);
                    (results, metrics)
                }
                Some(own) => {
                    // Rare: compile the combined list for this case.
                    let all: Vec<Check> = checks.iter().chain(own).cloned().collect();
                    let w: BTreeMap<String, f64> =
                        all.iter().map(|c| (c.id.clone(), c.weight)).collect();
                    let results = Scorer::new(&all, artifact).run_all(&out, ctx);
                    let metrics = metric_scores(&results, &w);
                    (results, metrics)
                }
            };
            let mut metrics = metrics;
            super::apply_thresholds(&mut metrics, thresholds);
            let metrics = metrics
                .into_iter()
                .map(|(m, (score, pass))| (m, MetricScore { score, pass }))
                .collect();
            Scored {
                case_id: o.case_id.to_string(),
                sample: o.sample,
                errored: false,
                results,
                metrics,
                judge_errors: vec![],
            }
        })
        .collect()
}

/// One metric over a run. Every output counts: an errored one (its call failed, or a judge
/// could not score it) is neither a pass nor left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    pub metric: String,
    /// Outputs the metric applies to, errored ones included.
    pub scored: usize,
    pub passed: usize,
    /// Outputs with no score (counted in `scored`, never in `passed`).
    pub errored: usize,
    /// `passed / scored`.
    pub pass_rate: f64,
    /// The mean score of the outputs that have one.
    pub mean_score: f64,
}

/// A check that failed, with one example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingCheck {
    pub check: String,
    pub failures: usize,
    pub example_case: String,
    pub example_reason: String,
}

/// Per-metric pass rates and the checks that fail most (each with one example).
/// `metrics_of` names the metrics a case is scored on, so that an errored output is counted
/// against each of them.
pub fn summarize(
    scored: &[Scored],
    metrics_of: impl Fn(&str) -> std::collections::BTreeSet<String>,
) -> (Vec<MetricSummary>, Vec<FailingCheck>) {
    let mut s = Summarizer::default();
    for x in scored {
        s.add(x, &metrics_of);
    }
    s.finish()
}

/// [`summarize`], one output at a time (for a run whose scores are not kept).
#[derive(Debug, Default)]
pub struct Summarizer {
    /// metric → (outputs, passed, errored, sum of scores)
    metrics: BTreeMap<String, (usize, usize, usize, f64)>,
    failing: BTreeMap<String, FailingCheck>,
}

impl Summarizer {
    pub fn add(
        &mut self,
        s: &Scored,
        metrics_of: impl Fn(&str) -> std::collections::BTreeSet<String>,
    ) {
        let (metrics, failing) = (&mut self.metrics, &mut self.failing);
        if s.errored || !s.judge_errors.is_empty() {
            for m in metrics_of(&s.case_id) {
                let e = metrics.entry(m).or_default();
                e.0 += 1;
                e.2 += 1;
            }
            return;
        }
        for (m, v) in s.metrics.iter() {
            let e = metrics.entry(m.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(v.pass);
            e.3 += v.score;
        }
        for r in s.results.iter().filter(|r| !r.pass) {
            failing
                .entry(r.check.clone())
                .and_modify(|f| f.failures += 1)
                .or_insert_with(|| FailingCheck {
                    check: r.check.clone(),
                    failures: 1,
                    example_case: s.case_id.clone(),
                    example_reason: r.reason.clone(),
                });
        }
    }

    pub fn finish(self) -> (Vec<MetricSummary>, Vec<FailingCheck>) {
        let metrics = self
            .metrics
            .into_iter()
            .map(|(metric, (n, p, errored, sum))| MetricSummary {
                metric,
                scored: n,
                passed: p,
                errored,
                pass_rate: p as f64 / n.max(1) as f64,
                mean_score: sum / (n - errored).max(1) as f64,
            })
            .collect();
        let mut failing: Vec<FailingCheck> = self.failing.into_values().collect();
        failing.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.check.cmp(&b.check)));
        (metrics, failing)
    }
}

/// What check templates see for each case: its variables, `expected` and `expected_json`.
/// Built when a case is scored, not held for every case at once (a context is a map of its
/// own: holding them all cost 0.7 KB a case).
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    cases: Arc<Vec<Case>>,
    /// Positions in `cases`, sorted by case id (then position): a binary search finds a case
    /// (4 bytes a case, where a map from id cost 65).
    by_id: Vec<u32>,
}

impl Contexts {
    pub fn new(cases: Arc<Vec<Case>>) -> Contexts {
        let mut by_id: Vec<u32> = (0..cases.len() as u32).collect();
        by_id.sort_by(|&a, &b| {
            cases[a as usize]
                .id
                .cmp(&cases[b as usize].id)
                .then(a.cmp(&b))
        });
        Contexts { cases, by_id }
    }

    /// The case with this id (the last, should two share it).
    fn find(&self, case_id: &str) -> Option<&Case> {
        let i = self
            .by_id
            .partition_point(|&p| *self.cases[p as usize].id <= *case_id);
        let c = &self.cases[*self.by_id.get(i.checked_sub(1)?)? as usize];
        (*c.id == *case_id).then_some(c)
    }

    /// The context of a case (empty for an id that is not one).
    pub fn get(&self, case_id: &str) -> Map<String, Value> {
        match self.find(case_id) {
            Some(c) => super::context(c.vars.to_map(), c.expected.as_deref(), c.expected_json()),
            None => Map::new(),
        }
    }
}

/// What scoring needs to know about the cases: the template context of each case, and the
/// checks a case declares itself (the dataset's `checks` column).
#[derive(Debug, Default)]
pub struct Cases {
    pub contexts: Contexts,
    pub own: HashMap<String, Vec<Check>>,
}

impl Cases {
    /// Parse the cases' own checks (every problem at once, with file:line).
    pub fn from_plan(cases: &Arc<Vec<Case>>) -> crate::error::Result<Cases> {
        let mut own = HashMap::new();
        let mut problems = Vec::new();
        for c in cases.iter() {
            if let Some(Value::Array(list)) = c.checks() {
                let place = format!("{}:{} (case `{}`)", c.file, c.line, c.id);
                match super::parse_checks(list, &place) {
                    Ok(parsed) => {
                        own.insert(c.id.to_string(), parsed);
                    }
                    Err(e) => problems.extend(e.into_diagnostics()),
                }
            }
        }
        if problems.is_empty() {
            Ok(Cases {
                contexts: Contexts::new(cases.clone()),
                own,
            })
        } else {
            Err(crate::error::Error::many(
                crate::error::ErrorKind::Usage,
                problems,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Vars;

    fn case(id: &str, q: &str) -> Case {
        Case {
            id: id.into(),
            file: "d.jsonl".into(),
            line: 1,
            vars: Vars::from_columns(vec![("q".into(), Value::from(q))]),
            expected: None,
            extra: None,
        }
    }

    #[test]
    fn a_case_context_is_found_by_id_the_last_of_equal_ids() {
        let cases = vec![
            case("b", "1"),
            case("a", "2"),
            case("c", "3"),
            case("a", "4"),
            case("aa", "5"),
        ];
        let ctx = Contexts::new(Arc::new(cases));
        assert_eq!(ctx.get("b")["q"], "1");
        assert_eq!(ctx.get("c")["q"], "3");
        assert_eq!(ctx.get("a")["q"], "4", "the last of two equal ids");
        assert_eq!(ctx.get("aa")["q"], "5");
        for missing in ["", "0", "ab", "d", "A"] {
            assert!(ctx.get(missing).is_empty(), "{missing}");
        }
        assert!(Contexts::default().get("a").is_empty());
    }
}
