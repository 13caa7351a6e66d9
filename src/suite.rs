//! Eval suites: `prompts/<name>/suite.yaml` names the dataset(s), repeats, an optional
//! provider/model override, and the `checks:` and `gate:` sections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Diagnostic, Error, Result};
use crate::fsutil;

/// A parsed `suite.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Dataset files, relative to the repository root.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Samples per case (default 1); averaged per case before comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    /// Use this provider (a name in `promptgate.yaml`) instead of the version's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Use this model instead of the version's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The column that groups (clusters) cases; default `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Regression checks (see the checks documentation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Value>,
    /// Per-metric settings: `threshold` makes a case pass a metric when its weighted score
    /// reaches it (instead of when every check of the metric passes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, MetricSettings>,
    /// Gate policy (see the gate documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Value>,
}

/// `metrics.<name>` in a suite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSettings {
    /// A case passes the metric when its weighted score is at least this (in [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// A suite and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub suite: Suite,
    /// SHA-256 of the file's bytes (empty without a file).
    pub digest: String,
}

fn keys_of(path: &str) -> &'static [&'static str] {
    match path {
        "" => &[
            "datasets", "repeats", "provider", "model", "group_by", "checks", "metrics", "gate",
        ],
        p if p.starts_with("metrics.") => &["threshold"],
        _ => &[],
    }
}

impl Suite {
    pub fn repeats(&self) -> u32 {
        self.repeats.unwrap_or(1)
    }

    pub fn group_column(&self) -> &str {
        self.group_by
            .as_deref()
            .unwrap_or(crate::dataset::DEFAULT_GROUP)
    }
}

/// Load a suite file.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = fsutil::read_to_string(path)?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let suite: Suite = if text.trim().is_empty() {
        Suite::default()
    } else {
        serde_path_to_error::deserialize(de).map_err(|err| {
            let p = err.path().to_string();
            Error::from(crate::artifact::yaml_error_diagnostic(
                path,
                &text,
                &p,
                err.inner(),
                keys_of,
            ))
        })?
    };
    if suite.repeats == Some(0) {
        return Err(Diagnostic::error("`repeats` must be at least 1")
            .in_context(path.display().to_string())
            .into());
    }
    for (name, m) in &suite.metrics {
        if let Some(t) = m.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(Diagnostic::error(format!(
                "`metrics.{name}.threshold` must be between 0 and 1, not {t}"
            ))
            .in_context(path.display().to_string())
            .hint("a metric's score is the weighted mean of its checks' scores, in [0, 1]")
            .into());
        }
    }
    Ok(Loaded {
        path: Some(path.to_path_buf()),
        digest: crate::artifact::canonical::sha256_hex(text.as_bytes()),
        suite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suite.yaml");
        std::fs::write(
            &path,
            "datasets: [d.jsonl]
repeat: 3
",
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown key `repeat`"), "{err}");
        assert!(err.contains("suite.yaml:2"), "{err}");
        assert!(err.contains("did you mean `repeats`?"), "{err}");
        std::fs::write(
            &path,
            "datasets: [d.jsonl]
repeats: 3
",
        )
        .unwrap();
        assert_eq!(load(&path).unwrap().suite.repeats, Some(3));
    }
}
