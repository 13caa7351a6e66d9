//! The served state: the snapshot requests read, the app around it, reloads from the store,
//! the event log, and the watcher that follows the store's change notices.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::auth::Auth;
use crate::metrics::Metrics;
use promptgate_core::error::{ErrorKind, Result};
use promptgate_registry::bundle::{BundleStore, PromptDoc};
use promptgate_registry::{self as registry, Repo, Store, Target, audit};

use crate::ROUTES;
use crate::handlers::*;

/// Events kept for `Last-Event-ID` resumption.
pub(crate) const EVENT_HISTORY: usize = 4096;

/// Where the served prompts come from.
pub enum Source {
    /// A repository: writable, hot-reloaded.
    Repo(Box<Repo>),
    /// A bundle file: read-only.
    Bundle(PathBuf),
}

/// How to serve.
pub struct Options {
    pub listen: String,
    /// How often the watcher looks at the prompt folders.
    pub poll: Duration,
    /// Most event streams open at once (beyond: 503 with `Retry-After`).
    pub max_streams: usize,
    /// How often the rollout guard looks.
    pub guard_every: Duration,
}

/// One prompt, ready to serve.
pub struct Served {
    pub doc: PromptDoc,
    pub(crate) prompt: registry::Prompt,
    /// Version id → the artifact as JSON text.
    pub(crate) artifacts: HashMap<String, Arc<str>>,
    /// Finished bodies by label ("" for a version fetched by id), then version id. A split
    /// label's bodies are built per request (its version depends on the routing key).
    pub(crate) bodies: HashMap<String, HashMap<String, Bytes>>,
}

impl Served {
    pub(crate) fn new(name: &str, doc: PromptDoc) -> Served {
        let artifacts: HashMap<String, Arc<str>> = doc
            .versions
            .iter()
            .map(|v| {
                let text = serde_json::to_string(&v.artifact).unwrap_or_else(|_| "null".into());
                (v.version_id.clone(), Arc::<str>::from(text))
            })
            .collect();
        let mut s = Served {
            prompt: doc.as_prompt(name),
            doc,
            artifacts,
            bodies: HashMap::new(),
        };
        let mut bodies: HashMap<String, HashMap<String, Bytes>> = HashMap::new();
        for v in &s.doc.versions {
            let body = body_of(name, &s, &v.version_id, None);
            bodies
                .entry(String::new())
                .or_default()
                .insert(v.version_id.clone(), Bytes::from(body));
        }
        for (label, t) in &s.doc.labels {
            if let Some(id) = t.single() {
                let body = body_of(name, &s, id, Some((label, t)));
                bodies
                    .entry(label.clone())
                    .or_default()
                    .insert(id.to_string(), Bytes::from(body));
            }
        }
        s.bodies = bodies;
        s
    }
}

/// Everything served at one instant.
#[derive(Default)]
pub struct Snapshot {
    pub prompts: BTreeMap<String, Arc<Served>>,
}

/// One change, as sent on `/v1/events`.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `<boot>-<seq>`: the server instance and the event's number in it.
    pub id: String,
    /// `label` (a label moved) or `version` (a version was registered).
    pub kind: &'static str,
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Target>,
    pub action: &'static str,
    pub actor: String,
    pub audit_seq: u64,
    pub audit_hash: String,
    pub ts: String,
    #[serde(skip)]
    pub(crate) seq: u64,
}

pub(crate) struct EventLog {
    pub(crate) next: u64,
    pub(crate) ring: VecDeque<Arc<Change>>,
}

/// Health as reported by `/healthz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub problems: BTreeMap<String, String>,
    pub last_reload: Option<String>,
}

/// Shared server state.
pub struct App {
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    /// Where versions, labels and the audit log are: everything is read and moved through it.
    pub(crate) store: Arc<dyn Store>,
    /// The repository, when serving one: registration checks a new version against its
    /// configuration (the providers).
    pub(crate) repo: Option<Box<Repo>>,
    /// Where the prompts come from, as `/healthz` shows it.
    pub(crate) shown: String,
    pub(crate) auth: Auth,
    pub metrics: Metrics,
    pub(crate) boot: u64,
    pub(crate) events: Mutex<EventLog>,
    pub(crate) tx: broadcast::Sender<Arc<Change>>,
    pub(crate) health: Mutex<Health>,
    /// Last fingerprint seen per prompt (valid or not), under which reloads are serialized.
    pub(crate) seen: Mutex<HashMap<String, String>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The most event streams open at once.
    pub(crate) max_streams: AtomicUsize,
    /// Production signals per version, from `POST /v1/traces`, kept by the store.
    pub(crate) signals: Mutex<promptgate_core::signals::Signals>,
    /// Whether this server runs the rollout guard now (it holds the store's lead).
    pub(crate) guard_leading: std::sync::atomic::AtomicBool,
    /// Signals changed since they were last saved.
    pub(crate) signals_dirty: std::sync::atomic::AtomicBool,
    /// The versions of recent traces, for feedback that names a trace.
    pub(crate) recent_traces: Mutex<crate::ingest::RecentTraces>,
    /// Spans received that named no prompt version.
    pub(crate) spans_ignored: std::sync::atomic::AtomicU64,
}

/// One open event stream: counted (in the metrics) while it lives.
pub(crate) struct StreamSlot(pub(crate) Arc<App>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.metrics.streams_open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl App {
    /// Load the initial state. Prompts that fail to load are reported in `/healthz` and not
    /// served until they are fixed.
    /// Save the signals if they changed since the last save (blocking: file or database work).
    pub fn save_signals(&self) {
        if self.store.read_only() || !self.signals_dirty.swap(false, Ordering::SeqCst) {
            return;
        }
        let copy = match self.signals.lock() {
            Ok(s) => s.clone(),
            Err(_) => return,
        };
        if let Err(e) = self.store.save_signals(&copy) {
            // Tried again at the next save.
            self.signals_dirty.store(true, Ordering::SeqCst);
            eprintln!("promptgate serve: cannot save the production signals: {e}");
        }
    }

    pub fn new(source: Source, auth: Auth, shutdown: watch::Receiver<bool>) -> Result<Arc<App>> {
        let boot = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (tx, _) = broadcast::channel(1024);
        let (store, repo, shown): (Arc<dyn Store>, _, _) = match source {
            Source::Repo(repo) => {
                let shown = match repo.root.display().to_string() {
                    s if s.is_empty() => ".".to_string(),
                    s => s,
                };
                (repo.shared_store(), Some(repo), shown)
            }
            Source::Bundle(path) => (
                Arc::new(BundleStore::open(&path)?),
                None,
                path.display().to_string(),
            ),
        };
        // What the last run saved: a restart loses nothing it had saved.
        let mut signals = if store.read_only() {
            promptgate_core::signals::Signals::default()
        } else {
            store.load_signals()?
        };
        // The metrics the rollout policy compares, beside calls, errors, latency and tokens.
        let policy = repo.as_ref().and_then(|r| r.config.rollout.clone());
        signals.track(policy.unwrap_or_default().tracked());
        let app = Arc::new(App {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            store,
            repo,
            shown,
            auth,
            metrics: Metrics::new(&ROUTES.iter().map(|(_, p)| *p).collect::<Vec<_>>()),
            boot,
            events: Mutex::new(EventLog {
                next: 1,
                ring: VecDeque::new(),
            }),
            tx,
            health: Mutex::new(Health::default()),
            seen: Mutex::new(HashMap::new()),
            shutdown,
            max_streams: AtomicUsize::new(promptgate_core::config::defaults::MAX_STREAMS),
            signals: Mutex::new(signals),
            signals_dirty: Default::default(),
            guard_leading: Default::default(),
            spans_ignored: Default::default(),
            recent_traces: Default::default(),
        });
        app.reload(None, false);
        Ok(app)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reload what changed on disk (`only`: one prompt). With `announce`, new audit entries
    /// become events. Returns whether anything changed.
    pub fn reload(&self, only: Option<&str>, announce: bool) -> bool {
        let store = &*self.store;
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let names = match only {
            Some(n) => vec![n.to_string()],
            None => match store.prompt_names() {
                Ok(n) => n,
                Err(e) => {
                    self.problem("(prompts)", &e.to_string());
                    return false;
                }
            },
        };
        let current = self.snapshot();
        let mut next = current.prompts.clone();
        let mut changed = false;
        let mut changes = Vec::new();
        for name in &names {
            let fp = store.change_stamp(name);
            if seen.get(name) == Some(&fp) {
                continue;
            }
            seen.insert(name.clone(), fp);
            match PromptDoc::read(store, name) {
                Ok(doc) => {
                    let before = current.prompts.get(name).map(|s| s.doc.audit_entries);
                    if announce && before != Some(doc.audit_entries) {
                        let from = before.unwrap_or(0) as usize;
                        if let Ok(mut log) = store.audit_from(name, from) {
                            // Only verified history is announced, as only it is served.
                            log.entries.truncate(log.valid);
                            changes.extend(log.entries.into_iter().skip(from));
                        }
                    }
                    self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                    next.insert(name.clone(), Arc::new(Served::new(name, doc)));
                    if let Ok(mut h) = self.health.lock() {
                        h.problems.remove(name);
                    }
                    changed = true;
                }
                Err(e) => {
                    self.metrics.reload_errors.fetch_add(1, Ordering::Relaxed);
                    let text = promptgate_core::redact::text(&e.to_string()).into_owned();
                    eprintln!(
                        "promptgate serve: `{name}` does not load; still serving its last good state\n{}",
                        text.trim_end()
                    );
                    self.problem(name, &text);
                }
            }
        }
        if only.is_none() {
            let gone: Vec<String> = next
                .keys()
                .filter(|k| !names.contains(k))
                .cloned()
                .collect();
            for k in gone {
                // Not listed: keep serving it unless the store says it is gone for good.
                if matches!(store.prompt(&k), Err(e) if e.kind() == ErrorKind::NotFound) {
                    next.remove(&k);
                    seen.remove(&k);
                    changed = true;
                }
            }
        }
        if changed {
            if let Ok(mut s) = self.snapshot.write() {
                *s = Arc::new(Snapshot { prompts: next });
            }
            if let Ok(mut h) = self.health.lock() {
                h.last_reload = Some(promptgate_core::clock::now());
            }
        }
        // Announced after the swap: a subscriber that fetches on an event sees the new state.
        for e in changes {
            self.announce(e);
        }
        changed
    }

    pub(crate) fn problem(&self, what: &str, text: &str) {
        if let Ok(mut h) = self.health.lock() {
            h.problems
                .insert(what.to_string(), text.trim_end().to_string());
        }
    }

    pub(crate) fn announce(&self, e: audit::Entry) {
        let kind = match e.action {
            audit::Action::Register => {
                self.metrics
                    .versions_registered
                    .fetch_add(1, Ordering::Relaxed);
                "version"
            }
            _ => {
                self.metrics.label_moves.fetch_add(1, Ordering::Relaxed);
                "label"
            }
        };
        let Ok(mut log) = self.events.lock() else {
            return;
        };
        let seq = log.next;
        log.next += 1;
        let change = Arc::new(Change {
            id: format!("{}-{seq}", self.boot),
            kind,
            prompt: e.prompt,
            label: e.label,
            from: e.from,
            to: e.to,
            action: e.action.as_str(),
            actor: e.actor,
            audit_seq: e.seq,
            audit_hash: e.hash,
            ts: e.ts,
            seq,
        });
        log.ring.push_back(change.clone());
        if log.ring.len() > EVENT_HISTORY {
            log.ring.pop_front();
        }
        let _ = self.tx.send(change);
    }
}

/// Follow changes: the store's change notices (the file store's file events) name the prompts
/// to reload within milliseconds, and a full scan every [`SAFETY_SCAN`] catches anything they
/// missed. Where the store sends none, a full scan every `poll`.
pub(crate) fn watch(app: Arc<App>, poll: Duration, stop: watch::Receiver<bool>) {
    let (tx, rx) = std::sync::mpsc::channel::<registry::Change>();
    let subscription = app.store.subscribe(Box::new(move |c| {
        let _ = tx.send(c);
    }));
    let every = match &subscription.why_not {
        None => SAFETY_SCAN.max(poll),
        Some(why) => {
            eprintln!(
                "promptgate serve: {why}; looking for changes every {} ms",
                poll.as_millis()
            );
            poll
        }
    };
    std::thread::spawn(move || {
        let _subscription = subscription;
        while !*stop.borrow() {
            match rx.recv_timeout(every) {
                Ok(first) => {
                    // Let a burst of notices (a git pull) settle into one reload per prompt.
                    std::thread::sleep(Duration::from_millis(5));
                    let mut dirty = std::collections::BTreeSet::new();
                    let mut full = false;
                    for c in std::iter::once(first).chain(rx.try_iter()) {
                        match c {
                            registry::Change::Prompt(name) => {
                                dirty.insert(name);
                            }
                            registry::Change::Any => full = true,
                        }
                    }
                    if full {
                        app.reload(None, true);
                    } else {
                        for n in &dirty {
                            app.reload(Some(n), true);
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    app.reload(None, true);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
}

/// With file events, how often everything is scanned anyway.
pub const SAFETY_SCAN: Duration = Duration::from_secs(5);
