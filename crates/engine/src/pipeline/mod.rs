//! Composes the stages after a run: score a run's outputs, pair two scored runs case by case
//! (fail-closed), decide with the gate policy and build the report. `eval`, `gate`, `promote`
//! and `eval --compare-to` all go through here, so they cannot disagree.

pub mod gating;
pub mod judge;
pub mod similar;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::session::Planned;
use crate::store::{Record, RunDir};
use promptgate_core::artifact::{Artifact, diff};
use promptgate_core::checks::Check;
use promptgate_core::checks::score::{self, Cases, Scorable, Scored};
use promptgate_core::error::Result;
use promptgate_core::gate::{self, Decision, Input, MetricData, Policy};
use promptgate_core::names::ByName;
use promptgate_core::report::{CaseRow, FailedCheck, OUTPUT_CHARS, PairwiseSummary, SideCase};

/// What scoring and deciding need, parsed from the suite before the first call.
pub struct Scoring {
    /// The deterministic checks.
    pub checks: Vec<Check>,
    /// The LLM judges.
    pub judges: Vec<judge::Judge>,
    /// The `similar` checks and the embeddings endpoint they use.
    pub similar: Vec<Check>,
    pub embedder: Option<similar::Embedder>,
    /// Every suite check's weight, judges included.
    pub weights: BTreeMap<String, f64>,
    pub policy: Policy,
    pub cases: Cases,
    /// Metric names of the suite's checks (every case is scored on these).
    pub suite_metrics: BTreeSet<String>,
    /// The suite's metric thresholds.
    pub thresholds: BTreeMap<String, f64>,
    /// What resolving the checks found worth saying (a tool only one side of a gate declares).
    pub warnings: Vec<String>,
}

impl Scoring {
    /// Take the suite's checks and gate policy, parse the cases' own checks, resolve every check
    /// against the cases and the versions it will score (`others`: the other side of a gate),
    /// and resolve the judges and the embeddings endpoint: every problem is reported now, before
    /// a run folder exists and before the first call is paid for.
    pub fn new(
        p: &Planned,
        others: &[(&str, &promptgate_core::artifact::Artifact)],
        repo: &promptgate_registry::Repo,
    ) -> Result<Scoring> {
        let suite_file = p
            .suite
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "suite".into());
        let all = p.suite.suite.checks.clone();
        let policy = p.suite.suite.gate.clone();
        let cases = Cases::from_plan(&p.plan.case_data)?;
        for (id, own) in &cases.own {
            if own.iter().any(|c| c.kind.model_scored()) {
                return Err(promptgate_core::error::Error::usage(format!(
                    "case `{id}` declares a `judge` or `similar` check: those are declared in the suite's `checks:`"
                )));
            }
        }
        let own_name = format!("{}@{}", p.plan.prompt, p.plan.version_id);
        let mut subjects = vec![promptgate_core::checks::resolve::Subject {
            name: own_name,
            artifact: &p.artifact,
        }];
        subjects.extend(others.iter().map(|(name, artifact)| {
            promptgate_core::checks::resolve::Subject {
                name: name.to_string(),
                artifact,
            }
        }));
        let resolution = promptgate_core::checks::resolve::resolve(
            &all,
            &cases.own,
            &p.plan.case_data,
            &subjects,
            &suite_file,
        );
        if !resolution.errors.is_empty() {
            return Err(promptgate_core::error::Error::many(
                promptgate_core::ErrorKind::Usage,
                resolution.errors,
            ));
        }
        let suite_metrics = all.iter().map(|c| c.metric.clone()).collect();
        let weights = all.iter().map(|c| (c.id.clone(), c.weight)).collect();
        let thresholds = p
            .suite
            .suite
            .metrics
            .iter()
            .filter_map(|(m, s)| s.threshold.map(|t| (m.clone(), t)))
            .collect();
        let mut vars: Vec<&str> = p.artifact.variables.keys().map(String::as_str).collect();
        for pc in p.plan.case_data.iter().take(1) {
            vars.extend(pc.vars.keys());
        }
        let no_cache = p.options.cache == crate::CacheMode::Off;
        let refresh = p.options.cache == crate::CacheMode::Refresh;
        let judges = judge::prepare(repo, &all, &vars, no_cache, refresh, &suite_file)?;
        let embedder = similar::prepare(repo, &all, no_cache, refresh, &suite_file)?;
        let (model_scored, checks): (Vec<Check>, Vec<Check>) =
            all.into_iter().partition(|c| c.kind.model_scored());
        let similar = model_scored
            .into_iter()
            .filter(|c| matches!(c.kind, promptgate_core::checks::Kind::Similar { .. }))
            .collect();
        Ok(Scoring {
            checks,
            judges,
            similar,
            embedder,
            weights,
            policy,
            cases,
            suite_metrics,
            thresholds,
            warnings: resolution.warnings,
        })
    }

    /// Whether a run's records can be scored as they are written and dropped: nothing after
    /// the run reads them (no judge, no `similar`; the caller knows whether it compares).
    pub fn streams(&self) -> bool {
        self.judges.is_empty() && self.embedder.is_none() && self.similar.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
            && self.judges.is_empty()
            && self.similar.is_empty()
            && self.cases.own.is_empty()
    }

    /// The metrics a case is scored on: the suite's, plus those of its own checks.
    pub fn metrics_of(&self, case_id: &str) -> BTreeSet<String> {
        let mut m = self.suite_metrics.clone();
        if let Some(own) = self.cases.own.get(case_id) {
            m.extend(own.iter().map(|c| c.metric.clone()));
        }
        m
    }
}

/// Score every record of a run with the suite's and the cases' checks.
pub fn score_records(records: &[Record], artifact: &Artifact, scoring: &Scoring) -> Vec<Scored> {
    if scoring.is_empty() {
        return vec![];
    }
    let outputs: Vec<Scorable<'_>> = records
        .iter()
        .map(|r| Scorable {
            case_id: &r.case_id,
            sample: r.sample,
            output: r.output.as_ref(),
            latency_ms: r.latency_ms,
            cost_usd: r.cost_usd,
        })
        .collect();
    score::score_with_case_checks(
        &scoring.checks,
        &scoring.cases.own,
        &scoring.thresholds,
        artifact,
        &scoring.cases.contexts,
        &outputs,
    )
}

/// Score every record of a run: the deterministic checks, then the judges (model calls through
/// the engine, in `run/judges/`).
pub async fn score_run(
    scoring: &Scoring,
    run: &RunDir,
    records: &[Record],
    artifact: &Artifact,
    observer: std::sync::Arc<dyn crate::Observer>,
    interrupt: std::sync::Arc<crate::Interrupt>,
) -> Result<Vec<Scored>> {
    // Scoring is CPU work on every core (rayon): done where blocking is allowed.
    let mut scored = crate::blocking(|| score_records(records, artifact, scoring));
    let mut verdicts: HashMap<(String, u32), Vec<judge::Verdict>> = HashMap::new();
    if let Some(embedder) = &scoring.embedder {
        let v = similar::run(
            embedder,
            &scoring.similar,
            run,
            records,
            &scoring.cases.contexts,
            observer.clone(),
            interrupt.clone(),
        )
        .await?;
        for (k, list) in v {
            verdicts.entry(k).or_default().extend(list);
        }
    }
    if !scoring.judges.is_empty() {
        let v = judge::run(
            &scoring.judges,
            run,
            records,
            &scoring.cases.contexts,
            observer,
            interrupt,
        )
        .await?;
        for (k, list) in v {
            verdicts.entry(k).or_default().extend(list);
        }
    }
    if !verdicts.is_empty() {
        judge::merge(
            &mut scored,
            &verdicts,
            &scoring.weights,
            &scoring.thresholds,
        );
    }
    Ok(scored)
}

/// How many records [`Streamed`] scores at once (on every core).
const SCORE_CHUNK: usize = 4096;

/// An eval's records folded as they are written: the run's summary, and the deterministic
/// checks scored a chunk at a time with each chunk's lines appended to `checks.jsonl` and its
/// scores folded into the per-metric summary. No record is kept unless `keep` says the answer
/// snapshot needs them. For a run that nothing after it reads the records of — no judge, no
/// `similar`, no comparison ([`Scoring::streams`]).
pub struct Streamed {
    summary: crate::SummaryFold,
    scores: score::Summarizer,
    scoring: std::sync::Arc<Scoring>,
    artifact: std::sync::Arc<Artifact>,
    /// Records not scored yet (`records[scored..]`), and those kept.
    records: Vec<Record>,
    scored: usize,
    keep: bool,
    checks: Option<promptgate_core::fsutil::AtomicFile>,
    failed: Option<std::io::Error>,
}

impl Streamed {
    pub fn new(
        scoring: std::sync::Arc<Scoring>,
        artifact: std::sync::Arc<Artifact>,
        run: &RunDir,
        keep: bool,
    ) -> Result<Streamed> {
        let checks = if scoring.is_empty() {
            None
        } else {
            Some(promptgate_core::fsutil::AtomicFile::create(
                &run.path.join(CHECKS_FILE),
            )?)
        };
        Ok(Streamed {
            summary: Default::default(),
            scores: Default::default(),
            scoring,
            artifact,
            records: Vec::new(),
            scored: 0,
            keep,
            checks,
            failed: None,
        })
    }

    /// The records kept (for the answer snapshot), and the summary: what
    /// [`crate::session::run_folded`] asks for.
    pub fn take_kept(&mut self) -> (crate::SummaryFold, Vec<Record>) {
        let kept = if self.keep {
            self.score_rest();
            self.scored = 0;
            std::mem::take(&mut self.records)
        } else {
            Vec::new()
        };
        (std::mem::take(&mut self.summary), kept)
    }

    fn score_rest(&mut self) {
        if self.checks.is_none() || self.scored == self.records.len() {
            return;
        }
        let scored = score_records(&self.records[self.scored..], &self.artifact, &self.scoring);
        if self.keep {
            self.scored = self.records.len();
        } else {
            self.records.clear();
            self.scored = 0;
        }
        for s in &scored {
            self.scores.add(s, |id| self.scoring.metrics_of(id));
            if let (Some(w), None) = (self.checks.as_mut(), &self.failed)
                && let Err(e) = write_scored_line(w, s)
            {
                self.failed = Some(e);
            }
        }
    }

    /// Score what is left and put `checks.jsonl` in place: the per-metric summary.
    pub fn finish(mut self, run: &RunDir) -> Result<score::Summarizer> {
        self.score_rest();
        if let Some(e) = self.failed.take() {
            return Err(promptgate_core::error::Error::io(
                &run.path.join(CHECKS_FILE),
                "write",
                e,
            ));
        }
        if let Some(f) = self.checks.take() {
            f.commit()?;
        }
        Ok(self.scores)
    }
}

impl crate::Sink for Streamed {
    fn take(&mut self, record: Record) {
        self.summary.add(&record);
        if self.keep || self.checks.is_some() {
            self.records.push(record);
            if self.records.len() - self.scored >= SCORE_CHUNK {
                self.score_rest();
            }
        }
    }
}

/// One side of a comparison to score.
pub struct ToScore<'a> {
    pub run: &'a RunDir,
    pub records: &'a [Record],
    pub artifact: &'a Artifact,
    /// Its scores, when the side was already scored (with [`score_run`]): used as they are.
    pub scored: Option<Vec<Scored>>,
}

impl ToScore<'_> {
    async fn score(
        self,
        scoring: &Scoring,
        observer: std::sync::Arc<dyn crate::Observer>,
        interrupt: std::sync::Arc<crate::Interrupt>,
    ) -> Result<Vec<Scored>> {
        match self.scored {
            Some(done) => Ok(done),
            None => {
                score_run(
                    scoring,
                    self.run,
                    self.records,
                    self.artifact,
                    observer,
                    interrupt,
                )
                .await
            }
        }
    }
}

/// Score both sides of a comparison: each with [`score_run`] (unless it comes scored), then the pairwise judges on the
/// pairs. Returns the baseline's and the candidate's scores and the pairwise tallies.
pub async fn score_pair(
    scoring: &Scoring,
    baseline: ToScore<'_>,
    candidate: ToScore<'_>,
    observer: std::sync::Arc<dyn crate::Observer>,
    interrupt: std::sync::Arc<crate::Interrupt>,
) -> Result<(Vec<Scored>, Vec<Scored>, Vec<PairwiseSummary>)> {
    let b_records = baseline.records;
    let (c_run, c_records) = (candidate.run, candidate.records);
    let mut b = baseline
        .score(scoring, observer.clone(), interrupt.clone())
        .await?;
    let mut c = candidate
        .score(scoring, observer.clone(), interrupt.clone())
        .await?;
    if !scoring.judges.iter().any(|j| j.pairwise) {
        return Ok((b, c, vec![]));
    }
    let pw = judge::run_pairwise(
        &scoring.judges,
        c_run,
        b_records,
        c_records,
        &scoring.cases.contexts,
        observer,
        interrupt,
    )
    .await?;
    judge::merge(&mut b, &pw.baseline, &scoring.weights, &scoring.thresholds);
    judge::merge(&mut c, &pw.candidate, &scoring.weights, &scoring.thresholds);
    Ok((b, c, pw.summaries))
}

/// Every output's check results in a run folder, one line each.
pub const CHECKS_FILE: &str = "checks.jsonl";

/// Write `checks.jsonl` (one line per output) into a run folder, streamed through a buffer
/// into a temporary file renamed into place.
pub fn write_scored(run: &RunDir, scored: &[Scored]) -> Result<()> {
    let path = run.path.join(CHECKS_FILE);
    promptgate_core::fsutil::write_atomic_with(&path, |w| {
        for s in scored {
            write_scored_line(w, s)?;
        }
        Ok(())
    })
}

/// One output's line of `checks.jsonl`.
fn write_scored_line(w: &mut dyn std::io::Write, s: &Scored) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, s).map_err(std::io::Error::other)?;
    w.write_all(b"\n")
}

/// Gather one side's samples per case.
#[derive(Default)]
struct Acc {
    samples: u32,
    errored: u32,
    /// Samples answered from the cache (their latency is not a measurement).
    cached: u32,
    /// metric → (sum of passes over scored samples)
    passes: ByName<f64>,
    latency: f64,
    cost: f64,
    output: Option<String>,
    error: Option<String>,
    failed: Option<Vec<FailedCheck>>,
    /// metric → how its failures went
    failures: ByName<Failures>,
}

/// A metric's failures on one side.
#[derive(Default, Clone)]
struct Failures {
    /// Scored samples that failed it.
    failed: u32,
    /// Of those, the ones where a check of the metric could not apply.
    unapplied: u32,
    /// The first such check and why.
    first: Option<(String, String)>,
}

fn output_text(r: &Record) -> String {
    let Some(c) = &r.output else {
        return String::new();
    };
    let mut s = c.content.clone();
    for t in &c.tool_calls {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&format!("→ {}({})", t.name, t.arguments));
    }
    if s.chars().count() > OUTPUT_CHARS {
        s = s.chars().take(OUTPUT_CHARS).collect::<String>() + "…";
    }
    s
}

/// One side's samples gathered per case: entry `i` is the case at position `i` of `index`
/// (a case the side has no record of is `None`; records of other cases are not pairable).
fn accumulate(
    records: &[Record],
    scored: &[Scored],
    index: &HashMap<&str, usize>,
) -> Vec<Option<Acc>> {
    let mut by_key: HashMap<(&str, u32), &Scored> = HashMap::with_capacity(scored.len());
    for s in scored {
        by_key.insert((s.case_id.as_str(), s.sample), s);
    }
    let mut out: Vec<Option<Acc>> = std::iter::repeat_with(|| None).take(index.len()).collect();
    for r in records {
        let Some(&i) = index.get(r.case_id.as_str()) else {
            continue;
        };
        let a = out[i].get_or_insert_default();
        a.samples += 1;
        a.cached += u32::from(r.cached);
        a.latency += r.latency_ms;
        a.cost += r.cost_usd;
        if a.output.is_none() && r.output.is_some() {
            a.output = Some(output_text(r));
        }
        let judge_error = by_key
            .get(&(r.case_id.as_str(), r.sample))
            .and_then(|s| s.judge_errors.first());
        match (&r.error, judge_error) {
            (None, Some(j)) => {
                a.errored += 1;
                if a.error.is_none() {
                    a.error = Some(j.clone());
                }
            }
            (Some(e), _) => {
                a.errored += 1;
                if a.error.is_none() {
                    a.error = Some(e.to_string());
                }
            }
            (None, None) => {
                if let Some(s) = by_key.get(&(r.case_id.as_str(), r.sample)) {
                    for (m, v) in s.metrics.iter() {
                        *a.passes.entry(m) += f64::from(u8::from(v.pass));
                        if !v.pass {
                            let f = a.failures.entry(m);
                            f.failed += 1;
                            if let Some(c) =
                                s.results.iter().find(|c| c.metric == *m && c.cannot_apply)
                            {
                                f.unapplied += 1;
                                f.first
                                    .get_or_insert_with(|| (c.check.clone(), c.reason.clone()));
                            }
                        }
                    }
                    if a.failed.is_none() {
                        a.failed = Some(
                            s.results
                                .iter()
                                .filter(|c| !c.pass)
                                .map(|c| FailedCheck {
                                    check: c.check.clone(),
                                    reason: c.reason.clone(),
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
    }
    out
}

/// The paired view of two runs: the decision's input and the rows reports show.
#[derive(Debug, Default)]
pub struct Paired {
    pub input: Input,
    pub cases: Vec<CaseRow>,
    /// Cases only one side has (an interrupted or different run), left out of the pairing.
    pub unpaired: Vec<String>,
}

/// Pair a baseline and a candidate run case by case. Each case's metric value is the mean over
/// its samples of "passed"; an errored candidate sample counts as failed and an errored
/// baseline sample as passed (fail closed: errors never help the candidate).
pub fn pair(
    scoring: &Scoring,
    baseline: (&[Record], &[Scored]),
    candidate: (&[Record], &[Scored]),
    case_order: &[(String, Option<String>)],
) -> Paired {
    // Each case once, at the position it first appears.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(case_order.len());
    let mut unique: Vec<(&str, &Option<String>)> = Vec::with_capacity(case_order.len());
    for (id, group) in case_order {
        if !index.contains_key(id.as_str()) {
            index.insert(id, unique.len());
            unique.push((id, group));
        }
    }
    let mut b = accumulate(baseline.0, baseline.1, &index);
    let mut c = accumulate(candidate.0, candidate.1, &index);
    let mut metrics: BTreeMap<String, MetricData> = BTreeMap::new();
    let mut paired = Paired {
        cases: Vec::with_capacity(case_order.len()),
        ..Paired::default()
    };
    let (mut cost_c, mut cost_b, mut lat_c, mut lat_b) = (vec![], vec![], vec![], vec![]);
    for (i, (id, group)) in unique.into_iter().enumerate() {
        let (Some(bc), Some(cc)) = (b[i].as_mut(), c[i].as_mut()) else {
            if b[i].is_some() || c[i].is_some() {
                paired.unpaired.push(id.to_string());
            }
            continue;
        };
        // The output and failed checks move into the row (nothing reads them from the Acc
        // after), rather than being copied.
        let side = |a: &mut Acc, fill: f64, names: &BTreeSet<String>| -> SideCase {
            let metrics = names
                .iter()
                .map(|m| {
                    let passes = a.passes.get(m).copied().unwrap_or(0.0);
                    let v = (passes + fill * f64::from(a.errored)) / f64::from(a.samples.max(1));
                    (m.clone(), v)
                })
                .collect();
            SideCase {
                metrics,
                output: a.output.take().unwrap_or_default(),
                error: a.error.take(),
                failed_checks: a.failed.take().unwrap_or_default(),
                latency_ms: a.latency / f64::from(a.samples.max(1)),
                cost_usd: a.cost / f64::from(a.samples.max(1)),
            }
        };
        let names = scoring.metrics_of(id);
        let bs = side(bc, 1.0, &names);
        let cs = side(cc, 0.0, &names);
        let (bc, cc) = (&*bc, &*cc);
        let mut row = CaseRow {
            id: id.to_string(),
            group: group.clone(),
            regressed: vec![],
            improved: vec![],
            baseline: bs,
            candidate: cs,
        };
        for m in &names {
            let (bv, cv) = (row.baseline.metrics[m], row.candidate.metrics[m]);
            let d = metrics.entry(m.clone()).or_insert_with(|| MetricData {
                name: m.clone(),
                ..MetricData::default()
            });
            d.baseline.push(bv);
            d.candidate.push(cv);
            d.groups.push(group.clone().unwrap_or_default());
            if bv > cv {
                row.regressed.push(m.clone());
            } else if cv > bv {
                row.improved.push(m.clone());
            }
        }
        if bc.errored == 0 && cc.errored == 0 {
            cost_c.push(row.candidate.cost_usd);
            cost_b.push(row.baseline.cost_usd);
            // A cached answer took no time: only measured latencies are compared.
            if bc.cached == 0 && cc.cached == 0 {
                lat_c.push(row.candidate.latency_ms);
                lat_b.push(row.baseline.latency_ms);
            }
        }
        paired.cases.push(row);
    }
    // Metrics the baseline fails only where a check could not apply: the suite cannot score
    // them, whatever the candidate does.
    let mut totals: BTreeMap<String, Failures> = BTreeMap::new();
    for id in paired.cases.iter().map(|c| c.id.as_str()) {
        if let Some(Some(a)) = index.get(id).map(|&i| &b[i]) {
            for (m, f) in a.failures.iter() {
                let t = totals.entry(m.clone()).or_default();
                t.failed += f.failed;
                t.unapplied += f.unapplied;
                if t.first.is_none() {
                    t.first = f.first.clone();
                }
            }
        }
    }
    let unscorable: BTreeMap<String, gate::Unscorable> = totals
        .into_iter()
        .filter(|(_, f)| f.failed > 0 && f.failed == f.unapplied)
        .filter_map(|(m, f)| {
            let (check, reason) = f.first?;
            Some((
                m,
                gate::Unscorable {
                    failures: f.failed as usize,
                    check,
                    reason,
                },
            ))
        })
        .collect();
    for d in metrics.values_mut() {
        // Groups only count when every case has one.
        if d.groups.iter().any(String::is_empty) {
            d.groups.clear();
        }
    }
    paired.input = Input {
        metrics: metrics.into_values().collect(),
        cost: (!cost_c.is_empty()).then_some((cost_c, cost_b)),
        latency: (!lat_c.is_empty()).then_some((lat_c, lat_b)),
        calls: baseline.0.len() + candidate.0.len(),
        // Calls that errored, and outputs a judge could not score.
        errored_calls: baseline.0.iter().filter(|r| r.error.is_some()).count()
            + candidate.0.iter().filter(|r| r.error.is_some()).count()
            + baseline
                .1
                .iter()
                .filter(|s| !s.judge_errors.is_empty())
                .count()
            + candidate
                .1
                .iter()
                .filter(|s| !s.judge_errors.is_empty())
                .count(),
        breaking: vec![],
        unscorable,
    };
    paired
}

/// Breaking changes to the output schema or tool schemas from `baseline` to `candidate`, in
/// words (none between identical versions: their diff is empty). The one rule for the gate's
/// runs, sequential or not, and `eval --compare-to`.
pub fn breaking_changes(baseline: &Artifact, candidate: &Artifact) -> Vec<String> {
    diff::diff(baseline, candidate)
        .breaking_schema_changes()
        .map(|c| format!("{} `{}`: {}", c.area.title(), c.path, c.detail))
        .collect()
}

/// Decide: pair, add the breaking changes, apply the policy.
pub fn decide(policy: &Policy, mut paired: Paired, breaking: Vec<String>) -> (Decision, Paired) {
    paired.input.breaking = breaking;
    let d = gate::decide(policy, &paired.input);
    (d, paired)
}

/// The cases of a plan in dataset order with their groups.
pub fn case_order(plan: &crate::Plan) -> Vec<(String, Option<String>)> {
    plan.case_data
        .iter()
        .map(|c| (c.id.to_string(), c.group().map(str::to_string)))
        .collect()
}

/// One side of a comparison: a finished run and what it evaluated.
pub struct RunSide<'a> {
    /// What the user named (`support_agent@production`, a run id).
    pub reference: String,
    pub run: &'a RunDir,
    pub manifest: &'a crate::store::Manifest,
    pub labels: Vec<String>,
    pub records: &'a [Record],
    pub artifact: &'a Artifact,
}

impl RunSide<'_> {
    fn side(&self) -> promptgate_core::report::Side {
        let m = self.manifest;
        promptgate_core::report::Side {
            reference: self.reference.clone(),
            version_id: m.version_id.clone(),
            version_hash: m.version_hash.clone(),
            labels: self.labels.clone(),
            run_id: self.run.id.clone(),
            provider: m.provider.name.clone(),
            model: m.provider.model.clone(),
            calls: self.records.len(),
            errors: self.records.iter().filter(|r| r.error.is_some()).count(),
            cached: self.records.iter().filter(|r| r.cached).count(),
            cost_usd: self.records.iter().map(|r| r.cost_usd).sum(),
        }
    }
}

/// Given both sides' scores, write each run's `checks.jsonl`, pair them, decide and build the
/// report. `kind` is `gate` or `compare`. Once written, the scores keep only the checks that
/// failed (all pairing reads): over 2 × 100,000 outputs the passed ones held 30 MB.
pub fn compare(
    kind: &str,
    scoring: &Scoring,
    policy: &Policy,
    baseline: &RunSide<'_>,
    candidate: &RunSide<'_>,
    scored: (Vec<Scored>, Vec<Scored>),
    case_order: &[(String, Option<String>)],
) -> Result<promptgate_core::report::Report> {
    let (mut scored_b, mut scored_c) = scored;
    if !scoring.is_empty() {
        write_scored(baseline.run, &scored_b)?;
        write_scored(candidate.run, &scored_c)?;
    }
    for s in scored_b.iter_mut().chain(scored_c.iter_mut()) {
        s.results.retain(|r| !r.pass);
        s.results.shrink_to_fit();
    }
    let breaking = breaking_changes(baseline.artifact, candidate.artifact);
    let paired = pair(
        scoring,
        (baseline.records, &scored_b),
        (candidate.records, &scored_c),
        case_order,
    );
    drop((scored_b, scored_c));
    let (decision, paired) = decide(policy, paired, breaking);
    let m = candidate.manifest;
    Ok(promptgate_core::report::Report {
        report_version: promptgate_core::report::REPORT_VERSION,
        kind: kind.to_string(),
        prompt: m.prompt.clone(),
        generated_at: promptgate_core::clock::now(),
        promptgate_version: env!("CARGO_PKG_VERSION").to_string(),
        baseline: baseline.side(),
        candidate: candidate.side(),
        suite: m.suite.clone(),
        suite_digest: m.suite_digest.clone(),
        datasets: m.datasets.clone(),
        decision,
        unpaired: paired.unpaired,
        sequential: None,
        pairwise: vec![],
        cases: paired.cases,
    })
}

/// The power note before a run: with `n` cases, how likely an identical candidate is to pass,
/// estimated from the pass rates of the baseline's last complete scored run (σ_d of two
/// independent draws at that rate, √(2p(1−p)), a conservative guess for a stochastic model).
/// Empty when the baseline has no scored run yet.
pub fn power_before_run(
    state_dir: &std::path::Path,
    baseline_hash: &str,
    n: usize,
    policy: &Policy,
) -> Vec<gate::PowerNote> {
    let runs = crate::store::list_runs(state_dir);
    let Some((run, _)) = runs.iter().rev().find(|(r, m)| {
        m.version_hash == baseline_hash
            && m.status == "complete"
            && r.path.join("checks.jsonl").is_file()
    }) else {
        return vec![];
    };
    let Ok(text) = std::fs::read_to_string(run.path.join("checks.jsonl")) else {
        return vec![];
    };
    let mut rates: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(ms) = v.get("metrics").and_then(|m| m.as_object()) {
            for (name, s) in ms {
                let e = rates.entry(name.clone()).or_default();
                e.0 += 1.0;
                e.1 += f64::from(u8::from(
                    s.get("pass").and_then(|p| p.as_bool()) == Some(true),
                ));
            }
        }
    }
    policy
        .gated()
        .into_iter()
        .filter_map(|(name, margin, alpha, _)| {
            let (count, passed) = rates.get(&name)?;
            let p = passed / count.max(1.0);
            // Two independent draws at rate p differ with probability 2p(1 − p).
            let basis = gate::PowerBasis::Discordance {
                rate: 2.0 * p * (1.0 - p),
                deff: 1.0,
                df: None,
            };
            let source = format!(
                "assuming two runs of one prompt differ like independent draws at the baseline's last pass rate, {:.1} %",
                p * 100.0
            );
            Some(gate::power_note(&name, n, basis, &source, margin, alpha))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use promptgate_core::call::{CallError, Completion, ErrorClass};
    use promptgate_core::checks::score::MetricScore;

    fn scoring() -> Scoring {
        Scoring {
            checks: vec![],
            judges: vec![],
            similar: vec![],
            embedder: None,
            weights: BTreeMap::new(),
            policy: Policy::default(),
            cases: Cases::default(),
            suite_metrics: ["pass".to_string()].into_iter().collect(),
            thresholds: BTreeMap::new(),
            warnings: vec![],
        }
    }

    /// A sample of `case`: answered (and passing or not) or errored, with its latency.
    fn sample(case: &str, n: u32, pass: Option<bool>, latency_ms: f64) -> (Record, Scored) {
        let record = Record {
            case_id: case.into(),
            sample: n,
            line: 1,
            request_hash: Default::default(),
            output: pass.map(|_| Completion {
                content: format!("answer {n}"),
                ..Completion::default()
            }),
            error: pass
                .is_none()
                .then(|| Box::new(CallError::new(ErrorClass::Server, "500"))),
            latency_ms,
            elapsed_ms: latency_ms,
            attempts: 1,
            cached: false,
            cost_usd: 0.01 * f64::from(n + 1),
            started_at: "2026-12-01T00:00:00Z".into(),
        };
        let scored = Scored {
            case_id: case.into(),
            sample: n,
            errored: pass.is_none(),
            results: vec![],
            metrics: pass
                .map(|p| {
                    [(
                        "pass".to_string(),
                        MetricScore {
                            score: f64::from(u8::from(p)),
                            pass: p,
                        },
                    )]
                    .into_iter()
                    .collect()
                })
                .unwrap_or_default(),
            judge_errors: vec![],
        };
        (record, scored)
    }

    fn side(samples: Vec<(Record, Scored)>) -> (Vec<Record>, Vec<Scored>) {
        samples.into_iter().unzip()
    }

    #[test]
    fn a_case_is_the_mean_of_its_samples_and_errors_count_against_the_candidate() {
        let (br, bs) = side(vec![
            sample("a", 0, Some(true), 10.0),
            sample("a", 1, Some(true), 20.0),
            sample("a", 2, None, 30.0),
            sample("b", 0, Some(false), 10.0),
            sample("b", 1, Some(true), 10.0),
            sample("b", 2, Some(true), 10.0),
        ]);
        let (cr, cs) = side(vec![
            sample("a", 0, Some(true), 40.0),
            sample("a", 1, Some(false), 50.0),
            sample("a", 2, Some(true), 60.0),
            sample("b", 0, None, 10.0),
            sample("b", 1, Some(true), 10.0),
            sample("b", 2, Some(true), 10.0),
        ]);
        let order = vec![
            ("a".to_string(), None),
            ("b".to_string(), None),
            ("c".to_string(), None),
        ];
        let p = pair(&scoring(), (&br, &bs), (&cr, &cs), &order);
        assert_eq!(p.cases.len(), 2, "c has no samples on either side");
        assert!(p.unpaired.is_empty());
        let a = &p.cases[0];
        // The baseline's errored sample counts as passed, the candidate's as failed.
        assert_eq!(a.baseline.metrics["pass"], 1.0);
        assert!((a.candidate.metrics["pass"] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.regressed, ["pass"]);
        assert_eq!(a.baseline.latency_ms, 20.0);
        assert_eq!(a.candidate.latency_ms, 50.0);
        assert!((a.candidate.cost_usd - 0.02).abs() < 1e-12, "the mean cost");
        assert_eq!(a.candidate.output, "answer 0", "the first answered sample");
        let b = &p.cases[1];
        assert!((b.baseline.metrics["pass"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.candidate.metrics["pass"] - 2.0 / 3.0).abs() < 1e-12);
        assert!(b.regressed.is_empty() && b.improved.is_empty());
        assert_eq!(b.candidate.error.as_deref(), Some("server: 500"));
        // The decision's input: one value a case and metric, the errored calls counted.
        let m = &p.input.metrics[0];
        assert_eq!((m.name.as_str(), m.baseline.len()), ("pass", 2));
        assert_eq!(p.input.errored_calls, 2);
        assert_eq!(p.input.calls, 12);
        // Only cases without errors on either side compare cost: `a` errs on the baseline,
        // `b` on the candidate.
        assert!(p.input.cost.is_none());
    }

    fn failed(check: &str, cannot_apply: bool) -> promptgate_core::checks::CheckResult {
        promptgate_core::checks::CheckResult {
            judge: None,
            check: check.into(),
            metric: "pass".into(),
            pass: false,
            score: 0.0,
            reason: format!("{check} said no"),
            cannot_apply,
        }
    }

    #[test]
    fn judge_errors_cached_answers_and_failed_checks_are_accounted_for() {
        // Baseline: `a` fails a check that could not apply (on every sample), `b` passes.
        let mut b = vec![
            sample("a", 0, Some(false), 5.0),
            sample("a", 1, Some(false), 5.0),
            sample("b", 0, Some(true), 5.0),
        ];
        for (_, s) in &mut b[..2] {
            s.results = vec![failed("schema", true)];
        }
        // Candidate: `a` passes once and once could not be judged; `b` fails an ordinary check,
        // answered from the cache.
        let mut c = vec![
            sample("a", 0, Some(true), 7.0),
            sample("a", 1, Some(true), 9.0),
            sample("b", 0, Some(false), 0.0),
        ];
        c[1].1.judge_errors = vec!["judge `tone`: no verdict".into()];
        c[2].0.cached = true;
        c[2].1.results = vec![failed("concise", false)];
        let (br, bs) = side(b);
        let (cr, cs) = side(c);
        let order = vec![("a".to_string(), None), ("b".to_string(), None)];
        let p = pair(&scoring(), (&br, &bs), (&cr, &cs), &order);
        let (a, bb) = (&p.cases[0], &p.cases[1]);
        // A sample a judge could not score is errored: it fails for the candidate.
        assert_eq!(a.candidate.metrics["pass"], 0.5);
        assert_eq!(
            a.candidate.error.as_deref(),
            Some("judge `tone`: no verdict")
        );
        assert_eq!(p.input.errored_calls, 1);
        // The first scored sample's failed checks are shown.
        assert_eq!(a.baseline.failed_checks.len(), 1);
        assert_eq!(a.baseline.failed_checks[0].check, "schema");
        assert_eq!(bb.candidate.failed_checks[0].reason, "concise said no");
        assert_eq!(bb.regressed, ["pass"]);
        // Every baseline failure of `pass` is a check that could not apply: unscorable.
        let u = &p.input.unscorable["pass"];
        assert_eq!((u.failures, u.check.as_str()), (2, "schema"));
        // A cached answer took no time: `b` is left out of the latency comparison, and `a`
        // (errored on the candidate) out of both.
        assert!(p.input.latency.is_none());
        assert_eq!(p.input.cost.as_ref().map(|c| c.0.len()), Some(1));
    }

    #[test]
    fn a_metric_the_baseline_also_fails_on_its_own_is_scorable() {
        // One baseline failure could not apply, the other is an ordinary failure: the suite
        // can score the metric.
        let mut b = vec![
            sample("a", 0, Some(false), 1.0),
            sample("b", 0, Some(false), 1.0),
        ];
        b[0].1.results = vec![failed("schema", true)];
        b[1].1.results = vec![failed("concise", false)];
        let (br, bs) = side(b);
        let (cr, cs) = side(vec![
            sample("a", 0, Some(true), 1.0),
            sample("b", 0, Some(true), 1.0),
        ]);
        let order = vec![("a".to_string(), None), ("b".to_string(), None)];
        let p = pair(&scoring(), (&br, &bs), (&cr, &cs), &order);
        assert!(p.input.unscorable.is_empty(), "{:?}", p.input.unscorable);
    }

    #[test]
    fn a_case_only_one_side_has_is_unpaired() {
        let (br, bs) = side(vec![sample("a", 0, Some(true), 1.0)]);
        let (cr, cs) = side(vec![
            sample("a", 0, Some(true), 1.0),
            sample("z", 0, Some(true), 1.0),
        ]);
        let order = vec![("a".to_string(), None), ("z".to_string(), None)];
        let p = pair(&scoring(), (&br, &bs), (&cr, &cs), &order);
        assert_eq!(p.cases.len(), 1);
        assert_eq!(p.unpaired, ["z"]);
        assert_eq!(p.input.cost.as_ref().map(|c| c.0.len()), Some(1));
        assert_eq!(p.input.latency.as_ref().map(|l| l.0.len()), Some(1));
    }
}
