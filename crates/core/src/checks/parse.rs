//! The `checks:` parser: one typed reading per check type, each accepting only its own
//! options, with every problem placed (file:line:column and key path) and a did-you-mean.
//! Templated values are compiled here and the variables they read are recorded, so a run can
//! refuse a check whose variables a case does not have before the first call.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::{Check, Kind, Text, defaults};
use crate::artifact::locate::KeyPath;
use crate::error::{Diagnostic, Error, ErrorKind, Result, did_you_mean, list_names};
use crate::yaml::{Decoder, Node, Value, child};

/// Keys every check entry may have besides its type.
pub const COMMON: &[&str] = &["id", "metric", "weight"];

/// Every check type and the options only it takes.
pub const TYPES: &[(&str, &[&str])] = &[
    (
        "equals",
        &["trim", "case_insensitive", "collapse_whitespace"],
    ),
    ("contains", &[]),
    ("icontains", &[]),
    ("contains_all", &[]),
    ("contains_any", &[]),
    ("starts_with", &[]),
    ("regex", &[]),
    ("min_length", &[]),
    ("max_length", &[]),
    ("min_words", &[]),
    ("max_words", &[]),
    ("edit_similarity", &["threshold"]),
    ("json_valid", &[]),
    ("json_schema", &[]),
    ("json_field", &[]),
    ("tool_call", &[]),
    ("latency_ms", &[]),
    ("cost", &[]),
    ("output_tokens", &[]),
    ("judge", &["scale", "attempts", "pairwise"]),
    ("similar", &["threshold"]),
    ("not", &[]),
];

/// The keys of `json_field`'s mapping.
const JSON_FIELD_KEYS: &[&str] = &["path", "equals", "tolerance"];
/// The keys of `tool_call`'s mapping.
const TOOL_CALL_KEYS: &[&str] = &["name", "arguments"];

fn type_names() -> impl Iterator<Item = &'static str> {
    TYPES.iter().map(|(t, _)| *t)
}

fn options_of(ty: &str) -> &'static [&'static str] {
    TYPES
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, o)| *o)
        .unwrap_or(&[])
}

/// The types that take `option` (`tolerance` belongs inside `json_field`'s mapping).
fn owners_of(option: &str) -> Vec<&'static str> {
    if JSON_FIELD_KEYS.contains(&option) && option != "equals" {
        return vec!["json_field"];
    }
    TYPES
        .iter()
        .filter(|(_, opts)| opts.contains(&option))
        .map(|(t, _)| *t)
        .collect()
}

/// Whether `s` is exactly `{{ name.attr.attr }}`: then every step of the path must exist in
/// each case, not only the first.
fn plain_path(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let ident = |p: &str| {
        let mut c = p.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    (!inner.is_empty() && inner.split('.').all(ident)).then_some(inner)
}

/// The variables a template reads: the whole attribute path when the template is one plain
/// path (`{{ expected_json.escalate }}`), else the names it starts from (what a filter, a
/// test or a method does with them cannot be known before the run); minus the environment's
/// globals. Unknown filters and tests are errors.
fn template_variables(source: &str) -> std::result::Result<BTreeSet<String>, String> {
    let env = crate::artifact::template::environment();
    let compile_error = |e: minijinja::Error| {
        e.detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string())
    };
    let used = if super::is_single_expression(source) {
        env.compile_expression(super::expression_of(source))
            .map_err(compile_error)?
            .undeclared_variables(false)
    } else {
        env.template_from_str(source)
            .map_err(compile_error)?
            .undeclared_variables(false)
    };
    if let Some(u) = crate::artifact::template::unknown_filters_and_tests(source).first() {
        return Err(match u.suggestion {
            Some(s) => format!("{u} (did you mean `{s}`?)"),
            None => u.to_string(),
        });
    }
    let globals: BTreeSet<&str> = env.globals().map(|(n, _)| n).collect();
    let mut out: BTreeSet<String> = used
        .into_iter()
        .filter(|v| !globals.contains(v.as_str()))
        .collect();
    if let Some(path) = plain_path(source)
        && out.remove(path.split('.').next().unwrap_or(path))
    {
        out.insert(path.to_string());
    }
    Ok(out)
}

struct Parser<'d, 'a> {
    d: &'d mut Decoder<'a>,
    /// Variables the entry being parsed reads.
    vars: BTreeSet<String>,
}

impl Parser<'_, '_> {
    /// A text value, maybe a template; compiled now.
    fn text(&mut self, node: &Node, path: &KeyPath) -> Option<Text> {
        let s = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => f.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                self.d.wrong_type(node, path, "text");
                return None;
            }
        };
        if is_template(&s) {
            match template_variables(&s) {
                Ok(v) => self.vars.extend(v),
                Err(e) => {
                    self.d.problem(
                        node,
                        format!("`{path}`: `{s}` is not a valid template: {e}"),
                    );
                    return None;
                }
            }
        }
        Some(Text(s))
    }

    fn texts(&mut self, node: &Node, path: &KeyPath) -> Option<Vec<Text>> {
        let items = self.d.seq(node, path)?;
        let out: Vec<Option<Text>> = items
            .iter()
            .enumerate()
            .map(|(i, n)| self.text(n, &crate::yaml::item(path, i)))
            .collect();
        out.into_iter().collect()
    }

    /// A value compared with an output (`json_field.equals`, tool arguments): a string that is
    /// a template is compiled and its variables recorded; anything else is a literal.
    fn templated(&mut self, node: &Node, path: &KeyPath) -> Option<Json> {
        let json = node.to_json();
        if let Json::String(s) = &json
            && is_template(s)
        {
            match template_variables(s) {
                Ok(v) => self.vars.extend(v),
                Err(e) => {
                    self.d.problem(
                        node,
                        format!("`{path}`: `{s}` is not a valid template: {e}"),
                    );
                    return None;
                }
            }
        }
        Some(json)
    }

    fn count(&mut self, node: &Node, path: &KeyPath) -> Option<usize> {
        self.d.count(node, path).map(|n| n as usize)
    }

    fn limit(&mut self, node: &Node, path: &KeyPath) -> Option<f64> {
        let v = self.d.number(node, path)?;
        if v < 0.0 {
            self.d
                .problem(node, format!("`{path}` must not be negative, not {v}"));
            return None;
        }
        Some(v)
    }

    /// One entry of a `checks:` list.
    fn entry(&mut self, node: &Node, path: &KeyPath, index: usize) -> Option<Check> {
        let Value::Map(entries) = &node.value else {
            self.d
                .problem(
                    node,
                    format!("`{path}`: a check is a mapping, not {}", node.kind()),
                )
                .hint =
                Some("e.g. `- contains: refund`, with optional `id`, `metric`, `weight`".into());
            return None;
        };
        let (ty_key, value) = self.check_type(node, entries, path)?;
        let ty = ty_key.name.as_str();
        self.report_unknown_options(ty, entries, path);
        let get = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);
        let here = child(path, ty);
        let opt_path = |k: &str| child(path, k);

        let id = get("id").and_then(|n| self.d.name(n, &opt_path("id")));
        let metric = get("metric").and_then(|n| self.d.name(n, &opt_path("metric")));
        let weight = match get("weight") {
            None => None,
            Some(n) => match self.d.number(n, &opt_path("weight")) {
                Some(w) if w < 0.0 => {
                    self.d.problem(
                        n,
                        format!(
                            "`{}`: a weight cannot be negative, not {w}",
                            opt_path("weight")
                        ),
                    );
                    None
                }
                other => other,
            },
        };
        if ty == "not" {
            let inner = self.entry(value, &here, index)?;
            return Some(Check {
                id: id.unwrap_or_else(|| format!("not_{}", inner.id)),
                metric: metric.unwrap_or(inner.metric),
                weight: weight.unwrap_or(inner.weight),
                negate: !inner.negate,
                kind: inner.kind,
                vars: inner.vars,
                origin: self.origin(node),
            });
        }

        let kind = self.kind(ty, value, entries, path)?;
        let vars = std::mem::take(&mut self.vars).into_iter().collect();
        Some(Check {
            id: id.unwrap_or_else(|| format!("{ty}#{index}")),
            metric: metric.unwrap_or_else(|| defaults::METRIC.to_string()),
            weight: weight.unwrap_or(defaults::WEIGHT),
            negate: false,
            kind,
            vars,
            origin: self.origin(node),
        })
    }

    /// The entry's one check type and its value (a problem, and `None`, for none or several).
    fn check_type<'n>(
        &mut self,
        node: &Node,
        entries: &'n [(crate::yaml::Key, Node)],
        path: &KeyPath,
    ) -> Option<(&'n crate::yaml::Key, &'n Node)> {
        let types: Vec<&(crate::yaml::Key, Node)> = entries
            .iter()
            .filter(|(k, _)| type_names().any(|t| t == k.name))
            .collect();
        match types.as_slice() {
            [one] => Some((&one.0, &one.1)),
            [] => {
                // A misspelt type is the likeliest cause.
                let misspelt = entries.iter().find_map(|(k, _)| {
                    let s = did_you_mean(&k.name, type_names())?;
                    (!COMMON.contains(&k.name.as_str())).then_some((k, s))
                });
                let d = match misspelt {
                    Some((k, s)) => self
                        .d
                        .diagnostic(
                            k.line,
                            k.col,
                            format!("`{path}`: unknown check type `{}`", k.name),
                        )
                        .hint(format!("did you mean `{s}`?")),
                    None => self
                        .d
                        .diagnostic(node.line, node.col, format!("`{path}` has no check type"))
                        .note(format!(
                            "check types: {}",
                            list_names(&type_names().collect::<Vec<_>>())
                        )),
                };
                self.d.problems.push(d);
                None
            }
            many => {
                let second = &many[1].0;
                let names: Vec<&str> = many.iter().map(|(k, _)| k.name.as_str()).collect();
                self.d.problems.push(
                    self.d
                        .diagnostic(
                            second.line,
                            second.col,
                            format!(
                                "`{path}`: one check type per entry, found {}",
                                list_names(&names)
                            ),
                        )
                        .hint("split it into one list entry per check"),
                );
                None
            }
        }
    }

    /// Report every key that is neither the type, a common option nor one of the type's own
    /// (naming who takes it, or the closest name).
    fn report_unknown_options(
        &mut self,
        ty: &str,
        entries: &[(crate::yaml::Key, Node)],
        path: &KeyPath,
    ) {
        let own = options_of(ty);
        for (k, _) in entries {
            let name = k.name.as_str();
            if name == ty || COMMON.contains(&name) || own.contains(&name) {
                continue;
            }
            let owners = owners_of(name);
            if !owners.is_empty() {
                let d = self
                    .d
                    .diagnostic(
                        k.line,
                        k.col,
                        format!("`{name}` is not an option of `{ty}` (at `{path}`)"),
                    )
                    .note(if owners == ["json_field"] {
                        format!(
                            "`{name}` belongs inside `json_field: {{ path, equals, tolerance }}`"
                        )
                    } else {
                        format!("`{name}` belongs to {}", list_names(&owners))
                    });
                let d = if own.is_empty() {
                    d.hint(format!(
                        "`{ty}` takes no options besides `id`, `metric` and `weight`"
                    ))
                } else {
                    d.hint(format!("`{ty}` takes {}", list_names(own)))
                };
                self.d.problems.push(d);
                continue;
            }
            let mut allowed: Vec<&str> = COMMON.to_vec();
            allowed.extend(own);
            let candidates: Vec<&str> = allowed.iter().copied().chain(type_names()).collect();
            let mut d = self
                .d
                .diagnostic(k.line, k.col, format!("unknown key `{name}` in `{path}`"))
                .note(format!("a `{ty}` check accepts {}", list_names(&allowed)));
            d = match did_you_mean(name, candidates) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint("remove the key, or see `checks:` in `docs/formats.md`"),
            };
            self.d.problems.push(d);
        }
    }

    /// The check a `ty` entry with `value` (and its options among `entries`) describes.
    fn kind(
        &mut self,
        ty: &str,
        value: &Node,
        entries: &[(crate::yaml::Key, Node)],
        path: &KeyPath,
    ) -> Option<Kind> {
        let get = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);
        let here = child(path, ty);
        let opt_path = |k: &str| child(path, k);
        let flag = |p: &mut Self, key: &str| -> bool {
            get(key)
                .and_then(|n| p.d.bool(n, &opt_path(key)))
                .unwrap_or(false)
        };
        Some(match ty {
            "equals" => {
                let value = self.text(value, &here);
                let (trim, case_insensitive, collapse_whitespace) = (
                    flag(self, "trim"),
                    flag(self, "case_insensitive"),
                    flag(self, "collapse_whitespace"),
                );
                Kind::Equals {
                    value: value?,
                    trim,
                    case_insensitive,
                    collapse_whitespace,
                }
            }
            "contains" => Kind::Contains(self.text(value, &here)?),
            "icontains" => Kind::IContains(self.text(value, &here)?),
            "starts_with" => Kind::StartsWith(self.text(value, &here)?),
            "contains_all" => Kind::ContainsAll(self.texts(value, &here)?),
            "contains_any" => Kind::ContainsAny(self.texts(value, &here)?),
            "regex" => self.regex(value, &here)?,
            "min_length" => Kind::MinLength(self.count(value, &here)?),
            "max_length" => Kind::MaxLength(self.count(value, &here)?),
            "min_words" => Kind::MinWords(self.count(value, &here)?),
            "max_words" => Kind::MaxWords(self.count(value, &here)?),
            "edit_similarity" => {
                let v = self.text(value, &here);
                let threshold = match get("threshold") {
                    None => Some(defaults::EDIT_SIMILARITY_THRESHOLD),
                    Some(t) => self.d.number_in(t, &opt_path("threshold"), 0.0, 1.0),
                };
                Kind::EditSimilarity {
                    value: v?,
                    threshold: threshold?,
                }
            }
            "similar" => {
                let v = self.text(value, &here);
                let threshold = match get("threshold") {
                    None => Some(defaults::SIMILAR_THRESHOLD),
                    Some(t) => self.d.number_in(t, &opt_path("threshold"), -1.0, 1.0),
                };
                Kind::Similar {
                    value: v?,
                    threshold: threshold?,
                }
            }
            "json_valid" => self.json_valid(value, &here)?,
            "json_schema" => self.json_schema(value, &here)?,
            "json_field" => self.json_field(value, &here)?,
            "tool_call" => self.tool_call(value, &here)?,
            "latency_ms" => Kind::LatencyMs(self.limit(value, &here)?),
            "cost" => Kind::Cost(self.limit(value, &here)?),
            "output_tokens" => Kind::OutputTokens(self.d.count(value, &here)?),
            "judge" => self.judge(value, &here, entries, path)?,
            _ => {
                self.d.problem(value, format!("`{ty}` is not a check type"));
                return None;
            }
        })
    }

    /// `regex: PATTERN`, compiled now: a bad pattern is the suite's mistake, said before any call.
    fn regex(&mut self, value: &Node, here: &KeyPath) -> Option<Kind> {
        let pattern = self.d.str(value, here)?;
        match regex::Regex::new(pattern) {
            Ok(re) => Some(Kind::Regex(re)),
            Err(e) => {
                self.d
                    .problem(value, format!("`{here}`: invalid regular expression: {e}"))
                    .hint =
                    Some("the syntax is Rust's `regex` crate (RE2-like; no look-around)".into());
                None
            }
        }
    }

    /// `json_valid: true`.
    fn json_valid(&mut self, value: &Node, here: &KeyPath) -> Option<Kind> {
        Some(match value.value {
            Value::Bool(true) => Kind::JsonValid,
            _ => {
                self.d
                    .problem(
                        value,
                        format!("`{here}` takes `true`, not {}", node_text(value)),
                    )
                    .hint =
                    Some("write `- json_valid: true`; to require invalid JSON use `not:`".into());
                return None;
            }
        })
    }

    /// `json_schema: output` (the version's output schema) or an inline schema, checked now.
    fn json_schema(&mut self, value: &Node, here: &KeyPath) -> Option<Kind> {
        Some(match &value.value {
            Value::Str(s) if s == "output" => Kind::JsonSchema(None),
            Value::Bool(true) => Kind::JsonSchema(None),
            Value::Map(_) => {
                let schema = value.to_json();
                if let Some(p) = crate::artifact::schema_problem(&schema) {
                    self.d
                        .problem(value, format!("`{here}`: invalid JSON Schema: {p}"));
                    return None;
                }
                Kind::JsonSchema(Some(schema))
            }
            _ => {
                self.d
                    .problem(
                        value,
                        format!(
                            "`{here}` must be `output` (the version's output_schema) or a schema, not {}",
                            node_text(value)
                        ),
                    );
                return None;
            }
        })
    }

    /// `json_field: { path, equals, tolerance? }`: a JSON pointer or dotted path, and the value
    /// (templated) it must have.
    fn json_field(&mut self, value: &Node, here: &KeyPath) -> Option<Kind> {
        let fields = self.d.map(value, here, JSON_FIELD_KEYS, "`json_field`")?;
        let path_node = fields.get("path");
        let equals_node = fields.get("equals");
        if path_node.is_none() || equals_node.is_none() {
            let missing: Vec<&str> = [("path", path_node), ("equals", equals_node)]
                .iter()
                .filter(|(_, n)| n.is_none())
                .map(|(k, _)| *k)
                .collect();
            self.d
                .problem(value, format!("`{here}` needs {}", list_names(&missing)))
                .hint = Some("e.g. `json_field: { path: /answer/lang, equals: \"en\" }` (a JSON pointer, or a dotted path like `answer.lang`)".into());
            return None;
        }
        let (path_node, equals_node) = (path_node?, equals_node?);
        let pointer =
            self.d
                .str(path_node, &child(here, "path"))
                .and_then(|p| match to_pointer(p) {
                    Ok(ptr) => Some(ptr),
                    Err(e) => {
                        self.d
                            .problem(path_node, format!("`{}`: {e}", child(here, "path")));
                        None
                    }
                });
        let equals = self.templated(equals_node, &child(here, "equals"));
        let tolerance = match fields.get("tolerance") {
            None => Some(defaults::NUMERIC_TOLERANCE),
            Some(t) => self.limit(t, &child(here, "tolerance")),
        };
        Some(Kind::JsonField {
            pointer: pointer?,
            equals: equals?,
            tolerance: tolerance?,
        })
    }

    /// `tool_call: NAME` or `{ name, arguments? }`, the arguments templated.
    fn tool_call(&mut self, value: &Node, here: &KeyPath) -> Option<Kind> {
        Some(match &value.value {
            Value::Str(name) if !name.is_empty() => Kind::ToolCall {
                name: name.clone(),
                arguments: None,
            },
            Value::Map(_) => {
                let fields = self.d.map(value, here, TOOL_CALL_KEYS, "`tool_call`")?;
                let Some(name_node) = fields.get("name") else {
                    self.d.problem(value, format!("`{here}` needs `name`")).hint =
                        Some("e.g. `tool_call: { name: search_kb, arguments: { query: \"{{ question }}\" } }`".into());
                    return None;
                };
                let name = self.d.str(name_node, &child(here, "name"));
                let arguments = match fields.get("arguments") {
                    None => Some(None),
                    Some(a) => {
                        let apath = child(here, "arguments");
                        match &a.value {
                            Value::Map(entries) => {
                                let mut obj = serde_json::Map::new();
                                let mut ok = true;
                                for (k, v) in entries {
                                    match self.templated(v, &child(&apath, &k.name)) {
                                        Some(j) => {
                                            obj.insert(k.name.clone(), j);
                                        }
                                        None => ok = false,
                                    }
                                }
                                ok.then_some(Some(Json::Object(obj)))
                            }
                            _ => {
                                self.d.wrong_type(
                                    a,
                                    &apath,
                                    "a mapping of argument names to values",
                                );
                                None
                            }
                        }
                    }
                };
                Kind::ToolCall {
                    name: name?.to_string(),
                    arguments: arguments?,
                }
            }
            _ => {
                self.d
                    .wrong_type(value, here, "a tool name or `{ name, arguments }`");
                return None;
            }
        })
    }

    /// `judge: PROMPT@VERSION` with `scale`, `attempts` and `pairwise` beside it.
    fn judge(
        &mut self,
        value: &Node,
        here: &KeyPath,
        entries: &[(crate::yaml::Key, Node)],
        path: &KeyPath,
    ) -> Option<Kind> {
        let get = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);
        let opt_path = |k: &str| child(path, k);
        let reference = match &value.value {
            Value::Str(r) if r.contains('@') && !r.starts_with('@') && !r.ends_with('@') => {
                Some(r.clone())
            }
            _ => {
                self.d
                    .problem(
                        value,
                        format!(
                            "`{here}` must name a judge prompt with a version or label, not {}",
                            node_text(value)
                        ),
                    )
                    .hint = Some("e.g. `judge: judges/correctness@production`".into());
                None
            }
        };
        let scale = match get("scale") {
            None => Some((0.0, 1.0)),
            Some(s) => self.scale(s, &opt_path("scale")),
        };
        let attempts = match get("attempts") {
            None => Some(defaults::JUDGE_ATTEMPTS),
            Some(a) => match a.value {
                Value::Int(n @ 1..=10) => Some(n as u32),
                _ => {
                    self.d
                        .wrong_type(a, &opt_path("attempts"), "a whole number from 1 to 10");
                    None
                }
            },
        };
        let pairwise = get("pairwise")
            .and_then(|n| self.d.bool(n, &opt_path("pairwise")))
            .unwrap_or(false);
        Some(Kind::Judge {
            reference: reference?,
            scale: scale?,
            attempts: attempts?,
            pairwise,
        })
    }

    fn origin(&self, node: &Node) -> Option<Box<crate::error::Location>> {
        if self.d.context.is_some() {
            return None;
        }
        self.d.source.location(node.line, node.col).map(Box::new)
    }

    fn scale(&mut self, node: &Node, path: &KeyPath) -> Option<(f64, f64)> {
        if let Value::Seq(items) = &node.value
            && let [lo, hi] = items.as_slice()
        {
            let lo_v = self.d.number(lo, &crate::yaml::item(path, 0));
            let hi_v = self.d.number(hi, &crate::yaml::item(path, 1));
            let (lo_v, hi_v) = (lo_v?, hi_v?);
            if lo_v < hi_v {
                return Some((lo_v, hi_v));
            }
            self.d.problem(
                node,
                format!(
                    "`{path}`: the lowest value must be below the highest, not [{lo_v}, {hi_v}]"
                ),
            );
            return None;
        }
        self.d
            .wrong_type(node, path, "`[lowest, highest]`, e.g. `[1, 5]`");
        None
    }
}

fn node_text(n: &Node) -> String {
    match &n.value {
        Value::Str(s) => format!("\"{s}\""),
        Value::Bool(b) => format!("`{b}`"),
        Value::Int(i) => format!("`{i}`"),
        _ => n.kind().to_string(),
    }
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// `answer.text` or `/answer/text` → a JSON pointer (RFC 6901: `~0` is `~`, `~1` is `/`, and
/// a `~` followed by anything else is an error).
pub fn to_pointer(path: &str) -> std::result::Result<String, String> {
    let pointer = if path.starts_with('/') || path.is_empty() {
        path.to_string()
    } else {
        if path.split('.').any(str::is_empty) {
            return Err(format!(
                "`{path}` is not a dotted path (an empty segment between dots)"
            ));
        }
        format!(
            "/{}",
            path.split('.')
                .map(|s| s.replace('~', "~0").replace('/', "~1"))
                .collect::<Vec<_>>()
                .join("/")
        )
    };
    let mut chars = pointer.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{path}` is not a valid JSON pointer: `~` must be followed by 0 or 1 (RFC 6901)"
            ));
        }
    }
    Ok(pointer)
}

/// Parse a `checks:` list (a node of a suite, or a dataset row's column), reporting every
/// problem into the decoder; duplicate ids are problems too.
pub fn checks_of(d: &mut Decoder<'_>, node: &Node, path: &KeyPath) -> Vec<Check> {
    let Some(items) = d.seq(node, path) else {
        return vec![];
    };
    let mut out: Vec<(Check, &Node)> = Vec::new();
    for (i, entry) in items.iter().enumerate() {
        let parsed = Parser {
            d: &mut *d,
            vars: BTreeSet::new(),
        }
        .entry(entry, &crate::yaml::item(path, i), i);
        if let Some(c) = parsed {
            if let Some((_, first)) = out.iter().find(|(o, _)| o.id == c.id) {
                let first_line = first.line;
                d.problem(
                    entry,
                    format!(
                        "`{}`: the check id `{}` is used twice",
                        crate::yaml::item(path, i),
                        c.id
                    ),
                )
                .hint = Some(if first_line > 0 {
                    format!("the first is at line {first_line}; give each check its own `id`")
                } else {
                    "give each check its own `id`".into()
                });
                continue;
            }
            out.push((c, entry));
        }
    }
    out.into_iter().map(|(c, _)| c).collect()
}

/// Parse one check given as JSON (an entry of a dataset row's `checks`, a test).
pub fn parse_check(
    entry: &Json,
    index: usize,
    file: &str,
) -> std::result::Result<Check, Diagnostic> {
    let mut d = Decoder::for_context(file.to_string());
    let node = Node::from_json(entry, 0);
    let path = crate::yaml::item(&child(&KeyPath::default(), "checks"), index);
    let mut p = Parser {
        d: &mut d,
        vars: BTreeSet::new(),
    };
    let parsed = p.entry(&node, &path, index);
    match (parsed, d.problems.into_iter().next()) {
        (Some(c), None) => Ok(c),
        (_, Some(first)) => Err(first),
        (None, None) => Err(Diagnostic::error(format!("`{path}` is not a valid check"))
            .in_context(file.to_string())),
    }
}

/// Parse a list of checks given as JSON, reporting every problem at once.
pub fn parse_checks(entries: &[Json], file: &str) -> Result<Vec<Check>> {
    let mut d = Decoder::for_context(file.to_string());
    let node = Node::from_json(&Json::Array(entries.to_vec()), 0);
    let checks = checks_of(&mut d, &node, &child(&KeyPath::default(), "checks"));
    if d.problems.is_empty() {
        Ok(checks)
    } else {
        Err(Error::many(ErrorKind::Usage, d.problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_exactly_one_dotted_name() {
        assert_eq!(
            plain_path("{{ expected_json.escalate }}"),
            Some("expected_json.escalate")
        );
        assert_eq!(plain_path(" {{expected}} "), Some("expected"));
        assert_eq!(plain_path("{{ _a.b_2 }}"), Some("_a.b_2"));
        for not in [
            "{{ expected | lower }}",
            "{{ a.b() }}",
            "{{ a[0] }}",
            "{{ a.2b }}",
            "{{ 1a }}",
            "{{ a. }}",
            "{{ }}",
            "x {{ a }}",
            "{{ a }} x",
            "{{ a-b }}",
            "{% if a %}{% endif %}",
        ] {
            assert_eq!(plain_path(not), None, "{not}");
        }
    }

    #[test]
    fn template_variables_keep_whole_paths_only_for_plain_paths() {
        let vars = |s: &str| {
            template_variables(s)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            vars("{{ expected_json.escalate }}"),
            ["expected_json.escalate"]
        );
        assert_eq!(
            vars("{{ expected_json.escalate | string }}"),
            ["expected_json"]
        );
        assert_eq!(vars("{{ q.upper() }} and {{ a }}"), ["a", "q"]);
        // Globals are not variables; names a template sets are not either.
        assert_eq!(
            vars("{% for i in range(3) %}{{ i }}{{ x }}{% endfor %}"),
            ["x"]
        );
        let e = template_variables("{{ a | uper }}").unwrap_err();
        assert!(
            e.contains("unknown filter `uper`") && e.contains("`upper`"),
            "{e}"
        );
        assert!(template_variables("{{ a ").is_err());
    }

    #[test]
    fn json_pointers_are_checked_and_dotted_paths_converted() {
        assert_eq!(to_pointer("answer.text").unwrap(), "/answer/text");
        assert_eq!(to_pointer("/a/b").unwrap(), "/a/b");
        assert_eq!(to_pointer("").unwrap(), "");
        assert_eq!(to_pointer("a~b.c/d").unwrap(), "/a~0b/c~1d");
        assert_eq!(to_pointer("/a~1b~0").unwrap(), "/a~1b~0");
        assert!(to_pointer("/a~2").is_err());
        assert!(to_pointer("/a~").is_err());
        assert!(to_pointer("a..b").is_err());
    }
}
