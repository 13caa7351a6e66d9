//! `similar` checks: the cosine similarity of the output's embedding and a reference text's
//! (usually `{{ expected }}`), from the OpenAI-compatible `/v1/embeddings` endpoint named by
//! `embeddings:` in `promptgate.yaml`. Each distinct text is one call through the engine — the
//! same cache, retries, concurrency and rate limits as completions — in `run/embeddings/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::judge::Verdict;
use crate::provider::{self, Provider, cache::Cache};
use crate::store::{Record, RunDir};
use crate::{Given, Interrupt, Observer, Options, Plan, PlannedCall, Runner, Watch, execute};
use promptgate_core::checks::score::Contexts;
use promptgate_core::checks::{Check, CheckResult, Kind};
use promptgate_core::config::defaults;
use promptgate_core::error::{Error, Result};
use promptgate_core::render::{ChatMessage, Request};
use promptgate_registry::Repo;

/// The embeddings endpoint, ready to call.
pub struct Embedder {
    pub model: String,
    provider: Arc<dyn Provider>,
    options: Options,
    cache: Option<Cache>,
}

/// Resolve the embeddings endpoint when some check needs it; `None` when none does.
pub fn prepare(
    repo: &Repo,
    checks: &[Check],
    no_cache: bool,
    refresh: bool,
    file: &str,
) -> Result<Option<Embedder>> {
    let Some(first) = checks
        .iter()
        .find(|c| matches!(c.kind, Kind::Similar { .. }))
    else {
        return Ok(None);
    };
    let Some(cfg) = &repo.config.embeddings else {
        return Err(Error::usage(format!(
            "check `{}` in {file} is `similar`, but promptgate.yaml names no embeddings endpoint",
            first.id
        ))
        .with_hint(
            "add `embeddings: { provider: openai, model: text-embedding-3-small }` to promptgate.yaml",
        ));
    };
    let pc = provider::lookup(&repo.config.providers, &cfg.provider)?.clone();
    if pc.kind != promptgate_core::config::ProviderKind::Openai {
        return Err(Error::usage(format!(
            "embeddings provider `{}` must be of kind `openai` (an OpenAI-compatible /v1/embeddings)",
            cfg.provider
        )));
    }
    let p = provider::openai::OpenAiEmbeddings::new(&cfg.provider, &pc)?;
    let options = crate::session::options_for(
        &pc,
        pc.concurrency.unwrap_or(defaults::CONCURRENCY).max(1),
        no_cache,
        refresh,
    );
    Ok(Some(Embedder {
        model: cfg.model.clone(),
        provider: Arc::new(p),
        options,
        cache: Some(Cache::new(&repo.state_dir().join("cache"))),
    }))
}

/// Cosine similarity, 0 for a zero vector.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

fn request_for(model: &str, text: &str) -> Request {
    Request {
        prompt: "embeddings".into(),
        version_id: String::new(),
        provider: "embeddings".into(),
        model: model.to_string(),
        params: Default::default(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: text.to_string(),
        }],
        tools: vec![],
        response_format: None,
    }
}

/// Score every answered output with every `similar` check.
pub async fn run(
    embedder: &Embedder,
    checks: &[Check],
    run: &RunDir,
    records: &[Record],
    contexts: &Contexts,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<HashMap<(String, u32), Vec<Verdict>>> {
    let mut out: HashMap<(String, u32), Vec<Verdict>> = HashMap::new();
    // (case, sample, check index) → (output text, reference text)
    let mut pairs: Vec<(&Record, &Check, String, String)> = Vec::new();
    for r in records {
        let Some(o) = &r.output else { continue };
        let ctx = &contexts.get(&r.case_id);
        for c in checks {
            let Kind::Similar { value, .. } = &c.kind else {
                continue;
            };
            match value.render(ctx) {
                Ok(reference) => pairs.push((r, c, o.content.clone(), reference)),
                Err(e) => {
                    out.entry((r.case_id.clone(), r.sample))
                        .or_default()
                        .push(Verdict::Scored(CheckResult {
                            judge: None,
                            check: c.id.clone(),
                            metric: c.metric.clone(),
                            pass: false,
                            score: 0.0,
                            reason: format!("cannot apply: {e}"),
                            cannot_apply: true,
                        }))
                }
            }
        }
    }
    // One call per distinct text, keyed by its request hash.
    let mut calls: BTreeMap<String, (PlannedCall, Arc<Request>)> = BTreeMap::new();
    for (_, _, a, b) in &pairs {
        for text in [a, b] {
            let request = request_for(&embedder.model, text);
            let hash = provider::request_hash(&request);
            calls.entry(hash.to_string()).or_insert_with(|| {
                let call = PlannedCall {
                    sample: 0,
                    row: 0,
                    request_hash: hash,
                    est_tokens: (text.len() / 4).min(u32::MAX as usize - 1) as u32 + 1,
                };
                (call, Arc::new(request))
            });
        }
    }
    let dir = RunDir {
        id: format!("{}/embeddings", run.id),
        path: run.path.join("embeddings"),
    };
    promptgate_core::fsutil::create_dir_all(&dir.path)?;
    // Each text's answer is recorded under its request hash.
    let (calls, rows): (Vec<PlannedCall>, Vec<Given>) = calls
        .into_iter()
        .enumerate()
        .map(|(row, (hash, (call, request)))| {
            let call = PlannedCall {
                row: row as u32,
                ..call
            };
            let given = Given {
                case_id: hash,
                line: 0,
                request,
            };
            (call, given)
        })
        .unzip();
    let plan = Plan::given("embeddings", &embedder.model, calls, rows);
    let runner = Runner {
        provider: embedder.provider.clone(),
        cache: embedder.cache.clone(),
        options: &embedder.options,
        run: &dir,
    };
    let watch = Watch {
        observer,
        interrupt,
    };
    let (recs, _) = execute(&plan, runner, None, watch, Vec::new()).await?;
    let mut vectors: HashMap<String, std::result::Result<Vec<f64>, String>> = HashMap::new();
    for r in recs {
        let v = match (&r.output, &r.error) {
            (Some(o), _) => serde_json::from_str::<Vec<f64>>(&o.content)
                .map_err(|e| format!("unreadable embedding: {e}")),
            (None, Some(e)) => Err(e.to_string()),
            (None, None) => Err("no answer".into()),
        };
        vectors.insert(r.case_id, v);
    }
    let vector = |text: &str| -> std::result::Result<&Vec<f64>, String> {
        let hash = provider::request_hash(&request_for(&embedder.model, text));
        match vectors.get(&hash.to_string()) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.clone()),
            None => Err("not embedded (interrupted)".into()),
        }
    };
    for (r, c, a, b) in pairs {
        let Kind::Similar { threshold, .. } = &c.kind else {
            continue;
        };
        let verdict = match (vector(&a), vector(&b)) {
            (Ok(va), Ok(vb)) => {
                let sim = cosine(va, vb);
                let pass = sim >= *threshold;
                let (pass, score, reason) = if c.negate {
                    (
                        !pass,
                        1.0 - sim.clamp(0.0, 1.0),
                        format!("not: cosine similarity {sim:.3} (threshold {threshold})"),
                    )
                } else {
                    (
                        pass,
                        sim.clamp(0.0, 1.0),
                        format!("cosine similarity {sim:.3} (threshold {threshold})"),
                    )
                };
                Verdict::Scored(CheckResult {
                    judge: None,
                    check: c.id.clone(),
                    metric: c.metric.clone(),
                    pass,
                    score,
                    reason,
                    cannot_apply: false,
                })
            }
            (Err(e), _) | (_, Err(e)) => {
                Verdict::Errored(format!("`similar` check `{}`: embedding failed: {e}", c.id))
            }
        };
        out.entry((r.case_id.clone(), r.sample))
            .or_default()
            .push(verdict);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[1.0, 0.0]) - 0.5f64.sqrt()).abs() < 1e-12);
    }
}
