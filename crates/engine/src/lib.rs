//! promptgate-engine: everything that calls a model. [`provider`] holds the providers, the
//! response cache and rate limits; this crate's root is the execution engine; [`pipeline`]
//! scores runs, pairs them and decides a gate.
//!
//! The execution engine: plans a run (every case rendered before any call), executes it with
//! bounded concurrency, rate limits and retries, persists every result as it arrives, emits
//! typed events for progress, and handles interruption (drain, then abort).

pub mod pipeline;
pub mod plancache;
pub mod provider;
pub mod session;
pub mod store;
pub mod trace;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::provider::cache::Cache;
use crate::provider::limiter::{RateLimiter, backoff};
use crate::provider::{CallError, CallKey, Completion, ContentHash, Provider, request_hash};
use promptgate_core::artifact::Artifact;
use promptgate_core::dataset::{self, Dataset};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result};
use promptgate_core::render::{self, Request, Subject};
use store::{Record, RunDir};
use trace::Span;

/// Answers put in the response cache are committed once this many are pending (and at the
/// end of the run): one SQLite transaction per batch, not per call.
const FLUSH_EVERY: usize = 256;

/// Finished calls the writer takes at once before it writes (a crash loses at most this many
/// answered calls beyond those in flight).
const WRITE_BATCH: usize = 64;

/// Finished calls that may wait for the writer (it scores a chunk of them at a time, say):
/// beyond, new calls wait. Unbounded, a writer slower than a zero-latency provider held 1M
/// finished calls at once (0.7 GB).
const WRITER_BACKLOG: usize = 4096;

/// Calls whose cache keys are looked up at once (a cold 1M-call run held 88 MB of keys).
const LOOKUP_PART: usize = 65_536;

/// Rows a plan renders at once (in parallel).
const RENDER_PART: usize = 65_536;

/// How long the writer waits for a finished call before committing pending cache entries.
const IDLE_FLUSH: Duration = Duration::from_millis(200);

/// One call to make: 44 bytes, so that a plan of 1M calls stays small — its case (id and line)
/// is the plan's row, found with [`Plan::case_of`].
#[derive(Debug, Clone, Copy)]
pub struct PlannedCall {
    /// Which row of the plan it belongs to: its case, and the request it sends (repeats of a
    /// case send the same one).
    pub row: u32,
    pub sample: u32,
    pub request_hash: ContentHash,
    /// Rough token estimate (characters / 4 + max_tokens), for tokens-per-minute limits.
    pub est_tokens: u32,
}

/// A run, planned: every case rendered (and checked), every call listed with its request's
/// hash. A plan holds no request: each is rendered again when it is sent, so memory does not
/// grow with the prompt's length (holding them cost 0.9 KB a call for a two-line prompt).
#[derive(Debug, Clone)]
pub struct Plan {
    pub prompt: String,
    pub version_id: String,
    pub label: Option<String>,
    pub cases: usize,
    pub repeats: u32,
    pub calls: Vec<PlannedCall>,
    pub requests: Requests,
    /// The cases themselves (variables, expectations), for the requests and whatever scores
    /// the outputs.
    pub case_data: Arc<Vec<dataset::Case>>,
}

/// Where a plan's requests come from when they are sent.
#[derive(Debug, Clone)]
pub enum Requests {
    /// Rendered from the version's templates and row `row` of the plan's cases.
    Rendered(Arc<Rendering>),
    /// Given whole, one a row (a judge's questions, texts to embed).
    Given(Arc<[Given]>),
}

/// A request given whole, with the case (or key) its answer is recorded under.
#[derive(Debug)]
pub struct Given {
    pub case_id: String,
    pub line: usize,
    pub request: Arc<Request>,
}

/// What rendering a plan's rows needs besides its cases.
#[derive(Debug)]
pub struct Rendering {
    pub artifact: Arc<Artifact>,
    pub model_override: Option<String>,
}

impl Plan {
    /// A plan that sends the given requests: a call of row `i` sends `rows[i]`.
    pub fn given(
        prompt: &str,
        version_id: &str,
        calls: Vec<PlannedCall>,
        rows: Vec<Given>,
    ) -> Plan {
        Plan {
            prompt: prompt.to_string(),
            version_id: version_id.to_string(),
            label: None,
            cases: calls.len(),
            repeats: 1,
            calls,
            requests: Requests::Given(rows.into()),
            case_data: Default::default(),
        }
    }

    /// The case a call is for: its id and its line in its dataset (`("", 0)` for a row the
    /// plan does not have).
    pub fn case_of(&self, call: &PlannedCall) -> (&str, usize) {
        let row = call.row as usize;
        match &self.requests {
            Requests::Given(rows) => rows.get(row).map(|g| (g.case_id.as_str(), g.line)),
            Requests::Rendered(_) => self.case_data.get(row).map(|c| (&*c.id, c.line)),
        }
        .unwrap_or(("", 0))
    }

    /// The same plan, making only the calls `keep` selects.
    pub fn only(&self, keep: impl Fn(&PlannedCall) -> bool) -> Plan {
        Plan {
            prompt: self.prompt.clone(),
            version_id: self.version_id.clone(),
            label: self.label.clone(),
            cases: self.cases,
            repeats: self.repeats,
            calls: self.calls.iter().filter(|c| keep(c)).cloned().collect(),
            requests: self.requests.clone(),
            case_data: self.case_data.clone(),
        }
    }

    /// What renders this plan's requests (its templates compiled once).
    fn requester(&self) -> Result<Requester<'_>> {
        Ok(match &self.requests {
            Requests::Given(list) => Requester::Given(list, self),
            Requests::Rendered(r) => Requester::Rendered {
                compiled: Box::new(render::Compiled::new(
                    &r.artifact,
                    &Subject {
                        prompt: &self.prompt,
                        version_id: &self.version_id,
                        row: None,
                    },
                )?),
                rendering: r,
                plan: self,
            },
        })
    }
}

/// Renders (or hands out) the request a call sends.
enum Requester<'a> {
    Given(&'a [Given], &'a Plan),
    Rendered {
        /// Boxed: one per execution, and much larger than the other variant.
        compiled: Box<render::Compiled<'a>>,
        rendering: &'a Rendering,
        plan: &'a Plan,
    },
}

impl Requester<'_> {
    fn plan(&self) -> &Plan {
        match self {
            Requester::Given(_, plan) | Requester::Rendered { plan, .. } => plan,
        }
    }

    fn request(&self, call: &PlannedCall) -> Result<Arc<Request>> {
        let missing = || {
            Error::new(
                ErrorKind::Infrastructure,
                Diagnostic::error(format!(
                    "case `{}` has no request in its plan (row {})",
                    self.plan().case_of(call).0,
                    call.row
                )),
            )
        };
        match self {
            Requester::Given(list, _) => list
                .get(call.row as usize)
                .map(|g| g.request.clone())
                .ok_or_else(missing),
            Requester::Rendered {
                compiled,
                rendering,
                plan,
            } => {
                let case = plan.case_data.get(call.row as usize).ok_or_else(missing)?;
                let request = render_case(plan, compiled, rendering, case)
                    .map_err(|d| Error::many(ErrorKind::Usage, d))?;
                // What is sent must be what the plan (and so the cache key) names: a plan read
                // back from the plan cache that does not match its cases is refused, never
                // sent under another request's key.
                if request_hash(&request) != call.request_hash {
                    return Err(Error::new(
                        ErrorKind::Infrastructure,
                        Diagnostic::error(format!(
                            "the request of case `{}` is not the one its plan recorded",
                            plan.case_of(call).0
                        ))
                        .hint("the plan cache is stale or was edited: delete `.promptgate/plans/` and run again"),
                    ));
                }
                Ok(Arc::new(request))
            }
        }
    }
}

/// Render one case's request, as [`plan`] does and as it is sent.
fn render_case(
    plan: &Plan,
    compiled: &render::Compiled<'_>,
    rendering: &Rendering,
    case: &dataset::Case,
) -> std::result::Result<Request, Vec<Diagnostic>> {
    let row = format!("{}:{} (case `{}`)", case.file, case.line, case.id);
    let subject = Subject {
        prompt: &plan.prompt,
        version_id: &plan.version_id,
        row: Some(&row),
    };
    let vars = dataset::typed_vars(&rendering.artifact, case)
        .map_err(|msg| vec![Diagnostic::error(format!("{row}: {msg}"))])?;
    let mut request = render::bind_variables(&rendering.artifact, &vars, &subject, false)
        .and_then(|bound| compiled.render(&bound, &subject))
        .map_err(|e| e.into_diagnostics())?;
    if let Some(m) = &rendering.model_override {
        request.model = m.clone();
    }
    Ok(request)
}

/// Render every case of every dataset (all problems reported at once, with file:line), hash
/// each request and drop it. The version's templates are compiled once and the cases rendered
/// in parallel. The plan's cases are left empty: the caller moves the datasets' cases in.
pub fn plan(
    prompt: &str,
    version_id: &str,
    label: Option<&str>,
    artifact: &Arc<Artifact>,
    datasets: &[Dataset],
    repeats: u32,
    model_override: Option<&str>,
) -> Result<Plan> {
    use rayon::prelude::*;
    let mut problems = Vec::new();
    let mut rows: Vec<&dataset::Case> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for ds in datasets {
        for case in &ds.cases {
            if seen.insert(&case.id) {
                rows.push(case);
            } else {
                problems.push(
                    Diagnostic::error(format!(
                        "case id `{}` appears in more than one dataset",
                        case.id
                    ))
                    .in_context(format!(
                        "{}:{}",
                        ds.path.display(),
                        case.line
                    )),
                );
            }
        }
    }
    // Gone before the requests are rendered (36 MB at 1M cases).
    drop(seen);
    let mut plan = Plan {
        prompt: prompt.to_string(),
        version_id: version_id.to_string(),
        label: label.map(str::to_string),
        cases: rows.len(),
        repeats,
        calls: Vec::new(),
        requests: Requests::Rendered(Arc::new(Rendering {
            artifact: artifact.clone(),
            model_override: model_override.map(str::to_string),
        })),
        case_data: Default::default(),
    };
    let Requests::Rendered(rendering) = &plan.requests else {
        unreachable!("built just above")
    };
    let compiled = render::Compiled::new(
        artifact,
        &Subject {
            prompt,
            version_id,
            row: None,
        },
    )?;
    type Rendered = std::result::Result<(ContentHash, u64), Vec<Diagnostic>>;
    let render = |case: &&dataset::Case| -> Rendered {
        let request = render_case(&plan, &compiled, rendering, case)?;
        let hash = request_hash(&request);
        let chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let max_tokens = request
            .params
            .get("max_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(promptgate_core::config::defaults::ESTIMATED_OUTPUT_TOKENS);
        Ok((hash, (chars / 4) as u64 + max_tokens))
    };
    let mut calls = Vec::with_capacity(rows.len() * repeats as usize);
    // Rendered a part at a time, in parallel: the hashes of every row at once, beside the
    // calls they become, held 48 MB more at 1M cases.
    for (part, cases) in rows.chunks(RENDER_PART).enumerate() {
        let rendered: Vec<Rendered> = cases.par_iter().map(render).collect();
        for (i, r) in rendered.into_iter().enumerate() {
            let row = part * RENDER_PART + i;
            match r {
                Err(ds) => problems.extend(ds),
                Ok((hash, est_tokens)) => {
                    for sample in 0..repeats {
                        calls.push(PlannedCall {
                            sample,
                            row: row as u32,
                            request_hash: hash,
                            est_tokens: est_tokens.min(u64::from(u32::MAX)) as u32,
                        });
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::many(ErrorKind::Usage, problems));
    }
    plan.calls = calls;
    Ok(plan)
}

/// How the response cache is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Read and write.
    Use,
    /// Ignore what is cached, make every call, store the answers.
    Refresh,
    /// Neither read nor write.
    Off,
}

/// Execution settings.
#[derive(Clone)]
pub struct Options {
    pub concurrency: usize,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub cache: CacheMode,
    pub limiter: Arc<RateLimiter>,
    /// USD per 1k input and output tokens.
    pub price_per_1k: (f64, f64),
    /// Stop when the first this-many calls fail with one identical fatal error (0: never).
    pub abort_after_fatal: usize,
}

/// Watches the first calls of a run: when every one of the first `limit` to finish failed
/// with the same fatal error (same status, same message), the rest are doomed too — a wrong
/// key, a model that does not exist — and are not made.
struct Doomed {
    limit: usize,
    state: std::sync::Mutex<DoomedState>,
}

#[derive(Default)]
struct DoomedState {
    seen: usize,
    /// Something other than that error happened: the watch is over.
    cleared: bool,
    first: Option<CallError>,
    tripped: bool,
}

impl Doomed {
    /// Count a finished call; true when it makes the run doomed.
    fn observe(&self, record: &Record) -> bool {
        if self.limit == 0 {
            return false;
        }
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if s.cleared || s.tripped {
            return false;
        }
        let same = match (&record.error, &s.first) {
            (Some(e), None) if e.class == crate::provider::ErrorClass::Fatal => {
                s.first = Some((**e).clone());
                true
            }
            (Some(e), Some(f)) => {
                e.class == f.class && e.status == f.status && e.message == f.message
            }
            _ => false,
        };
        if !same {
            s.cleared = true;
            return false;
        }
        s.seen += 1;
        if s.seen >= self.limit {
            s.tripped = true;
            return true;
        }
        false
    }

    fn error(&self) -> Option<CallError> {
        let s = self.state.lock().ok()?;
        s.tripped.then(|| s.first.clone()).flatten()
    }
}

/// The error a doomed run ends with: provider, model, endpoint and the server's words.
fn doomed_error(provider: &dyn Provider, model: &str, limit: usize, e: &CallError) -> Error {
    let hint = match e.status {
        Some(401) | Some(403) => {
            "check the API key in the provider's `api_key_env` variable (and that it may use this model)"
        }
        Some(404) => "check the model name and the provider's `base_url`",
        _ => "the request is refused as sent: check the model name and its parameters",
    };
    Error::provider(
        Diagnostic::error(format!(
            "stopped after the first {limit} calls all failed the same way: provider `{}` (model `{model}`, {}) answered {}",
            provider.name(),
            provider.endpoint(),
            e.message
        ))
        .note("the calls already made are in the run folder; no more were sent")
        .hint(format!("{hint}; `abort_after_fatal` in promptgate.yaml sets how many identical failures stop a run (0: never)")),
    )
}

/// What the engine tells its observer (progress bars, logs).
#[derive(Debug)]
pub enum Event<'a> {
    /// The run starts: `total` calls, of which `already_done` were recorded before (resume).
    Started { total: usize, already_done: usize },
    /// A call finished (answered or errored).
    Finished(&'a Record),
    /// `count` calls were answered from the response cache at once (none was made).
    Cached { count: usize },
    /// A call failed transiently and will be retried after `delay`.
    Retrying {
        case_id: &'a str,
        attempt: u32,
        error: &'a CallError,
        delay: Duration,
    },
    /// Interrupted: no new calls; `in_flight` are finishing.
    Draining { in_flight: usize },
}

/// Receives engine events. The library never prints; the binary draws progress from these.
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &Event<'_>);
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {
    fn on_event(&self, _: &Event<'_>) {}
}

/// Interruption: the first request drains (no new calls, in-flight ones finish and are
/// written), the second aborts.
#[derive(Default)]
pub struct Interrupt {
    level: AtomicU8,
    notify: Notify,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Escalate: running → draining → aborting.
    pub fn escalate(&self) {
        let _ = self
            .level
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some((l + 1).min(2)));
        self.notify.notify_waiters();
    }

    pub fn draining(&self) -> bool {
        self.level.load(Ordering::SeqCst) >= 1
    }

    pub fn aborting(&self) -> bool {
        self.level.load(Ordering::SeqCst) >= 2
    }

    async fn wait_level(&self, level: u8) {
        loop {
            let notified = self.notify.notified();
            if self.level.load(Ordering::SeqCst) >= level {
                return;
            }
            notified.await;
        }
    }
}

/// The first error of a class in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorExample {
    pub case_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: String,
}

/// Aggregates of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub cases: usize,
    pub calls: usize,
    pub ok: usize,
    pub errors: usize,
    pub errors_by_class: BTreeMap<String, usize>,
    /// For each error class, its first error: the server's message and a case it hit.
    pub error_examples: BTreeMap<String, ErrorExample>,
    /// Calls never made (interrupted before they started).
    pub missing: usize,
    pub retries: u64,
    pub cached: usize,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub wall_ms: f64,
    pub interrupted: bool,
}

impl Summary {
    /// Build the summary from all of a run's records.
    pub fn from_records(
        run_id: &str,
        plan: &Plan,
        records: &[Record],
        wall: Duration,
        interrupted: bool,
    ) -> Summary {
        let mut fold = SummaryFold::default();
        for r in records {
            fold.add(r);
        }
        fold.finish(run_id, plan, wall, interrupted)
    }
}

/// A run's [`Summary`], one record at a time: what it keeps of a record is its latency.
#[derive(Debug, Default)]
pub struct SummaryFold {
    s: Summary,
    latencies: Vec<f64>,
}

impl SummaryFold {
    pub fn add(&mut self, r: &Record) {
        let (s, lat) = (&mut self.s, &mut self.latencies);
        s.retries += u64::from(r.attempts.saturating_sub(1));
        s.cost_usd += r.cost_usd;
        match (&r.output, &r.error) {
            (Some(o), _) => {
                s.ok += 1;
                s.input_tokens += o.input_tokens;
                s.output_tokens += o.output_tokens;
                if r.cached {
                    s.cached += 1;
                } else {
                    lat.push(r.latency_ms);
                }
            }
            (None, Some(e)) => {
                s.errors += 1;
                let class = e.class.as_str().to_string();
                s.error_examples
                    .entry(class.clone())
                    .or_insert_with(|| ErrorExample {
                        case_id: r.case_id.clone(),
                        status: e.status,
                        message: e.message.clone(),
                    });
                *s.errors_by_class.entry(class).or_default() += 1;
            }
            (None, None) => {}
        }
    }

    /// The summary of what was added, for `plan` (its cases and calls; those not added are
    /// missing).
    pub fn finish(self, run_id: &str, plan: &Plan, wall: Duration, interrupted: bool) -> Summary {
        let SummaryFold {
            mut s,
            latencies: mut lat,
        } = self;
        s.run_id = run_id.to_string();
        s.cases = plan.cases;
        s.calls = plan.calls.len();
        s.wall_ms = wall.as_secs_f64() * 1000.0;
        s.interrupted = interrupted;
        s.missing = s.calls.saturating_sub(s.ok + s.errors);
        lat.sort_by(f64::total_cmp);
        // The gate's quantile (type 7), so that `eval`'s p95 is the one a latency budget uses.
        let q = |p: f64| (!lat.is_empty()).then(|| promptgate_core::stats::quantile_type7(&lat, p));
        s.latency_ms_p50 = q(0.50);
        s.latency_ms_p95 = q(0.95);
        s.latency_ms_p99 = q(0.99);
        s
    }
}

/// Where a run's records go once they are written — an earlier execution's (a resume), the
/// cache hits, then each call as it finishes: kept (`Vec<Record>`: what judges, pairing and a
/// comparison need), or folded as they come, so that memory does not grow with the run.
pub trait Sink: Send + 'static {
    fn take(&mut self, record: Record);
    /// Room for `n` more records, if the sink keeps them.
    fn reserve(&mut self, n: usize) {
        let _ = n;
    }
}

impl Sink for Vec<Record> {
    fn take(&mut self, record: Record) {
        self.push(record);
    }
    fn reserve(&mut self, n: usize) {
        // Room for every record at once: growing by doubling held two copies at the end.
        self.reserve_exact(n);
    }
}

/// Answers read before execution, for the first execution of a plan.
pub enum Prefetched {
    /// Response-cache entries by cache key.
    ByKey(HashMap<String, Completion>),
    /// One answer per call of the plan, in its order (a plan cache's answer snapshot).
    InOrder(Vec<Completion>),
}

/// What one task hands the writer thread.
struct Finished {
    record: Record,
    span: Span,
    /// Its place in the writer's backlog, given back once the writer has taken the call.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Span attributes shared by every call of a run.
#[derive(Clone)]
pub struct SpanContext {
    pub trace_id: String,
    pub prompt: String,
    pub version_id: String,
    pub label: Option<String>,
    pub system: String,
    /// `gen_ai.operation.name`: `chat` or `embeddings`.
    pub operation: &'static str,
}

/// Where a plan's calls go: the provider and its response cache, the run's options and its
/// folder (whose manifest is on disk).
pub struct Runner<'a> {
    pub provider: Arc<dyn Provider>,
    pub cache: Option<Cache>,
    pub options: &'a Options,
    pub run: &'a RunDir,
}

/// Who follows a run: its progress, and Ctrl-C.
pub struct Watch {
    pub observer: Arc<dyn Observer>,
    pub interrupt: Arc<Interrupt>,
}

/// Execute a plan into a run folder, skipping calls already recorded there (resume).
/// Every record of the run (old and new) goes to `sink`, which is handed back with whether the
/// run was interrupted.
pub async fn execute<S: Sink>(
    plan: &Plan,
    runner: Runner<'_>,
    prefetched: Option<Prefetched>,
    watch: Watch,
    mut sink: S,
) -> Result<(S, bool)> {
    let Runner {
        provider,
        cache,
        options: opts,
        run,
    } = runner;
    let Watch {
        observer,
        interrupt,
    } = watch;
    let calls = Calls {
        provider: provider.clone(),
        opts,
        observer,
        interrupt: interrupt.clone(),
    };
    // What is recorded and cached is read, and the cache hits written, where blocking is
    // allowed: it is file and SQLite work.
    let Started {
        previous,
        hits,
        misses,
        results,
        traces,
    } = blocking(|| start(plan, &calls, cache.as_ref(), run, prefetched))?;
    sink.reserve(previous.len() + hits.len() + misses.len());
    for r in previous.into_iter().chain(hits) {
        sink.take(r);
    }
    if misses.is_empty() {
        // Every call answered from the cache: no call to make, nothing for a writer to do.
        return Ok((sink, interrupt.draining()));
    }
    // Each request is rendered as its call is sent, not held for the whole run.
    let requester = plan.requester()?;
    let writer_cache = (opts.cache != CacheMode::Off).then_some(cache).flatten();
    let (tx, writer) = spawn_writer(
        Files { results, traces },
        sink,
        writer_cache.map(|c| {
            (
                c,
                opts.cache == CacheMode::Refresh,
                provider.endpoint().into(),
            )
        }),
    );
    let sent = calls.send(plan, &requester, misses, tx).await;
    let sink = writer
        .join()
        .map_err(|_| {
            Error::new(
                ErrorKind::Infrastructure,
                Diagnostic::error("the results writer panicked"),
            )
        })?
        .map_err(|e| Error::io(&run.path, "write results to", e))?;
    if let Some(e) = sent.doomed.error() {
        return Err(doomed_error(
            provider.as_ref(),
            &sent.model,
            sent.doomed.limit,
            &e,
        ));
    }
    if let Some(e) = sent.unrenderable {
        // Cannot happen for a plan that rendered every case; said, not hidden, if it does.
        return Err(e);
    }
    Ok((sink, interrupt.draining()))
}

/// Run blocking work from async code: on a multi-threaded runtime the worker hands its other
/// tasks over first (`block_in_place`); on a current-thread runtime, where nothing else could
/// run meanwhile, it simply runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A run at its start: the records of an earlier execution (resume), the cache hits (already
/// written), the calls to make with their cache keys, and the open result and trace files.
struct Started<'a> {
    previous: Vec<Record>,
    hits: Vec<Record>,
    misses: Vec<&'a PlannedCall>,
    results: std::fs::File,
    traces: std::fs::File,
}

/// Find what is left to do: skip calls already recorded, answer what the cache holds (its
/// records written at once: they cost nothing to redo) and list the rest.
fn start<'a>(
    plan: &'a Plan,
    calls: &Calls<'_>,
    cache: Option<&Cache>,
    run: &RunDir,
    prefetched: Option<Prefetched>,
) -> Result<Started<'a>> {
    let (provider, opts) = (&calls.provider, calls.opts);
    let (observer, interrupt) = (&calls.observer, &calls.interrupt);
    let previous = run.records()?;
    let done: HashSet<(&str, u32)> = previous
        .iter()
        .map(|r| (r.case_id.as_str(), r.sample))
        .collect();
    let mut todo: Vec<&PlannedCall> = plan
        .calls
        .iter()
        .filter(|c| done.is_empty() || !done.contains(&(plan.case_of(c).0, c.sample)))
        .collect();
    drop(done);
    observer.on_event(&Event::Started {
        total: plan.calls.len(),
        already_done: plan.calls.len() - todo.len(),
    });

    // Cache hits first, looked up in parallel: they need no permit, no task and no span (a
    // span is a call to a provider, and a hit makes none).
    let endpoint: Arc<str> = provider.endpoint().into();
    let now: Arc<str> = promptgate_core::clock::now().into();
    let mut cached_records = Vec::new();
    let mut misses = Vec::with_capacity(todo.len());
    let prefetched = match prefetched {
        // An answer for every call, in order: no key to compute, nothing to look up.
        Some(Prefetched::InOrder(answers))
            if opts.cache == CacheMode::Use
                && answers.len() == todo.len()
                && todo.len() == plan.calls.len() =>
        {
            use rayon::prelude::*;
            // A copy of the start time for each piece of work: records made on both cores at
            // once do not all count references on one shared counter.
            answers
                .into_par_iter()
                .zip(todo.par_iter())
                .with_min_len(1024)
                .map_init(
                    || Arc::<str>::from(&*now),
                    |now, (output, call)| cached_record(plan, call, output, opts, now),
                )
                .collect_into_vec(&mut cached_records);
            todo.clear();
            None
        }
        Some(Prefetched::ByKey(hits)) => Some(hits),
        _ => None,
    };
    // The keys are computed for the lookup only, a part of the calls at a time, and only when
    // there is something to look up in: a call's key is computed again when its answer is
    // written (holding every key cost 88 bytes a call).
    let key = |c: &PlannedCall| Cache::key(&endpoint, &c.request_hash, c.sample);
    let mut hits: HashMap<String, Completion> = match (cache, opts.cache, prefetched) {
        (_, CacheMode::Use, Some(pre)) => pre,
        (Some(c), CacheMode::Use, None)
            if !interrupt.draining() && !todo.is_empty() && c.path().exists() =>
        {
            let mut hits = HashMap::new();
            for part in todo.chunks(LOOKUP_PART) {
                let keys: Vec<String> = part.iter().map(|c| key(c)).collect();
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                hits.extend(c.get_many(&refs));
            }
            hits
        }
        _ => Default::default(),
    };
    for call in todo {
        match (!hits.is_empty())
            .then(|| hits.remove(&key(call)))
            .flatten()
        {
            Some(output) => cached_records.push(cached_record(plan, call, output, opts, &now)),
            None => misses.push(call),
        }
    }
    if !cached_records.is_empty() {
        observer.on_event(&Event::Cached {
            count: cached_records.len(),
        });
    }
    let (mut results, traces) = run.appenders()?;
    write_hits(&mut results, &cached_records)
        .map_err(|e| Error::io(&run.path, "write results to", e))?;
    Ok(Started {
        previous,
        hits: cached_records,
        misses,
        results,
        traces,
    })
}

/// A run's result and trace files.
struct Files {
    results: std::fs::File,
    traces: std::fs::File,
}

/// One writer thread owns the files: results, spans and cache entries (`cache`, and whether
/// its answers replace stored ones) are written in the order calls finish. Answered calls'
/// lines are flushed as soon as no other finished call is waiting: a crash loses at most the
/// calls in flight and [`WRITE_BATCH`] finished ones. Each record, once written, goes to
/// `sink`, which is handed back at the end.
fn spawn_writer<S: Sink>(
    files: Files,
    mut sink: S,
    cache: Option<(Cache, bool, Arc<str>)>,
) -> (
    mpsc::Sender<Finished>,
    std::thread::JoinHandle<std::io::Result<S>>,
) {
    let (tx, rx) = mpsc::channel::<Finished>();
    let writer = std::thread::spawn(move || -> std::io::Result<S> {
        let mut results = std::io::BufWriter::with_capacity(1 << 16, files.results);
        let mut traces = std::io::BufWriter::with_capacity(1 << 16, files.traces);
        // A failed cache write costs a repeated call later, nothing more.
        let mut cache_writer =
            cache.and_then(|(c, refresh, endpoint)| c.writer(refresh).ok().map(|w| (w, endpoint)));
        loop {
            let f = match rx.recv_timeout(IDLE_FLUSH) {
                Ok(f) => f,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some((w, _)) = cache_writer.as_mut() {
                        let _ = w.flush();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            // This call and others already finished (up to WRITE_BATCH), then one write per file: the
            // files hold every finished call before the writer waits again, in two syscalls
            // rather than two a call.
            let mut next = Some(f);
            let mut batch = 0;
            while let Some(f) = next {
                batch += 1;
                store::append_line(&mut results, &f.record)?;
                store::append_line(&mut traces, &f.span)?;
                if let (Some((w, endpoint)), Some(output)) =
                    (cache_writer.as_mut(), &f.record.output)
                {
                    w.put(
                        &Cache::key(endpoint, &f.record.request_hash, f.record.sample),
                        output,
                    );
                    if w.pending() >= FLUSH_EVERY {
                        let _ = w.flush();
                    }
                }
                sink.take(f.record);
                next = if batch < WRITE_BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            results.flush()?;
            traces.flush()?;
        }
        if let Some((w, _)) = cache_writer.as_mut() {
            let _ = w.flush();
        }
        Ok(sink)
    });
    (tx, writer)
}

/// What makes a run's calls: its provider and options, who follows it, and Ctrl-C.
struct Calls<'a> {
    provider: Arc<dyn Provider>,
    opts: &'a Options,
    observer: Arc<dyn Observer>,
    interrupt: Arc<Interrupt>,
}

/// How sending went: the model asked (for a doomed run's message), the doomed-run watch, and
/// a request that could not be rendered.
struct Sent {
    model: String,
    doomed: Arc<Doomed>,
    unrenderable: Option<Error>,
}

impl Calls<'_> {
    /// Send `misses` with bounded concurrency, each finished call to `tx`, until done, drained
    /// (first interrupt: no new call, in-flight ones finish) or aborted (second interrupt), or
    /// until the first calls show the run is doomed.
    async fn send(
        &self,
        plan: &Plan,
        requester: &Requester<'_>,
        misses: Vec<&PlannedCall>,
        tx: mpsc::Sender<Finished>,
    ) -> Sent {
        let (provider, opts, interrupt) = (&self.provider, self.opts, &self.interrupt);
        let ctx = Arc::new(SpanContext {
            trace_id: promptgate_core::clock::random_id(16),
            prompt: plan.prompt.clone(),
            version_id: plan.version_id.clone(),
            label: plan.label.clone(),
            system: provider.system().to_string(),
            operation: provider.operation(),
        });
        let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let backlog = Arc::new(Semaphore::new(WRITER_BACKLOG));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let doomed = Arc::new(Doomed {
            limit: opts.abort_after_fatal,
            state: Default::default(),
        });
        let mut model = String::new();
        let mut unrenderable = None;
        for call in misses {
            if interrupt.draining() || doomed.error().is_some() {
                break;
            }
            let request = match requester.request(call) {
                Ok(r) => r,
                Err(e) => {
                    unrenderable = Some(e);
                    break;
                }
            };
            if model.is_empty() {
                model.clone_from(&request.model);
            }
            let permit = tokio::select! {
                p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = interrupt.wait_level(1) => break,
            };
            // The call that freed this permit may have shown the run to be doomed.
            if doomed.error().is_some() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let (case_id, line) = plan.case_of(call);
            let call = CallOf {
                call: *call,
                case_id: case_id.to_string(),
                line,
            };
            let (provider, tx, observer, interrupt, ctx, doomed, backlog) = (
                provider.clone(),
                tx.clone(),
                self.observer.clone(),
                interrupt.clone(),
                ctx.clone(),
                doomed.clone(),
                backlog.clone(),
            );
            let opts = opts.clone();
            tasks.spawn(async move {
                if let Some((record, span)) = run_call(
                    provider.as_ref(),
                    &call,
                    &request,
                    &opts,
                    observer.as_ref(),
                    &interrupt,
                    &ctx,
                )
                .await
                {
                    observer.on_event(&Event::Finished(&record));
                    doomed.observe(&record);
                    // A writer that falls behind holds back new calls (this one keeps its permit
                    // until there is room) instead of letting finished ones pile up in memory.
                    let Ok(slot) = backlog.acquire_owned().await else {
                        return;
                    };
                    drop(permit);
                    let _ = tx.send(Finished {
                        record,
                        span,
                        _slot: slot,
                    });
                }
            });
        }
        if interrupt.draining() {
            self.observer.on_event(&Event::Draining {
                in_flight: tasks.len(),
            });
        }
        // Drain in-flight calls; a second interrupt aborts them.
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = interrupt.wait_level(2) => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        Sent {
            model,
            doomed,
            unrenderable,
        }
    }
}

/// Append cache hits' records to the results.
fn write_hits(results: &mut std::fs::File, records: &[Record]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, results);
    for r in records {
        store::append_line(&mut out, r)?;
    }
    out.flush()
}

fn cached_record(
    plan: &Plan,
    call: &PlannedCall,
    output: Completion,
    opts: &Options,
    now: &Arc<str>,
) -> Record {
    let cost = price(opts, &output);
    let (case_id, line) = plan.case_of(call);
    Record {
        case_id: case_id.to_string(),
        sample: call.sample,
        line,
        request_hash: call.request_hash,
        output: Some(output),
        error: None,
        latency_ms: 0.0,
        elapsed_ms: 0.0,
        attempts: 0,
        cached: true,
        cost_usd: cost,
        started_at: now.clone(),
    }
}

fn price(opts: &Options, c: &Completion) -> f64 {
    opts.price_per_1k.0 * c.input_tokens as f64 / 1000.0
        + opts.price_per_1k.1 * c.output_tokens as f64 / 1000.0
}

/// A call as it is sent: the planned call and the case it is for.
struct CallOf {
    call: PlannedCall,
    case_id: String,
    line: usize,
}

/// One call with its retries. `None` when interrupted before it could finish: the call stays
/// missing, and `--resume` makes it.
async fn run_call(
    provider: &dyn Provider,
    call: &CallOf,
    request: &Request,
    opts: &Options,
    observer: &dyn Observer,
    interrupt: &Interrupt,
    ctx: &SpanContext,
) -> Option<(Record, Span)> {
    let key = CallKey {
        request_hash: call.call.request_hash,
        sample: call.call.sample,
        case_id: call.case_id.clone(),
    };
    let started_at = promptgate_core::clock::now();
    let start_nanos = promptgate_core::clock::now_nanos();
    let t0 = Instant::now();
    let mut attempts = 0u32;
    let (result, latency) = loop {
        attempts += 1;
        if !opts.limiter.is_unlimited() {
            opts.limiter.acquire(u64::from(call.call.est_tokens)).await;
        }
        let ta = Instant::now();
        // Where an answer enters the engine: nothing a provider echoes of a secret goes further.
        let r = match provider.complete(request, &key).await {
            Ok(mut c) => {
                promptgate_core::redact::string(&mut c.content);
                for t in &mut c.tool_calls {
                    promptgate_core::redact::json(&mut t.arguments);
                }
                Ok(c)
            }
            Err(mut e) => {
                promptgate_core::redact::string(&mut e.message);
                Err(e)
            }
        };
        let latency = ta.elapsed();
        match r {
            Err(e) if e.class.transient() && attempts <= opts.max_retries => {
                if interrupt.draining() {
                    return None;
                }
                let delay = backoff(attempts, e.retry_after, opts.backoff_base, opts.backoff_max);
                observer.on_event(&Event::Retrying {
                    case_id: &call.case_id,
                    attempt: attempts,
                    error: &e,
                    delay,
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = interrupt.wait_level(1) => return None,
                }
            }
            other => break (other, latency),
        }
    };
    let (output, error) = match result {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    let cost = output.as_ref().map(|o| price(opts, o)).unwrap_or(0.0);
    let record = Record {
        case_id: call.case_id.clone(),
        sample: call.call.sample,
        line: call.line,
        request_hash: call.call.request_hash,
        output,
        error: error.map(Box::new),
        latency_ms: latency.as_secs_f64() * 1000.0,
        elapsed_ms: t0.elapsed().as_secs_f64() * 1000.0,
        attempts,
        cached: false,
        cost_usd: cost,
        started_at: started_at.into(),
    };
    let span = make_span(
        ctx,
        call,
        &request.model,
        &record,
        start_nanos,
        promptgate_core::clock::now_nanos(),
    );
    Some((record, span))
}

fn make_span(
    ctx: &SpanContext,
    call: &CallOf,
    model: &str,
    record: &Record,
    start: u128,
    end: u128,
) -> Span {
    let mut a = Map::new();
    a.insert("prompt.name".into(), json!(ctx.prompt));
    a.insert("prompt.version_id".into(), json!(ctx.version_id));
    if let Some(l) = &ctx.label {
        a.insert("prompt.label".into(), json!(l));
    }
    a.insert("promptgate.case_id".into(), json!(call.case_id));
    a.insert("promptgate.sample".into(), json!(call.call.sample));
    a.insert("promptgate.attempts".into(), json!(record.attempts));
    a.insert("promptgate.cached".into(), json!(record.cached));
    a.insert("gen_ai.operation.name".into(), json!(ctx.operation));
    a.insert("gen_ai.system".into(), json!(ctx.system));
    a.insert("gen_ai.request.model".into(), json!(model));
    if let Some(o) = &record.output {
        a.insert("gen_ai.usage.input_tokens".into(), json!(o.input_tokens));
        a.insert("gen_ai.usage.output_tokens".into(), json!(o.output_tokens));
        if let Some(f) = &o.finish_reason {
            a.insert("gen_ai.response.finish_reasons".into(), json!([f]));
        }
    }
    if let Some(e) = &record.error {
        a.insert("error.type".into(), json!(e.class.as_str()));
    }
    Span {
        trace_id: ctx.trace_id.clone(),
        span_id: promptgate_core::clock::random_id(8),
        name: format!("{} {model}", ctx.operation),
        start_unix_nano: start,
        end_unix_nano: end,
        status: if record.output.is_some() {
            "ok".into()
        } else {
            "error".into()
        },
        attributes: a,
    }
}

/// Whether the run's errored calls exceed the budget (a share of its calls): see
/// [`promptgate_core::gate::over_error_budget`].
pub fn over_error_budget(summary: &Summary, budget: f64) -> bool {
    promptgate_core::gate::over_error_budget(summary.errors, summary.calls, budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_rendered_when_sent_is_the_one_the_plan_hashed() {
        // A typed variable from CSV text, a JSON one, a model override and repeats: what the
        // engine sends must hash to what the plan (and so the cache key) recorded.
        let artifact = Arc::new(
            promptgate_core::artifact::parse(
                std::path::Path::new("v1.yaml"),
                "model: { provider: p, name: m, temperature: 0.2, max_tokens: 50 }\nvariables: { q: {}, n: { type: integer } }\nmessages:\n  - { role: system, content: \"Count {{ n + 1 }}.\" }\n  - { role: user, content: \"{{ q }}\" }\n",
            )
            .unwrap(),
        );
        let csv = dataset::parse_bytes(
            std::path::Path::new("a.csv"),
            b"id,q,n\na1,first,1\na2,second,2\n",
            dataset::DEFAULT_GROUP,
        )
        .unwrap();
        let jsonl = dataset::parse_bytes(
            std::path::Path::new("b.jsonl"),
            b"{\"id\":\"b1\",\"q\":\"third\",\"n\":3}\n",
            dataset::DEFAULT_GROUP,
        )
        .unwrap();
        let datasets = vec![csv, jsonl];
        let mut plan = plan("p", "v1-abc", None, &artifact, &datasets, 2, Some("m2")).unwrap();
        plan.case_data = Arc::new(datasets.into_iter().flat_map(|d| d.cases).collect());
        assert_eq!(plan.calls.len(), 6);
        let requester = plan.requester().unwrap();
        let mut hashes = HashSet::new();
        for call in &plan.calls {
            let request = requester.request(call).unwrap();
            assert_eq!(request.model, "m2");
            assert_eq!(request_hash(&request), call.request_hash, "{call:?}");
            hashes.insert(call.request_hash);
        }
        assert_eq!(hashes.len(), 3, "one request a case, shared by its repeats");
        // A call whose row is not in the plan is an error, not a panic.
        let stray = PlannedCall {
            row: 99,
            ..plan.calls[0]
        };
        assert!(requester.request(&stray).is_err());
        // A call whose recorded hash is not its request's (a stale or edited plan cache) is
        // refused: it would be cached under another request's key.
        let forged = PlannedCall {
            request_hash: ContentHash::default(),
            ..plan.calls[0]
        };
        let e = requester.request(&forged).unwrap_err().to_string();
        assert!(e.contains("not the one its plan recorded"), "{e}");
    }

    #[test]
    fn a_planned_call_is_44_bytes_and_finds_its_case_through_its_row() {
        // A 1M-call plan holds a million of them.
        assert_eq!(std::mem::size_of::<PlannedCall>(), 44);
        let rows: Vec<Given> = (0..3)
            .map(|i| Given {
                case_id: format!("k{i}"),
                line: 10 + i,
                request: Arc::new(Request {
                    prompt: "p".into(),
                    version_id: "v1".into(),
                    provider: "x".into(),
                    model: "m".into(),
                    params: Default::default(),
                    messages: vec![],
                    tools: vec![],
                    response_format: None,
                }),
            })
            .collect();
        let call = |row: u32| PlannedCall {
            row,
            sample: 0,
            request_hash: ContentHash::default(),
            est_tokens: 1,
        };
        let plan = Plan::given("p", "v1", (0..3).map(call).collect(), rows);
        assert_eq!(plan.case_of(&plan.calls[2]), ("k2", 12));
        assert_eq!(
            plan.case_of(&call(7)),
            ("", 0),
            "a row the plan does not have"
        );
    }

    #[test]
    fn cache_hits_are_written_whole_and_in_order() {
        // Many records, some with text to escape.
        let records: Vec<Record> = (0..7_777)
            .map(|i| Record {
                case_id: format!("case \"{i}\""),
                sample: (i % 3) as u32,
                line: i,
                request_hash: ContentHash::parse(&format!("{i:064x}")).unwrap(),
                output: Some(Completion {
                    content: "x".repeat(i % 700),
                    ..Completion::default()
                }),
                error: None,
                latency_ms: 0.0,
                elapsed_ms: 0.0,
                attempts: 0,
                cached: true,
                cost_usd: i as f64 / 1e6,
                started_at: "2026-11-30T12:00:00Z".into(),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();
        write_hits(&mut file, &records).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), records.len());
        for (line, r) in lines.iter().zip(&records) {
            assert_eq!(*line, serde_json::to_string(r).unwrap());
        }
    }
}
