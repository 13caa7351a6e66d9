//! `promptgate check`: every problem in a repository at once — files that do not parse,
//! hashes that do not match, labels pointing nowhere, an audit chain that does not verify, a
//! registry that disagrees with its audit log.

use std::collections::BTreeSet;
use std::fs;

use promptgate_core::artifact;
use promptgate_core::error::{Diagnostic, Severity};
use promptgate_core::fsutil;

use super::{
    AUDIT_FILE, REGISTRY_FILE, Repo, SUITE_FILE, audit, parse_registry, replay, version_id,
};

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub prompts: usize,
    pub versions: usize,
    pub audit_entries: usize,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

/// Check the whole repository.
pub fn check(repo: &Repo) -> Report {
    let mut report = Report::default();
    let names = match repo.prompt_names() {
        Ok(n) => n,
        Err(e) => {
            report.diagnostics.extend(e.into_diagnostics());
            return report;
        }
    };
    for name in &names {
        check_prompt(repo, name, &mut report);
    }
    report.prompts = names.len();
    report
}

fn check_prompt(repo: &Repo, name: &str, report: &mut Report) {
    let dir = repo.prompt_dir(name);
    let reg_path = dir.join(REGISTRY_FILE);
    let on_disk =
        match fsutil::read_to_string(&reg_path).and_then(|t| parse_registry(&reg_path, &t)) {
            Ok(r) => r,
            Err(e) => {
                report.diagnostics.extend(e.into_diagnostics());
                return;
            }
        };
    if on_disk.prompt != name {
        report.diagnostics.push(
            Diagnostic::error(format!(
                "registry.yaml names prompt `{}` but lives in the folder of `{name}`",
                on_disk.prompt
            ))
            .in_context(reg_path.display().to_string()),
        );
    }
    let at = Place {
        repo,
        name,
        dir: &dir,
        reg_path: &reg_path,
    };
    let registry = at.rolled_forward(on_disk.clone(), &mut report.diagnostics);
    let out = &mut report.diagnostics;
    // Temporary files a killed write left (the next write to this prompt removes them).
    for t in fsutil::stale_temps(&dir) {
        out.push(
            Diagnostic::warning(format!(
                "`{}` is a temporary file a write left behind (it was interrupted)",
                t.display()
            ))
            .hint(format!(
                "the next write to `{name}` removes it; or delete it"
            )),
        );
    }

    at.versions(&registry, report);
    let out = &mut report.diagnostics;
    // Labels point at registered versions.
    for (label, target) in &registry.labels {
        for id in target.versions() {
            if !registry.versions.iter().any(|v| v.id == id) {
                out.push(
                    Diagnostic::error(format!(
                        "label `{label}` points at `{id}`, which is not a registered version"
                    ))
                    .in_context(at.here(label)),
                );
            }
        }
    }

    if at.audit_agrees(&on_disk, report) {
        at.unregistered(&registry, &mut report.diagnostics);
    }
}

/// One prompt's folder, as `check` looks at it.
struct Place<'a> {
    repo: &'a Repo,
    name: &'a str,
    dir: &'a std::path::Path,
    reg_path: &'a std::path::Path,
}

impl Place<'_> {
    fn here(&self, what: &str) -> String {
        format!("{} ({what})", self.reg_path.display())
    }

    /// The state every reader acts on: registry.yaml rolled forward by the audit log's
    /// verified entries past its checkpoint (a crash between the two writes leaves the log
    /// ahead). The versions and labels are checked against it, as `show`, `render` and
    /// `label set` see them.
    fn rolled_forward(
        &self,
        on_disk: crate::file::RegistryFile,
        out: &mut Vec<Diagnostic>,
    ) -> super::Prompt {
        let (repo, name, dir) = (self.repo, self.name, self.dir);
        let mut rolled = on_disk.into_prompt(name).0;
        let audit_path = dir.join(AUDIT_FILE);
        if let Ok(text) = fs::read_to_string(&audit_path) {
            let log = audit::parse_with(&audit_path, &text, repo.trust());
            let before = rolled.audit.entries;
            crate::file::roll_forward(&mut rolled, &log.entries[..log.valid]);
            if rolled.audit.entries > before {
                out.push(
                    Diagnostic::warning(format!(
                        "the audit log is {} entr{} ahead of registry.yaml (a write was interrupted): readers apply {}, and the next write to `{name}` records {} in registry.yaml",
                        rolled.audit.entries - before,
                        if rolled.audit.entries - before == 1 { "y" } else { "ies" },
                        if rolled.audit.entries - before == 1 { "it" } else { "them" },
                        if rolled.audit.entries - before == 1 { "it" } else { "them" },
                    ))
                    .in_context(audit_path.display().to_string()),
                );
            }
        }
        rolled
    }

    /// Every version file parses, validates and still has its registered hash.
    fn versions(&self, registry: &super::Prompt, report: &mut Report) {
        let (repo, dir) = (self.repo, self.dir);
        let here = |what: &str| self.here(what);
        let out = &mut report.diagnostics;
        for v in &registry.versions {
            report.versions += 1;
            let path = dir.join(&v.file);
            if v.id != version_id(v.number, &v.hash) {
                out.push(
                    Diagnostic::error(format!(
                        "version id `{}` does not match its number and hash (`{}`)",
                        v.id,
                        version_id(v.number, &v.hash)
                    ))
                    .in_context(here(&v.id))
                    .hint("registry.yaml was edited by hand; restore it from Git"),
                );
            }
            let text = match fsutil::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    out.extend(e.into_diagnostics());
                    continue;
                }
            };
            match artifact::load(&path, &text) {
                Err(ds) => out.extend(ds),
                Ok(loaded) => {
                    out.extend(loaded.warnings);
                    let (errors, warnings) = artifact::check_provider(
                        &loaded.artifact,
                        &path,
                        &text,
                        &repo.config.providers,
                    );
                    out.extend(errors);
                    out.extend(warnings);
                    if loaded.hash != v.hash {
                        out.push(Diagnostic::error(format!(
                            "`{}` ({}) does not match its registered hash",
                            v.file, v.id
                        ))
                        .in_context(path.display().to_string())
                        .note(format!("registered {}, file hashes to {}", v.hash, loaded.hash))
                        .hint("either the version file was edited after registration (restore it and add the edit as a new version), or registry.yaml was edited by hand (restore it from Git)"));
                    }
                }
            }
        }
    }

    /// The audit chain verifies and agrees with registry.yaml (`on_disk`, as written). Whether
    /// it does, so far as to look further.
    fn audit_agrees(&self, on_disk: &crate::file::RegistryFile, report: &mut Report) -> bool {
        let (repo, name, dir, reg_path) = (self.repo, self.name, self.dir, self.reg_path);
        let out = &mut report.diagnostics;
        let audit_path = dir.join(AUDIT_FILE);
        let text = match fs::read_to_string(&audit_path) {
            Ok(t) => t,
            Err(e) => {
                out.push(
                    Diagnostic::error(format!("cannot read the audit log: {e}"))
                        .in_context(audit_path.display().to_string()),
                );
                return false;
            }
        };
        let log = audit::parse_with(&audit_path, &text, repo.trust());
        report.audit_entries += log.entries.len();
        let chain_ok = log.problems.is_empty();
        out.extend(log.problems);
        out.extend(log.notes);
        let recorded = on_disk.audit.entries as usize;
        if log.entries.len() < recorded {
            out.push(Diagnostic::error(format!(
                "the audit log has {} entries but registry.yaml records {recorded}: entries were deleted from its end",
                log.entries.len()
            )).in_context(audit_path.display().to_string()).hint("restore the audit log from Git (`git checkout -- <file>`)"));
            return false;
        }
        if recorded > 0 && log.entries[recorded - 1].hash != on_disk.audit.head {
            out.push(
                Diagnostic::error(
                    "registry.yaml's audit checkpoint does not match the audit log".to_string(),
                )
                .in_context(reg_path.display().to_string())
                .hint("restore both files from Git"),
            );
            return false;
        }
        if !chain_ok {
            return false;
        }
        // Roll the committed tail forward (a crash between the two writes), then compare.
        let mut current = on_disk.clone().into_prompt(name).0;
        for e in &log.entries[recorded..] {
            super::apply(&mut current, e);
        }
        let replayed = replay(name, &log.entries);
        let ids = |r: &super::Prompt| -> BTreeSet<(String, String, String)> {
            r.versions
                .iter()
                .map(|v| (v.id.clone(), v.file.clone(), v.hash.clone()))
                .collect()
        };
        let (have, want) = (ids(&current), ids(&replayed));
        for (id, file, hash) in have.difference(&want) {
            out.push(Diagnostic::error(format!(
                "registry.yaml records `{id}` ({file}, hash {}) but the audit log registered no such version",
                promptgate_core::safe::prefix(hash, 12)
            )).in_context(reg_path.display().to_string()).hint("registry.yaml was edited by hand; restore it from Git"));
        }
        for (id, file, _) in want.difference(&have) {
            out.push(
                Diagnostic::error(format!(
                    "the audit log registered `{id}` ({file}) but registry.yaml does not record it"
                ))
                .in_context(reg_path.display().to_string())
                .hint("registry.yaml was edited by hand; restore it from Git"),
            );
        }
        let labels: BTreeSet<&String> = current
            .labels
            .keys()
            .chain(replayed.labels.keys())
            .collect();
        for label in labels {
            let (a, b) = (current.labels.get(label), replayed.labels.get(label));
            if a != b {
                out.push(
                    Diagnostic::error(format!(
                        "label `{label}` is {} in registry.yaml but {} per the audit log",
                        a.map(|s| format!("`{s}`"))
                            .unwrap_or_else(|| "absent".into()),
                        b.map(|s| format!("`{s}`"))
                            .unwrap_or_else(|| "absent".into())
                    ))
                    .in_context(reg_path.display().to_string())
                    .hint("labels move only through promptgate; restore registry.yaml from Git"),
                );
            }
        }
        true
    }

    /// Version files nobody registered.
    fn unregistered(&self, registry: &super::Prompt, out: &mut Vec<Diagnostic>) {
        let (name, dir) = (self.name, self.dir);
        if let Ok(entries) = fs::read_dir(dir) {
            let mut unregistered: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|f| (f.ends_with(".yaml") || f.ends_with(".yml")) && !f.starts_with('.'))
                .filter(|f| f != REGISTRY_FILE && f != SUITE_FILE)
                .filter(|f| !registry.versions.iter().any(|v| &v.file == f))
                .collect();
            unregistered.sort();
            for f in unregistered {
                out.push(
                    Diagnostic::warning(format!("`{f}` is not a registered version of `{name}`"))
                        .in_context(dir.join(&f).display().to_string())
                        .hint(format!("register it with `promptgate add {name}`")),
                );
            }
        }
    }
}
