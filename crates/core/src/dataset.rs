//! Golden datasets: CSV and JSONL files streamed into cases — a stable id, the
//! variables, the expectations and an optional group — and validated against every version's
//! declared variables before any call is made.
//!
//! Column convention (JSONL keys or CSV header names):
//!
//! | column | meaning |
//! |---|---|
//! | `id` | the case id (else the first 12 hex digits of the SHA-256 of the row's canonical JSON) |
//! | `expected` | the expected output (text, or any JSON value in JSONL) |
//! | `expected_json` | an expected JSON value (in CSV, a cell holding JSON text) |
//! | `group` | cases sharing a group are clustered in the statistics (the suite may name another column) |
//! | `checks` | checks for this case only, added to the suite's (a JSON list in the suite's format) |
//! | anything else | a template variable |
//!
//! In CSV every cell is text; cells for variables declared `number`, `integer`, `boolean`,
//! `array` or `object` are parsed as JSON. An empty CSV cell counts as absent, so a variable's
//! default applies.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::artifact::{Artifact, VarType, canonical};
use crate::error::{Diagnostic, Error, ErrorKind, Result};

/// A dataset as the manifest records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetInfo {
    pub path: String,
    pub digest: String,
    pub cases: usize,
}

/// Reserved column names.
pub const ID: &str = "id";
pub const EXPECTED: &str = "expected";
pub const EXPECTED_JSON: &str = "expected_json";
pub const CHECKS: &str = "checks";
pub const DEFAULT_GROUP: &str = "group";

/// One golden case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: Box<str>,
    /// The dataset file it came from (as displayed in messages).
    pub file: Arc<str>,
    /// 1-based line of the row in its file.
    pub line: usize,
    /// Variables (every non-reserved column).
    pub vars: Vars,
    /// Boxed: a case without one is 24 bytes smaller.
    pub expected: Option<Box<Value>>,
    /// What fewer cases have, in one box: a case with none of it is 72 bytes (24 MB smaller
    /// at 1M cases than with the three fields inline).
    pub extra: Option<Box<Extra>>,
}

/// A case's `expected_json`, group and own checks ([`Case::extra`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra {
    pub expected_json: Option<Value>,
    pub group: Option<Box<str>>,
    /// Checks for this case only (a list in the suite's `checks:` format), added to the suite's.
    pub checks: Option<Value>,
}

impl Case {
    pub fn expected_json(&self) -> Option<&Value> {
        self.extra.as_ref()?.expected_json.as_ref()
    }

    pub fn group(&self) -> Option<&str> {
        self.extra.as_ref()?.group.as_deref()
    }

    pub fn checks(&self) -> Option<&Value> {
        self.extra.as_ref()?.checks.as_ref()
    }

    /// Whether its cells are text (it came from a CSV file) and need typing by the variables'
    /// declarations.
    pub fn textual(&self) -> bool {
        Path::new(&*self.file).extension().and_then(|e| e.to_str()) == Some("csv")
    }

    /// Where a row with a problem would have been (line 0: no row has it).
    fn placeholder(file: &Arc<str>) -> Case {
        Case {
            id: Box::default(),
            file: file.clone(),
            line: 0,
            vars: Vars::default(),
            expected: None,
            extra: None,
        }
    }
}

/// A case's variables, sorted by name. A case has a handful: a sorted slice holds them in
/// one small allocation where a map would take a 640-byte B-tree node per case, and each
/// name is shared with the other cases of its dataset ([`Names`]) instead of copied into
/// every one (a million cases held 40 MB of copies of `question`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vars(Box<[(Arc<str>, Value)]>);

impl Vars {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    /// The variables as a JSON object (for templates and checks).
    pub fn to_map(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// From columns in file order: sorted by name, a repeated name keeping its last value.
    pub fn from_columns(mut columns: Vec<(Arc<str>, Value)>) -> Vars {
        // Stable: equal names stay in file order.
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        if columns.windows(2).any(|w| w[0].0 == w[1].0) {
            columns.reverse();
            columns.dedup_by(|a, b| a.0 == b.0);
            columns.reverse();
        }
        // The row's columns had room for the reserved ones too: a case keeps only what it
        // holds (and the room goes to the next row).
        Vars(columns.into_boxed_slice())
    }

    fn find(&self, name: &str) -> std::result::Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name))
    }
}

/// The column names met while reading a dataset, each held once and shared by the cases that
/// have it. A dataset has a handful, so a list searched in order is all it takes.
#[derive(Debug, Default)]
pub struct Names(Vec<Arc<str>>);

impl Names {
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.iter().find(|n| ***n == *name) {
            return n.clone();
        }
        let n = Arc::<str>::from(name);
        self.0.push(n.clone());
        n
    }
}

/// A row's columns in file order, as JSONL gives them: parsed straight into pairs, with no
/// map in between and each name taken from [`Names`] (no string made for it).
struct Columns<'n>(&'n mut Names);

impl<'de> serde::de::DeserializeSeed<'de> for Columns<'_> {
    type Value = Vec<(Arc<str>, Value)>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Columns<'_> {
    type Value = Vec<(Arc<str>, Value)>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key_seed(Name(&mut *self.0))? {
            out.push((key, map.next_value::<Value>()?));
        }
        Ok(out)
    }
}

/// A column name, as the shared one.
struct Name<'n>(&'n mut Names);

impl<'de> serde::de::DeserializeSeed<'de> for Name<'_> {
    type Value = Arc<str>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Name<'_> {
    type Value = Arc<str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a column name")
    }
    fn visit_str<E: serde::de::Error>(self, name: &str) -> std::result::Result<Arc<str>, E> {
        Ok(self.0.get(name))
    }
}

/// A loaded dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub cases: Vec<Case>,
    /// SHA-256 of the file's bytes.
    pub digest: String,
}

/// A reader that hashes the bytes passing through it, so the digest costs no second read.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The SHA-256 of a dataset file's bytes (as [`Dataset::digest`]), without parsing it.
pub fn digest(path: &Path) -> std::io::Result<String> {
    let mut reader = HashingReader {
        inner: File::open(path)?,
        hasher: Sha256::new(),
    };
    std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(canonical::hex(&reader.hasher.finalize()))
}

/// Load a dataset, streaming it row by row. Every malformed row is reported, with its line.
pub fn load(path: &Path, group_column: &str) -> Result<Dataset> {
    load_with(
        path,
        group_column,
        crate::config::defaults::DATASET_LINE_BYTES,
    )
}

/// A reader that refuses a line longer than `max` bytes, so that one endless line cannot grow
/// the parser's buffers without bound.
struct LineGuard<R> {
    inner: R,
    max: usize,
    since_newline: usize,
    line: usize,
}

impl<R: Read> Read for LineGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for b in &buf[..n] {
            if *b == b'\n' {
                self.line += 1;
                self.since_newline = 0;
            } else {
                self.since_newline += 1;
                if self.since_newline > self.max {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "line {} is longer than {} bytes (`limits.dataset_line_bytes` in promptgate.yaml raises it)",
                            self.line + 1,
                            self.max
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// [`load`] with a longest line of `max_line` bytes.
pub fn load_with(path: &Path, group_column: &str, max_line: usize) -> Result<Dataset> {
    let file = File::open(path).map_err(|e| Error::io(path, "open dataset", e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_from(path, BufReader::new(file), size, group_column, max_line)
}

/// A dataset's bytes (`path` names it and its format, by extension, in messages).
pub fn parse_bytes(path: &Path, bytes: &[u8], group_column: &str) -> Result<Dataset> {
    read_from(
        path,
        bytes,
        bytes.len() as u64,
        group_column,
        crate::config::defaults::DATASET_LINE_BYTES,
    )
}

fn read_from(
    path: &Path,
    input: impl Read,
    size: u64,
    group_column: &str,
    max_line: usize,
) -> Result<Dataset> {
    let mut reader = HashingReader {
        inner: LineGuard {
            inner: input,
            max: max_line,
            since_newline: 0,
            line: 0,
        },
        hasher: Sha256::new(),
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    let file: Arc<str> = path.display().to_string().into();
    match ext {
        "jsonl" | "ndjson" => {
            read_jsonl(
                path,
                &file,
                size,
                &mut reader,
                group_column,
                &mut cases,
                &mut problems,
            );
        }
        "csv" => {
            read_csv(
                path,
                &file,
                &mut reader,
                group_column,
                &mut cases,
                &mut problems,
            );
        }
        _ => {
            return Err(Error::usage(format!(
                "`{}`: unsupported dataset format `.{ext}`",
                path.display()
            ))
            .with_hint("use `.jsonl` (one JSON object per line) or `.csv` (a header row)"));
        }
    }
    // Drain whatever the parser did not read so the digest covers the whole file.
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    let digest = canonical::hex(&reader.hasher.finalize());

    // Ids are unique.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(cases.len());
    for c in &cases {
        if let Some(first) = seen.insert(&c.id, c.line) {
            problems.push(
                Diagnostic::error(format!(
                    "duplicate case id `{}` (also on line {first})",
                    c.id
                ))
                .in_context(format!("{}:{}", path.display(), c.line))
                .hint("case ids must be unique: they pair candidate and baseline results"),
            );
        }
    }
    if cases.is_empty() && problems.is_empty() {
        problems.push(
            Diagnostic::error("the dataset has no cases").in_context(path.display().to_string()),
        );
    }
    if !problems.is_empty() {
        return Err(Error::many(ErrorKind::Usage, problems));
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        cases,
        digest,
    })
}

/// JSONL is read in blocks of whole lines, each block's rows parsed in parallel: memory holds
/// one block besides the cases, and rows come out in file order.
const BLOCK: usize = 1 << 18;

fn read_jsonl(
    path: &Path,
    file: &Arc<str>,
    size: u64,
    reader: &mut impl Read,
    group_column: &str,
    cases: &mut Vec<Case>,
    problems: &mut Vec<Diagnostic>,
) {
    let mut pending: Vec<u8> = Vec::with_capacity(BLOCK * 2);
    let mut next_line = 1;
    loop {
        // Read straight onto the end of what is pending (no second buffer to copy from).
        let start = pending.len();
        pending.resize(start + BLOCK, 0);
        let n = match read_full(reader, &mut pending[start..]) {
            Ok(n) => n,
            Err(e) => {
                problems.push(
                    Diagnostic::error(format!("cannot read line: {e}"))
                        .in_context(format!("{}:{next_line}", path.display())),
                );
                return;
            }
        };
        pending.truncate(start + n);
        // Whole lines only, unless the file has ended.
        let cut = if n == 0 {
            pending.len()
        } else {
            match pending.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let newlines = pending[..cut].iter().filter(|b| **b == b'\n').count();
        if next_line == 1 && cut > 0 {
            // Room for the whole file's cases at once, estimated from the first block (with
            // a little to spare): the vector is not regrown and copied as it fills.
            let estimate = (newlines.max(1) as u64 * size / cut as u64) as usize;
            cases.reserve(estimate + estimate / 16);
        }
        if parse_jsonl_block(
            path,
            file,
            &pending[..cut],
            next_line,
            group_column,
            cases,
            problems,
        ) {
            return;
        }
        next_line += newlines;
        pending.drain(..cut);
        if n == 0 {
            return;
        }
    }
}

/// Read until `buf` is full or the input ends; the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Parse a block of whole lines, in parallel, straight into `cases` (blank lines are not
/// rows); problems go to `problems` in line order. True when a line could not be read at all
/// (not UTF-8): nothing after it is, and the caller stops.
fn parse_jsonl_block(
    path: &Path,
    file: &Arc<str>,
    block: &[u8],
    first_line: usize,
    group_column: &str,
    cases: &mut Vec<Case>,
    problems: &mut Vec<Diagnostic>,
) -> bool {
    use rayon::prelude::*;
    let mut lines: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
    if block.ends_with(b"\n") {
        lines.pop();
    }
    // (line number, text), blank lines left out; a line that is not UTF-8 stays, to be told.
    let rows: Vec<(usize, &[u8])> = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| (first_line + i, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| std::str::from_utf8(line).map_or(true, |l| !l.trim().is_empty()))
        .collect();
    // A row with a problem leaves a placeholder (line 0) where its case would be, taken out
    // below: the cases are written in place, in order, with no vector of results in between.
    let found: std::sync::Mutex<Vec<(usize, bool, Diagnostic)>> = Default::default();
    let start = cases.len();
    // Each piece of work names the file and the columns with its own copies of the names:
    // cases made on both cores at once do not all count references on one shared counter.
    cases.par_extend(rows.par_iter().with_min_len(256).map_init(
        || (Arc::<str>::from(&**file), Names::default()),
        |(file, names), &(lineno, line)| match parse_jsonl_row(
            path,
            file,
            names,
            line,
            lineno,
            group_column,
        ) {
            Ok(case) => case,
            Err((fatal, d)) => {
                if let Ok(mut f) = found.lock() {
                    f.push((lineno, fatal, d));
                }
                Case::placeholder(file)
            }
        },
    ));
    let mut found = found.into_inner().unwrap_or_default();
    if found.is_empty() {
        return false;
    }
    found.sort_by_key(|(line, ..)| *line);
    // Nothing after an unreadable line counts.
    let stop = found.iter().find(|(_, fatal, _)| *fatal).map(|(l, ..)| *l);
    let tail = cases.split_off(start);
    cases.extend(
        tail.into_iter()
            .filter(|c| c.line != 0 && stop.is_none_or(|s| c.line < s)),
    );
    problems.extend(
        found
            .into_iter()
            .filter(|(l, ..)| stop.is_none_or(|s| *l <= s))
            .map(|(.., d)| d),
    );
    stop.is_some()
}

/// One JSONL row; the problem (and whether it is fatal: not UTF-8) if it is not a case.
fn parse_jsonl_row(
    path: &Path,
    file: &Arc<str>,
    names: &mut Names,
    line: &[u8],
    lineno: usize,
    group_column: &str,
) -> std::result::Result<Case, (bool, Diagnostic)> {
    let place = || format!("{}:{lineno}", path.display());
    let Ok(line) = std::str::from_utf8(line) else {
        return Err((
            true,
            Diagnostic::error("cannot read line: stream did not contain valid UTF-8")
                .in_context(place())
                .hint("save the dataset as UTF-8"),
        ));
    };
    let problem = |d: Diagnostic| Err((false, d.in_context(place())));
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = serde::de::DeserializeSeed::deserialize(Columns(names), &mut de)
        .and_then(|row| de.end().map(|()| row));
    match parsed {
        Ok(row) => match case_from_row(row, file, lineno, group_column, false) {
            Ok(c) => Ok(c),
            Err(msg) => problem(Diagnostic::error(msg)),
        },
        // The JSON is well-formed but not an object.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            problem(Diagnostic::error("a JSONL row must be a JSON object"))
        }
        Err(e) => problem(
            Diagnostic::error(format!("invalid JSON: {e}"))
                .hint("each line is one JSON object, e.g. {\"id\": \"a\", \"question\": \"…\"}"),
        ),
    }
}

fn read_csv(
    path: &Path,
    file: &Arc<str>,
    reader: &mut impl Read,
    group_column: &str,
    cases: &mut Vec<Case>,
    problems: &mut Vec<Diagnostic>,
) {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers: Vec<Arc<str>> = match rdr.headers() {
        Ok(h) => h.iter().map(Arc::from).collect(),
        Err(e) => {
            problems.push(
                Diagnostic::error(format!("cannot read the CSV header: {e}"))
                    .in_context(format!("{}:1", path.display())),
            );
            return;
        }
    };
    for record in rdr.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                problems.push(
                    Diagnostic::error(format!("malformed CSV row: {e}"))
                        .in_context(format!("{}:{line}", path.display()))
                        .hint("every row needs as many cells as the header; quote cells holding commas"),
                );
                continue;
            }
        };
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let row: Vec<(Arc<str>, Value)> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, cell)| !cell.is_empty())
            .map(|(h, cell)| (h.clone(), Value::String(cell.to_string())))
            .collect();
        match case_from_row(row, file, line, group_column, true) {
            Ok(c) => cases.push(c),
            Err(msg) => problems
                .push(Diagnostic::error(msg).in_context(format!("{}:{line}", path.display()))),
        }
    }
}

fn case_from_row(
    mut row: Vec<(Arc<str>, Value)>,
    file: &Arc<str>,
    line: usize,
    group_column: &str,
    textual: bool,
) -> Result<Case, String> {
    // A row without an id is named by the hash of all its columns (as one JSON object: a
    // repeated key keeps its last value).
    let hashed_id = if row.iter().any(|(k, _)| &**k == ID) {
        None
    } else {
        let object: Map<String, Value> = row
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let canon =
            canonical::to_canonical_string(&Value::Object(object)).map_err(|e| e.to_string())?;
        Some(canonical::sha256_hex(canon.as_bytes())[..12].to_string())
    };
    let (mut id, mut expected, mut expected_json, mut group, mut checks) =
        (None, None, None, None, None);
    // Reserved columns come out, in this order (a group column named `expected` is the
    // expectation; a repeated key keeps its last value); the rest, in the same allocation,
    // are the variables.
    row.retain_mut(|(key, value)| {
        let slot = match &**key {
            ID => &mut id,
            EXPECTED => &mut expected,
            EXPECTED_JSON => &mut expected_json,
            k if k == group_column => &mut group,
            CHECKS => &mut checks,
            _ => return true,
        };
        *slot = Some(std::mem::take(value));
        false
    });
    let vars = Vars::from_columns(row);
    let id = match id {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("`id` must be a string or a number, not {other}")),
        None => hashed_id.unwrap_or_default(),
    };
    let expected_json = match expected_json {
        Some(Value::String(s)) if textual => Some(
            serde_json::from_str(&s)
                .map_err(|e| format!("`expected_json` is not valid JSON: {e}"))?,
        ),
        other => other,
    };
    let group = match group {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let checks = match checks {
        Some(Value::String(s)) if textual => {
            Some(serde_json::from_str(&s).map_err(|e| format!("`checks` is not valid JSON: {e}"))?)
        }
        other => other,
    };
    if let Some(c) = &checks
        && !c.is_array()
    {
        return Err("`checks` must be a list of checks, e.g. [{\"contains\": \"refund\"}]".into());
    }
    Ok(Case {
        id: id.into(),
        file: file.clone(),
        line,
        vars,
        expected: expected.map(Box::new),
        extra: (expected_json.is_some() || group.is_some() || checks.is_some()).then(|| {
            Box::new(Extra {
                expected_json,
                group: group.map(String::into_boxed_str),
                checks,
            })
        }),
    })
}

/// Give text cells (CSV) the types their variables declare.
pub fn typed_vars(artifact: &Artifact, case: &Case) -> Result<Map<String, Value>, String> {
    let mut out = case.vars.to_map();
    if !case.textual() {
        return Ok(out);
    }
    for (name, var) in &artifact.variables {
        if matches!(var.kind, VarType::String | VarType::Any) {
            continue;
        }
        if let Some(Value::String(text)) = case.vars.get(name) {
            let v = var
                .kind
                .coerce(text)
                .map_err(|e| format!("column `{name}`: {e}"))?;
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(i: usize) -> String {
        format!(
            "{{\"id\":\"c{i}\",\"question\":\"{}\"}}\r\n",
            "x".repeat(48)
        )
    }

    /// What a million cases cost in memory starts here (each byte is a megabyte at 1M).
    #[test]
    fn a_case_is_small_and_shares_its_column_names() {
        assert!(std::mem::size_of::<Case>() <= 72);
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            (
                "d.jsonl",
                "{\"id\":\"a\",\"q\":\"x\"}\n{\"q\":\"y\",\"id\":\"b\"}\n",
            ),
            ("d.csv", "id,q\na,x\nb,y\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let d = load(&path, "group").unwrap();
            let [a, b] = &d.cases[..] else {
                panic!("{name}: {:?}", d.cases)
            };
            assert_eq!(
                (a.vars.get("q"), b.vars.get("q")),
                (Some(&json!("x")), Some(&json!("y")))
            );
            assert!(
                Arc::ptr_eq(&a.vars.0[0].0, &b.vars.0[0].0),
                "{name}: one `q` for both"
            );
        }
    }

    #[test]
    fn jsonl_rows_across_blocks_keep_their_lines_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        // About 900 KB: four blocks, so rows and problems sit on both sides of block edges.
        let n = 12_000;
        let text = |bad: bool| {
            let mut t = String::new();
            for i in 1..=n {
                match i {
                    5_000 if bad => t.push_str("{not json}\r\n"),
                    9_001 => t.push_str("\r\n"),
                    _ => t.push_str(&row(i)),
                }
            }
            // The last row has no newline.
            t.push_str("{\"id\":\"last\",\"question\":\"end\"}");
            t
        };
        std::fs::write(&path, text(true)).unwrap();
        let err = load(&path, "group").unwrap_err().to_string();
        assert!(err.contains("d.jsonl:5000"), "{err}");
        assert!(
            !err.contains("d.jsonl:9001"),
            "a blank line is no problem: {err}"
        );

        std::fs::write(&path, text(false)).unwrap();
        let d = load(&path, "group").unwrap();
        assert_eq!(d.cases.len(), n); // n - 1 rows, the blank line skipped, and the last row
        for c in &d.cases[..n - 1] {
            assert_eq!(
                *c.id,
                format!("c{}", c.line),
                "line numbers follow the file"
            );
        }
        assert!(d.cases.windows(2).all(|w| w[0].line < w[1].line));
        let last = d.cases.last().unwrap();
        assert_eq!((&*last.id, last.line), ("last", n + 1));
        assert_eq!(d.digest, digest(&path).unwrap());
        assert_eq!(
            d.digest,
            canonical::sha256_hex(&std::fs::read(&path).unwrap())
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_stops_the_reading_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut bytes = Vec::new();
        for i in 1..=10 {
            if i == 7 {
                bytes.extend_from_slice(b"{\"id\":\"c7\",\"question\":\"\xff\xfe\"}\n");
            } else {
                bytes.extend_from_slice(row(i).as_bytes());
            }
        }
        bytes.extend_from_slice(b"{broken\n");
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&path, "group").unwrap_err().to_string();
        assert!(err.contains("d.jsonl:7"), "{err}");
        assert!(err.contains("UTF-8"), "{err}");
        assert!(
            !err.contains("d.jsonl:11"),
            "nothing after it is read: {err}"
        );
    }

    fn one(line: &str, group: &str) -> std::result::Result<Case, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, format!("{line}\n")).unwrap();
        load(&path, group)
            .map(|mut d| d.cases.remove(0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_row_splits_into_reserved_columns_and_sorted_variables() {
        let c = one(
            r#"{"zeta":1,"id":"x","alpha":"first","expected":"e","group":"g","checks":[{"contains":"a"}],"alpha":"last"}"#,
            "group",
        )
        .unwrap();
        assert_eq!((&*c.id, c.line), ("x", 1));
        assert_eq!(c.expected.as_deref(), Some(&json!("e")));
        assert_eq!(c.group(), Some("g"));
        assert_eq!(c.checks(), Some(&json!([{"contains": "a"}])));
        // Sorted by name; a repeated key keeps its last value, as in a JSON object.
        let vars: Vec<(&str, &Value)> = c.vars.iter().collect();
        assert_eq!(vars, [("alpha", &json!("last")), ("zeta", &json!(1))]);
        assert_eq!(c.vars.get("zeta"), Some(&json!(1)));
        assert_eq!(c.vars.get("id"), None);
        assert_eq!(
            Value::Object(c.vars.to_map()),
            json!({"alpha": "last", "zeta": 1})
        );

        // A group column named like a reserved one does not take it over.
        let c = one(r#"{"id":"y","expected":"e","q":"?"}"#, "expected").unwrap();
        assert_eq!(
            (c.expected.as_deref(), c.group()),
            (Some(&json!("e")), None)
        );
        // Another group column is a group, not a variable.
        let c = one(r#"{"id":"y","team":7,"q":"?"}"#, "team").unwrap();
        assert_eq!(c.group(), Some("7"));
        assert_eq!(c.vars.keys().collect::<Vec<_>>(), ["q"]);
    }

    #[test]
    fn a_row_without_an_id_is_named_by_the_hash_of_all_its_columns() {
        let row = json!({"question": "Où est ma commande ?", "expected": "shipped", "n": 2});
        let want = canonical::sha256_hex(canonical::to_canonical_string(&row).unwrap().as_bytes())
            [..12]
            .to_string();
        // The same object, its keys in another order: the same id.
        let c = one(
            r#"{"n":2,"expected":"shipped","question":"Où est ma commande ?"}"#,
            "group",
        )
        .unwrap();
        assert_eq!(*c.id, want);
        let c2 = one(
            r#"{"question":"Où est ma commande ?","n":2,"expected":"shipped"}"#,
            "group",
        )
        .unwrap();
        assert_eq!(*c2.id, want);
    }

    #[test]
    fn rows_that_are_not_objects_or_not_json_are_told_apart() {
        let err = one(r#"["a", "b"]"#, "group").unwrap_err();
        assert!(
            err.contains("d.jsonl:1") && err.contains("must be a JSON object"),
            "{err}"
        );
        let err = one(r#"{"id": "a", "q": }"#, "group").unwrap_err();
        assert!(
            err.contains("d.jsonl:1") && err.contains("invalid JSON"),
            "{err}"
        );
        let err = one(r#"{"id": "", "q": "?"}"#, "group").unwrap_err();
        assert!(err.contains("`id` must be a string or a number"), "{err}");
    }
}

#[cfg(test)]
mod line_limit_tests {
    use super::*;

    #[test]
    fn a_line_longer_than_the_limit_is_refused_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            (
                "d.jsonl",
                format!("{{\"q\": \"a\"}}\n{{\"q\": \"{}\"}}\n", "x".repeat(5000)),
            ),
            ("d.csv", format!("q\na\n{}\n", "x".repeat(5000))),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &text).unwrap();
            let e = load_with(&path, "group", 1000).unwrap_err().to_string();
            assert!(
                e.contains("line") && e.contains("longer than 1000 bytes"),
                "{name}: {e}"
            );
            assert!(e.contains(name), "{name}: {e}");
            assert!(e.contains("dataset_line_bytes"), "{e}");
            assert!(load_with(&path, "group", 10_000).is_ok(), "{name}");
        }
    }
}
