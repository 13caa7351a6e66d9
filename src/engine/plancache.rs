//! The plan cache: what a rendered plan boils down to (case ids, request hashes and token
//! estimates), stored under `.promptgate/plans/` and keyed by everything rendering depends on.
//! A run whose every answer is already in the response cache then skips rendering and hashing
//! its requests — the bulk of a warm run's time.
//!
//! Next to a plan, an *answer snapshot*: the answers to all its calls, in order, as the
//! response cache held them at a [`Stamp`]. While the cache's stamp is unchanged (no stored
//! answer replaced or deleted since, see [`crate::provider::cache`]), a run takes its answers
//! from the snapshot — one file read — instead of 10,000 keyed lookups.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Plan, PlannedCall};
use crate::artifact::canonical;
use crate::provider::Completion;
use crate::provider::cache::Stamp;

/// One case of a plan: id, dataset line, request hash, token estimate. Read borrowing from the
/// file's bytes where no escape forces a copy: each string is allocated once, in its final form.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry<'a>(
    #[serde(borrow)] Cow<'a, str>,
    usize,
    #[serde(borrow)] Cow<'a, str>,
    u64,
);

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

fn path(state_dir: &Path, key: &Key) -> PathBuf {
    state_dir
        .join("plans")
        .join(format!("{}.json", key.digest()))
}

/// The plan stored for `key`, without its requests (see [`PlannedCall::request`]).
pub fn load(state_dir: &Path, key: &Key, label: Option<&str>) -> Option<Plan> {
    let text = std::fs::read(path(state_dir, key)).ok()?;
    let entries: Vec<Entry> = serde_json::from_slice(&text).ok()?;
    let cases = entries.len();
    let mut calls = Vec::with_capacity(cases * key.repeats as usize);
    for Entry(case_id, line, hash, est_tokens) in entries {
        let mut case_id = case_id.into_owned();
        let hash: Arc<str> = hash.as_ref().into();
        for sample in 0..key.repeats {
            calls.push(PlannedCall {
                case_id: if sample + 1 < key.repeats {
                    case_id.clone()
                } else {
                    std::mem::take(&mut case_id)
                },
                line,
                sample,
                request: None,
                request_hash: hash.clone(),
                est_tokens,
            });
        }
    }
    Some(Plan {
        prompt: key.prompt.clone(),
        version_id: key.version_id.clone(),
        label: label.map(str::to_string),
        cases,
        repeats: key.repeats,
        calls,
        case_data: Vec::new(),
    })
}

/// Remember a freshly rendered plan. A failure only costs rendering again next time.
pub fn store(state_dir: &Path, key: &Key, plan: &Plan) {
    let p = path(state_dir, key);
    if p.exists() {
        return;
    }
    let entries: Vec<Entry> = plan
        .calls
        .iter()
        .filter(|c| c.sample == 0)
        .map(|c| {
            Entry(
                Cow::Borrowed(c.case_id.as_str()),
                c.line,
                Cow::Borrowed(&*c.request_hash),
                c.est_tokens,
            )
        })
        .collect();
    // Renamed into place but not fsynced: a plan lost in a crash is rendered again, and a torn
    // one does not parse (and is rendered again).
    if let (Some(dir), Ok(text)) = (p.parent(), serde_json::to_vec(&entries)) {
        let _ = std::fs::create_dir_all(dir);
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write;
            if tmp.write_all(&text).is_ok() {
                let _ = tmp.persist(&p);
            }
        }
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

fn calls_digest(plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in &plan.calls {
        h.update(c.request_hash.as_bytes());
        h.update(c.sample.to_le_bytes());
    }
    canonical::hex(&h.finalize())
}

fn answers_path(state_dir: &Path, digest: &str) -> PathBuf {
    state_dir
        .join("plans")
        .join(format!("{digest}.answers.jsonl"))
}

/// The answers to `plan`'s calls (one per call, in order), if the snapshot of the plan
/// `digest` was taken at `stamp` against `endpoint` for these calls, and every answer parses.
pub fn load_answers(
    state_dir: &Path,
    digest: &str,
    endpoint: &str,
    stamp: &Stamp,
    plan: &Plan,
) -> Option<Vec<Completion>> {
    use rayon::prelude::*;
    let bytes = std::fs::read(answers_path(state_dir, digest)).ok()?;
    let mut lines = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let head: SnapshotHead = serde_json::from_slice(lines.next()?).ok()?;
    let calls = plan.calls.len();
    if head.cache != *stamp
        || head.calls != calls
        || head.endpoint != canonical::sha256_hex(endpoint.as_bytes())
        || head.calls_digest != calls_digest(plan)
    {
        return None;
    }
    let lines: Vec<&[u8]> = lines.collect();
    if lines.len() != calls {
        return None;
    }
    lines
        .par_iter()
        .with_min_len(512)
        .map(|l| serde_json::from_slice(l).ok())
        .collect()
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
        calls_digest: calls_digest(plan),
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
