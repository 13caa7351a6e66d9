//! The plan cache: what a rendered plan boils down to (case ids, request hashes and token
//! estimates), stored under `.promptgate/plans/` and keyed by everything rendering depends on.
//! A run whose every answer is already in the response cache then skips rendering and hashing
//! its requests — the bulk of a warm run's time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Plan, PlannedCall};
use crate::artifact::canonical;
use crate::dataset::Dataset;

/// One case of a plan: id, dataset line, request hash, token estimate.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry(String, usize, String, u64);

/// Everything a rendered request depends on: the promptgate version (rendering code), the
/// version's content hash, the datasets' paths and content digests, the repeats and the model.
pub struct Key<'a> {
    pub prompt: &'a str,
    pub version_id: &'a str,
    pub version_hash: &'a str,
    pub datasets: &'a [Dataset],
    pub repeats: u32,
    pub model_override: Option<&'a str>,
}

impl Key<'_> {
    fn digest(&self) -> String {
        let datasets: Vec<(String, &str)> = self
            .datasets
            .iter()
            .map(|d| (d.path.display().to_string(), d.digest.as_str()))
            .collect();
        let v = serde_json::json!([
            env!("CARGO_PKG_VERSION"),
            self.prompt,
            self.version_id,
            self.version_hash,
            datasets,
            self.repeats,
            self.model_override,
        ]);
        canonical::sha256_hex(v.to_string().as_bytes())
    }
}

fn path(state_dir: &Path, key: &Key<'_>) -> PathBuf {
    state_dir
        .join("plans")
        .join(format!("{}.json", key.digest()))
}

/// The plan stored for `key`, without its requests (see [`PlannedCall::request`]).
pub fn load(state_dir: &Path, key: &Key<'_>, label: Option<&str>) -> Option<Plan> {
    let text = std::fs::read(path(state_dir, key)).ok()?;
    let entries: Vec<Entry> = serde_json::from_slice(&text).ok()?;
    let mut calls = Vec::with_capacity(entries.len() * key.repeats as usize);
    for Entry(case_id, line, hash, est_tokens) in &entries {
        let hash: Arc<str> = hash.as_str().into();
        for sample in 0..key.repeats {
            calls.push(PlannedCall {
                case_id: case_id.clone(),
                line: *line,
                sample,
                request: None,
                request_hash: hash.clone(),
                est_tokens: *est_tokens,
            });
        }
    }
    Some(Plan {
        prompt: key.prompt.to_string(),
        version_id: key.version_id.to_string(),
        label: label.map(str::to_string),
        cases: entries.len(),
        repeats: key.repeats,
        calls,
        case_data: Vec::new(),
    })
}

/// Remember a freshly rendered plan. A failure only costs rendering again next time.
pub fn store(state_dir: &Path, key: &Key<'_>, plan: &Plan) {
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
                c.case_id.clone(),
                c.line,
                c.request_hash.to_string(),
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
