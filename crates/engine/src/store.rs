//! Run folders: `.promptgate/runs/<run-id>/` with `manifest.json` (what ran, on what, with
//! which settings — never a secret), `results.jsonl` (one line per call, appended as results
//! arrive) and `traces.jsonl` (one span per call).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::provider::{CallError, Completion};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result};
use promptgate_core::fsutil;

pub const MANIFEST: &str = "manifest.json";
pub const RESULTS: &str = "results.jsonl";
pub const TRACES: &str = "traces.jsonl";

/// One call's result: a line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub case_id: String,
    pub sample: u32,
    /// Line of the case in its dataset.
    pub line: usize,
    /// Content hash of the rendered request (see [`crate::provider::request_hash`]).
    pub request_hash: crate::provider::ContentHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Completion>,
    /// Boxed: most records have none, and a record is a quarter smaller without the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<CallError>>,
    /// Latency of the attempt that answered (or of the last attempt), in milliseconds.
    pub latency_ms: f64,
    /// Wall time including retries and backoff, in milliseconds.
    pub elapsed_ms: f64,
    pub attempts: u32,
    pub cached: bool,
    pub cost_usd: f64,
    /// When the call started (RFC 3339, UTC); one string shared by a run's cache hits.
    pub started_at: Arc<str>,
}

impl Record {
    pub fn is_ok(&self) -> bool {
        self.output.is_some()
    }
}

/// Provider settings as the manifest records them: no key, only the variable's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub name: String,
    pub system: String,
    pub endpoint: String,
    pub model: String,
    pub concurrency: usize,
    pub max_retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub promptgate_version: String,
    pub prompt: String,
    pub version_id: String,
    pub version_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(default)]
    pub suite_digest: String,
    pub datasets: Vec<promptgate_core::dataset::DatasetInfo>,
    pub repeats: u32,
    pub provider: ProviderInfo,
    pub calls: usize,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `running`, `complete` or `interrupted`.
    pub status: String,
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    /// The folder holding all runs.
    pub fn runs_root(state_dir: &Path) -> PathBuf {
        state_dir.join("runs")
    }

    /// Create a new run folder with a fresh id.
    pub fn create(state_dir: &Path, prompt: &str, version_id: &str) -> Result<RunDir> {
        let ts = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let number = version_id.split('-').next().unwrap_or(version_id);
        let root = Self::runs_root(state_dir);
        fsutil::create_dir_all(&root)?;
        // Two runs started in the same second (a CI matrix, a gate's two sides) differ by
        // their random suffix; the folder is created exclusively, so a clash draws again
        // rather than sharing a folder.
        let mut tries = 0;
        loop {
            let id = format!(
                "{ts}-{}-{number}-{:04x}",
                prompt.replace('/', "_"),
                fastrand::u16(..)
            );
            let path = root.join(&id);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { id, path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 64 => {
                    tries += 1;
                }
                Err(e) => return Err(Error::io(&path, "create directory", e)),
            }
        }
    }

    /// Open an existing run folder by id (or a path to it).
    pub fn open(state_dir: &Path, id: &str) -> Result<RunDir> {
        let direct = PathBuf::from(id);
        let path = if direct.join(MANIFEST).is_file() {
            direct
        } else {
            Self::runs_root(state_dir).join(id)
        };
        if !path.join(MANIFEST).is_file() {
            let mut known: Vec<String> = fs::read_dir(Self::runs_root(state_dir))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            known.sort();
            let recent: Vec<String> = known.iter().rev().take(5).cloned().collect();
            return Err(
                Error::usage(format!("no run `{id}`")).with_hint(if recent.is_empty() {
                    "no runs yet: run `promptgate eval` first".to_string()
                } else {
                    format!("recent runs: {}", recent.join(", "))
                }),
            );
        }
        let id = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(RunDir { id, path })
    }

    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let text = serde_json::to_vec_pretty(m).map_err(|e| Error::usage(e.to_string()))?;
        fsutil::write_atomic(&self.path.join(MANIFEST), &text)
    }

    pub fn manifest(&self) -> Result<Manifest> {
        let p = self.path.join(MANIFEST);
        let text = fsutil::read_to_string(&p)?;
        serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Usage,
                Diagnostic::error(format!("unreadable run manifest: {e}"))
                    .in_context(p.display().to_string()),
            )
        })
    }

    /// Every record of the run. A torn last line — one a crash cut before its newline — is
    /// skipped (it is the call being written when the run died, and is made again by
    /// `--resume`); any other line that is not a record is an error naming its file and line,
    /// for a result that silently disappeared would change what the run says.
    pub fn records(&self) -> Result<Vec<Record>> {
        let p = self.path.join(RESULTS);
        let text = match fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&p, "read", e)),
        };
        let complete = text.ends_with(b"\n");
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        // `split` yields an empty piece after a final newline, and the torn line otherwise.
        let last = lines.len() - 1;
        let mut out = Vec::with_capacity(last);
        for (i, line) in lines.iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => out.push(r),
                Err(_) if i == last && !complete => {}
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        Diagnostic::error(format!("not a result record: {e}"))
                            .in_context(format!("{}:{}", p.display(), i + 1))
                            .note("only a run's last line can be cut short by a crash; this one is inside the file")
                            .hint("the run folder was edited or damaged: start a new run, or restore the folder"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Open `results.jsonl` and `traces.jsonl` for appending. A torn last line is cut first so
    /// new lines start clean.
    pub fn appenders(&self) -> Result<(File, File)> {
        let open = |name: &str| -> Result<File> {
            let p = self.path.join(name);
            if let Ok(text) = fs::read(&p)
                && !text.is_empty()
                && !text.ends_with(b"\n")
            {
                let keep = text
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1)
                    .unwrap_or(0);
                // Atomic, like every other write: a crash now leaves the torn or the cut file.
                fsutil::write_atomic(&p, &text[..keep])?;
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| Error::io(&p, "open", e))
        };
        Ok((open(RESULTS)?, open(TRACES)?))
    }
}

/// Every run folder with a readable manifest, oldest first (run ids start with their UTC start
/// time). Folders without one (a run that died before writing it) are skipped.
pub fn list_runs(state_dir: &Path) -> Vec<(RunDir, Manifest)> {
    let root = RunDir::runs_root(state_dir);
    let mut out: Vec<(RunDir, Manifest)> = fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let run = RunDir {
                        id: e.file_name().to_string_lossy().into_owned(),
                        path: e.path(),
                    };
                    let m = run.manifest().ok()?;
                    Some((run, m))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| {
        a.1.started_at
            .cmp(&b.1.started_at)
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    out
}

/// Append one JSON line (a single write, so a crash loses at most the line being written).
pub fn append_line<T: Serialize>(file: &mut impl Write, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_folders_of_their_own() {
        // 2,000 runs in about a second draw from 65,536 suffixes: clashes are all but certain
        // (the birthday bound), and each must draw again.
        let dir = tempfile::tempdir().unwrap();
        let ids: std::collections::HashSet<String> = (0..2000)
            .map(|_| RunDir::create(dir.path(), "p", "v1-abc").unwrap().id)
            .collect();
        assert_eq!(ids.len(), 2000);
        let folders = fs::read_dir(RunDir::runs_root(dir.path())).unwrap().count();
        assert_eq!(folders, 2000);
    }

    fn record(case: &str) -> Record {
        Record {
            case_id: case.to_string(),
            sample: 0,
            line: 1,
            request_hash: Default::default(),
            output: Some(Completion {
                content: "ok".into(),
                ..Completion::default()
            }),
            error: None,
            latency_ms: 1.0,
            elapsed_ms: 1.0,
            attempts: 1,
            cached: false,
            cost_usd: 0.0,
            started_at: "2026-12-01T00:00:00Z".into(),
        }
    }

    fn ids_of(run: &RunDir) -> Vec<String> {
        run.records()
            .unwrap()
            .into_iter()
            .map(|r| r.case_id)
            .collect()
    }

    /// Only a torn last line is dropped; a bad line inside the file is an error at its line;
    /// the repair before appending leaves whole lines only.
    #[test]
    fn only_a_torn_last_line_of_results_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), "p", "v1-abc").unwrap();
        let path = run.path.join(RESULTS);
        let line = |c: &str| serde_json::to_string(&record(c)).unwrap() + "\n";
        let whole = format!("{}{}", line("a"), line("b"));
        let torn = &line("c")[..20];

        fs::write(&path, format!("{whole}{torn}")).unwrap();
        let ids = ids_of(&run);
        assert_eq!(ids, ["a", "b"]);

        // The same bytes with their newline are not torn: damaged, and said so.
        fs::write(&path, format!("{whole}{torn}\n")).unwrap();
        let e = run.records().unwrap_err().to_string();
        assert!(e.contains("results.jsonl:3"), "{e}");
        assert!(e.contains("not a result record"), "{e}");
        // A bad line in the middle.
        fs::write(&path, format!("{}garbage\n{}", line("a"), line("b"))).unwrap();
        let e = run.records().unwrap_err().to_string();
        assert!(e.contains("results.jsonl:2"), "{e}");

        // Appending after a crash: the torn line is cut, the new one starts clean.
        fs::write(&path, format!("{whole}{torn}")).unwrap();
        let (mut results, _) = run.appenders().unwrap();
        results.write_all(line("d").as_bytes()).unwrap();
        drop(results);
        let ids = ids_of(&run);
        assert_eq!(ids, ["a", "b", "d"]);
        assert!(
            fsutil::stale_temps(&run.path).is_empty(),
            "the repair left no temp file"
        );
    }
}
