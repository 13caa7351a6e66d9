//! The file store: each prompt's versions and labels in `prompts/<name>/registry.yaml`, every
//! change recorded first in the hash-chained `audit.jsonl`, label moves as compare-and-swap
//! under an advisory lock per prompt, and every write atomic. Files, folders, checkpoints,
//! locks and temporary files are this module's business alone; the rest of promptgate sees
//! the [`Store`] trait.
//!
//! ## Crash safety
//!
//! The audit log is the write-ahead log; `registry.yaml` is its checkpoint and records how
//! far into the log it is (`audit.entries`, `audit.head`, `audit.bytes`). A change is written
//! as: append the entry to `audit.jsonl` (atomic replace), then replace `registry.yaml`
//! (atomic). A crash between the two leaves a log one entry ahead of the checkpoint; every
//! reader rolls such a committed tail forward, and the next writer persists it. Both files are
//! always whole: temp file, fsync, rename, fsync of the directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{self, Action, Entry, GENESIS};
use crate::signing;
use crate::{
    AuditHead, Expect, LabelMove, Lease, MoveTo, NewVersion, Parsed, Prompt, Registered, Store,
    Target, VersionEntry, apply, conflict, validate_label, validate_prompt_name, version_id,
};
use promptgate_core::artifact::{self, Loaded};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result, did_you_mean, list_names};
use promptgate_core::fsutil::{self, LockGuard};
use promptgate_core::rollout::Rollouts;
use promptgate_core::signals::Signals;

/// Per-prompt registry file name.
pub const REGISTRY_FILE: &str = "registry.yaml";
/// Per-prompt audit log file name.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// `serve`'s production signals, in the state folder (not in Git: they are observations).
pub const SIGNALS_FILE: &str = "signals.json";
/// The guarded rollouts, in the state folder.
pub const ROLLOUTS_FILE: &str = "rollouts.json";

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

/// How far into `audit.jsonl` this registry file reflects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub entries: u64,
    pub head: String,
    pub bytes: u64,
}

impl RegistryFile {
    /// The prompt's state this file records, and how many bytes of the audit log it covers.
    pub fn into_prompt(self, name: &str) -> (Prompt, u64) {
        let prompt = Prompt {
            name: name.to_string(),
            versions: self.versions,
            labels: self.labels,
            audit: AuditHead {
                entries: self.audit.entries,
                head: self.audit.head,
            },
        };
        (prompt, self.audit.bytes)
    }

    /// The file recording `prompt`, whose audit log is `bytes` long.
    pub fn of(prompt: &Prompt, bytes: u64) -> RegistryFile {
        RegistryFile {
            prompt: prompt.name.clone(),
            versions: prompt.versions.clone(),
            labels: prompt.labels.clone(),
            audit: Checkpoint {
                entries: prompt.audit.entries,
                head: prompt.audit.head.clone(),
                bytes,
            },
        }
    }
}

/// Prompts as files under a folder (`prompts/` of a repository); locks and production signals
/// in the state folder (`.promptgate/`).
#[derive(Debug, Clone)]
pub struct FileStore {
    prompts: PathBuf,
    locks: PathBuf,
    /// `serve`'s production signals (`signals.json`).
    signals: PathBuf,
    /// The guarded rollouts (`rollouts.json`).
    rollouts: PathBuf,
    /// The prompts folder as people know it (`prompts`), for hints.
    shown: String,
    trust: signing::Trust,
}

impl FileStore {
    /// The store of the prompts under `prompts` (shown in hints as `shown`), with its locks
    /// and signals in `state`, verifying the audit log with `trust`.
    pub fn new(prompts: PathBuf, state: &Path, shown: &str, trust: signing::Trust) -> FileStore {
        FileStore {
            prompts,
            locks: state.join("locks"),
            signals: state.join(SIGNALS_FILE),
            rollouts: state.join(ROLLOUTS_FILE),
            shown: shown.to_string(),
            trust,
        }
    }

    /// The keys its audit logs are verified with.
    pub fn trust(&self) -> &signing::Trust {
        &self.trust
    }

    /// The folder of prompt `name`.
    pub fn prompt_dir(&self, name: &str) -> PathBuf {
        self.prompts.join(name)
    }

    fn lock(&self, name: &str) -> Result<LockGuard> {
        let file = format!("{}.lock", name.replace('/', "__"));
        LockGuard::acquire(&self.locks.join(file))
    }

    fn unknown_prompt(&self, name: &str) -> Error {
        let names = self.prompt_names().unwrap_or_default();
        let dir = self.prompt_dir(name);
        let mut err = Error::not_found(if dir.is_dir() {
            format!("prompt `{name}` has no registered versions")
        } else {
            format!("no prompt named `{name}`")
        });
        if let Some(d) = err.diagnostics_mut().first_mut() {
            d.notes.push(format!("prompts: {}", list_names(&names)));
            d.hint = Some(match did_you_mean(name, names.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if dir.is_dir() => format!("register a version with `promptgate add {name}`"),
                None => format!(
                    "create `{}/{name}/v1.yaml` and run `promptgate add {name}`",
                    self.shown
                ),
            });
        }
        err
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
        let mut prompt = match fs::read_to_string(&reg_path) {
            Ok(t) => parse_registry(&reg_path, &t)?.into_prompt(name).0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Prompt::empty(name),
            Err(e) => return Err(Error::io(&reg_path, "read", e)),
        };
        // Signatures past the checkpoint and the last one (which vouches for the chain before it).
        let from = prompt.audit.entries as usize;
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
        roll_forward(&mut prompt, &log.entries);
        let mut log_text = log_text;
        if !log_text.is_empty() && !log_text.ends_with('\n') {
            log_text.push('\n');
        }
        Ok((prompt, log_text, log))
    }

    /// Write the audit log, then the registry checkpoint (see the module docs for why).
    fn commit(&self, prompt: &mut Prompt, log_text: &str, entries: u64, head: &str) -> Result<()> {
        let dir = self.prompt_dir(&prompt.name);
        fsutil::write_atomic(&dir.join(AUDIT_FILE), log_text.as_bytes())?;
        prompt.audit = AuditHead {
            entries,
            head: head.to_string(),
        };
        write_registry(
            &dir.join(REGISTRY_FILE),
            &RegistryFile::of(prompt, log_text.len() as u64),
        )
    }
}

impl Store for FileStore {
    fn location(&self) -> String {
        self.prompts.display().to_string()
    }

    fn load_signals(&self) -> Result<Signals> {
        read_json(&self.signals, "the saved production signals")
    }

    /// An advisory lock on `.promptgate/locks/<duty>.lead`, released by the OS if the holder
    /// dies: another `serve` over the same repository takes the duty over at its next try.
    fn try_lead(&self, duty: &str) -> Result<Option<Lease>> {
        let path = self.locks.join(format!("{duty}.lead"));
        Ok(LockGuard::try_acquire(&path)?.map(Lease::new))
    }

    fn rollouts(&self) -> Result<Rollouts> {
        read_json(&self.rollouts, "the rollouts")
    }

    fn update_rollouts(
        &self,
        change: &mut dyn FnMut(&mut Rollouts) -> Result<()>,
    ) -> Result<Rollouts> {
        let _lock = self.lock(".rollouts")?;
        let mut rollouts: Rollouts = read_json(&self.rollouts, "the rollouts")?;
        change(&mut rollouts)?;
        let text = serde_json::to_vec_pretty(&rollouts).map_err(|e| Error::usage(e.to_string()))?;
        if let Some(dir) = self.rollouts.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", e))?;
        }
        fsutil::write_atomic(&self.rollouts, &text)?;
        Ok(rollouts)
    }

    fn save_signals(&self, signals: &Signals) -> Result<()> {
        let text = serde_json::to_vec(signals).map_err(|e| Error::usage(e.to_string()))?;
        if let Some(dir) = self.signals.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", e))?;
        }
        fsutil::write_atomic(&self.signals, &text)
    }

    /// File events (inotify and its equivalents) under the prompts folder, each turned into
    /// the prompt whose folder holds the path (the longest name that has a registry: names
    /// nest), or [`Change::Any`] for a path in no prompt's folder (a new one) and for a lost
    /// event. Without the `watch` feature, or where file events are unavailable (no inotify
    /// instances left, some network file systems), the subscription is not live.
    fn subscribe(&self, notify: crate::store::OnChange) -> crate::store::Subscription {
        #[cfg(feature = "watch")]
        {
            watch_folder(&self.prompts, notify)
        }
        #[cfg(not(feature = "watch"))]
        {
            let _ = notify;
            crate::store::Subscription::none("built without file events (the `watch` feature)")
        }
    }

    /// Every file of the prompt's folder: name, size, modification time (ns) and inode — the
    /// inode matters, for file times are coarse (a few ms) and an atomic write within the same
    /// tick and of the same size is still a new inode. An edited version file changes it too,
    /// so that a reloader sees a prompt that stops loading.
    fn change_stamp(&self, name: &str) -> String {
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(self.prompt_dir(name)) {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata()
                    && m.is_file()
                {
                    let t = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    #[cfg(unix)]
                    let ino = std::os::unix::fs::MetadataExt::ino(&m);
                    #[cfg(not(unix))]
                    let ino = 0;
                    out.push(format!(
                        "{}\t{}\t{t}\t{ino}",
                        e.file_name().to_string_lossy(),
                        m.len()
                    ));
                }
            }
        }
        out.sort();
        out.join("\n")
    }

    /// Every prompt with a registry, sorted by name.
    fn prompt_names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.prompts.clone();
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

    /// Read a prompt's registry (read-only; no lock). A committed audit tail that the
    /// registry file does not reflect yet (a crash between the two writes) is rolled forward.
    fn prompt(&self, name: &str) -> Result<Prompt> {
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
        let (mut prompt, bytes) = parse_registry(&reg_path, &text)?.into_prompt(name);
        let audit_path = dir.join(AUDIT_FILE);
        let size = fs::metadata(&audit_path).map(|m| m.len()).unwrap_or(0);
        if size != bytes {
            let text = fsutil::read_to_string(&audit_path).unwrap_or_default();
            let from = prompt.audit.entries as usize;
            let log = audit::parse_verifying_from(&audit_path, &text, &self.trust, from);
            // Only entries that verify (chain, hash, signature) are history.
            roll_forward(&mut prompt, &log.entries[..log.valid]);
        }
        Ok(prompt)
    }

    /// Load a registered version's file and verify it still has its registered hash.
    fn load_version(&self, prompt: &Prompt, v: &VersionEntry) -> Result<Loaded> {
        let path = self.prompt_dir(&prompt.name).join(&v.file);
        let text = fsutil::read_to_string(&path)?;
        let loaded =
            artifact::load(&path, &text).map_err(|ds| Error::many(ErrorKind::Usage, ds))?;
        if loaded.hash != v.hash {
            return Err(edited_error(
                prompt,
                v,
                &loaded.hash,
                &self.prompt_dir(&prompt.name),
            ));
        }
        Ok(loaded)
    }

    /// Under the prompt's lock, register what was parsed: the checks against the registry,
    /// the copies, the audit entries and the checkpoint.
    fn register(
        &self,
        name: &str,
        versions: Vec<NewVersion>,
        explicit: bool,
        actor: &str,
    ) -> Result<Vec<Registered>> {
        validate_prompt_name(name)?;
        let signer = self.signer()?;
        let dir = self.prompt_dir(name);
        fsutil::create_dir_all(&dir)?;
        let _lock = self.lock(name)?;
        let (mut prompt, mut log_text, log) = self.load_for_write(name)?;
        let mut problems = Vec::new();
        // (source, copy-to, bytes, loaded)
        let mut to_register: Vec<(PathBuf, Option<PathBuf>, Vec<u8>, Loaded)> = Vec::new();
        let mut next = prompt.next_number();
        for NewVersion {
            source: src,
            content: parsed,
        } in versions
        {
            let src = &src;
            let in_place =
                src.parent().and_then(|p| p.canonicalize().ok()) == dir.canonicalize().ok();
            let fname = src
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            let registered = if in_place {
                prompt.versions.iter().find(|v| v.file == fname).cloned()
            } else {
                None
            };
            let Parsed { bytes, loaded } = match parsed {
                Ok(x) => x,
                Err(e) => {
                    if let Some(v) = &registered {
                        // A registered file that no longer parses was edited too.
                        problems.push(
                            edited_error(&prompt, v, "(unparsable)", &dir)
                                .into_diagnostics()
                                .remove(0),
                        );
                    }
                    problems.extend(e.into_diagnostics());
                    continue;
                }
            };
            if let Some(v) = registered {
                if v.hash != loaded.hash {
                    problems
                        .extend(edited_error(&prompt, &v, &loaded.hash, &dir).into_diagnostics());
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
        let mut number = prompt.next_number() - 1;
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
            apply(&mut prompt, &entry);
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
    fn move_label(&self, m: &LabelMove) -> Result<Entry> {
        validate_label(&m.label)?;
        let signer = self.signer()?;
        if m.reason.trim().is_empty() {
            return Err(Error::usage("a label move needs a reason").with_hint("pass `-m \"why\"`"));
        }
        let _lock = self.lock(&m.prompt)?;
        let (mut prompt, mut log_text, log) = self.load_for_write(&m.prompt)?;
        let target = match &m.target {
            MoveTo::Selector(sel) => prompt.resolve_target(sel)?,
            MoveTo::Exactly(t) => t.clone(),
        };
        for id in target.versions() {
            let v = prompt
                .version(id)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("`{}` has no version `{id}`", m.prompt)))?;
            Store::load_version(self, &prompt, &v)?;
        }
        let current = prompt.labels.get(&m.label).cloned();
        let expected = match &m.expect {
            Expect::Absent => None,
            Expect::Version(sel) => Some(prompt.resolve_target(sel)?),
            Expect::Is(t) => Some(t.clone()),
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
        apply(&mut prompt, &entry);
        self.commit(&mut prompt, &log_text, seq, &entry.hash)?;
        Ok(entry)
    }

    /// Read a prompt's audit log, verifying the signatures of the entries from index `from`
    /// on and of the last one (see [`audit::parse_verifying_from`]): for a reader that has
    /// seen the first `from` entries already.
    fn audit_from(&self, name: &str, from: usize) -> Result<audit::Log> {
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
}

fn edited_error(prompt: &Prompt, v: &VersionEntry, now: &str, dir: &Path) -> Error {
    let next = prompt.next_number();
    let path = dir.join(&v.file);
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
            d = dir.display(),
            name = prompt.name
        )),
    )
}

/// Apply the entries after the registry's checkpoint (if the checkpoint is found in the log).
pub(crate) fn roll_forward(reg: &mut Prompt, entries: &[Entry]) {
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

/// The file store's change notices: see [`FileStore`]'s `subscribe`.
#[cfg(feature = "watch")]
fn watch_folder(prompts: &Path, notify: crate::store::OnChange) -> crate::store::Subscription {
    use crate::store::{Change, Subscription};
    use notify::Watcher;
    // Events name absolute paths; the repository's may be relative.
    let base = fs::canonicalize(prompts).unwrap_or_else(|_| prompts.to_path_buf());
    let owner_of = move |path: &Path| -> Change {
        let Ok(rel) = path.strip_prefix(&base) else {
            return Change::Any;
        };
        // The deepest folder on the way that holds a registry is the prompt.
        let mut dir = if path.is_dir() {
            Some(rel)
        } else {
            rel.parent()
        };
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if base.join(d).join(REGISTRY_FILE).is_file() {
                return Change::Prompt(d.to_string_lossy().replace('\\', "/"));
            }
            dir = d.parent();
        }
        Change::Any
    };
    let watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // Opening and reading files (a reloader's own scans among them) are not changes.
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => {}
            Ok(ev) => {
                for p in &ev.paths {
                    notify(owner_of(p));
                }
            }
            Err(_) => notify(Change::Any),
        })
        .and_then(|mut w| {
            w.watch(prompts, notify::RecursiveMode::Recursive)?;
            Ok(w)
        });
    match watcher {
        Ok(w) => Subscription::live(Box::new(w)),
        Err(e) => Subscription::none(format!("no file events ({e})")),
    }
}

/// A state file written whole by promptgate (signals, rollouts), or its default when absent.
fn read_json<T: Default + serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::from(
            Diagnostic::error(format!("cannot read {what}: {e}"))
                .in_context(path.display().to_string())
                .hint("the file is written whole by promptgate; delete it to start afresh"),
        )
    })
}
