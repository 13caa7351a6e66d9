//! The file registry: versions and labels of each prompt in `prompts/<name>/registry.yaml`,
//! every change recorded first in the hash-chained `audit.jsonl`, label moves as
//! compare-and-swap under an advisory lock, and every write atomic.
//!
//! ## Crash safety
//!
//! The audit log is the write-ahead log; `registry.yaml` is its checkpoint and records how
//! far into the log it is (`audit.entries`, `audit.head`, `audit.bytes`). A change is written
//! as: append the entry to `audit.jsonl` (atomic replace), then replace `registry.yaml`
//! (atomic). A crash between the two leaves a log one entry ahead of the checkpoint; every
//! reader rolls such a committed tail forward, and the next writer persists it. Both files are
//! always whole: temp file, fsync, rename, fsync of the directory.

pub mod audit;
pub mod bundle;
pub mod check;
pub mod signing;
pub mod target;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use audit::{Action, Entry, GENESIS};
use promptgate_core::artifact::{self, Loaded};
use promptgate_core::config::{self, Config};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result, did_you_mean, list_names};
use promptgate_core::fsutil::{self, LockGuard};
pub use target::Target;

/// Per-prompt registry file name.
pub const REGISTRY_FILE: &str = "registry.yaml";
/// Per-prompt audit log file name.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// Per-prompt eval suite file name (not a version).
pub const SUITE_FILE: &str = "suite.yaml";
/// Hash prefixes shorter than this are refused as ambiguous by design.
pub const MIN_HASH_PREFIX: usize = 7;

/// `registry.yaml`: versions → hashes, labels → versions, and the audit checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub prompt: String,
    #[serde(default)]
    pub versions: Vec<VersionEntry>,
    /// Label → version id, or a weighted split between versions.
    #[serde(default)]
    pub labels: BTreeMap<String, Target>,
    pub audit: Checkpoint,
}

/// One registered version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// `v{number}-{hash7}`.
    pub id: String,
    pub number: u32,
    /// File name inside the prompt's folder.
    pub file: String,
    /// Full SHA-256 content hash of the canonical artifact.
    pub hash: String,
}

/// How far into `audit.jsonl` this registry file reflects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub entries: u64,
    pub head: String,
    pub bytes: u64,
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

/// A prompt's state: its registry (with any committed audit tail rolled forward).
#[derive(Debug, Clone)]
pub struct Prompt {
    pub name: String,
    pub dir: PathBuf,
    pub registry: RegistryFile,
}

impl Prompt {
    pub fn version(&self, id: &str) -> Option<&VersionEntry> {
        self.registry.versions.iter().find(|v| v.id == id)
    }

    pub fn latest(&self) -> Option<&VersionEntry> {
        self.registry.versions.iter().max_by_key(|v| v.number)
    }

    /// Labels pointing at version `id`.
    pub fn labels_of(&self, id: &str) -> Vec<&str> {
        self.registry
            .labels
            .iter()
            .filter(|(_, t)| t.serves(id))
            .map(|(l, _)| l.as_str())
            .collect()
    }

    /// Labels serving version `id`, for people: `production`, or `production (10%)` when the
    /// label splits its traffic.
    pub fn label_notes(&self, id: &str) -> Vec<String> {
        self.registry
            .labels
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
        let versions = &self.registry.versions;
        let sel = match selector {
            None | Some("latest") => {
                return self
                    .latest()
                    .map(|v| (v, None))
                    .ok_or_else(|| Error::usage(format!("prompt `{name}` has no versions")));
            }
            Some(s) => s,
        };
        if let Some(target) = self.registry.labels.get(sel) {
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
                if let Some(t) = self.registry.labels.get(&sel) {
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
        let target = self.registry.labels.get(label)?;
        let id = target.assign(label, routing_key);
        Some((self.version(id)?, target))
    }

    fn not_found(&self, sel: &str) -> Error {
        let name = &self.name;
        let labels: Vec<&str> = self.registry.labels.keys().map(String::as_str).collect();
        let ids: Vec<&str> = self
            .registry
            .versions
            .iter()
            .map(|v| v.id.as_str())
            .collect();
        let mut d = Diagnostic::error(format!("`{name}` has no label or version `{sel}`"))
            .note(format!("labels: {}", list_names(&labels)))
            .note(format!("versions: {}", list_names(&ids)));
        let short: Vec<String> = self
            .registry
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
        Error::new(ErrorKind::Usage, d)
    }
}

/// What `--expect` says the label must currently point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The label must not exist yet.
    Absent,
    /// The label must point at this selector's version.
    Version(String),
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
    /// Selector of the new target.
    pub target: String,
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
            target: target.into(),
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

/// A version file read and validated (before `add` takes the lock).
struct Parsed {
    bytes: Vec<u8>,
    loaded: Loaded,
}

/// The result of `add`.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub path: PathBuf,
    pub warnings: Vec<Diagnostic>,
}

/// A promptgate repository: `promptgate.yaml` and the prompts beside it.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
    pub config: Config,
    /// The audit log's trusted signing keys (from `audit:` in the configuration).
    pub trust: signing::Trust,
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
        Ok(Repo {
            root: root.to_path_buf(),
            config,
            trust,
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

    fn lock(&self, name: &str) -> Result<LockGuard> {
        let file = format!("{}.lock", name.replace('/', "__"));
        LockGuard::acquire(&self.state_dir().join("locks").join(file))
    }

    /// Every prompt with a registry, sorted by name.
    pub fn prompt_names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.prompts_dir();
        if !base.is_dir() {
            return Ok(out);
        }
        let mut stack = vec![(base.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, "list", e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, "list", e))?;
                let path = entry.path();
                if !path.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.join(REGISTRY_FILE).is_file() {
                    let rel = path.strip_prefix(&base).unwrap_or(&path);
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                } else if depth < 4 {
                    stack.push((path, depth + 1));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn unknown_prompt(&self, name: &str) -> Error {
        let names = self.prompt_names().unwrap_or_default();
        let dir = self.prompt_dir(name);
        let mut err = Error::usage(if dir.is_dir() {
            format!("prompt `{name}` has no registered versions")
        } else {
            format!("no prompt named `{name}`")
        });
        if let Some(d) = err.diagnostics.first_mut() {
            d.notes.push(format!("prompts: {}", list_names(&names)));
            d.hint = Some(match did_you_mean(name, names.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if dir.is_dir() => format!("register a version with `promptgate add {name}`"),
                None => format!(
                    "create `{}/{name}/v1.yaml` and run `promptgate add {name}`",
                    self.config.prompts_dir()
                ),
            });
        }
        err
    }

    /// Read a prompt's registry (read-only; no lock). A committed audit tail that the
    /// registry file does not reflect yet (a crash between the two writes) is rolled forward.
    pub fn prompt(&self, name: &str) -> Result<Prompt> {
        validate_prompt_name(name)?;
        let dir = self.prompt_dir(name);
        let reg_path = dir.join(REGISTRY_FILE);
        let text = match fs::read_to_string(&reg_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.unknown_prompt(name));
            }
            Err(e) => return Err(Error::io(&reg_path, "read", e)),
        };
        let registry = parse_registry(&reg_path, &text)?;
        let mut prompt = Prompt {
            name: name.to_string(),
            dir,
            registry,
        };
        let audit_path = prompt.dir.join(AUDIT_FILE);
        let size = fs::metadata(&audit_path).map(|m| m.len()).unwrap_or(0);
        if size != prompt.registry.audit.bytes {
            let text = fsutil::read_to_string(&audit_path).unwrap_or_default();
            let from = prompt.registry.audit.entries as usize;
            let log = audit::parse_verifying_from(&audit_path, &text, &self.trust, from);
            // Only entries that verify (chain, hash, signature) are history.
            roll_forward(&mut prompt.registry, &log.entries[..log.valid]);
        }
        Ok(prompt)
    }

    /// Resolve a reference to a prompt and one of its versions.
    pub fn resolve(&self, r: &Ref) -> Result<(Prompt, VersionEntry, Option<String>)> {
        let prompt = self.prompt(&r.prompt)?;
        let (v, label) = prompt.resolve(r.selector.as_deref())?;
        let v = v.clone();
        Ok((prompt, v, label))
    }

    /// Load a registered version's file and verify it still has its registered hash.
    pub fn load_version(&self, prompt: &Prompt, v: &VersionEntry) -> Result<Loaded> {
        let path = prompt.dir.join(&v.file);
        let text = fsutil::read_to_string(&path)?;
        let loaded =
            artifact::load(&path, &text).map_err(|ds| Error::many(ErrorKind::Usage, ds))?;
        if loaded.hash != v.hash {
            return Err(edited_error(prompt, v, &loaded.hash));
        }
        Ok(loaded)
    }

    /// Register new version files of `name` (see `promptgate add --help`).
    pub fn add(&self, name: &str, files: &[PathBuf], actor: &str) -> Result<Vec<Registered>> {
        validate_prompt_name(name)?;
        let signer = self.signer()?;
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
        let parsed: Vec<(PathBuf, Result<Parsed>)> = candidates
            .iter()
            .map(|src| {
                let loaded =
                    fsutil::read_to_string(src).and_then(|text| self.parse_version(src, text));
                (src.clone(), loaded)
            })
            .collect();
        self.register(name, signer, parsed, explicit, actor)
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
        let signer = self.signer()?;
        fsutil::create_dir_all(&self.prompt_dir(name))?;
        let src = PathBuf::from(shown);
        let parsed = self.parse_version(&src, text);
        self.register(name, signer, vec![(src, parsed)], true, actor)
    }

    /// Read a version's text into what registration needs: parsed, validated, checked against
    /// the providers.
    fn parse_version(&self, src: &Path, text: String) -> Result<Parsed> {
        let mut l = artifact::load(src, &text).map_err(|ds| Error::many(ErrorKind::Usage, ds))?;
        let (errors, warnings) =
            artifact::check_provider(&l.artifact, src, &text, &self.config.providers);
        if !errors.is_empty() {
            return Err(Error::many(ErrorKind::Usage, errors));
        }
        l.warnings.extend(warnings);
        Ok(Parsed {
            bytes: text.into_bytes(),
            loaded: l,
        })
    }

    /// Under the prompt's lock, register what was parsed: the checks against the registry,
    /// the copies, the audit entries and the checkpoint.
    fn register(
        &self,
        name: &str,
        signer: Option<signing::Signer>,
        parsed: Vec<(PathBuf, Result<Parsed>)>,
        explicit: bool,
        actor: &str,
    ) -> Result<Vec<Registered>> {
        let dir = self.prompt_dir(name);
        let _lock = self.lock(name)?;
        let (mut prompt, mut log_text, log) = self.load_for_write(name)?;
        let mut problems = Vec::new();
        // (source, copy-to, bytes, loaded)
        let mut to_register: Vec<(PathBuf, Option<PathBuf>, Vec<u8>, Loaded)> = Vec::new();
        let mut next = prompt
            .registry
            .versions
            .iter()
            .map(|v| v.number)
            .max()
            .unwrap_or(0)
            + 1;
        for (src, parsed) in parsed {
            let src = &src;
            let in_place =
                src.parent().and_then(|p| p.canonicalize().ok()) == dir.canonicalize().ok();
            let fname = src
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            let registered = if in_place {
                prompt
                    .registry
                    .versions
                    .iter()
                    .find(|v| v.file == fname)
                    .cloned()
            } else {
                None
            };
            let Parsed { bytes, loaded } = match parsed {
                Ok(x) => x,
                Err(e) => {
                    if let Some(v) = &registered {
                        // A registered file that no longer parses was edited too.
                        problems.push(
                            edited_error(&prompt, v, "(unparsable)")
                                .diagnostics
                                .remove(0),
                        );
                    }
                    problems.extend(e.diagnostics);
                    continue;
                }
            };
            if let Some(v) = registered {
                if v.hash != loaded.hash {
                    problems.extend(edited_error(&prompt, &v, &loaded.hash).diagnostics);
                } else if explicit {
                    problems.push(
                        Diagnostic::error(format!(
                            "`{}` is already registered as `{}@{}`",
                            src.display(),
                            name,
                            v.id
                        ))
                        .hint("a version is registered once; to change it, add a new file"),
                    );
                }
                continue;
            }
            let dup = prompt
                .registry
                .versions
                .iter()
                .find(|v| v.hash == loaded.hash)
                .map(|v| v.id.clone())
                .or_else(|| {
                    to_register
                        .iter()
                        .find(|(_, _, _, l)| l.hash == loaded.hash)
                        .map(|(p, _, _, _)| p.display().to_string())
                });
            if let Some(existing) = dup {
                problems.push(
                    Diagnostic::error(format!(
                        "`{}` has the same content as `{existing}`: nothing new to register",
                        src.display()
                    ))
                    .note(
                        "reformatting or re-commenting a file does not change a version's identity",
                    ),
                );
                continue;
            }
            let (src, copy_to) = if in_place {
                (src.clone(), None)
            } else {
                let target = dir.join(format!("v{next}.yaml"));
                match fs::read(&target) {
                    Err(_) => (src.clone(), Some(target)),
                    // A copy a killed `add` left behind (the copy is written before the audit
                    // entry): the same bytes, so this retry registers it.
                    Ok(existing) if existing == bytes => (target, None),
                    Ok(_) => {
                        problems.push(Diagnostic::error(format!(
                            "cannot copy `{}` to `{}`: that file already exists", src.display(), target.display()
                        )).hint(format!("register the existing file first (`promptgate add {name}`), or move it aside")));
                        continue;
                    }
                }
            };
            next += 1;
            to_register.push((src, copy_to, bytes, loaded));
        }
        if !problems.is_empty() {
            return Err(Error::many(ErrorKind::Usage, problems));
        }
        if to_register.is_empty() {
            return Err(Error::usage(format!("no new version files to register for `{name}`"))
                .with_hint(format!("create `{}/v{next}.yaml` (or pass a file) and run `promptgate add {name}` again", dir.display())));
        }

        let mut out = Vec::new();
        let mut number = prompt
            .registry
            .versions
            .iter()
            .map(|v| v.number)
            .max()
            .unwrap_or(0);
        let mut prev = log.head().to_string();
        let mut seq = log.entries.len() as u64;
        for (src, copy_to, bytes, loaded) in to_register {
            number += 1;
            let path = match copy_to {
                // The bytes that were validated, not the file again (it may have changed).
                Some(target) => {
                    fsutil::write_atomic(&target, &bytes)?;
                    target
                }
                None => src,
            };
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            let id = version_id(number, &loaded.hash);
            seq += 1;
            let mut entry = Entry {
                seq,
                ts: promptgate_core::clock::now(),
                actor: actor.to_string(),
                action: Action::Register,
                prompt: name.to_string(),
                label: None,
                from: None,
                to: Some(Target::One(id.clone())),
                file: Some(file),
                version_hash: Some(loaded.hash.clone()),
                reason: None,
                gate_run: None,
                report_digest: None,
                skip_gate: false,
                prev: prev.clone(),
                hash: String::new(),
                sig: None,
            };
            entry.hash = entry.compute_hash();
            if let Some(s) = &signer {
                s.sign(&mut entry);
            }
            prev = entry.hash.clone();
            log_text.push_str(&entry.to_line());
            apply(&mut prompt.registry, &entry);
            out.push(Registered {
                id,
                path,
                warnings: loaded.warnings,
            });
        }
        self.commit(&mut prompt, &log_text, seq, &prev)?;
        Ok(out)
    }

    /// Move a label with compare-and-swap against `expect`, writing an audit entry.
    pub fn move_label(&self, m: &LabelMove) -> Result<Entry> {
        validate_label(&m.label)?;
        let signer = self.signer()?;
        if m.reason.trim().is_empty() {
            return Err(Error::usage("a label move needs a reason").with_hint("pass `-m \"why\"`"));
        }
        let _lock = self.lock(&m.prompt)?;
        let (mut prompt, mut log_text, log) = self.load_for_write(&m.prompt)?;
        let target = prompt.resolve_target(&m.target)?;
        for id in target.versions() {
            let v = prompt
                .version(id)
                .cloned()
                .ok_or_else(|| Error::usage(format!("`{}` has no version `{id}`", m.prompt)))?;
            self.load_version(&prompt, &v)?;
        }
        let current = prompt.registry.labels.get(&m.label).cloned();
        let expected = match &m.expect {
            Expect::Absent => None,
            Expect::Version(sel) => Some(prompt.resolve_target(sel)?),
        };
        if current != expected {
            return Err(conflict(
                &prompt,
                &log.entries,
                &m.label,
                current.as_ref(),
                expected.as_ref(),
            ));
        }
        if current.as_ref() == Some(&target) {
            return Err(Error::usage(format!(
                "`{}@{}` already points at `{target}`: nothing to move",
                m.prompt, m.label
            )));
        }
        let seq = log.entries.len() as u64 + 1;
        let mut entry = Entry {
            seq,
            ts: promptgate_core::clock::now(),
            actor: m.actor.clone(),
            action: m.action,
            prompt: m.prompt.clone(),
            label: Some(m.label.clone()),
            from: current,
            to: Some(target),
            file: None,
            version_hash: None,
            reason: Some(m.reason.clone()),
            gate_run: m.gate_run.clone(),
            report_digest: m.report_digest.clone(),
            skip_gate: m.skip_gate,
            prev: log.head().to_string(),
            hash: String::new(),
            sig: None,
        };
        entry.hash = entry.compute_hash();
        if let Some(s) = &signer {
            s.sign(&mut entry);
        }
        log_text.push_str(&entry.to_line());
        apply(&mut prompt.registry, &entry);
        self.commit(&mut prompt, &log_text, seq, &entry.hash)?;
        Ok(entry)
    }

    /// The key this process signs audit entries with: from the environment, checked against
    /// the trusted keys before anything is written. `None` when no key is set and none is
    /// required.
    fn signer(&self) -> Result<Option<signing::Signer>> {
        let signer = signing::Signer::from_env()?;
        match &signer {
            None if self.trust.require => Err(Error::usage(
                "this repository requires signed audit entries (`audit.require_signatures`), and no signing key is set",
            )
            .with_hint(format!(
                "export {}=<id>:<key> (from `promptgate keygen`) with a key listed under `audit.keys`",
                signing::KEY_ENV
            ))),
            Some(s) if self.trust.is_signed() && !self.trust.trusts(s) => Err(Error::usage(format!(
                "the signing key `{}` is not one of the trusted `audit.keys` in promptgate.yaml (or its public key differs)",
                s.id
            ))
            .with_hint(format!(
                "add `{{ id: {}, public_key: {} }}` under `audit.keys`, or set the right key",
                s.id,
                s.public_key()
            ))),
            Some(s) if self.trust.retired_from(&s.id).is_some_and(|r| signing::after_or_at(&promptgate_core::clock::now(), r)) => {
                Err(Error::usage(format!("the signing key `{}` is retired", s.id))
                    .with_hint("sign with a current key"))
            }
            _ => Ok(signer),
        }
    }

    /// Read a prompt's audit log (parsed and verified, every signature).
    pub fn audit(&self, name: &str) -> Result<audit::Log> {
        self.audit_from(name, 0)
    }

    /// Read a prompt's audit log, verifying the signatures of the entries from index `from`
    /// on and of the last one (see [`audit::parse_verifying_from`]): for a reader that has
    /// seen the first `from` entries already.
    pub fn audit_from(&self, name: &str, from: usize) -> Result<audit::Log> {
        validate_prompt_name(name)?;
        let path = self.prompt_dir(name).join(AUDIT_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(audit::parse_verifying_from(&path, &text, &self.trust, from)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.prompt_dir(name).join(REGISTRY_FILE).is_file() {
                    Ok(audit::Log::default())
                } else {
                    Err(self.unknown_prompt(name))
                }
            }
            Err(e) => Err(Error::io(&path, "read", e)),
        }
    }

    /// Under the prompt's lock: its state (rolled forward), the audit text, and the verified
    /// log. A tampered log is refused: appending would extend a broken chain.
    fn load_for_write(&self, name: &str) -> Result<(Prompt, String, audit::Log)> {
        let dir = self.prompt_dir(name);
        // Under the lock no other writer of this prompt is running: any temporary file in its
        // folder was left by a killed one.
        fsutil::remove_stale_temps(&dir);
        let audit_path = dir.join(AUDIT_FILE);
        let log_text = match fs::read_to_string(&audit_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&audit_path, "read", e)),
        };
        let reg_path = dir.join(REGISTRY_FILE);
        let mut registry = match fs::read_to_string(&reg_path) {
            Ok(t) => parse_registry(&reg_path, &t)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryFile {
                prompt: name.to_string(),
                versions: Vec::new(),
                labels: BTreeMap::new(),
                audit: Checkpoint {
                    entries: 0,
                    head: GENESIS.to_string(),
                    bytes: 0,
                },
            },
            Err(e) => return Err(Error::io(&reg_path, "read", e)),
        };
        // Signatures past the checkpoint and the last one (which vouches for the chain before it).
        let from = registry.audit.entries as usize;
        let log = audit::parse_verifying_from(&audit_path, &log_text, &self.trust, from);
        if !log.problems.is_empty() {
            let mut ds = log.problems.clone();
            ds.push(
                Diagnostic::error(format!(
                    "refusing to write to `{name}`: its audit log does not verify"
                ))
                .hint("run `promptgate check` and restore the audit log from Git"),
            );
            return Err(Error::many(ErrorKind::Usage, ds));
        }
        roll_forward(&mut registry, &log.entries);
        let mut log_text = log_text;
        if !log_text.is_empty() && !log_text.ends_with('\n') {
            log_text.push('\n');
        }
        Ok((
            Prompt {
                name: name.to_string(),
                dir,
                registry,
            },
            log_text,
            log,
        ))
    }

    /// Write the audit log, then the registry checkpoint (see the module docs for why).
    fn commit(&self, prompt: &mut Prompt, log_text: &str, entries: u64, head: &str) -> Result<()> {
        fsutil::write_atomic(&prompt.dir.join(AUDIT_FILE), log_text.as_bytes())?;
        prompt.registry.audit = Checkpoint {
            entries,
            head: head.to_string(),
            bytes: log_text.len() as u64,
        };
        write_registry(&prompt.dir.join(REGISTRY_FILE), &prompt.registry)
    }
}

fn edited_error(prompt: &Prompt, v: &VersionEntry, now: &str) -> Error {
    let next = prompt
        .registry
        .versions
        .iter()
        .map(|v| v.number)
        .max()
        .unwrap_or(0)
        + 1;
    let path = prompt.dir.join(&v.file);
    Error::new(
        ErrorKind::Usage,
        Diagnostic::error(format!(
            "v{} was edited after registration; add it as v{next} instead",
            v.number
        ))
        .in_context(path.display().to_string())
        .note(format!("registered hash {}, content now hashes to {now}", v.hash))
        .hint(format!(
            "registered versions never change: copy your edit to a new file (`cp {p} {d}/v{next}.yaml`), restore the original (`git checkout -- {p}`), then run `promptgate add {name}`",
            p = path.display(),
            d = prompt.dir.display(),
            name = prompt.name
        )),
    )
}

/// The conflict error: what the label points at now, and who moved it there, when and why.
fn conflict(
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
    Error::conflict(d)
}

/// Apply one audit entry to a registry's versions and labels.
pub fn apply(reg: &mut RegistryFile, e: &Entry) {
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

/// Apply the entries after the registry's checkpoint (if the checkpoint is found in the log).
pub(crate) fn roll_forward(reg: &mut RegistryFile, entries: &[Entry]) {
    let n = reg.audit.entries as usize;
    let at_checkpoint = if n == 0 {
        reg.audit.head == GENESIS || reg.audit.head.is_empty()
    } else {
        entries.get(n - 1).is_some_and(|e| e.hash == reg.audit.head)
    };
    if at_checkpoint && entries.len() > n {
        for e in &entries[n..] {
            apply(reg, e);
        }
        // In memory only: this state reflects the whole log (the next write persists it).
        reg.audit.entries = entries.len() as u64;
        reg.audit.head = entries.last().map(|e| e.hash.clone()).unwrap_or_default();
    }
}

/// Replay a whole audit log into the versions and labels it implies.
pub fn replay(name: &str, entries: &[Entry]) -> RegistryFile {
    let mut reg = RegistryFile {
        prompt: name.to_string(),
        versions: Vec::new(),
        labels: BTreeMap::new(),
        audit: Checkpoint::default(),
    };
    for e in entries {
        apply(&mut reg, e);
    }
    reg
}

pub fn parse_registry(path: &Path, text: &str) -> Result<RegistryFile> {
    fn keys_of(path: &str) -> &'static [&'static str] {
        match path {
            "" => &["prompt", "versions", "labels", "audit"],
            _ => &[],
        }
    }
    promptgate_core::yaml::bounded(path, text)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let p = err.path().to_string();
        Error::from(
            promptgate_core::artifact::yaml_error_diagnostic(path, text, &p, err.inner(), keys_of)
                .hint("registry.yaml is written by promptgate; restore it from Git (`git checkout -- <file>`)"),
        )
    })
}

fn write_registry(path: &Path, reg: &RegistryFile) -> Result<()> {
    let body = serde_yaml_ng::to_string(reg).map_err(|e| {
        Error::new(
            ErrorKind::Infrastructure,
            Diagnostic::error(format!("cannot serialize registry: {e}")),
        )
    })?;
    let text = format!(
        "# promptgate registry of `{}`: written by promptgate, never edit it by hand.\n\
         # Versions are immutable; labels move with `promptgate label set`, `promote` and `rollback`.\n{body}",
        reg.prompt
    );
    fsutil::write_atomic(path, text.as_bytes())
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
