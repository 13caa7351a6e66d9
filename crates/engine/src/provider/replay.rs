//! Replay: serve recorded answers keyed by request hash and sample, from a cassette file or a
//! previous run's `results.jsonl`. A miss is an error naming the case — never a live call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BoxFuture, CallError, CallKey, Completion, ErrorClass, Provider};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result};
use promptgate_core::render::Request;

/// One recorded answer: the shape of a `results.jsonl` line (other keys are ignored).
#[derive(Debug, Deserialize)]
struct Recorded {
    request_hash: super::ContentHash,
    #[serde(default)]
    sample: u32,
    output: Option<Completion>,
}

pub struct Replay {
    name: String,
    source: PathBuf,
    entries: HashMap<(super::ContentHash, u32), Completion>,
}

impl Replay {
    /// Load a cassette (JSONL) or a run folder (its `results.jsonl`).
    pub fn load(name: &str, path: &Path) -> Result<Replay> {
        let file = if path.is_dir() {
            path.join("results.jsonl")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::io(&file, "read the replay cassette", e))?;
        Replay::parse(name, &file, &text)
    }

    /// A cassette's text (`file` names it in messages).
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Replay> {
        let mut entries = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: Recorded =
                serde_json::from_str(line).map_err(|e| {
                    Error::new(
                        ErrorKind::Usage,
                        Diagnostic::error(format!("not a recorded answer: {e}"))
                            .in_context(format!("{}:{}", file.display(), i + 1)),
                    )
                })?;
            if let Some(out) = rec.output {
                entries.insert((rec.request_hash, rec.sample), out);
            }
        }
        Ok(Replay {
            name: name.to_string(),
            source: file.to_path_buf(),
            entries,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Provider for Replay {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &str {
        "replay"
    }

    fn endpoint(&self) -> String {
        format!("replay {}", self.source.display())
    }

    fn complete<'a>(
        &'a self,
        _request: &'a Request,
        key: &'a CallKey,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(async move {
            self.entries
                .get(&(key.request_hash, key.sample))
                .cloned()
                .ok_or_else(|| {
                    CallError::new(
                        ErrorClass::ReplayMiss,
                        format!(
                            "no recording for case `{}` (sample {}, request {}) in {}: the rendered request changed since it was recorded",
                            key.case_id,
                            key.sample,
                            &key.request_hash.to_string()[..12],
                            self.source.display()
                        ),
                    )
                })
        })
    }
}
