//! The plan cache: what rendering a plan produced — each case's request hash and token
//! estimate — stored under `.promptgate/plans/` and keyed by everything rendering depends on.
//! A run whose every answer is already in the response cache then skips rendering and hashing
//! its requests — the bulk of a warm run's time. Case ids and lines are not stored: the key
//! holds the datasets' digests, so the parsed datasets give them, in the same order.
//!
//! Next to a plan, an *answer snapshot*: the answers to all its calls, in order, as the
//! response cache held them at a [`Stamp`]. While the cache's stamp is unchanged (no stored
//! answer replaced or deleted since, see [`crate::provider::cache`]), a run takes its answers
//! from the snapshot — one file read — instead of 10,000 keyed lookups.

use crate::provider::ContentHash;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::{Plan, PlannedCall};
use crate::provider::Completion;
use crate::provider::cache::Stamp;
use promptgate_core::artifact::canonical;
use promptgate_core::dataset::Dataset;

/// Everything a rendered request depends on: the promptgate version (rendering code), the
/// version's content hash, the datasets' paths and content digests, the repeats and the model.
pub struct Key {
    pub prompt: String,
    pub version_id: String,
    pub version_hash: String,
    /// Each dataset's path (relative to the repository) and content digest.
    pub datasets: Vec<(String, String)>,
    pub repeats: u32,
    pub model_override: Option<String>,
}

impl Key {
    /// The plan's file name (without extension) under `.promptgate/plans/`.
    pub fn digest(&self) -> String {
        let v = serde_json::json!([
            env!("CARGO_PKG_VERSION"),
            self.prompt,
            self.version_id,
            self.version_hash,
            self.datasets,
            self.repeats,
            self.model_override,
        ]);
        canonical::sha256_hex(v.to_string().as_bytes())
    }
}

fn path(state_dir: &Path, digest: &str) -> PathBuf {
    state_dir.join("plans").join(format!("{digest}.plan"))
}

/// A file's non-empty lines, split once so their parsing can be shared out.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// A stored plan: each case's request hash and token estimate, in dataset order.
pub struct Stored {
    cases: Vec<(ContentHash, u64)>,
    repeats: u32,
}

impl Stored {
    /// The number of calls: cases × repeats.
    pub fn calls(&self) -> usize {
        self.cases.len() * self.repeats as usize
    }

    /// Each call's request hash and sample, in the plan's order.
    pub fn calls_iter(&self) -> impl Iterator<Item = (&ContentHash, u32)> {
        self.cases
            .iter()
            .flat_map(|(hash, _)| (0..self.repeats).map(move |s| (hash, s)))
    }

    /// The plan for the cases of `datasets` (in order), whose requests `rendering` renders when
    /// a call must be made; `None` if they are not as many as it was stored for.
    pub fn into_plan(
        self,
        prompt: &str,
        version_id: &str,
        label: Option<&str>,
        datasets: &[Dataset],
        rendering: crate::Rendering,
    ) -> Option<Plan> {
        let n = self.cases.len();
        if datasets.iter().map(|d| d.cases.len()).sum::<usize>() != n {
            return None;
        }
        // Built in parallel, straight into place: call k is case k / repeats, sample k % repeats.
        use rayon::prelude::*;
        let repeats = self.repeats;
        let mut calls = Vec::new();
        (0..self.calls())
            .into_par_iter()
            .with_min_len(1024)
            .map(|k| {
                let (i, sample) = (k / repeats as usize, (k % repeats as usize) as u32);
                let (hash, est_tokens) = &self.cases[i];
                PlannedCall {
                    sample,
                    row: i as u32,
                    request_hash: *hash,
                    est_tokens: (*est_tokens).min(u64::from(u32::MAX)) as u32,
                }
            })
            .collect_into_vec(&mut calls);
        Some(Plan {
            prompt: prompt.to_string(),
            version_id: version_id.to_string(),
            label: label.map(str::to_string),
            cases: n,
            repeats,
            calls,
            requests: crate::Requests::Rendered(Arc::new(rendering)),
            case_data: Default::default(),
        })
    }
}

/// The plan stored under `digest` (for `repeats`): one line a case, `<request hash> <token
/// estimate>`. `None` when there is none or any line is not of that form.
pub fn load(state_dir: &Path, digest: &str, repeats: u32) -> Option<Stored> {
    use rayon::prelude::*;
    let bytes = std::fs::read(path(state_dir, digest)).ok()?;
    // Straight into place (an indexed collect), a bad line noted rather than ending the
    // collect: no per-thread pieces to stitch together.
    let bad = AtomicBool::new(false);
    let mut cases = Vec::new();
    lines(&bytes)
        .par_iter()
        .with_min_len(1024)
        .map(|l| {
            parse_line(l).unwrap_or_else(|| {
                bad.store(true, Ordering::Relaxed);
                (ContentHash::default(), 0)
            })
        })
        .collect_into_vec(&mut cases);
    if bad.into_inner() {
        return None;
    }
    (!cases.is_empty()).then_some(Stored { cases, repeats })
}

/// A plan's line: `<request hash> <token estimate>`.
fn parse_line(line: &[u8]) -> Option<(ContentHash, u64)> {
    let text = std::str::from_utf8(line).ok()?;
    let (hash, est) = text.split_once(' ')?;
    Some((ContentHash::parse(hash)?, est.parse().ok()?))
}

/// Remember a freshly rendered plan. A failure only costs rendering again next time.
pub fn store(state_dir: &Path, digest: &str, plan: &Plan) {
    let p = path(state_dir, digest);
    if p.exists() {
        return;
    }
    // Renamed into place but not fsynced: a plan lost in a crash is rendered again, and a torn
    // one does not parse or has too few lines (and is rendered again). Written as it is
    // formatted: the whole text of a 1M-case plan is 72 MB.
    let Some(dir) = p.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    let Ok(tmp) = tempfile::NamedTempFile::new_in(dir) else {
        return;
    };
    use std::io::Write;
    let mut out = std::io::BufWriter::new(tmp);
    for c in plan.calls.iter().filter(|c| c.sample == 0) {
        if writeln!(out, "{} {}", c.request_hash, c.est_tokens).is_err() {
            return;
        }
    }
    if let Ok(tmp) = out.into_inner() {
        let _ = tmp.persist(&p);
    }
}

/// The first line of an answer snapshot: which cache state and endpoint it reflects.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHead {
    cache: Stamp,
    /// SHA-256 of the provider's endpoint (which may carry credentials in its URL).
    endpoint: String,
    calls: usize,
    /// SHA-256 of the calls' request hashes and samples, in order: the answers line up.
    calls_digest: String,
}

/// SHA-256 of the calls' request hashes and samples, in order.
pub fn calls_digest<'a>(calls: impl Iterator<Item = (&'a ContentHash, u32)>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (hash, sample) in calls {
        // The hex form, as the digest has always been taken over.
        h.update(hash.to_string().as_bytes());
        h.update(sample.to_le_bytes());
    }
    canonical::hex(&h.finalize())
}

fn answers_path(state_dir: &Path, digest: &str) -> PathBuf {
    state_dir
        .join("plans")
        .join(format!("{digest}.answers.jsonl"))
}

/// An answer snapshot read from disk, to be checked against its plan ([`Snapshot::answers`]).
pub struct Snapshot {
    head: SnapshotHead,
    answers: Vec<Completion>,
}

impl Snapshot {
    /// The answers to a plan's calls (one per call, in order), if the snapshot was taken for
    /// exactly these calls: `calls` of them, with this [`calls_digest`].
    pub fn answers(self, calls: usize, calls_digest: &str) -> Option<Vec<Completion>> {
        // `read_answers` saw as many answers as the head counts.
        (self.head.calls == calls && self.head.calls_digest == calls_digest).then_some(self.answers)
    }
}

/// The answer snapshot of the plan `digest`, if it was taken at `stamp` against `endpoint`
/// and every answer parses (in parallel). It does not need the plan, so the two are read at
/// the same time; [`Snapshot::answers`] then checks that they line up.
pub fn read_answers(
    state_dir: &Path,
    digest: &str,
    endpoint: &str,
    stamp: &Stamp,
) -> Option<Snapshot> {
    use rayon::prelude::*;
    let bytes = std::fs::read(answers_path(state_dir, digest)).ok()?;
    let lines = lines(&bytes);
    let (first, rest) = lines.split_first()?;
    let head: SnapshotHead = serde_json::from_slice(first).ok()?;
    if head.cache != *stamp
        || head.calls != rest.len()
        || head.endpoint != canonical::sha256_hex(endpoint.as_bytes())
    {
        return None;
    }
    let bad = AtomicBool::new(false);
    let mut answers = Vec::new();
    rest.par_iter()
        .with_min_len(512)
        .map(|l| {
            serde_json::from_slice(l).unwrap_or_else(|_| {
                bad.store(true, Ordering::Relaxed);
                Completion::default()
            })
        })
        .collect_into_vec(&mut answers);
    if bad.into_inner() {
        return None;
    }
    Some(Snapshot { head, answers })
}

/// Remember the answers to `plan`'s calls (in order) as the cache held them at `stamp`. A
/// failure only costs the keyed lookups next time.
pub fn store_answers(
    state_dir: &Path,
    digest: &str,
    endpoint: &str,
    stamp: &Stamp,
    plan: &Plan,
    answers: &[&Completion],
) {
    if answers.len() != plan.calls.len() {
        return;
    }
    use rayon::prelude::*;
    let head = SnapshotHead {
        cache: stamp.clone(),
        endpoint: canonical::sha256_hex(endpoint.as_bytes()),
        calls: answers.len(),
        calls_digest: calls_digest(plan.calls.iter().map(|c| (&c.request_hash, c.sample))),
    };
    let Ok(mut text) = serde_json::to_vec(&head) else {
        return;
    };
    text.push(b'\n');
    let body: Vec<Vec<u8>> = answers
        .par_chunks(1024)
        .map(|chunk| {
            let mut buf = Vec::with_capacity(chunk.len() * 128);
            for a in chunk {
                if serde_json::to_writer(&mut buf, a).is_ok() {
                    buf.push(b'\n');
                }
            }
            buf
        })
        .collect();
    for b in body {
        text.extend_from_slice(&b);
    }
    let p = answers_path(state_dir, digest);
    // As for plans: renamed into place, not fsynced; a torn snapshot fails its count or parse.
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write;
            if tmp.write_all(&text).is_ok() {
                let _ = tmp.persist(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(dir: &Path, rows: usize) -> Dataset {
        let path = dir.join("d.jsonl");
        let text: String = (0..rows)
            .map(|i| format!("{{\"id\":\"c{i}\",\"q\":\"{i}?\"}}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        promptgate_core::dataset::load(&path, "group").unwrap()
    }

    fn hash(i: usize) -> String {
        format!("{i:064x}")
    }

    #[test]
    fn a_stored_plan_gives_back_its_calls_for_the_same_cases_only() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(dir.path(), 3);
        let rendering = || crate::Rendering {
            artifact: Arc::new(
                promptgate_core::artifact::parse(
                    Path::new("v1.yaml"),
                    "model: { provider: p, name: m }\nmessages: [{ role: user, content: hi }]\n",
                )
                .unwrap(),
            ),
            model_override: None,
        };
        let plan = Plan {
            prompt: "p".into(),
            version_id: "v1-abc".into(),
            label: None,
            cases: 3,
            repeats: 2,
            calls: ds
                .cases
                .iter()
                .enumerate()
                .flat_map(|(i, _)| {
                    (0..2).map(move |sample| PlannedCall {
                        sample,
                        row: i as u32,
                        request_hash: ContentHash::parse(&hash(i)).unwrap(),
                        est_tokens: 100 + i as u32,
                    })
                })
                .collect(),
            requests: crate::Requests::Rendered(Arc::new(rendering())),
            case_data: Arc::new(ds.cases.clone()),
        };
        store(dir.path(), "k", &plan);
        let text = std::fs::read_to_string(path(dir.path(), "k")).unwrap();
        assert_eq!(text.lines().count(), 3, "a line a case: {text}");

        let stored = load(dir.path(), "k", 2).unwrap();
        assert_eq!(stored.calls(), 6);
        let digest = calls_digest(stored.calls_iter());
        assert_eq!(
            digest,
            calls_digest(plan.calls.iter().map(|c| (&c.request_hash, c.sample)))
        );
        let mut back = stored
            .into_plan(
                "p",
                "v1-abc",
                Some("prod"),
                std::slice::from_ref(&ds),
                rendering(),
            )
            .unwrap();
        // The session gives a plan its cases; a call's row names its case.
        back.case_data = Arc::new(ds.cases.clone());
        let key = |p: &Plan| -> Vec<(String, usize, u32, u32, String, u32)> {
            p.calls
                .iter()
                .map(|c| {
                    let h = c.request_hash.to_string();
                    let (id, line) = p.case_of(c);
                    (id.to_string(), line, c.sample, c.row, h, c.est_tokens)
                })
                .collect()
        };
        assert_eq!(key(&back), key(&plan));
        assert_eq!((back.cases, back.repeats), (3, 2));
        assert_eq!(back.label.as_deref(), Some("prod"));

        // Other cases (as many as another dataset holds) do not fit it.
        let sub = dir.path().join("x");
        std::fs::create_dir_all(&sub).unwrap();
        let other = dataset(&sub, 4);
        let stored = load(dir.path(), "k", 2).unwrap();
        assert!(
            stored
                .into_plan("p", "v1-abc", None, &[other], rendering())
                .is_none()
        );
    }

    #[test]
    fn a_plan_file_that_is_not_whole_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "k");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        for bad in [
            "",
            &format!("{} 12\n{}\n", hash(1), hash(2)),
            &format!("{} 12\n{} x\n", hash(1), hash(2)),
            &format!("{} 12\nnot-a-hash 3\n", hash(1)),
            &format!("{} 12\n{} 3\n", hash(1), &hash(2)[..63]),
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(load(dir.path(), "k", 1).is_none(), "{bad:?}");
        }
        std::fs::write(&p, format!("{} 12\n{} 3\n", hash(1), hash(2))).unwrap();
        assert_eq!(load(dir.path(), "k", 1).unwrap().calls(), 2);
    }
}
