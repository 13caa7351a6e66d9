//! Bundles: every version and label of a repository as one JSON artifact with its own digest,
//! for services that load prompts at start-up (`promptgate bundle`, `serve --bundle`, the
//! client's `from_bundle`) — and [`BundleStore`], a bundle as a read-only [`Store`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate as registry;
use crate::audit::{Entry, Log};
use crate::{LabelMove, NewVersion, Registered, Store, Target, VersionEntry};
use promptgate_core::artifact::{Artifact, Loaded, canonical};
use promptgate_core::error::{Diagnostic, Error, Result, did_you_mean, list_names};

/// The bundle format's version.
pub const BUNDLE_VERSION: u32 = 1;

/// A whole registry, frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub bundle_version: u32,
    pub generated_at: String,
    pub promptgate_version: String,
    /// SHA-256 of the canonical JSON of `prompts`: what a loader verifies.
    pub digest: String,
    pub prompts: BTreeMap<String, PromptDoc>,
}

/// One prompt: its labels and every version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptDoc {
    #[serde(default)]
    pub labels: BTreeMap<String, Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    /// Audit entries so far and the hash of the last (what this state is, in the audit log).
    pub audit_entries: u64,
    pub audit_head: String,
    pub versions: Vec<VersionDoc>,
}

/// One version with its artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDoc {
    pub version_id: String,
    pub number: u32,
    pub hash: String,
    pub artifact: Artifact,
}

impl PromptDoc {
    /// Read one prompt from a store: its state and every version, each verified against its
    /// registered hash.
    pub fn read(store: &dyn Store, name: &str) -> Result<PromptDoc> {
        let prompt = store.prompt(name)?;
        let mut versions = Vec::with_capacity(prompt.versions.len());
        for v in &prompt.versions {
            let loaded = store.load_version(&prompt, v)?;
            versions.push(VersionDoc {
                version_id: v.id.clone(),
                number: v.number,
                hash: v.hash.clone(),
                artifact: loaded.artifact,
            });
        }
        Ok(PromptDoc {
            labels: prompt.labels.clone(),
            latest: prompt.latest().map(|v| v.id.clone()),
            audit_entries: prompt.audit.entries,
            audit_head: prompt.audit.head.clone(),
            versions,
        })
    }

    /// This prompt as a registry view (for resolving selectors the same way the CLI does).
    pub fn as_prompt(&self, name: &str) -> registry::Prompt {
        registry::Prompt {
            name: name.to_string(),
            versions: self
                .versions
                .iter()
                .map(|v| registry::VersionEntry {
                    id: v.version_id.clone(),
                    number: v.number,
                    file: String::new(),
                    hash: v.hash.clone(),
                })
                .collect(),
            labels: self.labels.clone(),
            audit: registry::AuditHead {
                entries: self.audit_entries,
                head: self.audit_head.clone(),
            },
        }
    }
}

/// The digest of a set of prompts.
pub fn digest(prompts: &BTreeMap<String, PromptDoc>) -> String {
    let v = serde_json::to_value(prompts).unwrap_or(serde_json::Value::Null);
    canonical::content_hash(&v).unwrap_or_default()
}

impl Bundle {
    /// Every prompt of a store.
    pub fn read(store: &dyn Store) -> Result<Bundle> {
        let mut prompts = BTreeMap::new();
        let mut problems = Vec::new();
        for name in store.prompt_names()? {
            match PromptDoc::read(store, &name) {
                Ok(doc) => {
                    prompts.insert(name, doc);
                }
                Err(e) => problems.extend(e.into_diagnostics()),
            }
        }
        if !problems.is_empty() {
            return Err(Error::many(promptgate_core::ErrorKind::Usage, problems));
        }
        Ok(Bundle::new(prompts))
    }

    pub fn new(prompts: BTreeMap<String, PromptDoc>) -> Bundle {
        Bundle {
            bundle_version: BUNDLE_VERSION,
            generated_at: promptgate_core::clock::now(),
            promptgate_version: env!("CARGO_PKG_VERSION").to_string(),
            digest: digest(&prompts),
            prompts,
        }
    }

    /// Write atomically as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            promptgate_core::fsutil::create_dir_all(dir)?;
        }
        promptgate_core::fsutil::write_atomic(path, &text)
    }

    /// Read a bundle and verify its digest and every version's hash.
    pub fn load(path: &Path) -> Result<Bundle> {
        let text = promptgate_core::fsutil::read_to_string(path)?;
        Bundle::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Bundle> {
        let here = path.display().to_string();
        let mut de = serde_json::Deserializer::from_str(text);
        let b: Bundle = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            Error::from(
                Diagnostic::error(format!("not a promptgate bundle: {}", e.inner()))
                    .in_context(format!("{here} at `{}`", e.path()))
                    .hint("write one with `promptgate bundle --out FILE`"),
            )
        })?;
        if b.bundle_version != BUNDLE_VERSION {
            return Err(Error::usage(format!(
                "{here}: bundle_version {} is not supported (this promptgate reads {BUNDLE_VERSION})",
                b.bundle_version
            )));
        }
        let actual = digest(&b.prompts);
        if actual != b.digest {
            return Err(Error::usage(format!(
                "{here}: the bundle's digest does not match its content (recorded {}, content hashes to {actual})",
                b.digest
            ))
            .with_hint("the file was edited or truncated; write it again with `promptgate bundle`"));
        }
        for (name, p) in &b.prompts {
            for v in &p.versions {
                let h = v.artifact.content_hash().unwrap_or_default();
                if h != v.hash {
                    return Err(Error::usage(format!(
                        "{here}: `{name}@{}` does not match its hash",
                        v.version_id
                    )));
                }
            }
            for (label, t) in &p.labels {
                for id in t.versions() {
                    if !p.versions.iter().any(|v| v.version_id == id) {
                        return Err(Error::usage(format!(
                            "{here}: label `{name}@{label}` points at `{id}`, which the bundle does not hold"
                        )));
                    }
                }
            }
        }
        Ok(b)
    }
}

/// A bundle as a [`Store`]: everything it holds, read-only. Registrations and label moves are
/// refused (`serve --bundle` answers them with 405); it never changes, so it sends no notices.
#[derive(Debug)]
pub struct BundleStore {
    path: PathBuf,
    prompts: BTreeMap<String, PromptDoc>,
}

impl BundleStore {
    /// Load and verify the bundle at `path` (see [`Bundle::load`]).
    pub fn open(path: &Path) -> Result<BundleStore> {
        Ok(BundleStore::new(path, Bundle::load(path)?))
    }

    /// A loaded bundle, shown in messages as `path`.
    pub fn new(path: &Path, bundle: Bundle) -> BundleStore {
        BundleStore {
            path: path.to_path_buf(),
            prompts: bundle.prompts,
        }
    }

    fn doc(&self, name: &str) -> Result<&PromptDoc> {
        self.prompts.get(name).ok_or_else(|| {
            let names: Vec<&String> = self.prompts.keys().collect();
            let mut e = Error::not_found(format!(
                "no prompt named `{name}` in the bundle `{}`",
                self.path.display()
            ));
            if let Some(d) = e.diagnostics_mut().first_mut() {
                d.notes.push(format!("prompts: {}", list_names(&names)));
                d.hint = did_you_mean(name, self.prompts.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"));
            }
            e
        })
    }

    fn read_only(&self) -> Error {
        Error::usage(format!(
            "`{}` is a bundle, which is read-only",
            self.path.display()
        ))
        .with_hint("register versions and move labels in the repository, then write the bundle again with `promptgate bundle`")
    }
}

impl Store for BundleStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn read_only(&self) -> bool {
        true
    }

    fn prompt_names(&self) -> Result<Vec<String>> {
        Ok(self.prompts.keys().cloned().collect())
    }

    fn prompt(&self, name: &str) -> Result<registry::Prompt> {
        Ok(self.doc(name)?.as_prompt(name))
    }

    fn load_version(&self, prompt: &registry::Prompt, v: &VersionEntry) -> Result<Loaded> {
        let doc = self.doc(&prompt.name)?;
        let found = doc
            .versions
            .iter()
            .find(|d| d.version_id == v.id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "the bundle `{}` holds no version `{}` of `{}`",
                    self.path.display(),
                    v.id,
                    prompt.name
                ))
            })?;
        // Verified when the bundle was opened; checked again against what the caller expects.
        if found.hash != v.hash {
            return Err(Error::usage(format!(
                "`{}@{}` in the bundle `{}` does not match its registered hash",
                prompt.name,
                v.id,
                self.path.display()
            )));
        }
        Ok(Loaded {
            artifact: found.artifact.clone(),
            hash: found.hash.clone(),
            warnings: Vec::new(),
        })
    }

    fn register(
        &self,
        _name: &str,
        _versions: Vec<NewVersion>,
        _explicit: bool,
        _actor: &str,
    ) -> Result<Vec<Registered>> {
        Err(self.read_only())
    }

    fn move_label(&self, _m: &LabelMove) -> Result<Entry> {
        Err(self.read_only())
    }

    /// A bundle holds where each prompt's audit log stood, not its entries.
    fn audit_from(&self, name: &str, _from: usize) -> Result<Log> {
        let doc = self.doc(name)?;
        Err(Error::not_found(format!(
            "the bundle `{}` holds no audit log of `{name}` (only its head: {} entries, {})",
            self.path.display(),
            doc.audit_entries,
            doc.audit_head
        ))
        .with_hint("read the log in the repository the bundle was written from"))
    }

    fn change_stamp(&self, _name: &str) -> String {
        String::new()
    }

    fn subscribe(&self, notify: crate::OnChange) -> crate::Subscription {
        let _ = notify;
        crate::Subscription::none("a bundle does not change")
    }
}
