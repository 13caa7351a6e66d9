//! LLM judges: a `judge` check names a judge prompt in the registry
//! (`judges/correctness@production`), so judges are versioned and gated like any prompt. Each
//! output is judged by rendering the judge with the case's variables, `expected`,
//! `expected_json` and `output`, calling its model through the same engine (concurrency, cache,
//! retries, traces), and reading a strict JSON answer `{"score", "pass", "reason"}`. A
//! malformed answer is asked again (a new sample, so the cache does not repeat it); one that
//! stays malformed, or a call that keeps failing, is an errored check — not a failure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::artifact::Artifact;
use crate::checks::score::Scored;
use crate::checks::{Check, CheckResult, Kind};
use crate::config::defaults;
use crate::engine::store::{Record, RunDir};
use crate::engine::{Interrupt, Observer, Options, Plan, PlannedCall, execute};
use crate::error::{Diagnostic, Error, ErrorKind, Result};
use crate::provider::{self, Provider, cache::Cache};
use crate::registry::{Ref, Repo};
use crate::render::{self, Subject};

/// A judge check, resolved: its prompt version, provider and settings.
pub struct Judge {
    pub check: Check,
    pub prompt: String,
    pub version_id: String,
    pub artifact: Artifact,
    pub scale: (f64, f64),
    pub attempts: u32,
    provider: Arc<dyn Provider>,
    options: Options,
    cache: Option<Cache>,
}

/// The variables a judge may use besides the dataset's.
pub const JUDGE_VARIABLES: [&str; 3] = ["output", "expected", "expected_json"];

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
        } = &c.kind
        else {
            continue;
        };
        let resolved = Ref::parse(reference).and_then(|r| repo.resolve(&r));
        let (prompt, version, _) = match resolved {
            Ok(x) => x,
            Err(e) => {
                problems.extend(
                    e.diagnostics
                        .into_iter()
                        .map(|d| d.in_context(format!("{file}: judge of check `{}`", c.id))),
                );
                continue;
            }
        };
        let artifact = repo.load_version(&prompt, &version)?.artifact;
        for (name, var) in &artifact.variables {
            if var.default.is_none()
                && !JUDGE_VARIABLES.contains(&name.as_str())
                && !subject_vars.contains(&name.as_str())
            {
                problems.push(
                    Diagnostic::error(format!(
                        "judge `{}@{}` needs variable `{name}`, which neither the dataset nor the judge stage provides",
                        prompt.name, version.id
                    ))
                    .in_context(format!("{file}: check `{}`", c.id))
                    .hint(format!(
                        "a judge can use `output`, `expected`, `expected_json` and the dataset's columns; give `{name}` a default"
                    )),
                );
            }
        }
        let name = artifact.model.provider.clone();
        let cfg = provider::lookup(&repo.config.providers, &name)?.clone();
        let p = provider::build(provider::Settings {
            name: &name,
            config: &cfg,
            repo_root: &repo.root,
        })?;
        let options = crate::engine::session::options_for(
            &cfg,
            cfg.concurrency.unwrap_or(defaults::CONCURRENCY).max(1),
            no_cache,
            refresh,
        );
        let cache = (cfg.kind != crate::config::ProviderKind::Replay)
            .then(|| Cache::new(&repo.state_dir().join("cache")));
        out.push(Judge {
            check: c.clone(),
            prompt: prompt.name.clone(),
            version_id: version.id.clone(),
            artifact,
            scale: *scale,
            attempts: *attempts,
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
    let t = content.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|x| x.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    let v: Value = serde_json::from_str(t).map_err(|e| format!("not JSON: {e}"))?;
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

/// Judge every answered output with every judge, in `run/judges/<check id>/`. Returns, per
/// (case, sample), each judge's verdict.
pub async fn run(
    judges: &[Judge],
    run: &RunDir,
    records: &[Record],
    contexts: &HashMap<String, Map<String, Value>>,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<HashMap<(String, u32), Vec<Verdict>>> {
    let mut out: HashMap<(String, u32), Vec<Verdict>> = HashMap::new();
    for judge in judges {
        let dir = RunDir {
            id: format!("{}/judges/{}", run.id, judge.check.id),
            path: run
                .path
                .join("judges")
                .join(judge.check.id.replace('/', "_")),
        };
        crate::fsutil::create_dir_all(&dir.path)?;
        let compiled = render::Compiled::new(
            &judge.artifact,
            &Subject {
                prompt: &judge.prompt,
                version_id: &judge.version_id,
                row: None,
            },
        )?;
        // One call per answered output: case id `<case>#<sample>`.
        let mut base: Vec<PlannedCall> = Vec::new();
        let empty = Map::new();
        for r in records {
            let Some(output) = &r.output else { continue };
            let mut vars = contexts.get(&r.case_id).unwrap_or(&empty).clone();
            vars.insert("output".into(), Value::String(output.content.clone()));
            let row = format!("case `{}`", r.case_id);
            let subject = Subject {
                prompt: &judge.prompt,
                version_id: &judge.version_id,
                row: Some(&row),
            };
            let request = render::bind_variables(&judge.artifact, &vars, &subject, false)
                .and_then(|b| compiled.render(&b, &subject));
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    out.entry((r.case_id.clone(), r.sample))
                        .or_default()
                        .push(Verdict::Errored(format!(
                            "judge `{}`: {}",
                            judge.check.id,
                            e.to_string().trim()
                        )));
                    continue;
                }
            };
            let hash: Arc<str> = provider::request_hash(&request).into();
            base.push(PlannedCall {
                case_id: format!("{}#{}", r.case_id, r.sample),
                line: r.line,
                sample: 0,
                request: Arc::new(request),
                request_hash: hash,
                est_tokens: 512,
            });
        }
        let mut pending: Vec<PlannedCall> = base;
        let mut last_problem: HashMap<String, String> = HashMap::new();
        let mut answered: HashSet<String> = HashSet::new();
        for attempt in 0..judge.attempts {
            if pending.is_empty() {
                break;
            }
            let plan = Plan {
                prompt: judge.prompt.clone(),
                version_id: judge.version_id.clone(),
                label: None,
                cases: pending.len(),
                repeats: 1,
                calls: pending
                    .iter()
                    .map(|c| PlannedCall {
                        sample: attempt,
                        ..c.clone()
                    })
                    .collect(),
                case_data: vec![],
            };
            let (recs, interrupted) = execute(
                &plan,
                judge.provider.clone(),
                judge.cache.clone(),
                &judge.options,
                &dir,
                observer.clone(),
                interrupt.clone(),
            )
            .await?;
            for rec in recs.iter().filter(|r| r.sample == attempt) {
                if answered.contains(&rec.case_id) {
                    continue;
                }
                let (case, sample) = split_key(&rec.case_id);
                match (&rec.output, &rec.error) {
                    (Some(o), _) => match parse_answer(&o.content, judge.scale) {
                        Ok((score, pass, reason)) => {
                            answered.insert(rec.case_id.clone());
                            let (pass, score, reason) = if judge.check.negate {
                                (!pass, 1.0 - score, format!("not: {reason}"))
                            } else {
                                (pass, score, reason)
                            };
                            out.entry((case, sample)).or_default().push(Verdict::Scored(
                                CheckResult {
                                    judge: Some(format!("{}@{}", judge.prompt, judge.version_id)),
                                    check: judge.check.id.clone(),
                                    metric: judge.check.metric.clone(),
                                    pass,
                                    score: score.clamp(0.0, 1.0),
                                    reason,
                                },
                            ));
                        }
                        Err(why) => {
                            last_problem
                                .insert(rec.case_id.clone(), format!("malformed answer: {why}"));
                        }
                    },
                    (None, Some(e)) => {
                        last_problem.insert(rec.case_id.clone(), e.to_string());
                    }
                    (None, None) => {}
                }
            }
            if interrupted {
                break;
            }
            pending.retain(|c| !answered.contains(&c.case_id));
        }
        for c in pending {
            let (case, sample) = split_key(&c.case_id);
            let why = last_problem
                .remove(&c.case_id)
                .unwrap_or_else(|| "not judged (interrupted)".into());
            out.entry((case, sample))
                .or_default()
                .push(Verdict::Errored(format!(
                    "judge `{}` ({}@{}) after {} attempt(s): {why}",
                    judge.check.id, judge.prompt, judge.version_id, judge.attempts
                )));
        }
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
        let mut m = crate::checks::metric_scores(&s.results, weights);
        crate::checks::apply_thresholds(&mut m, thresholds);
        s.metrics = m
            .into_iter()
            .map(|(k, (score, pass))| (k, crate::checks::score::MetricScore { score, pass }))
            .collect();
    }
}
