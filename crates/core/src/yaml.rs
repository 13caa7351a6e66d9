//! Positioned YAML: a document parsed into a tree whose every node and key knows its line and
//! column, so that typed decoding (suites, gate policies) can point at the exact place of a
//! mistake — a wrong type, an unknown key, a value out of range — without parsing a library's
//! error text. Parsing streams events from `saphyr-parser` and stops as soon as a limit is
//! passed (nesting depth, nodes materialised through aliases), so hostile input costs time in
//! proportion to what is read, never more.
//!
//! Plain scalars are typed by the YAML 1.2 core schema (`true`, `3`, `0.5`, `null`, `~`);
//! quoted and block scalars are always text.

use std::borrow::Cow;
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::artifact::locate::{KeyPath, Seg};
use crate::error::{Diagnostic, Location, did_you_mean, list_names};

/// How much a document may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of lists and mappings.
    pub max_depth: usize,
    /// Nodes in the tree, aliases counted as the nodes they copy (a "billion laughs" document
    /// stops here).
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 8 << 20,
            max_depth: 64,
            max_nodes: 1_000_000,
        }
    }
}

/// What to look for after a YAML syntax error.
fn syntax_hint(info: &str) -> &'static str {
    if info.contains("flow mapping") {
        "a `{` opened at or before this line is not closed with `}` (or a `,` is missing)"
    } else if info.contains("flow sequence") {
        "a `[` opened at or before this line is not closed with `]` (or a `,` is missing)"
    } else {
        "check the indentation, quotes and brackets near this line"
    }
}

/// Check a document against `limits` before any other parser sees it: its size, how deep it
/// nests and how many nodes its aliases expand to, by streaming its events once and stopping
/// at the first limit passed — time in proportion to what is read, whatever the input. Every
/// YAML file promptgate reads (version files, `promptgate.yaml`, `registry.yaml`, tokens
/// files, suites) passes here first.
pub fn check_bounds(src: Source<'_>, limits: Limits) -> Result<(), Diagnostic> {
    let err =
        |line: usize, col: usize, msg: String| Diagnostic::error(msg).at(src.location(line, col));
    if src.text.len() > limits.max_bytes {
        return Err(Diagnostic::error(format!(
            "{} is {} bytes, more than the {} a promptgate YAML file may have",
            src.file.display(),
            src.text.len(),
            limits.max_bytes
        ))
        .hint("split it, or move large data (datasets) into their own files"));
    }
    let mut parser = Parser::new_from_str(src.text);
    // Open collections: (anchor, nodes counted when it opened).
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut anchor_sizes: std::collections::HashMap<usize, usize> =
        std::collections::HashMap::new();
    let mut nodes = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            err(m.line(), m.col() + 1, format!("invalid YAML: {}", e.info()))
                .hint(syntax_hint(e.info()))
        })?;
        let (line, col) = place(&span);
        match event {
            Event::Scalar(_, _, anchor, _) => {
                nodes += 1;
                if anchor > 0 {
                    anchor_sizes.insert(anchor, 1);
                }
            }
            Event::Alias(id) => nodes += anchor_sizes.get(&id).copied().unwrap_or(1),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                open.push((anchor, nodes));
                if open.len() > limits.max_depth {
                    return Err(err(
                        line,
                        col,
                        format!("nested more than {} levels deep", limits.max_depth),
                    )
                    .hint("a promptgate file never needs this much nesting"));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop()
                    && anchor > 0
                {
                    anchor_sizes.insert(anchor, nodes - start + 1);
                }
            }
            _ => {}
        }
        if nodes > limits.max_nodes {
            return Err(too_many(err(line, col, String::new()), limits));
        }
    }
    Ok(())
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: its text and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
    pub col: usize,
}

/// A value and where it starts (1-based line and column; 0 when it has no place in a text,
/// as for values converted from JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

impl Node {
    /// What kind of value this is, for messages ("text", "a number", …).
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "true/false",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value as JSON (numbers that JSON cannot hold, NaN and infinities, become null).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A tree from JSON, every node placed at `line` (column 0: no column to point at).
    pub fn from_json(v: &serde_json::Value, line: usize) -> Node {
        use serde_json::Value as J;
        let value = match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(items) => Value::Seq(items.iter().map(|i| Node::from_json(i, line)).collect()),
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.clone(),
                                line,
                                col: 0,
                            },
                            Node::from_json(v, line),
                        )
                    })
                    .collect(),
            ),
        };
        Node {
            value,
            line,
            col: 0,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| 1 + v.count()).sum(),
            _ => 0,
        }
    }
}

/// Type a plain scalar by the YAML 1.2 core schema.
fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x")
        && digits(hex, 16)
    {
        return i64::from_str_radix(hex, 16)
            .map(Value::Int)
            .unwrap_or(Value::Str(text.into()));
    }
    if let Some(oct) = text.strip_prefix("0o")
        && digits(oct, 8)
    {
        return i64::from_str_radix(oct, 8)
            .map(Value::Int)
            .unwrap_or(Value::Str(text.into()));
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits(unsigned, 10) {
        return match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => text
                .parse::<f64>()
                .map(Value::Float)
                .unwrap_or(Value::Str(text.into())),
        };
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() && digits(frac, 10))
                || (digits(int, 10) && (frac.is_empty() || digits(frac, 10)))
        }
        None => digits(mantissa, 10),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
    if mantissa_ok
        && exponent_ok
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.into())
}

/// A place to point at: a file's text, for the caret display.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// The location of 1-based `line` and `col` (`None` for a node with no place).
    pub fn location(&self, line: usize, col: usize) -> Option<Location> {
        (line > 0).then(|| Location::in_text(self.file, self.text, line, col))
    }
}

struct Frame {
    anchor: usize,
    line: usize,
    col: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>, Option<Key>),
}

fn place(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

fn scalar_value(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&str>,
) -> Result<Value, String> {
    match tag {
        None => Ok(match style {
            ScalarStyle::Plain => plain(&text),
            _ => Value::Str(text.into_owned()),
        }),
        Some("str") => Ok(Value::Str(text.into_owned())),
        Some(t @ ("int" | "float" | "bool" | "null")) => {
            let v = plain(&text);
            let ok = matches!(
                (t, &v),
                ("int", Value::Int(_))
                    | ("float", Value::Float(_) | Value::Int(_))
                    | ("bool", Value::Bool(_))
                    | ("null", Value::Null)
            );
            if !ok {
                return Err(format!("`{text}` is not a valid `!!{t}`"));
            }
            Ok(match (t, v) {
                ("float", Value::Int(i)) => Value::Float(i as f64),
                (_, v) => v,
            })
        }
        Some(other) => Err(format!("the tag `{other}` is not supported")),
    }
}

fn tag_name(tag: &Option<Cow<'_, saphyr_parser::Tag>>) -> Option<String> {
    tag.as_ref().map(|t| {
        if t.is_yaml_core_schema() {
            t.suffix.clone()
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    })
}

/// Parse one YAML document. An empty document (or one holding only comments) is `None`.
/// Errors name the place; nothing past a limit is read.
pub fn parse(src: Source<'_>, limits: Limits) -> Result<Option<Node>, Diagnostic> {
    if src.text.len() > limits.max_bytes {
        return check_bounds(src, limits).map(|_| None);
    }
    let err =
        |line: usize, col: usize, msg: String| Diagnostic::error(msg).at(src.location(line, col));
    let mut parser = Parser::new_from_str(src.text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            err(m.line(), m.col() + 1, format!("invalid YAML: {}", e.info()))
                .hint(syntax_hint(e.info()))
        })?;
        let (line, col) = place(&span);
        let complete: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        line,
                        col,
                        "a second YAML document (`---`) in one file".into(),
                    )
                    .hint("keep one document per file"));
                }
                None
            }
            Event::Alias(id) => {
                let Some(node) = anchors.get(&id) else {
                    return Err(err(
                        line,
                        col,
                        "an alias names an anchor that is not defined".into(),
                    ));
                };
                nodes += node.count();
                if nodes > limits.max_nodes {
                    return Err(too_many(err(line, col, String::new()), limits));
                }
                let mut copy = node.clone();
                copy.line = line;
                copy.col = col;
                Some((copy, 0))
            }
            Event::Scalar(text, style, anchor, tag) => {
                nodes += 1;
                if nodes > limits.max_nodes {
                    return Err(too_many(err(line, col, String::new()), limits));
                }
                let value = scalar_value(text, style, tag_name(&tag).as_deref())
                    .map_err(|m| err(line, col, m))?;
                Some((Node { value, line, col }, anchor))
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if let Some(t) = tag_name(tag).filter(|t| t != "seq" && t != "map") {
                    return Err(err(line, col, format!("the tag `{t}` is not supported")));
                }
                nodes += 1;
                if stack.len() >= limits.max_depth {
                    return Err(err(
                        line,
                        col,
                        format!("nested more than {} levels deep", limits.max_depth),
                    )
                    .hint("a promptgate file never needs this much nesting"));
                }
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Seq(Vec::new())
                } else {
                    FrameKind::Map(Vec::new(), None)
                };
                stack.push(Frame {
                    anchor,
                    line,
                    col,
                    kind,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else {
                    return Err(err(line, col, "invalid YAML: unbalanced end".into()));
                };
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map(entries, _) => Value::Map(entries),
                };
                Some((
                    Node {
                        value,
                        line: frame.line,
                        col: frame.col,
                    },
                    frame.anchor,
                ))
            }
        };
        let Some((node, anchor)) = complete else {
            continue;
        };
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame {
                kind: FrameKind::Seq(items),
                ..
            }) => items.push(node),
            Some(Frame {
                kind: FrameKind::Map(entries, pending),
                ..
            }) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let name = match &node.value {
                        Value::Str(s) => s.clone(),
                        Value::Null => "null".into(),
                        Value::Bool(b) => b.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(err(
                                node.line,
                                node.col,
                                "a mapping key must be a plain name, not a list or a mapping"
                                    .into(),
                            ));
                        }
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                        return Err(err(
                            node.line,
                            node.col,
                            format!("duplicate key `{name}` (first at line {})", first.line),
                        )
                        .hint("each key may appear once in a mapping; remove one of them"));
                    }
                    *pending = Some(Key {
                        name,
                        line: node.line,
                        col: node.col,
                    });
                }
            },
        }
    }
    Ok(root)
}

fn too_many(d: Diagnostic, limits: Limits) -> Diagnostic {
    Diagnostic {
        message: format!(
            "more than {} values (aliases count as the values they copy)",
            limits.max_nodes
        ),
        ..d
    }
    .hint("expand fewer aliases, or split the file")
}

/// Decoding a tree into typed values, collecting every problem with its place.
pub struct Decoder<'a> {
    pub source: Source<'a>,
    /// Where a node with no line is (a dataset row: `datasets/x.jsonl:3 (case `a`)`).
    pub context: Option<String>,
    pub problems: Vec<Diagnostic>,
}

impl<'a> Decoder<'a> {
    pub fn new(source: Source<'a>) -> Decoder<'a> {
        Decoder {
            source,
            context: None,
            problems: Vec::new(),
        }
    }

    /// A decoder for values with no text to point into (JSON from a dataset row).
    pub fn for_context(context: String) -> Decoder<'static> {
        Decoder {
            source: Source {
                file: Path::new(""),
                text: "",
            },
            context: Some(context),
            problems: Vec::new(),
        }
    }

    /// A diagnostic placed at `line`/`col`.
    pub fn diagnostic(&self, line: usize, col: usize, message: String) -> Diagnostic {
        let d = Diagnostic::error(message);
        if let Some(ctx) = &self.context {
            return d.in_context(ctx.clone());
        }
        match self.source.location(line, col) {
            Some(loc) => d.at(Some(loc)),
            None => d.in_context(self.source.file.display().to_string()),
        }
    }

    /// Record a problem at a node.
    pub fn problem(&mut self, node: &Node, message: String) -> &mut Diagnostic {
        let d = self.diagnostic(node.line, node.col, message);
        self.problems.push(d);
        self.problems.last_mut().expect("just pushed")
    }

    /// Record "`path` must be EXPECTED, not KIND" at a node.
    pub fn wrong_type(&mut self, node: &Node, path: &KeyPath, expected: &str) {
        let got = match &node.value {
            Value::Str(s) if s.chars().count() <= 30 => format!("text (\"{s}\")"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            _ => node.kind().to_string(),
        };
        // Quoted text that looks like the value wanted: say how to write it.
        let unquoted = match (&node.value, expected) {
            (Value::Str(s), "true or false") => match s.trim() {
                "true" | "yes" | "True" => Some("true"),
                "false" | "no" | "False" => Some("false"),
                _ => None,
            },
            (Value::Str(s), e) if e.contains("number") && s.trim().parse::<f64>().is_ok() => {
                Some(s.trim())
            }
            _ => None,
        };
        let hint = unquoted.map(|u| format!("write `{u}` without quotes"));
        let d = self.problem(node, format!("`{path}` must be {expected}, not {got}"));
        d.hint = hint;
    }

    pub fn str<'n>(&mut self, node: &'n Node, path: &KeyPath) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) => Some(s),
            _ => {
                self.wrong_type(node, path, "text");
                None
            }
        }
    }

    /// Non-empty text (a name: an id, a metric, a provider).
    pub fn name(&mut self, node: &Node, path: &KeyPath) -> Option<String> {
        let s = self.str(node, path)?;
        if s.trim().is_empty() {
            self.problem(node, format!("`{path}` must not be empty"));
            return None;
        }
        Some(s.to_string())
    }

    pub fn bool(&mut self, node: &Node, path: &KeyPath) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(node, path, "true or false");
                None
            }
        }
    }

    /// A finite number.
    pub fn number(&mut self, node: &Node, path: &KeyPath) -> Option<f64> {
        match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            _ => {
                self.wrong_type(node, path, "a number");
                None
            }
        }
    }

    /// A number in `[lo, hi]`.
    pub fn number_in(&mut self, node: &Node, path: &KeyPath, lo: f64, hi: f64) -> Option<f64> {
        let v = self.number(node, path)?;
        if !(lo..=hi).contains(&v) {
            self.problem(
                node,
                format!("`{path}` must be between {lo} and {hi}, not {v}"),
            );
            return None;
        }
        Some(v)
    }

    /// A whole number ≥ 0.
    pub fn count(&mut self, node: &Node, path: &KeyPath) -> Option<u64> {
        match &node.value {
            Value::Int(i) if *i >= 0 => Some(*i as u64),
            _ => {
                self.wrong_type(node, path, "a whole number (0 or more)");
                None
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, path: &KeyPath) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "a list");
                None
            }
        }
    }

    /// The entries of a mapping, each key checked against `allowed` (unknown keys are
    /// reported with the closest allowed one). `what` names the mapping in messages, e.g.
    /// "a `json_field` check".
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &KeyPath,
        allowed: &[&str],
        what: &str,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, path, "a mapping");
            return None;
        };
        for (k, _) in entries {
            if !allowed.contains(&k.name.as_str()) {
                self.unknown_key(k, path, allowed, what);
            }
        }
        Some(Fields { entries })
    }

    /// Report an unknown key as version files do: the key, its parent, what is accepted, the
    /// closest name.
    pub fn unknown_key(&mut self, key: &Key, parent: &KeyPath, allowed: &[&str], what: &str) {
        let parent_text = parent.to_string();
        let mut d = self.diagnostic(
            key.line,
            key.col,
            if parent_text.is_empty() {
                format!("unknown key `{}`", key.name)
            } else {
                format!("unknown key `{}` in `{parent_text}`", key.name)
            },
        );
        if !allowed.is_empty() {
            d = d.note(format!("{what} accepts {}", list_names(allowed)));
        }
        d = match did_you_mean(&key.name, allowed.iter().copied()) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint("remove the key, or check the file format in `docs/formats.md`"),
        };
        self.problems.push(d);
    }
}

/// A mapping's entries, looked up by key.
pub struct Fields<'n> {
    pub entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }
}

/// `parent.key` as a key path.
pub fn child(parent: &KeyPath, key: &str) -> KeyPath {
    let mut p = parent.clone();
    p.0.push(Seg::Key(key.to_string()));
    p
}

/// `parent[i]` as a key path.
pub fn item(parent: &KeyPath, i: usize) -> KeyPath {
    let mut p = parent.clone();
    p.0.push(Seg::Index(i));
    p
}

/// [`check_bounds`] with the default limits, for a file about to be parsed by serde.
pub fn bounded(file: &Path, text: &str) -> Result<(), Diagnostic> {
    check_bounds(Source { file, text }, Limits::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Option<Node>, Diagnostic> {
        parse(
            Source {
                file: Path::new("t.yaml"),
                text,
            },
            Limits::default(),
        )
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(plain("true"), Value::Bool(true));
        assert_eq!(plain("yes"), Value::Str("yes".into()));
        assert_eq!(plain("3"), Value::Int(3));
        assert_eq!(plain("-3"), Value::Int(-3));
        assert_eq!(plain("0x1f"), Value::Int(31));
        assert_eq!(plain("0o17"), Value::Int(15));
        assert_eq!(plain("0.5"), Value::Float(0.5));
        assert_eq!(plain(".5"), Value::Float(0.5));
        assert_eq!(plain("1e3"), Value::Float(1000.0));
        assert_eq!(plain("1."), Value::Float(1.0));
        assert_eq!(plain("~"), Value::Null);
        assert_eq!(plain("1.2.3"), Value::Str("1.2.3".into()));
        assert_eq!(plain("e3"), Value::Str("e3".into()));
        assert_eq!(plain("."), Value::Str(".".into()));
        assert_eq!(plain("-"), Value::Str("-".into()));
        assert_eq!(plain("99999999999999999999"), Value::Float(1e20));
        assert!(matches!(plain(".nan"), Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn nodes_and_keys_know_their_place() {
        let doc = "a: 1\nlist:\n  - x\n  - { k: \"2\", m: [true, ~] }\n";
        let root = parse_str(doc).unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!(entries[1].0.name, "list");
        assert_eq!((entries[1].0.line, entries[1].0.col), (2, 1));
        let list = &entries[1].1;
        let Value::Seq(items) = &list.value else {
            panic!()
        };
        assert_eq!((items[0].line, items[0].col), (3, 5));
        let k = items[1].get("k").unwrap();
        assert_eq!(k.value, Value::Str("2".into()));
        assert_eq!((k.line, k.col), (4, 10));
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": 1, "list": ["x", {"k": "2", "m": [true, null]}]})
        );
    }

    #[test]
    fn limits_stop_deep_and_exploding_documents() {
        for (what, text) in hostile() {
            let t = std::time::Instant::now();
            let e = parse_str(&text).unwrap_err();
            assert!(e.message.contains(what), "{e}");
            assert!(t.elapsed().as_millis() < 500);
        }
    }

    /// Documents that stop a parser: (what the refusal says, the document).
    fn hostile() -> Vec<(&'static str, String)> {
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9 {
            let prev = (b'a' + i) as char;
            let next = (b'a' + i + 1) as char;
            laughs.push_str(&format!(
                "{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        vec![
            ("levels deep", format!("m:\n  {}x\n", "- ".repeat(100_000))),
            (
                "YAML",
                format!("m: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
            ),
            ("values", laughs),
        ]
    }

    #[test]
    fn bounds_are_checked_in_one_pass_that_stops_at_the_limit() {
        let src = |text: &str| {
            check_bounds(
                Source {
                    file: Path::new("v.yaml"),
                    text,
                },
                Limits::default(),
            )
        };
        assert!(src("a: [1, {b: c}]\n").is_ok());
        for (what, text) in hostile() {
            let t = std::time::Instant::now();
            let e = src(&text).unwrap_err();
            assert!(e.message.contains(what), "{e}");
            assert!(t.elapsed().as_millis() < 100, "{:?}", t.elapsed());
        }
        let big = "a: b\n".repeat(2 << 20);
        let e = src(&big).unwrap_err();
        assert!(e.message.contains("bytes"), "{e}");
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_placed() {
        let e = parse_str("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            e.message.contains("duplicate key `a` (first at line 1)"),
            "{e}"
        );
        assert_eq!(e.location.as_ref().unwrap().line, 3);
        let e = parse_str("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        assert!(parse_str("").unwrap().is_none());
        assert!(parse_str("# only a comment\n").unwrap().is_none());
        let e = parse_str("a: !!int x\n").unwrap_err();
        assert!(e.message.contains("!!int"), "{e}");
        assert_eq!(
            parse_str("a: !!str 3\n")
                .unwrap()
                .unwrap()
                .get("a")
                .unwrap()
                .value,
            Value::Str("3".into())
        );
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let root = parse_str("base: &b { x: 1 }\nother: *b\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            root.get("other").unwrap().get("x").unwrap().value,
            Value::Int(1)
        );
    }

    #[test]
    fn decoding_reports_wrong_types_and_unknown_keys_with_places() {
        let text = "check:\n  trim: \"yes\"\n  tolerence: 1\n";
        let root = parse_str(text).unwrap().unwrap();
        let mut d = Decoder::new(Source {
            file: Path::new("s.yaml"),
            text,
        });
        let path = child(&KeyPath::default(), "check");
        let fields = d
            .map(
                root.get("check").unwrap(),
                &path,
                &["trim", "tolerance"],
                "a check",
            )
            .unwrap();
        d.bool(fields.get("trim").unwrap(), &child(&path, "trim"));
        assert_eq!(d.problems.len(), 2);
        let unknown = d.problems[0].to_string();
        assert!(
            unknown.contains("unknown key `tolerence` in `check`"),
            "{unknown}"
        );
        assert!(unknown.contains("s.yaml:3:3"), "{unknown}");
        assert!(unknown.contains("did you mean `tolerance`?"), "{unknown}");
        let typed = d.problems[1].to_string();
        assert!(
            typed.contains("`check.trim` must be true or false, not text (\"yes\")"),
            "{typed}"
        );
        assert!(typed.contains("s.yaml:2:9"), "{typed}");
        assert!(typed.contains("write `true` without quotes"), "{typed}");
    }
}
