//! promptgate-registry: prompt versions and labels. The model — references, versions,
//! labels and canary splits, label moves, the signed audit chain — and the [`Store`] trait
//! every backend implements, with [`FileStore`] (the files of a Git repository) as the first.
//! [`Repo`] is a repository: its configuration, its prompts' folders and its store.

pub mod audit;
pub mod bundle;
pub mod check;
pub mod file;
pub mod promotion;
pub mod signing;
pub mod store;
pub mod target;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use audit::{Action, Entry, GENESIS};
pub use file::{AUDIT_FILE, FileStore, REGISTRY_FILE, parse_registry};
use promptgate_core::artifact::{self, Loaded};
use promptgate_core::config::{self, Config};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result, did_you_mean, list_names};
use promptgate_core::fsutil;
pub use store::{Change, Lease, OnChange, Store, Subscription};
pub use target::Target;

/// Per-prompt eval suite file name (not a version).
pub const SUITE_FILE: &str = "suite.yaml";
/// Hash prefixes shorter than this are refused as ambiguous by design.
pub const MIN_HASH_PREFIX: usize = 7;

/// One registered version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// `v{number}-{hash7}`.
    pub id: String,
    pub number: u32,
    /// The version file's name in the prompt's folder in Git (`v3.yaml`): where it came
    /// from, whatever the store keeps it in.
    pub file: String,
    /// Full SHA-256 content hash of the canonical artifact.
    pub hash: String,
}

/// The version id for a number and hash: `v3-9f2c1ab`.
pub fn version_id(number: u32, hash: &str) -> String {
    format!("v{number}-{}", &hash[..MIN_HASH_PREFIX.min(hash.len())])
}

/// A reference to a version: `name`, `name@production`, `name@v3`, `name@v3-9f2c1ab`,
/// `name@9f2c1ab` (a hash prefix of at least 7 hex digits), `name@latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub prompt: String,
    pub selector: Option<String>,
}

impl Ref {
    pub fn parse(text: &str) -> Result<Ref> {
        let (prompt, selector) = match text.split_once('@') {
            Some((p, s)) => (p, Some(s.to_string())),
            None => (text, None),
        };
        validate_prompt_name(prompt)?;
        if selector.as_deref() == Some("") {
            return Err(
                Error::usage(format!("`{text}` has an empty version after `@`")).with_hint(
                    format!("use `{prompt}@production`, `{prompt}@v3` or `{prompt}@<hash>`"),
                ),
            );
        }
        Ok(Ref {
            prompt: prompt.to_string(),
            selector,
        })
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Some(s) => write!(f, "{}@{s}", self.prompt),
            None => write!(f, "{}", self.prompt),
        }
    }
}

/// Prompt names: `/`-separated segments of letters, digits, `_`, `-`, `.` (e.g.
/// `support_agent`, `judges/correctness`).
pub fn validate_prompt_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("`{name}` is not a valid prompt name"))
            .with_hint("use letters, digits, `_`, `-` and `.`, with `/` between namespace segments (e.g. `judges/correctness`)"))
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// `v3` → 3, `v3-9f2c1ab` → (3, Some("9f2c1ab")).
fn parse_version_selector(s: &str) -> Option<(u32, Option<&str>)> {
    let rest = s.strip_prefix('v')?;
    let (num, hash) = match rest.split_once('-') {
        Some((n, h)) => (n, Some(h)),
        None => (rest, None),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if hash.is_some_and(|h| !is_hex(h)) {
        return None;
    }
    Some((num.parse().ok()?, hash))
}

/// Label names: letters, digits, `_`, `-`, `.`; not `latest`, not a version id, not hex that
/// could be a hash prefix.
pub fn validate_label(label: &str) -> Result<()> {
    let chars_ok = !label.is_empty()
        && label.len() <= 100
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let reserved = label == "latest"
        || label == "none"
        || parse_version_selector(label).is_some()
        || (label.len() >= MIN_HASH_PREFIX && is_hex(label));
    if chars_ok && !reserved {
        return Ok(());
    }
    Err(Error::usage(format!("`{label}` cannot be a label name")).with_hint(
        "labels use letters, digits, `_`, `-`, `.`, and may not look like a version (`v3`), a hash prefix, `latest` or `none`",
    ))
}

/// How far into its audit log a prompt's state is: how many entries, and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditHead {
    pub entries: u64,
    pub head: String,
}

/// A prompt's state: its versions and labels, as of its audit log's `audit` head (any committed
/// audit tail rolled forward).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub name: String,
    pub versions: Vec<VersionEntry>,
    /// Label → version id, or a weighted split between versions.
    pub labels: BTreeMap<String, Target>,
    pub audit: AuditHead,
}

impl Prompt {
    /// A prompt with no versions, labels or history.
    pub fn empty(name: &str) -> Prompt {
        Prompt {
            name: name.to_string(),
            versions: Vec::new(),
            labels: BTreeMap::new(),
            audit: AuditHead {
                entries: 0,
                head: GENESIS.to_string(),
            },
        }
    }

    /// The number the next registered version gets.
    pub fn next_number(&self) -> u32 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1
    }

    pub fn version(&self, id: &str) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.id == id)
    }

    pub fn latest(&self) -> Option<&VersionEntry> {
        self.versions.iter().max_by_key(|v| v.number)
    }

    /// Labels pointing at version `id`.
    pub fn labels_of(&self, id: &str) -> Vec<&str> {
        self.labels
            .iter()
            .filter(|(_, t)| t.serves(id))
            .map(|(l, _)| l.as_str())
            .collect()
    }

    /// Labels serving version `id`, for people: `production`, or `production (10%)` when the
    /// label splits its traffic.
    pub fn label_notes(&self, id: &str) -> Vec<String> {
        self.labels
            .iter()
            .filter(|(_, t)| t.serves(id))
            .map(|(l, t)| match t {
                Target::One(_) => l.clone(),
                Target::Split(_) => format!("{l} ({}%)", t.weight_of(id)),
            })
            .collect()
    }

    /// Resolve a selector (`production`, `v3`, `v3-9f2c1ab`, a hash prefix, `latest`, or none
    /// for the latest version). Returns the version and, for a label, its name.
    pub fn resolve(&self, selector: Option<&str>) -> Result<(&VersionEntry, Option<String>)> {
        let name = &self.name;
        let versions = &self.versions;
        let sel = match selector {
            None | Some("latest") => {
                return self
                    .latest()
                    .map(|v| (v, None))
                    .ok_or_else(|| Error::usage(format!("prompt `{name}` has no versions")));
            }
            Some(s) => s,
        };
        if let Some(target) = self.labels.get(sel) {
            let target = target.primary();
            let v = self.version(target).ok_or_else(|| {
                Error::usage(format!(
                    "label `{sel}` of `{name}` points at `{target}`, which is not registered"
                ))
                .with_hint("run `promptgate check` to see what is wrong with the registry")
            })?;
            return Ok((v, Some(sel.to_string())));
        }
        if let Some((num, hash)) = parse_version_selector(sel) {
            let v = versions
                .iter()
                .find(|v| v.number == num)
                .ok_or_else(|| self.not_found(sel))?;
            if let Some(h) = hash
                && !v.hash.starts_with(h)
            {
                return Err(Error::usage(format!(
                    "`{name}@{sel}`: version {num} of `{name}` is `{}`, not `{sel}`",
                    v.id
                ))
                .with_hint(
                    "the hash after the number must match; use the id `promptgate list` shows",
                ));
            }
            return Ok((v, None));
        }
        if is_hex(sel) {
            if sel.len() < MIN_HASH_PREFIX {
                return Err(Error::usage(format!(
                    "`{name}` has no label `{sel}`, and `{sel}` is too short to be a hash prefix (at least {MIN_HASH_PREFIX} hex digits)"
                ))
                .with_hint(format!("see the versions and labels with `promptgate list {name}`")));
            }
            let hits: Vec<&VersionEntry> = versions
                .iter()
                .filter(|v| v.hash.starts_with(sel))
                .collect();
            return match hits.as_slice() {
                [one] => Ok((one, None)),
                [] => Err(self.not_found(sel)),
                many => Err(Error::usage(format!(
                    "hash prefix `{sel}` is ambiguous in `{name}`: it matches {}",
                    list_names(&many.iter().map(|v| v.id.as_str()).collect::<Vec<_>>())
                ))
                .with_hint("use more hex digits, or the version number (`v3`)")),
            };
        }
        Err(self.not_found(sel))
    }

    /// Resolve a label target given as text: a selector (`v3`, a hash prefix, a label, whose
    /// whole target is taken, split or not) or a split of selectors (`v3:90,v4:10`).
    pub fn resolve_target(&self, text: &str) -> Result<Target> {
        let bad = |msg: String| {
            Error::usage(format!("`{text}`: {msg}"))
                .with_hint("a split looks like `v3:90,v4:10` (percent, adding up to 100)")
        };
        match Target::parse(text).map_err(bad)? {
            Target::One(sel) => {
                if let Some(t) = self.labels.get(&sel) {
                    return Ok(t.clone());
                }
                Ok(Target::One(self.resolve(Some(&sel))?.0.id.clone()))
            }
            Target::Split(parts) => {
                let mut ids = Vec::with_capacity(parts.len());
                for (sel, w) in parts {
                    ids.push((self.resolve(Some(&sel))?.0.id.clone(), w));
                }
                Target::split(ids).map_err(bad)
            }
        }
    }

    /// Resolve a label for one caller: a split assigns `routing_key` stickily (see
    /// [`Target::assign`]); without a key, or for a plain label, the label's primary version.
    pub fn resolve_routed(
        &self,
        label: &str,
        routing_key: Option<&str>,
    ) -> Option<(&VersionEntry, &Target)> {
        let target = self.labels.get(label)?;
        let id = target.assign(label, routing_key);
        Some((self.version(id)?, target))
    }

    fn not_found(&self, sel: &str) -> Error {
        let name = &self.name;
        let labels: Vec<&str> = self.labels.keys().map(String::as_str).collect();
        let ids: Vec<&str> = self.versions.iter().map(|v| v.id.as_str()).collect();
        let mut d = Diagnostic::error(format!("`{name}` has no label or version `{sel}`"))
            .note(format!("labels: {}", list_names(&labels)))
            .note(format!("versions: {}", list_names(&ids)));
        let short: Vec<String> = self
            .versions
            .iter()
            .map(|v| format!("v{}", v.number))
            .collect();
        let candidates = labels
            .iter()
            .copied()
            .chain(short.iter().map(String::as_str));
        if let Some(s) = did_you_mean(sel, candidates) {
            d = d.hint(format!("did you mean `{name}@{s}`?"));
        }
        Error::new(ErrorKind::NotFound, d)
    }
}

/// What `--expect` says the label must currently point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The label must not exist yet.
    Absent,
    /// The label must point at this selector's version (or, for a label, its whole target).
    Version(String),
    /// The label must point at exactly this target.
    Is(Target),
}

/// Where a label move goes: a selector a person typed (`v3`, a hash prefix, a label,
/// `v3:90,v4:10`), resolved under the lock, or a target already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveTo {
    Selector(String),
    Exactly(Target),
}

impl Expect {
    pub fn parse(s: &str) -> Expect {
        if s == "none" {
            Expect::Absent
        } else {
            Expect::Version(s.to_string())
        }
    }
}

/// A request to move a label.
#[derive(Debug, Clone)]
pub struct LabelMove {
    pub prompt: String,
    pub label: String,
    /// The new target.
    pub target: MoveTo,
    pub expect: Expect,
    pub actor: String,
    pub reason: String,
    pub action: Action,
    pub gate_run: Option<String>,
    pub report_digest: Option<String>,
    pub skip_gate: bool,
}

impl LabelMove {
    /// A plain, ungated `label set`: `label` of `prompt` to `target` if it points at `expect`.
    pub fn set(
        prompt: impl Into<String>,
        label: impl Into<String>,
        target: impl Into<String>,
        expect: Expect,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> LabelMove {
        LabelMove {
            prompt: prompt.into(),
            label: label.into(),
            target: MoveTo::Selector(target.into()),
            expect,
            actor: actor.into(),
            reason: reason.into(),
            action: Action::LabelSet,
            gate_run: None,
            report_digest: None,
            skip_gate: false,
        }
    }
}

/// A version's content read and validated (before a store takes its lock).
#[derive(Debug)]
pub struct Parsed {
    pub bytes: Vec<u8>,
    pub loaded: Loaded,
}

/// A version offered for registration: where it came from (a file, or how to name it in
/// messages, "the POSTed version") and its content, or why it could not be read.
#[derive(Debug)]
pub struct NewVersion {
    pub source: PathBuf,
    pub content: Result<Parsed>,
}

impl NewVersion {
    /// A version from its text, parsed and validated as a version file (`source` names it in
    /// messages). Whether its provider is configured is the repository's business
    /// ([`Repo::add_text`] checks it).
    pub fn parse(source: impl Into<PathBuf>, text: String) -> NewVersion {
        let source = source.into();
        let content = artifact::load(&source, &text)
            .map(|loaded| Parsed {
                bytes: text.into_bytes(),
                loaded,
            })
            .map_err(|ds| Error::many(ErrorKind::Usage, ds));
        NewVersion { source, content }
    }
}

/// The result of `add`.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub path: PathBuf,
    pub warnings: Vec<Diagnostic>,
}

/// A promptgate repository: `promptgate.yaml`, the prompts' folders beside it (version files,
/// suites, datasets — what lives in Git), the state folder (runs, caches, locks), and the
/// [`Store`] holding versions, labels and the audit log.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
    pub config: Config,
    files: Arc<FileStore>,
}

impl Repo {
    /// Open the repository whose root is `root`.
    pub fn open(root: &Path) -> Result<Repo> {
        let file = root.join(config::FILE_NAME);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::usage(format!(
                    "`{}` is not a promptgate repository: no `{}`",
                    root.display(),
                    config::FILE_NAME
                ))
                .with_hint("run `promptgate init` to create one, or pass `-C <dir>`"));
            }
            Err(e) => return Err(Error::io(&file, "read", e)),
        };
        let config = Config::parse(&file, &text)?;
        let trust = signing::Trust::from_config(config.audit.as_ref())?;
        let files = Arc::new(FileStore::new(
            root.join(config.prompts_dir()),
            &root.join(config::defaults::STATE_DIR),
            config.prompts_dir(),
            trust,
        ));
        Ok(Repo {
            root: root.to_path_buf(),
            config,
            files,
        })
    }

    /// Find the repository containing `start` (walking up to the first `promptgate.yaml`).
    pub fn discover(start: &Path) -> Result<Repo> {
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join(config::FILE_NAME).is_file() {
                return Repo::open(d);
            }
            dir = d.parent();
        }
        Repo::open(start)
    }

    pub fn prompts_dir(&self) -> PathBuf {
        self.root.join(self.config.prompts_dir())
    }

    pub fn prompt_dir(&self, name: &str) -> PathBuf {
        self.prompts_dir().join(name)
    }

    /// `.promptgate/`: runs, caches and locks.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(config::defaults::STATE_DIR)
    }

    /// The suite of prompt `name` (`prompts/<name>/suite.yaml`, in Git beside its versions).
    pub fn suite_path(&self, name: &str) -> PathBuf {
        self.prompt_dir(name).join(SUITE_FILE)
    }

    /// The audit log's trusted signing keys (from `audit:` in the configuration).
    pub fn trust(&self) -> &signing::Trust {
        self.files.trust()
    }

    /// Where versions, labels and the audit log are kept.
    pub fn store(&self) -> &dyn Store {
        &*self.files
    }

    /// The store, shared (for a server that outlives the borrow).
    pub fn shared_store(&self) -> Arc<dyn Store> {
        self.files.clone()
    }

    /// Every prompt with a registry, sorted by name.
    pub fn prompt_names(&self) -> Result<Vec<String>> {
        self.store().prompt_names()
    }

    /// A prompt's state (see [`Store::prompt`]).
    pub fn prompt(&self, name: &str) -> Result<Prompt> {
        self.store().prompt(name)
    }

    /// Resolve a reference to a prompt and one of its versions.
    pub fn resolve(&self, r: &Ref) -> Result<(Prompt, VersionEntry, Option<String>)> {
        let prompt = self.prompt(&r.prompt)?;
        let (v, label) = prompt.resolve(r.selector.as_deref())?;
        let v = v.clone();
        Ok((prompt, v, label))
    }

    /// A registered version's content, checked against its hash (see [`Store::load_version`]).
    pub fn load_version(&self, prompt: &Prompt, v: &VersionEntry) -> Result<Loaded> {
        self.store().load_version(prompt, v)
    }

    /// Move a label (see [`Store::move_label`]).
    pub fn move_label(&self, m: &LabelMove) -> Result<Entry> {
        self.store().move_label(m)
    }

    /// A prompt's audit log, every signature verified.
    pub fn audit(&self, name: &str) -> Result<audit::Log> {
        self.store().audit(name)
    }

    /// A prompt's audit log for a reader that has seen its first `from` entries (see
    /// [`Store::audit_from`]).
    pub fn audit_from(&self, name: &str, from: usize) -> Result<audit::Log> {
        self.store().audit_from(name, from)
    }

    /// Register new version files of `name` (see `promptgate add --help`).
    pub fn add(&self, name: &str, files: &[PathBuf], actor: &str) -> Result<Vec<Registered>> {
        validate_prompt_name(name)?;
        let dir = self.prompt_dir(name);
        fsutil::create_dir_all(&dir)?;

        // Which files: the given ones, or every unregistered `*.yaml` in the prompt's folder.
        let explicit = !files.is_empty();
        let candidates: Vec<PathBuf> = if explicit {
            files.to_vec()
        } else {
            let mut found = Vec::new();
            let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, "list", e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, "list", e))?;
                let fname = entry.file_name().to_string_lossy().to_string();
                let is_yaml = fname.ends_with(".yaml") || fname.ends_with(".yml");
                if is_yaml
                    && !fname.starts_with('.')
                    && fname != REGISTRY_FILE
                    && fname != SUITE_FILE
                {
                    found.push(entry.path());
                }
            }
            found.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
            found
        };

        // Read, parse and validate every file before taking the lock: the lock is held only
        // for what must be atomic (the checks against the registry, and the writes), so a
        // large or slow file never delays another writer.
        let versions: Vec<NewVersion> = candidates
            .into_iter()
            .map(|source| {
                let content = fsutil::read_to_string(&source)
                    .and_then(|text| self.parse_version(&source, text));
                NewVersion { source, content }
            })
            .collect();
        self.store().register(name, versions, explicit, actor)
    }

    /// Register a version given as text (`POST /v1/prompts/{name}/versions`): parsed and
    /// validated in memory, before the lock; messages name it as `shown`, never a temporary
    /// path. It is written as the next `v<N>.yaml`.
    pub fn add_text(
        &self,
        name: &str,
        shown: &str,
        text: String,
        actor: &str,
    ) -> Result<Vec<Registered>> {
        validate_prompt_name(name)?;
        let source = PathBuf::from(shown);
        let content = self.parse_version(&source, text);
        self.store()
            .register(name, vec![NewVersion { source, content }], true, actor)
    }

    /// Read a version's text into what registration needs: parsed, validated, checked against
    /// the providers.
    fn parse_version(&self, src: &Path, text: String) -> Result<Parsed> {
        let mut parsed = NewVersion::parse(src, text).content?;
        let text = String::from_utf8_lossy(&parsed.bytes);
        let (errors, warnings) =
            artifact::check_provider(&parsed.loaded.artifact, src, &text, &self.config.providers);
        if !errors.is_empty() {
            return Err(Error::many(ErrorKind::Usage, errors));
        }
        parsed.loaded.warnings.extend(warnings);
        Ok(parsed)
    }
}

/// The conflict error: what the label points at now, and who moved it there, when and why.
pub(crate) fn conflict(
    prompt: &Prompt,
    entries: &[Entry],
    label: &str,
    current: Option<&Target>,
    expected: Option<&Target>,
) -> Error {
    let name = &prompt.name;
    let show = |v: Option<&Target>| {
        v.map(|s| format!("`{s}`"))
            .unwrap_or_else(|| "nothing (the label does not exist)".into())
    };
    let mut d = Diagnostic::error(format!(
        "`{name}@{label}` points at {}, not {}",
        show(current),
        show(expected)
    ));
    if let Some(last) = entries
        .iter()
        .rev()
        .find(|e| e.label.as_deref() == Some(label))
    {
        d = d.note(format!(
            "moved by {} at {} ({}){}",
            last.actor,
            last.ts,
            last.action.as_str(),
            last.reason
                .as_deref()
                .map(|r| format!(": \"{r}\""))
                .unwrap_or_default()
        ));
    }
    d = d.hint(match current {
        Some(c) => format!("someone moved it first; review, then retry with `--expect {c}`"),
        None => "the label does not exist yet; create it with `--expect none`".to_string(),
    });
    Error::conflict(d, current.map(|t| t.to_string()))
}

/// Apply one audit entry to a registry's versions and labels.
pub fn apply(reg: &mut Prompt, e: &Entry) {
    match e.action {
        Action::Register => {
            if let (Some(Target::One(id)), Some(file), Some(hash)) =
                (&e.to, &e.file, &e.version_hash)
                && !reg.versions.iter().any(|v| &v.id == id)
            {
                let number = parse_version_selector(id).map(|(n, _)| n).unwrap_or(0);
                reg.versions.push(VersionEntry {
                    id: id.clone(),
                    number,
                    file: file.clone(),
                    hash: hash.clone(),
                });
            }
        }
        Action::LabelSet | Action::Promote | Action::Rollback => {
            if let Some(label) = &e.label {
                match &e.to {
                    Some(to) => {
                        reg.labels.insert(label.clone(), to.clone());
                    }
                    None => {
                        reg.labels.remove(label);
                    }
                }
            }
        }
    }
}

/// Replay a whole audit log into the versions and labels it implies.
pub fn replay(name: &str, entries: &[Entry]) -> Prompt {
    let mut prompt = Prompt::empty(name);
    for e in entries {
        apply(&mut prompt, e);
    }
    if let Some(last) = entries.last() {
        prompt.audit = AuditHead {
            entries: entries.len() as u64,
            head: last.hash.clone(),
        };
    }
    prompt
}

/// Compare strings with digit runs compared as numbers (`v2` < `v10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| {
        let mut parts: Vec<(String, u64)> = Vec::new();
        let mut text = String::new();
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                if !num.is_empty() {
                    parts.push((std::mem::take(&mut text), num.parse().unwrap_or(u64::MAX)));
                    num.clear();
                }
                text.push(c);
            }
        }
        parts.push((text, num.parse().unwrap_or(0)));
        parts
    };
    key(a).cmp(&key(b))
}
