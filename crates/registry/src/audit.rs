//! The append-only, hash-chained audit log (`audit.jsonl`): one JSON object per line, each
//! holding the hash of the previous line, so any edit, deletion or reordering is detectable.
//!
//! An entry's `hash` is the SHA-256 of the canonical JSON (see
//! [`promptgate_core::artifact::canonical`]) of the entry without its `hash` key. The first entry's
//! `prev` is 64 zeros.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Target;
use promptgate_core::artifact::canonical;
use promptgate_core::error::Diagnostic;

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new version was registered.
    Register,
    /// A raw, ungated label move (`promptgate label set`).
    LabelSet,
    /// A gated label move (`promptgate promote`).
    Promote,
    /// A label moved back (`promptgate rollback`).
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::LabelSet => "label_set",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
        }
    }
}

/// One line of `audit.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    /// UTC timestamp, RFC 3339.
    pub ts: String,
    /// Who did it (see [`actor`]).
    pub actor: String,
    pub action: Action,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The version the label pointed at before (`None`: the label is new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Target>,
    /// The version id registered, or the label's new target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Target>,
    /// For `register`: the version file, relative to the prompt's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For `register`: the full content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The gate run that justified a promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_run: Option<String>,
    /// SHA-256 of that gate's JSON report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_digest: Option<String>,
    /// Set when a promotion skipped its gate (`--skip-gate`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_gate: bool,
    /// Hash of the previous entry ([`GENESIS`] for the first).
    pub prev: String,
    /// Hash of this entry (canonical JSON without this key and without `sig`).
    #[serde(default)]
    pub hash: String,
    /// The writer's signature of `hash` (see [`super::signing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<super::signing::Sig>,
}

impl Entry {
    /// The hash this entry must carry.
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.remove("hash");
            obj.remove("sig");
        }
        canonical::content_hash(&v).unwrap_or_default()
    }

    /// This entry as one JSON line (with its newline).
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A parsed audit log with the problems found in it.
#[derive(Debug, Default)]
pub struct Log {
    pub entries: Vec<Entry>,
    /// Every problem: unparsable lines, broken hashes, broken chain, gaps, signatures that do
    /// not verify, unsigned entries where signatures are due.
    pub problems: Vec<Diagnostic>,
    /// What is worth saying but not wrong (an unsigned log, unsigned entries from before
    /// signing began).
    pub notes: Vec<Diagnostic>,
    /// How many entries from the start verify: only these may be rolled forward.
    pub valid: usize,
}

impl Log {
    pub fn head(&self) -> &str {
        self.entries
            .last()
            .map(|e| e.hash.as_str())
            .unwrap_or(GENESIS)
    }
}

/// Parse and verify the chain of an audit log's text (signatures are not looked at).
pub fn parse(file: &Path, text: &str) -> Log {
    parse_with(file, text, &super::signing::Trust::default())
}

/// Parse and verify an audit log: the chain, and with trusted keys the signatures. With keys
/// configured, an unsigned entry is an error when signatures are required or when it comes
/// after a signed one (a forger who cannot sign would simply not); earlier unsigned entries —
/// history from before signing began — are noted.
pub fn parse_with(file: &Path, text: &str, trust: &super::signing::Trust) -> Log {
    parse_verifying_from(file, text, trust, 0)
}

/// [`parse_with`], verifying the signatures of the entries from index `from` on and of the
/// last entry; earlier ones are only required to be signed where signatures are due. This is
/// what reading and writing need: the hash chain is checked in full, so a valid signature on
/// the last entry vouches for every entry before it (its hash covers them), and the entries
/// past the registry's checkpoint — the only ones rolled forward — are each verified.
/// `check` verifies every signature ([`parse_with`]). Verifying all of them on every label
/// move would make a move's cost grow with the log (about 25 µs an entry).
pub fn parse_verifying_from(
    file: &Path,
    text: &str,
    trust: &super::signing::Trust,
    from: usize,
) -> Log {
    let last = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .last()
        .map(|(i, _)| i);
    let mut log = Log::default();
    let mut prev_hash = GENESIS.to_string();
    let mut expect_seq = 1u64;
    let mut first_bad: Option<usize> = None;
    let mut seen_signed = false;
    let mut legacy_unsigned = 0usize;
    let place = |line: usize| format!("{}:{}", file.display(), line);
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let before = log.problems.len();
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                log.problems.push(
                    Diagnostic::error(format!("audit entry is not valid JSON: {e}"))
                        .in_context(place(lineno))
                        .hint("the audit log is append-only: restore it from Git (`git checkout -- <file>`)"),
                );
                first_bad.get_or_insert(log.entries.len());
                continue;
            }
        };
        if entry.compute_hash() != entry.hash {
            log.problems.push(
                Diagnostic::error(format!(
                    "audit entry {} was modified: its content no longer matches its hash",
                    entry.seq
                ))
                .in_context(place(lineno))
                .hint(
                    "the audit log is append-only: restore it from Git (`git checkout -- <file>`)",
                ),
            );
        }
        if entry.prev != prev_hash {
            log.problems.push(
                Diagnostic::error(format!(
                    "audit chain broken before entry {}: it does not follow the previous line",
                    entry.seq
                ))
                .in_context(place(lineno))
                .note("an entry before it was deleted, inserted or reordered")
                .hint("restore the audit log from Git (`git checkout -- <file>`)"),
            );
        }
        if entry.seq != expect_seq {
            log.problems.push(
                Diagnostic::error(format!(
                    "audit sequence jumps from {} to {}",
                    expect_seq.saturating_sub(1),
                    entry.seq
                ))
                .in_context(place(lineno)),
            );
        }
        if trust.is_signed() {
            match &entry.sig {
                Some(_) => {
                    let verify = log.entries.len() >= from || Some(i) == last;
                    if let Some(why) = verify.then(|| trust.problem(&entry)).flatten() {
                        log.problems.push(
                            Diagnostic::error(format!(
                                "audit entry {} does not verify: {why}",
                                entry.seq
                            ))
                            .in_context(place(lineno))
                            .hint("an entry no trusted key signed is not part of the history: restore the audit log from Git"),
                        );
                    }
                    seen_signed = true;
                }
                None if trust.require || seen_signed => {
                    log.problems.push(
                        Diagnostic::error(format!(
                            "audit entry {} is not signed{}",
                            entry.seq,
                            if trust.require {
                                " (`audit.require_signatures` is set)"
                            } else {
                                ", though entries before it are"
                            }
                        ))
                        .in_context(place(lineno))
                        .hint("restore the audit log from Git; writers sign with $PROMPTGATE_SIGNING_KEY"),
                    );
                }
                None => legacy_unsigned += 1,
            }
        }
        if log.problems.len() > before {
            first_bad.get_or_insert(log.entries.len());
        }
        prev_hash = entry.hash.clone();
        expect_seq = entry.seq + 1;
        log.entries.push(entry);
    }
    log.valid = first_bad.unwrap_or(log.entries.len());
    if legacy_unsigned > 0 {
        log.notes.push(
            Diagnostic::warning(format!(
                "{legacy_unsigned} audit entr{} from before signing began are unsigned",
                if legacy_unsigned == 1 { "y" } else { "ies" }
            ))
            .in_context(file.display().to_string()),
        );
    }
    log
}

/// Who is acting: `--actor`, then `PROMPTGATE_ACTOR`, then CI variables, then Git's
/// `user.name <user.email>`, then the OS user.
pub fn actor(flag: Option<&str>) -> String {
    if let Some(a) = flag.filter(|a| !a.trim().is_empty()) {
        return a.trim().to_string();
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(a) = env("PROMPTGATE_ACTOR") {
        return a;
    }
    for (var, system) in [
        ("GITHUB_ACTOR", "github"),
        ("GITLAB_USER_LOGIN", "gitlab"),
        ("BUILDKITE_BUILD_CREATOR", "buildkite"),
        ("CIRCLE_USERNAME", "circleci"),
    ] {
        if let Some(a) = env(var) {
            return format!("{a} ({system})");
        }
    }
    let git = |key: &str| {
        std::process::Command::new("git")
            .args(["config", "--get", key])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    if let Some(name) = git("user.name") {
        return match git("user.email") {
            Some(email) => format!("{name} <{email}>"),
            None => name,
        };
    }
    env("USER")
        .or_else(|| env("USERNAME"))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, prev: &str) -> Entry {
        let mut e = Entry {
            seq,
            ts: "2026-01-01T00:00:00Z".into(),
            actor: "a".into(),
            action: Action::LabelSet,
            prompt: "p".into(),
            label: Some("production".into()),
            from: None,
            to: Some("v1-0000000".into()),
            file: None,
            version_hash: None,
            reason: Some("why".into()),
            gate_run: None,
            report_digest: None,
            skip_gate: false,
            prev: prev.into(),
            hash: String::new(),
            sig: None,
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn a_valid_chain_verifies_and_edits_are_caught() {
        let a = entry(1, GENESIS);
        let b = entry(2, &a.hash);
        let text = format!("{}{}", a.to_line(), b.to_line());
        assert!(parse(Path::new("audit.jsonl"), &text).problems.is_empty());

        let edited = text.replace("\"why\"", "\"because\"");
        let log = parse(Path::new("audit.jsonl"), &edited);
        assert_eq!(log.problems.len(), 2, "{:?}", log.problems);

        let deleted = b.to_line();
        let log = parse(Path::new("audit.jsonl"), &deleted);
        assert!(
            log.problems
                .iter()
                .any(|d| d.message.contains("chain broken"))
        );
    }

    /// Readers and writers verify the signatures past a checkpoint and the last one; a
    /// rewritten history is still caught there, because the last signature covers the chain.
    #[test]
    fn verifying_from_a_checkpoint_still_catches_a_rewritten_history() {
        use crate::signing::{Signer, Trust};
        use promptgate_core::config::{AuditConfig, KeySpec};
        let ci = Signer::generate("ci").unwrap();
        let trust = Trust::from_config(Some(&AuditConfig {
            require_signatures: true,
            keys: vec![KeySpec {
                id: "ci".into(),
                public_key: ci.public_key(),
                retired_from: None,
            }],
        }))
        .unwrap();
        let chain = |reasons: &[&str], sign: &dyn Fn(usize, &mut Entry)| {
            let mut prev = GENESIS.to_string();
            let mut text = String::new();
            for (i, r) in reasons.iter().enumerate() {
                let mut e = entry(i as u64 + 1, &prev);
                e.reason = Some(r.to_string());
                e.hash = e.compute_hash();
                sign(i, &mut e);
                prev = e.hash.clone();
                text.push_str(&e.to_line());
            }
            text
        };
        let file = Path::new("audit.jsonl");
        let honest = chain(&["a", "b", "c"], &|_, e| ci.sign(e));
        for from in 0..=3 {
            let log = parse_verifying_from(file, &honest, &trust, from);
            assert!(log.problems.is_empty(), "{from}: {:?}", log.problems);
            assert_eq!(log.valid, 3);
        }
        // Entry 1 re-signed by an impostor (its content, hash and chain intact): `check`
        // (every signature) sees it; a reader past the checkpoint need not.
        let impostor = Signer::generate("ci").unwrap();
        let resigned = chain(&["a", "b", "c"], &|i, e| {
            if i == 0 { impostor.sign(e) } else { ci.sign(e) }
        });
        assert_eq!(parse_with(file, &resigned, &trust).valid, 0);
        assert_eq!(parse_verifying_from(file, &resigned, &trust, 0).valid, 0);
        assert!(
            parse_verifying_from(file, &resigned, &trust, 1)
                .problems
                .is_empty()
        );
        // A history rewritten from entry 1 on, hashes recomputed, signed by a key nobody
        // trusts: the last signature fails whatever the checkpoint says.
        let forged = chain(&["forged", "b", "c"], &|_, e| impostor.sign(e));
        for from in 0..=10 {
            let log = parse_verifying_from(file, &forged, &trust, from);
            assert!(
                log.problems
                    .iter()
                    .any(|d| d.message.contains("entry 3 does not verify")),
                "{from}: {:?}",
                log.problems
            );
            assert!(log.valid <= 2, "{from}");
        }
        // An unsigned entry where signatures are due is caught whether or not it is verified.
        let unsigned_middle = chain(&["a", "b", "c"], &|i, e| {
            if i != 1 {
                ci.sign(e)
            }
        });
        let log = parse_verifying_from(file, &unsigned_middle, &trust, 3);
        assert!(
            log.problems
                .iter()
                .any(|d| d.message.contains("entry 2 is not signed"))
        );
        assert_eq!(log.valid, 1);
    }
}
