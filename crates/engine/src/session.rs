//! One evaluation, end to end: resolve the version, load its suite and datasets, validate,
//! build the provider, plan, and execute into a run folder (new, or resumed).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::provider::{
    self, Completion, Provider,
    cache::{Cache, Stamp},
    limiter::RateLimiter,
    replay::Replay,
};
use promptgate_core::config::{ProviderConfig, ProviderKind, defaults};
use promptgate_core::dataset::{self, Dataset};
use promptgate_core::error::{Error, Result};
use promptgate_core::suite;
use promptgate_registry::{Ref, Repo};

use super::store::{Manifest, ProviderInfo, Record, RunDir};
use super::{
    CacheMode, Interrupt, Observer, Options, Plan, Prefetched, Runner, Sink, Summary, SummaryFold,
    Watch, execute, plan, plancache,
};
use promptgate_core::dataset::DatasetInfo;

/// What to evaluate and how.
#[derive(Debug, Clone, Default)]
pub struct EvalRequest {
    pub reference: String,
    /// A suite file (default `prompts/<name>/suite.yaml` when it exists).
    pub suite: Option<PathBuf>,
    /// Datasets replacing the suite's.
    pub datasets: Vec<PathBuf>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub concurrency: Option<usize>,
    pub repeats: Option<u32>,
    pub no_cache: bool,
    pub refresh: bool,
    /// Continue this run (id or folder).
    pub resume: Option<String>,
    /// Serve answers from this run (id or folder) or cassette file instead of a provider.
    pub replay: Option<String>,
}

/// A finished (or interrupted) evaluation.
pub struct Evaluation {
    pub run: RunDir,
    pub artifact: Arc<promptgate_core::artifact::Artifact>,
    pub manifest: Manifest,
    pub plan: Plan,
    pub records: Vec<Record>,
    pub summary: Summary,
    /// Warnings worth showing (e.g. a failed OTLP export).
    pub warnings: Vec<String>,
}

/// Everything prepared before the first call.
pub struct Prepared {
    pub plan: Plan,
    /// The suite (its `checks:` and `gate:` are for the stages after the run).
    pub suite: suite::Loaded,
    pub artifact: Arc<promptgate_core::artifact::Artifact>,
    pub provider: Arc<dyn Provider>,
    pub provider_config: ProviderConfig,
    pub options: Options,
    pub run: RunDir,
    pub manifest: Manifest,
    pub cache: Option<Cache>,
    /// Answers already read while planning (taken by the first execution; later ones, as a
    /// sequential gate's next look, read the cache again).
    pub prefetched: std::sync::Mutex<Option<Prefetched>>,
    /// The response cache's stamp before any answer was read from it, when the run's answers
    /// may become the plan's answer snapshot (cache in use, not resumed, no snapshot used).
    snapshot_stamp: Option<Stamp>,
    /// The plan's name in the plan cache.
    plan_digest: String,
}

impl Prepared {
    /// Whether this run's answers may become its plan's answer snapshot (then a sink that folds
    /// the records must keep them for it): the cache in use, not resumed, no snapshot used,
    /// and at most [`defaults::ANSWER_SNAPSHOT_MAX_CALLS`] calls.
    pub fn takes_snapshot(&self) -> bool {
        self.snapshot_stamp.is_some()
            && self.plan.calls.len() <= defaults::ANSWER_SNAPSHOT_MAX_CALLS
    }
}

/// An evaluation planned (resolved, datasets read and rendered, provider built) but not started:
/// no run folder exists yet, so whatever validates it may still refuse it and leave nothing
/// behind.
pub struct Planned {
    pub plan: Plan,
    pub suite: suite::Loaded,
    pub artifact: Arc<promptgate_core::artifact::Artifact>,
    pub provider: Arc<dyn Provider>,
    pub provider_config: ProviderConfig,
    pub options: Options,
    pub cache: Option<Cache>,
    prefetched: Option<Prefetched>,
    snapshot_stamp: Option<Stamp>,
    plan_digest: String,
    /// What the run's manifest records.
    prompt: String,
    version_id: String,
    version_hash: String,
    label: Option<String>,
    datasets: Vec<DatasetInfo>,
    repeats: u32,
    model: String,
    concurrency: usize,
    max_retries: u32,
    resume: Option<String>,
}

/// A dataset's path as the plan cache names it: relative to the repository when inside it,
/// so that `-C DIR` and a run from inside DIR share plans.
fn key_path(repo: &Repo, p: &Path) -> String {
    let root = std::fs::canonicalize(&repo.root).unwrap_or_else(|_| repo.root.clone());
    let full = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    full.strip_prefix(&root)
        .unwrap_or(&full)
        .to_string_lossy()
        .replace('\\', "/")
}

/// A plan read from the plan cache with an answer for every call.
struct Warm {
    stored: plancache::Stored,
    answers: Prefetched,
    /// See [`Prepared::snapshot_stamp`].
    stamp: Option<Stamp>,
    plan_digest: String,
}

/// The plan stored for `key`, if every answer it needs is cached: from its answer snapshot
/// when the cache has not changed since it was taken, else looked up in the cache.
fn warm_start(
    repo: &Repo,
    cache: &Cache,
    provider: &dyn Provider,
    key: plancache::Key,
) -> Option<Warm> {
    let plan_digest = key.digest();
    let endpoint = provider.endpoint();
    let state_dir = repo.state_dir();
    // The plan and its answer snapshot are read at the same time, then checked to line up.
    // The cache's stamp is read before any answer is: if it is the same when the run ends, no
    // answer read or written meanwhile has been replaced.
    let (stored, (stamp, snapshot)) = rayon::join(
        || {
            let stored = plancache::load(&state_dir, &plan_digest, key.repeats)?;
            let digest = plancache::calls_digest(stored.calls_iter());
            Some((stored, digest))
        },
        || {
            let stamp = cache.stamp();
            let snapshot = stamp.as_ref().and_then(|stamp| {
                plancache::read_answers(&state_dir, &plan_digest, &endpoint, stamp)
            });
            (stamp, snapshot)
        },
    );
    let (stored, calls_digest) = stored?;
    if let Some(answers) = snapshot.and_then(|s| s.answers(stored.calls(), &calls_digest)) {
        return Some(Warm {
            stored,
            answers: Prefetched::InOrder(answers),
            stamp: None,
            plan_digest,
        });
    }
    let keys: Vec<String> = stored
        .calls_iter()
        .map(|(hash, sample)| Cache::key(&endpoint, hash, sample))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let hits = cache.get_many(&refs);
    (hits.len() == keys.len()).then_some(Warm {
        stored,
        answers: Prefetched::ByKey(hits),
        stamp,
        plan_digest,
    })
}

fn resolve_path(repo: &Repo, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        repo.root.join(path)
    }
}

/// Execution settings from a provider's configuration.
pub fn options_for(
    provider_config: &ProviderConfig,
    concurrency: usize,
    no_cache: bool,
    refresh: bool,
) -> Options {
    Options {
        concurrency,
        max_retries: provider_config.max_retries.unwrap_or(defaults::MAX_RETRIES),
        backoff_base: Duration::from_millis(
            provider_config
                .backoff_base_ms
                .unwrap_or(defaults::BACKOFF_BASE_MS),
        ),
        backoff_max: Duration::from_millis(
            provider_config
                .backoff_max_ms
                .unwrap_or(defaults::BACKOFF_MAX_MS),
        ),
        cache: if no_cache {
            CacheMode::Off
        } else if refresh {
            CacheMode::Refresh
        } else {
            CacheMode::Use
        },
        limiter: Arc::new(RateLimiter::new(
            provider_config.requests_per_minute,
            provider_config.tokens_per_minute,
        )),
        price_per_1k: (
            provider_config.price_input_per_1k.unwrap_or(0.0),
            provider_config.price_output_per_1k.unwrap_or(0.0),
        ),
        abort_after_fatal: provider_config
            .abort_after_fatal
            .unwrap_or(defaults::ABORT_AFTER_FATAL),
    }
}

/// Prepare an evaluation: every check that can fail without calling a model happens here.
pub fn prepare(repo: &Repo, req: &EvalRequest) -> Result<Prepared> {
    plan_eval(repo, req)?.start(repo)
}

/// The suite (explicit, else the prompt's own if it exists) and the datasets to run: the
/// request's, else the suite's.
fn suite_and_datasets(
    repo: &Repo,
    req: &EvalRequest,
    prompt: &str,
) -> Result<(suite::Loaded, Vec<PathBuf>)> {
    let suite_path = req.suite.clone().or_else(|| {
        let p = repo.suite_path(prompt);
        p.is_file().then_some(p)
    });
    let suite = match &suite_path {
        Some(p) => suite::load(p)?,
        None => suite::Loaded {
            path: None,
            suite: suite::Suite::default(),
            digest: String::new(),
        },
    };
    let dataset_paths: Vec<PathBuf> = if req.datasets.is_empty() {
        suite
            .suite
            .datasets
            .iter()
            .map(|d| resolve_path(repo, d))
            .collect()
    } else {
        req.datasets.clone()
    };
    if dataset_paths.is_empty() {
        return Err(
            Error::usage(format!("no dataset to evaluate `{}` on", req.reference)).with_hint(
                format!(
                    "pass `--dataset FILE`, or list `datasets:` in `{}`",
                    repo.suite_path(prompt).display()
                ),
            ),
        );
    }
    Ok((suite, dataset_paths))
}

/// The provider a run calls: a recorded run's answers (`--replay`), else the one the request,
/// the suite or the version names.
fn build_provider(
    repo: &Repo,
    req: &EvalRequest,
    suite: &suite::Loaded,
    artifact: &promptgate_core::artifact::Artifact,
) -> Result<(Arc<dyn Provider>, ProviderConfig)> {
    Ok(match &req.replay {
        Some(src) => {
            let path = RunDir::open(&repo.state_dir(), src)
                .map(|r| r.path)
                .unwrap_or_else(|_| PathBuf::from(src));
            let replay = Replay::load("replay", &path)?;
            let cfg = ProviderConfig {
                kind: ProviderKind::Replay,
                base_url: None,
                api_key_env: None,
                concurrency: Some(64),
                requests_per_minute: None,
                tokens_per_minute: None,
                timeout_secs: None,
                max_retries: Some(0),
                backoff_base_ms: None,
                backoff_max_ms: None,
                price_input_per_1k: None,
                price_output_per_1k: None,
                cassette: Some(path.display().to_string()),
                abort_after_fatal: None,
                max_tokens_field: None,
            };
            (Arc::new(replay), cfg)
        }
        None => {
            let name = req
                .provider
                .clone()
                .or(suite.suite.provider.clone())
                .unwrap_or_else(|| artifact.model.provider.clone());
            provider::of_repo(repo, &name)?
        }
    })
}

/// Plan an evaluation without starting it (see [`Planned`]).
pub fn plan_eval(repo: &Repo, req: &EvalRequest) -> Result<Planned> {
    let r = Ref::parse(&req.reference)?;
    let (prompt, version, label) = repo.resolve(&r)?;
    let loaded = repo.load_version(&prompt, &version)?;
    let shared = Arc::new(loaded.artifact.clone());
    let artifact = &shared;

    let (suite, dataset_paths) = suite_and_datasets(repo, req, &prompt.name)?;
    let repeats = req.repeats.or(suite.suite.repeats).unwrap_or(1).max(1);
    let model = req.model.clone().or(suite.suite.model.clone());

    let provider_built = build_provider(repo, req, &suite, artifact);
    // Replayed answers are not worth caching: they are already on disk.
    let cache = match &provider_built {
        Ok((_, cfg)) if cfg.kind != ProviderKind::Replay => {
            Some(Cache::new(&repo.state_dir().join("cache")))
        }
        _ => None,
    };
    let use_cache = !req.no_cache && !req.refresh;
    let key_of = |datasets: Vec<(String, String)>| plancache::Key {
        prompt: prompt.name.clone(),
        version_id: version.id.clone(),
        version_hash: version.hash.clone(),
        datasets,
        repeats,
        model_override: model.clone(),
    };

    // The plan and its answers depend on the datasets' digests, not on their rows: with a warm
    // cache they are read while the rows are parsed.
    let group = suite.suite.group_column();
    let max_line = repo
        .config
        .limits
        .as_ref()
        .and_then(|l| l.dataset_line_bytes)
        .unwrap_or(defaults::DATASET_LINE_BYTES);
    let (parsed, warm) = rayon::join(
        || {
            dataset_paths
                .iter()
                .map(|p| dataset::load_with(p, group, max_line))
                .collect::<Vec<_>>()
        },
        || -> Option<Warm> {
            let (provider, _) = provider_built.as_ref().ok()?;
            let cache = cache
                .as_ref()
                .filter(|_| use_cache && req.resume.is_none())?;
            let digests = dataset_paths
                .iter()
                .map(|p| Some((key_path(repo, p), dataset::digest(p).ok()?)))
                .collect::<Option<Vec<_>>>()?;
            warm_start(repo, cache, &*provider.clone(), key_of(digests))
        },
    );
    let mut datasets: Vec<Dataset> = Vec::new();
    let mut problems = Vec::new();
    for d in parsed {
        match d {
            Ok(d) => datasets.push(d),
            Err(e) => problems.extend(e.into_diagnostics()),
        }
    }
    // Every row is checked against the version's variables when the plan renders it.
    if !problems.is_empty() {
        return Err(Error::many(promptgate_core::ErrorKind::Usage, problems));
    }
    let render = || {
        plan(
            &prompt.name,
            &version.id,
            label.as_deref(),
            artifact,
            &datasets,
            repeats,
            model.as_deref(),
        )
    };
    let (provider, provider_config) = match provider_built {
        Ok(b) => b,
        Err(e) => {
            // Problems in the user's data come first (all at once), then the provider's.
            render()?;
            return Err(e);
        }
    };
    let concurrency = req
        .concurrency
        .or(provider_config.concurrency)
        .unwrap_or(defaults::CONCURRENCY)
        .max(1);
    let max_retries = provider_config.max_retries.unwrap_or(defaults::MAX_RETRIES);
    let options = options_for(&provider_config, concurrency, req.no_cache, req.refresh);

    // The plan: from the plan cache when every answer is cached already (nothing to send, so
    // nothing to render), else rendered (and remembered). What was read ahead counts only if
    // the files parsed are the files it was read for.
    let plan_key = key_of(
        datasets
            .iter()
            .map(|d| (key_path(repo, &d.path), d.digest.clone()))
            .collect(),
    );
    let plan_digest = plan_key.digest();
    let warm = warm.filter(|w| w.plan_digest == plan_digest).and_then(|w| {
        let rendering = crate::Rendering {
            artifact: artifact.clone(),
            model_override: model.clone(),
        };
        let plan = w.stored.into_plan(
            &prompt.name,
            &version.id,
            label.as_deref(),
            &datasets,
            rendering,
        )?;
        Some((plan, w.answers, w.stamp))
    });
    let (plan, prefetched, snapshot_stamp) = match warm {
        Some((plan, answers, stamp)) => (plan, Some(answers), stamp),
        None => {
            // Read before any answer is: if it is the same when the run ends, no answer read
            // or written meanwhile has been replaced.
            let stamp = match (&cache, options.cache, &req.resume) {
                (Some(c), CacheMode::Use, None) => c.stamp(),
                _ => None,
            };
            let p = render()?;
            plancache::store(&repo.state_dir(), &plan_digest, &p);
            (p, None, stamp)
        }
    };

    let dataset_infos: Vec<DatasetInfo> = datasets
        .iter()
        .map(|d| DatasetInfo {
            path: d.path.display().to_string(),
            digest: d.digest.clone(),
            cases: d.cases.len(),
        })
        .collect();
    let mut plan = plan;
    // The plan keeps the cases (moved, not copied) for whatever scores the outputs.
    let mut datasets = datasets.into_iter();
    let mut cases = datasets.next().map(|d| d.cases).unwrap_or_default();
    for d in datasets {
        cases.extend(d.cases);
    }
    plan.case_data = Arc::new(cases);
    Ok(Planned {
        plan,
        suite,
        artifact: shared.clone(),
        provider,
        provider_config,
        options,
        cache,
        prefetched,
        snapshot_stamp,
        plan_digest,
        prompt: prompt.name.clone(),
        version_id: version.id.clone(),
        version_hash: version.hash.clone(),
        label,
        datasets: dataset_infos,
        repeats,
        model: model.unwrap_or_else(|| artifact.model.name.clone()),
        concurrency,
        max_retries,
        resume: req.resume.clone(),
    })
}

impl Planned {
    /// Hold `other`'s cases instead of an equal copy when both read the same dataset files
    /// (paths and digests): the two sides of a gate keep one copy.
    pub fn share_cases_with(&mut self, other: &Planned) {
        if self.datasets == other.datasets {
            self.plan.case_data = other.plan.case_data.clone();
        }
    }

    /// Start the run: create its folder (or open the one being resumed) and its manifest.
    pub fn start(self, repo: &Repo) -> Result<Prepared> {
        let (run, manifest) = match &self.resume {
            Some(id) => {
                let run = RunDir::open(&repo.state_dir(), id)?;
                let m = run.manifest()?;
                if m.version_hash != self.version_hash {
                    return Err(Error::usage(format!(
                        "run `{}` evaluated `{}@{}`, not `{}@{}`",
                        run.id, m.prompt, m.version_id, self.prompt, self.version_id
                    ))
                    .with_hint(format!(
                        "resume it with `promptgate eval {}@{} --resume {}`",
                        m.prompt, m.version_id, run.id
                    )));
                }
                let digests: Vec<&str> = m.datasets.iter().map(|d| d.digest.as_str()).collect();
                let now: Vec<&str> = self.datasets.iter().map(|d| d.digest.as_str()).collect();
                if digests != now || m.repeats != self.repeats {
                    return Err(Error::usage(format!(
                        "the datasets or repeats of run `{}` changed since it started",
                        run.id
                    ))
                    .with_hint("start a new run instead of resuming this one"));
                }
                (run, m)
            }
            None => {
                let run = RunDir::create(&repo.state_dir(), &self.prompt, &self.version_id)?;
                let m = Manifest {
                    run_id: run.id.clone(),
                    promptgate_version: env!("CARGO_PKG_VERSION").to_string(),
                    prompt: self.prompt.clone(),
                    version_id: self.version_id.clone(),
                    version_hash: self.version_hash.clone(),
                    label: self.label.clone(),
                    suite: self.suite.path.as_ref().map(|p| p.display().to_string()),
                    suite_digest: self.suite.digest.clone(),
                    datasets: self.datasets.clone(),
                    repeats: self.repeats,
                    provider: ProviderInfo {
                        name: self.provider.name().to_string(),
                        system: self.provider.system().to_string(),
                        endpoint: self.provider.endpoint(),
                        model: self.model.clone(),
                        concurrency: self.concurrency,
                        max_retries: self.max_retries,
                        api_key_env: self.provider_config.api_key_env.clone(),
                    },
                    calls: self.plan.calls.len(),
                    started_at: promptgate_core::clock::now(),
                    finished_at: None,
                    status: "running".into(),
                };
                // On disk before any result: a results file never stands without it.
                run.write_manifest(&m)?;
                (run, m)
            }
        };
        Ok(Prepared {
            plan: self.plan,
            suite: self.suite,
            artifact: self.artifact,
            provider: self.provider,
            provider_config: self.provider_config,
            options: self.options,
            run,
            manifest,
            cache: self.cache,
            prefetched: std::sync::Mutex::new(self.prefetched),
            snapshot_stamp: self.snapshot_stamp,
            plan_digest: self.plan_digest,
        })
    }
}

/// Run a prepared evaluation to the end (or until interrupted).
pub async fn run(
    repo: &Repo,
    prepared: Prepared,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<Evaluation> {
    let t0 = Instant::now();
    let (records, interrupted) =
        execute_cases(&prepared, None, observer, interrupt, Vec::new()).await?;
    finish(repo, prepared, records, interrupted, t0.elapsed(), None).await
}

/// Run a prepared plan with its records folded by `sink` as they are written: the evaluation
/// (its `records` empty) and the sink. `summary` takes from the sink, once it is done, the
/// run's summary and the records it kept for the answer snapshot (see
/// [`Prepared::takes_snapshot`]; none otherwise).
pub async fn run_folded<S: Sink>(
    repo: &Repo,
    prepared: Prepared,
    sink: S,
    summary: impl FnOnce(&mut S) -> (SummaryFold, Vec<Record>),
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
) -> Result<(Evaluation, S)> {
    let t0 = Instant::now();
    let (mut sink, interrupted) = execute_cases(&prepared, None, observer, interrupt, sink).await?;
    let wall = t0.elapsed();
    let (fold, kept) = summary(&mut sink);
    let summary = fold.finish(&prepared.run.id, &prepared.plan, wall, interrupted);
    let ev = close(repo, prepared, summary, &kept, None).await?;
    Ok((ev, sink))
}

/// The plan's calls for some cases only.
fn restricted(plan: &Plan, only: &HashSet<String>) -> Plan {
    Plan {
        cases: only.len(),
        ..plan.only(|c| only.contains(plan.case_of(c).0))
    }
}

/// Make the calls of some cases (all with `None`); calls already in the run folder are not
/// made again. Returns every record of the run so far and whether it was interrupted.
pub async fn execute_cases<S: Sink>(
    prepared: &Prepared,
    only: Option<&HashSet<String>>,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
    sink: S,
) -> Result<(S, bool)> {
    let subset = only.map(|o| restricted(&prepared.plan, o));
    let runner = Runner {
        provider: prepared.provider.clone(),
        cache: prepared.cache.clone(),
        options: &prepared.options,
        run: &prepared.run,
    };
    let out = execute(
        subset.as_ref().unwrap_or(&prepared.plan),
        runner,
        prepared.prefetched.lock().ok().and_then(|mut p| p.take()),
        Watch {
            observer,
            interrupt,
        },
        sink,
    )
    .await;
    if out.is_err() {
        // A run that fails still leaves its manifest, saying so.
        let mut m = prepared.manifest.clone();
        m.status = "aborted".into();
        m.finished_at = Some(promptgate_core::clock::now());
        let _ = prepared.run.write_manifest(&m);
    }
    out
}

/// Close a run: its summary (over `only` cases when the run deliberately made only those, as
/// a sequential gate that stopped early), the manifest's end and status, the OTLP export.
pub async fn finish(
    repo: &Repo,
    prepared: Prepared,
    records: Vec<Record>,
    interrupted: bool,
    wall: Duration,
    only: Option<&HashSet<String>>,
) -> Result<Evaluation> {
    let subset = only.map(|o| restricted(&prepared.plan, o));
    let plan = subset.as_ref().unwrap_or(&prepared.plan);
    let summary = Summary::from_records(&prepared.run.id, plan, &records, wall, interrupted);
    let mut ev = close(repo, prepared, summary, &records, only).await?;
    ev.records = records;
    Ok(ev)
}

/// Close a run whose summary is made: the manifest's end and status, the answer snapshot (from
/// `records`, when they are all there), the OTLP export. The evaluation's `records` are empty.
async fn close(
    repo: &Repo,
    prepared: Prepared,
    summary: Summary,
    records: &[Record],
    only: Option<&HashSet<String>>,
) -> Result<Evaluation> {
    let snapshot = prepared.takes_snapshot() && only.is_none();
    let Prepared {
        plan,
        artifact,
        run,
        mut manifest,
        cache,
        provider,
        snapshot_stamp,
        plan_digest,
        ..
    } = prepared;
    manifest.finished_at = Some(promptgate_core::clock::now());
    manifest.status = if summary.missing > 0 {
        "interrupted".into()
    } else if only.is_some_and(|o| o.len() < plan.cases) {
        "stopped_early".into()
    } else {
        "complete".into()
    };
    // File and SQLite work, done where blocking is allowed.
    crate::blocking(|| -> Result<()> {
        run.write_manifest(&manifest)?;
        if let (Some(stamp), Some(cache), true) = (&snapshot_stamp, &cache, snapshot) {
            snapshot_answers(repo, &plan, records, stamp, cache, &plan_digest, &*provider);
        }
        Ok(())
    })?;
    let mut warnings = Vec::new();
    if let Some(endpoint) = repo
        .config
        .telemetry
        .as_ref()
        .and_then(|t| t.otlp_endpoint.as_deref())
    {
        let spans = read_spans(&run);
        if let Err(e) = super::trace::export_otlp(endpoint, &spans).await {
            warnings.push(format!(
                "could not export {} spans to the OTLP endpoint: {e}",
                spans.len()
            ));
        }
    }
    Ok(Evaluation {
        run,
        artifact,
        manifest,
        plan,
        records: Vec::new(),
        summary,
        warnings,
    })
}

/// Keep a complete run's answers as its plan's answer snapshot, if they are exactly what the
/// response cache holds: every call answered, every answer written became the stored one, and
/// no stored answer replaced since `stamp` was read (before any answer was).
fn snapshot_answers(
    repo: &Repo,
    plan: &Plan,
    records: &[Record],
    stamp: &Stamp,
    cache: &Cache,
    plan_digest: &str,
    provider: &dyn Provider,
) {
    if cache.diverged() || records.len() != plan.calls.len() {
        return;
    }
    let by_call: HashMap<(&str, u32), &Completion> = records
        .iter()
        .filter_map(|r| Some(((r.case_id.as_str(), r.sample), r.output.as_ref()?)))
        .collect();
    let Some(answers) = plan
        .calls
        .iter()
        .map(|c| by_call.get(&(plan.case_of(c).0, c.sample)).copied())
        .collect::<Option<Vec<&Completion>>>()
    else {
        return;
    };
    if cache.stamp().as_ref() == Some(stamp) {
        plancache::store_answers(
            &repo.state_dir(),
            plan_digest,
            &provider.endpoint(),
            stamp,
            plan,
            &answers,
        );
    }
}

fn read_spans(run: &RunDir) -> Vec<super::trace::Span> {
    std::fs::read_to_string(run.path.join(super::store::TRACES))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}
