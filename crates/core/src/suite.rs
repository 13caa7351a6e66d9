//! Eval suites: `prompts/<name>/suite.yaml` names the dataset(s), repeats, an optional
//! provider/model override, and the `checks:` and `gate:` sections. The file is decoded into
//! typed values — each check type with only its own options, the gate policy with its ranges —
//! and every problem is reported at once, placed at its line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::artifact::locate::KeyPath;
use crate::checks::Check;
use crate::error::{Error, ErrorKind, Result};
use crate::gate::Policy;
use crate::yaml::{self, Decoder, Node, Source, Value, child};

/// A parsed `suite.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    /// Dataset files, relative to the repository root.
    pub datasets: Vec<String>,
    /// Samples per case (default 1); averaged per case before comparison.
    pub repeats: Option<u32>,
    /// Use this provider (a name in `promptgate.yaml`) instead of the version's own.
    pub provider: Option<String>,
    /// Use this model instead of the version's own.
    pub model: Option<String>,
    /// The column that groups (clusters) cases; default `group`.
    pub group_by: Option<String>,
    /// Regression checks, parsed and compiled.
    pub checks: Vec<Check>,
    /// Per-metric settings: `threshold` makes a case pass a metric when its weighted score
    /// reaches it (instead of when every check of the metric passes).
    pub metrics: BTreeMap<String, MetricSettings>,
    /// The gate policy.
    pub gate: Policy,
    /// Whether the suite set `gate.error_budget` itself (`eval` then uses it; otherwise any
    /// errored call fails an `eval`).
    pub explicit_error_budget: bool,
}

/// `metrics.<name>` in a suite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSettings {
    /// A case passes the metric when its weighted score is at least this (in [0, 1]).
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

/// The keys of a suite.
const KEYS: &[&str] = &[
    "datasets", "repeats", "provider", "model", "group_by", "checks", "metrics", "gate",
];

impl Suite {
    pub fn group_column(&self) -> &str {
        self.group_by
            .as_deref()
            .unwrap_or(crate::dataset::DEFAULT_GROUP)
    }

    /// Decode a suite's root node.
    pub fn decode(d: &mut Decoder<'_>, root: &Node) -> Suite {
        let mut s = Suite::default();
        if root.value == Value::Null {
            return s;
        }
        let top = KeyPath::default();
        let Some(fields) = d.map(root, &top, KEYS, "a suite") else {
            return s;
        };
        let at = |k: &str| child(&top, k);
        let name = |d: &mut Decoder<'_>, key: &str| -> Option<String> {
            fields.get(key).and_then(|n| d.name(n, &at(key)))
        };
        if let Some(n) = fields.get("datasets") {
            let p = at("datasets");
            if let Some(items) = d.seq(n, &p) {
                s.datasets = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| d.str(item, &yaml::item(&p, i)).map(str::to_string))
                    .collect();
            }
        }
        if let Some(n) = fields.get("repeats") {
            s.repeats = d
                .count(n, &at("repeats"))
                .and_then(|r| match u32::try_from(r) {
                    Ok(r @ 1..) => Some(r),
                    _ => {
                        d.problem(
                            n,
                            format!(
                                "`repeats` must be at least 1 (and at most {}), not {r}",
                                u32::MAX
                            ),
                        )
                        .hint = Some("`repeats` is the number of samples per case".into());
                        None
                    }
                });
        }
        s.provider = name(d, "provider");
        s.model = name(d, "model");
        s.group_by = name(d, "group_by");
        if let Some(n) = fields.get("checks") {
            s.checks = crate::checks::parse::checks_of(d, n, &at("checks"));
        }
        if let Some(n) = fields.get("metrics") {
            let mp = at("metrics");
            if let Value::Map(entries) = &n.value {
                for (k, v) in entries {
                    let here = child(&mp, &k.name);
                    let Some(f) = d.map(v, &here, &["threshold"], "a metric's settings") else {
                        continue;
                    };
                    let threshold = f.get("threshold").and_then(|t| {
                        let v = d.number(t, &child(&here, "threshold"))?;
                        if (0.0..=1.0).contains(&v) {
                            return Some(v);
                        }
                        d.problem(
                            t,
                            format!("`{}` must be between 0 and 1, not {v}", child(&here, "threshold")),
                        )
                        .hint = Some(
                            "a metric's score is the weighted mean of its checks' scores, in [0, 1]"
                                .into(),
                        );
                        None
                    });
                    s.metrics
                        .insert(k.name.clone(), MetricSettings { threshold });
                }
            } else {
                d.wrong_type(n, &mp, "a mapping of metric names");
            }
        }
        if let Some(n) = fields.get("gate") {
            s.gate = Policy::decode(d, n, &at("gate"));
            s.explicit_error_budget = s.gate.error_budget.is_some();
        }
        s
    }
}

/// Load a suite file.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = crate::fsutil::read_to_string(path)?;
    let suite = parse(path, &text)?;
    Ok(Loaded {
        path: Some(path.to_path_buf()),
        digest: crate::artifact::canonical::sha256_hex(text.as_bytes()),
        suite,
    })
}

/// A suite's text (`path` names it in messages).
pub fn parse(path: &Path, text: &str) -> Result<Suite> {
    let src = Source { file: path, text };
    let root = yaml::parse(src, yaml::Limits::default())?;
    let mut d = Decoder::new(src);
    let suite = match &root {
        Some(root) => Suite::decode(&mut d, root),
        None => Suite::default(),
    };
    if !d.problems.is_empty() {
        return Err(Error::many(ErrorKind::Usage, d.problems));
    }
    Ok(suite)
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

    #[test]
    fn the_group_column_defaults_to_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suite.yaml");
        std::fs::write(&path, "datasets: [d.jsonl]\n").unwrap();
        assert_eq!(load(&path).unwrap().suite.group_column(), "group");
        std::fs::write(&path, "datasets: [d.jsonl]\ngroup_by: topic\n").unwrap();
        assert_eq!(load(&path).unwrap().suite.group_column(), "topic");
        std::fs::write(&path, "group_by: \"  \"\n").unwrap();
        assert!(load(&path).is_err(), "an empty column name is refused");
    }
}
