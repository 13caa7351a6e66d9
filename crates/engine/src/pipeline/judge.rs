//! LLM judges: a `judge` check names a judge prompt in the registry
//! (`judges/correctness@production`), so judges are versioned and gated like any prompt. Each
//! output is judged by rendering the judge with the case's variables, `expected`,
//! `expected_json` and `output`, calling its model through the same engine (concurrency, cache,
//! retries, traces), and reading a strict JSON answer `{"score", "pass", "reason"}`. A
//! malformed answer is asked again (a new sample, so the cache does not repeat it); one that
//! stays malformed, or a call that keeps failing, is an errored check — not a failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::provider::{self, Provider, cache::Cache};
use crate::store::{Record, RunDir};
use crate::{Given, Interrupt, Observer, Options, Plan, PlannedCall, Runner, Watch, execute};
use promptgate_core::artifact::Artifact;
use promptgate_core::checks::score::{Contexts, Scored};
use promptgate_core::checks::{Check, CheckResult, Kind};
use promptgate_core::config::defaults;
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result};
use promptgate_core::render::{self, Request, Subject};
use promptgate_core::report::PairwiseSummary;
use promptgate_registry::{Ref, Repo};

/// A judge check, resolved: its prompt version, provider and settings.
pub struct Judge {
    pub check: Check,
    pub prompt: String,
    pub version_id: String,
    pub artifact: Artifact,
    pub scale: (f64, f64),
    pub attempts: u32,
    /// Compares candidate and baseline outputs (`output_a`, `output_b`).
    pub pairwise: bool,
    provider: Arc<dyn Provider>,
    options: Options,
    cache: Option<Cache>,
}

/// The variables a judge may use besides the dataset's.
pub const JUDGE_VARIABLES: [&str; 3] = ["output", "expected", "expected_json"];
/// The variables a pairwise judge may use besides the dataset's.
pub const PAIRWISE_VARIABLES: [&str; 4] = ["output_a", "output_b", "expected", "expected_json"];

/// Resolve every judge check before any call: the judge prompt and version exist, its
/// variables can be filled, its provider is configured.
pub fn prepare(
    repo: &Repo,
    checks: &[Check],
    subject_vars: &[&str],
    no_cache: bool,
    refresh: bool,
    file: &str,
) -> Result<Vec<Judge>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for c in checks {
        let Kind::Judge {
            reference,
            scale,
            attempts,
            pairwise,
        } = &c.kind
        else {
            continue;
        };
        let resolved = Ref::parse(reference).and_then(|r| repo.resolve(&r));
        let (prompt, version, _) = match resolved {
            Ok(x) => x,
            Err(e) => {
                problems.extend(
                    e.into_diagnostics()
                        .into_iter()
                        .map(|d| d.in_context(format!("{file}: judge of check `{}`", c.id))),
                );
                continue;
            }
        };
        let artifact = repo.load_version(&prompt, &version)?.artifact;
        let own: &[&str] = if *pairwise {
            &PAIRWISE_VARIABLES
        } else {
            &JUDGE_VARIABLES
        };
        for (name, var) in &artifact.variables {
            if var.default.is_none()
                && !own.contains(&name.as_str())
                && !subject_vars.contains(&name.as_str())
            {
                problems.push(
                    Diagnostic::error(format!(
                        "judge `{}@{}` needs variable `{name}`, which neither the dataset nor the judge stage provides",
                        prompt.name, version.id
                    ))
                    .in_context(format!("{file}: check `{}`", c.id))
                    .hint(format!(
                        "a judge can use {} and the dataset's columns; give `{name}` a default",
                        promptgate_core::error::list_names(own)
                    )),
                );
            }
        }
        let name = artifact.model.provider.clone();
        let (p, cfg) = provider::of_repo(repo, &name)?;
        let options = crate::session::options_for(
            &cfg,
            cfg.concurrency.unwrap_or(defaults::CONCURRENCY).max(1),
            no_cache,
            refresh,
        );
        let cache = (cfg.kind != promptgate_core::config::ProviderKind::Replay)
            .then(|| Cache::new(&repo.state_dir().join("cache")));
        out.push(Judge {
            check: c.clone(),
            prompt: prompt.name.clone(),
            version_id: version.id.clone(),
            artifact,
            scale: *scale,
            attempts: *attempts,
            pairwise: *pairwise,
            provider: p,
            options,
            cache,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::many(ErrorKind::Usage, problems))
    }
}

/// What a judge said about one output.
#[derive(Debug, Clone)]
pub enum Verdict {
    Scored(CheckResult),
    /// Every attempt failed or answered malformed JSON.
    Errored(String),
}

/// Parse a judge's answer: a JSON object (optionally in a ```json fence) with a numeric
/// `score` on the judge's scale, a boolean `pass` and a string `reason`.
pub fn parse_answer(
    content: &str,
    scale: (f64, f64),
) -> std::result::Result<(f64, bool, String), String> {
    let v = json_object(content)?;
    let o = v.as_object().ok_or("not a JSON object")?;
    if let Some(k) = o
        .keys()
        .find(|k| !["score", "pass", "reason"].contains(&k.as_str()))
    {
        return Err(format!("unexpected key `{k}`"));
    }
    let score = o
        .get("score")
        .and_then(Value::as_f64)
        .ok_or("`score` must be a number")?;
    let pass = o
        .get("pass")
        .and_then(Value::as_bool)
        .ok_or("`pass` must be true or false")?;
    let reason = o
        .get("reason")
        .and_then(Value::as_str)
        .ok_or("`reason` must be a string")?
        .to_string();
    let (lo, hi) = scale;
    if !(lo..=hi).contains(&score) {
        return Err(format!("`score` {score} is outside the scale [{lo}, {hi}]"));
    }
    Ok(((score - lo) / (hi - lo), pass, reason))
}

/// Which output a pairwise judge preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    A,
    B,
    Tie,
}

/// Parse a pairwise judge's answer: `{"winner": "a" | "b" | "tie", "reason": "…"}`.
pub fn parse_pairwise(content: &str) -> std::result::Result<(Winner, String), String> {
    let v = json_object(content)?;
    let o = v.as_object().ok_or("not a JSON object")?;
    if let Some(k) = o
        .keys()
        .find(|k| !["winner", "reason"].contains(&k.as_str()))
    {
        return Err(format!("unexpected key `{k}`"));
    }
    let winner = match o.get("winner").and_then(Value::as_str) {
        Some("a" | "A") => Winner::A,
        Some("b" | "B") => Winner::B,
        Some("tie") => Winner::Tie,
        _ => return Err("`winner` must be \"a\", \"b\" or \"tie\"".into()),
    };
    let reason = o
        .get("reason")
        .and_then(Value::as_str)
        .ok_or("`reason` must be a string")?
        .to_string();
    Ok((winner, reason))
}

fn json_object(content: &str) -> std::result::Result<Value, String> {
    let t = content.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|x| x.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    serde_json::from_str(t).map_err(|e| format!("not JSON: {e}"))
}

/// A call to a judge, before its attempts: `key` names it in the judge's folder.
struct Ask {
    key: String,
    line: usize,
    request: Request,
}

/// Ask a judge every question, up to `attempts` times each while the answer does not parse
/// (each attempt a new sample, so the cache does not repeat a malformed answer). Returns each
/// key's parsed answer, or why there is none.
async fn ask<T>(
    judge: &Judge,
    dir: &RunDir,
    asks: Vec<Ask>,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<HashMap<String, std::result::Result<T, String>>> {
    promptgate_core::fsutil::create_dir_all(&dir.path)?;
    let mut rows = Vec::with_capacity(asks.len());
    // Each question's key (its case) and its call.
    let mut pending: Vec<(String, PlannedCall)> = asks
        .into_iter()
        .enumerate()
        .map(|(row, a)| {
            let hash = provider::request_hash(&a.request);
            rows.push(Given {
                case_id: a.key.clone(),
                line: a.line,
                request: Arc::new(a.request),
            });
            let call = PlannedCall {
                sample: 0,
                row: row as u32,
                request_hash: hash,
                est_tokens: defaults::JUDGE_ESTIMATED_TOKENS as u32,
            };
            (a.key, call)
        })
        .collect();
    let questions = Plan::given(&judge.prompt, &judge.version_id, Vec::new(), rows);
    let mut out: HashMap<String, std::result::Result<T, String>> = HashMap::new();
    let mut problems: HashMap<String, String> = HashMap::new();
    for attempt in 0..judge.attempts {
        if pending.is_empty() {
            break;
        }
        let plan = Plan {
            cases: pending.len(),
            calls: pending
                .iter()
                .map(|(_, c)| PlannedCall {
                    sample: attempt,
                    ..*c
                })
                .collect(),
            ..questions.clone()
        };
        let runner = Runner {
            provider: judge.provider.clone(),
            cache: judge.cache.clone(),
            options: &judge.options,
            run: dir,
        };
        let watch = Watch {
            observer: observer.clone(),
            interrupt: interrupt.clone(),
        };
        let (recs, interrupted) = execute(&plan, runner, None, watch, Vec::new()).await?;
        for rec in recs.iter().filter(|r| r.sample == attempt) {
            if out.contains_key(&rec.case_id) {
                continue;
            }
            match (&rec.output, &rec.error) {
                (Some(o), _) => match parse(&o.content) {
                    Ok(t) => {
                        out.insert(rec.case_id.clone(), Ok(t));
                    }
                    Err(why) => {
                        problems.insert(rec.case_id.clone(), format!("malformed answer: {why}"));
                    }
                },
                (None, Some(e)) => {
                    problems.insert(rec.case_id.clone(), e.to_string());
                }
                (None, None) => {}
            }
        }
        pending.retain(|(key, _)| !out.contains_key(key));
        if interrupted {
            break;
        }
    }
    for (key, _) in pending {
        let why = problems
            .remove(&key)
            .unwrap_or_else(|| "not judged (interrupted)".into());
        out.insert(
            key,
            Err(format!(
                "judge `{}` ({}@{}) after {} attempt(s): {why}",
                judge.check.id, judge.prompt, judge.version_id, judge.attempts
            )),
        );
    }
    Ok(out)
}

fn judge_dir(run: &RunDir, judge: &Judge) -> RunDir {
    RunDir {
        id: format!("{}/judges/{}", run.id, judge.check.id),
        path: run
            .path
            .join("judges")
            .join(judge.check.id.replace('/', "_")),
    }
}

/// Render a judge for one case; an error is a verdict, not a crash.
fn render_judge(
    judge: &Judge,
    compiled: &render::Compiled<'_>,
    vars: &Map<String, Value>,
    case: &str,
) -> std::result::Result<Request, String> {
    let row = format!("case `{case}`");
    let subject = Subject {
        prompt: &judge.prompt,
        version_id: &judge.version_id,
        row: Some(&row),
    };
    render::bind_variables(&judge.artifact, vars, &subject, false)
        .and_then(|b| compiled.render(&b, &subject))
        .map_err(|e| format!("judge `{}`: {}", judge.check.id, e.to_string().trim()))
}

/// Judge every answered output with every pointwise judge, in `run/judges/<check id>/`.
/// Returns, per (case, sample), each judge's verdict.
pub async fn run(
    judges: &[Judge],
    run: &RunDir,
    records: &[Record],
    contexts: &Contexts,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<HashMap<(String, u32), Vec<Verdict>>> {
    let mut out: HashMap<(String, u32), Vec<Verdict>> = HashMap::new();
    for judge in judges.iter().filter(|j| !j.pairwise) {
        let compiled = render::Compiled::new(
            &judge.artifact,
            &Subject {
                prompt: &judge.prompt,
                version_id: &judge.version_id,
                row: None,
            },
        )?;
        let mut asks = Vec::new();
        for r in records {
            let Some(output) = &r.output else { continue };
            let mut vars = contexts.get(&r.case_id);
            vars.insert("output".into(), Value::String(output.content.clone()));
            match render_judge(judge, &compiled, &vars, &r.case_id) {
                Ok(request) => asks.push(Ask {
                    key: format!("{}#{}", r.case_id, r.sample),
                    line: r.line,
                    request,
                }),
                Err(e) => out
                    .entry((r.case_id.clone(), r.sample))
                    .or_default()
                    .push(Verdict::Errored(e)),
            }
        }
        let scale = judge.scale;
        let answers = ask(
            judge,
            &judge_dir(run, judge),
            asks,
            |c| parse_answer(c, scale),
            observer.clone(),
            interrupt.clone(),
        )
        .await?;
        for (key, answer) in answers {
            let (case, sample) = split_key(&key);
            let verdict = match answer {
                Ok((score, pass, reason)) => {
                    let (pass, score, reason) = if judge.check.negate {
                        (!pass, 1.0 - score, format!("not: {reason}"))
                    } else {
                        (pass, score, reason)
                    };
                    Verdict::Scored(CheckResult {
                        judge: Some(format!("{}@{}", judge.prompt, judge.version_id)),
                        check: judge.check.id.clone(),
                        metric: judge.check.metric.clone(),
                        pass,
                        score: score.clamp(0.0, 1.0),
                        reason,
                        cannot_apply: false,
                    })
                }
                Err(e) => Verdict::Errored(e),
            };
            out.entry((case, sample)).or_default().push(verdict);
        }
    }
    Ok(out)
}

/// A pairwise judge's parsed answer, or why there is none.
type PairAnswer = std::result::Result<(Winner, String), String>;

/// Verdicts of the pairwise judges for each side, and their tallies.
#[derive(Default)]
pub struct Pairwise {
    pub baseline: HashMap<(String, u32), Vec<Verdict>>,
    pub candidate: HashMap<(String, u32), Vec<Verdict>>,
    pub summaries: Vec<PairwiseSummary>,
}

/// Compare candidate and baseline outputs with every pairwise judge: each pair is asked twice,
/// (candidate, baseline) and (baseline, candidate). A win in both orders is a win; a win in
/// one and a tie in the other counts half; opposite winners are a position disagreement and
/// count as a tie. The candidate's check passes unless it lost; the baseline's unless it lost.
pub async fn run_pairwise(
    judges: &[Judge],
    run: &RunDir,
    baseline: &[Record],
    candidate: &[Record],
    contexts: &Contexts,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<Pairwise> {
    let mut out = Pairwise::default();
    let base: HashMap<(&str, u32), &Record> = baseline
        .iter()
        .filter(|r| r.output.is_some())
        .map(|r| ((r.case_id.as_str(), r.sample), r))
        .collect();
    for judge in judges.iter().filter(|j| j.pairwise) {
        let compiled = render::Compiled::new(
            &judge.artifact,
            &Subject {
                prompt: &judge.prompt,
                version_id: &judge.version_id,
                row: None,
            },
        )?;
        let mut asks = Vec::new();
        let mut errors: Vec<((String, u32), String)> = Vec::new();
        for c in candidate.iter().filter(|r| r.output.is_some()) {
            let Some(b) = base.get(&(c.case_id.as_str(), c.sample)) else {
                continue;
            };
            let text = |r: &Record| {
                r.output
                    .as_ref()
                    .map(|o| o.content.clone())
                    .unwrap_or_default()
            };
            for (order, (a, bb)) in [(0, (text(c), text(b))), (1, (text(b), text(c)))] {
                let mut vars = contexts.get(&c.case_id);
                vars.insert("output_a".into(), Value::String(a));
                vars.insert("output_b".into(), Value::String(bb));
                match render_judge(judge, &compiled, &vars, &c.case_id) {
                    Ok(request) => asks.push(Ask {
                        key: format!("{}#{}#{order}", c.case_id, c.sample),
                        line: c.line,
                        request,
                    }),
                    Err(e) => errors.push(((c.case_id.clone(), c.sample), e)),
                }
            }
        }
        let answers = ask(
            judge,
            &judge_dir(run, judge),
            asks,
            parse_pairwise,
            observer.clone(),
            interrupt.clone(),
        )
        .await?;
        let mut summary = PairwiseSummary {
            check: judge.check.id.clone(),
            judge: format!("{}@{}", judge.prompt, judge.version_id),
            ..PairwiseSummary::default()
        };
        let mut by_pair: BTreeMap<(String, u32), [Option<PairAnswer>; 2]> = BTreeMap::new();
        for (key, answer) in answers {
            let (rest, order) = key.rsplit_once('#').unwrap_or((&key, "0"));
            let (case, sample) = split_key(rest);
            let slot = by_pair.entry((case, sample)).or_default();
            slot[usize::from(order == "1")] = Some(answer);
        }
        for (k, e) in errors {
            by_pair.entry(k).or_default()[0] = Some(Err(e));
        }
        let id = format!("{}@{}", judge.prompt, judge.version_id);
        for (key, [first, second]) in by_pair {
            let (first, second) = match (first, second) {
                (Some(Ok(f)), Some(Ok(s))) => (f, s),
                (Some(Err(e)), _) | (_, Some(Err(e))) => {
                    summary.errored += 1;
                    out.candidate
                        .entry(key.clone())
                        .or_default()
                        .push(Verdict::Errored(e.clone()));
                    out.baseline
                        .entry(key)
                        .or_default()
                        .push(Verdict::Errored(e));
                    continue;
                }
                _ => continue,
            };
            // Points for the candidate: in order 0 it is `a`, in order 1 it is `b`.
            let points = |w: Winner, candidate_is_a: bool| -> f64 {
                match (w, candidate_is_a) {
                    (Winner::Tie, _) => 0.5,
                    (Winner::A, true) | (Winner::B, false) => 1.0,
                    _ => 0.0,
                }
            };
            let (p0, p1) = (points(first.0, true), points(second.0, false));
            let disagree = (p0 - p1).abs() == 1.0;
            let p = if disagree { 0.5 } else { (p0 + p1) / 2.0 };
            summary.compared += 1;
            summary.position_disagreements += usize::from(disagree);
            match p {
                x if x > 0.5 => summary.candidate_wins += 1,
                x if x < 0.5 => summary.baseline_wins += 1,
                _ => summary.ties += 1,
            }
            let reason = format!(
                "{}; order swapped: {}{}",
                first.1,
                second.1,
                if disagree {
                    " (position disagreement: counted as a tie)"
                } else {
                    ""
                }
            );
            let result = |score: f64, pass: bool| CheckResult {
                judge: Some(id.clone()),
                check: judge.check.id.clone(),
                metric: judge.check.metric.clone(),
                pass,
                score,
                reason: reason.clone(),
                cannot_apply: false,
            };
            out.candidate
                .entry(key.clone())
                .or_default()
                .push(Verdict::Scored(result(p, p >= 0.5)));
            out.baseline
                .entry(key)
                .or_default()
                .push(Verdict::Scored(result(1.0 - p, p <= 0.5)));
        }
        out.summaries.push(summary);
    }
    Ok(out)
}

fn split_key(key: &str) -> (String, u32) {
    match key.rsplit_once('#') {
        Some((c, s)) => (c.to_string(), s.parse().unwrap_or(0)),
        None => (key.to_string(), 0),
    }
}

/// Add the judges' results to the scored outputs and recompute their metrics. An output with
/// an errored judge is marked (`judge_errors`): the gate scores it fail-closed, like an
/// errored call.
pub fn merge(
    scored: &mut [Scored],
    verdicts: &HashMap<(String, u32), Vec<Verdict>>,
    weights: &BTreeMap<String, f64>,
    thresholds: &BTreeMap<String, f64>,
) {
    for s in scored.iter_mut().filter(|s| !s.errored) {
        let Some(vs) = verdicts.get(&(s.case_id.clone(), s.sample)) else {
            continue;
        };
        for v in vs {
            match v {
                Verdict::Scored(r) => s.results.push(r.clone()),
                Verdict::Errored(e) => s.judge_errors.push(e.clone()),
            }
        }
        let mut m = promptgate_core::checks::metric_scores(&s.results, weights);
        promptgate_core::checks::apply_thresholds(&mut m, thresholds);
        s.metrics = m
            .into_iter()
            .map(|(k, (score, pass))| {
                (
                    k,
                    promptgate_core::checks::score::MetricScore { score, pass },
                )
            })
            .collect();
    }
}
