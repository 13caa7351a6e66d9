//! The prompt version model: parsing a version file with precise errors, validation, canonical
//! content hashing, and semantic diff.
//!
//! The file format is documented in `docs/formats.md`; the hash in [`canonical`].

pub mod canonical;
pub mod diff;
pub mod locate;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Diagnostic, Location, did_you_mean, list_names};
use locate::{KeyPath, locate};

/// One immutable prompt version, exactly as its file declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// What this version is for (part of its identity, like everything in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form metadata: owner, ticket, tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Value>,
    /// Provider, model and inference parameters.
    pub model: ModelParams,
    /// Declared template variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, Variable>,
    /// The chat messages, each a Jinja template.
    pub messages: Vec<Message>,
    /// Few-shot examples, expanded into user/assistant turns before the last user message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub few_shot: Vec<FewShot>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// JSON Schema the model's output must satisfy (sent as a structured-output format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

/// Provider, model and inference parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// A provider named in `promptgate.yaml` (e.g. `openai`, `anthropic`).
    pub provider: String,
    /// The model name the provider knows (e.g. `gpt-4o-mini`).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Provider-specific parameters passed through unchanged (e.g. `reasoning_effort`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
}

/// A declared template variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// The JSON type of the value (default `string`).
    #[serde(rename = "type", default)]
    pub kind: VarType,
    /// Used when a case or `--var` gives no value. Without a default the variable is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type of a variable's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    #[default]
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Any,
}

impl VarType {
    pub fn name(self) -> &'static str {
        match self {
            VarType::String => "string",
            VarType::Number => "number",
            VarType::Integer => "integer",
            VarType::Boolean => "boolean",
            VarType::Array => "array",
            VarType::Object => "object",
            VarType::Any => "any",
        }
    }

    /// Whether `value` has this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            VarType::String => value.is_string(),
            VarType::Number => value.is_number(),
            VarType::Integer => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            VarType::Boolean => value.is_boolean(),
            VarType::Array => value.is_array(),
            VarType::Object => value.is_object(),
            VarType::Any => true,
        }
    }

    /// Turn command-line text into a value of this type (`--var n=3` is a number when `n` is).
    pub fn coerce(self, text: &str) -> Result<Value, String> {
        let parsed = || serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
        let v = match self {
            VarType::String => return Ok(Value::String(text.to_string())),
            VarType::Any => parsed().unwrap_or_else(|_| Value::String(text.to_string())),
            _ => parsed()?,
        };
        if self.accepts(&v) {
            Ok(v)
        } else {
            Err(format!("expected {}, got `{text}`", self.name()))
        }
    }
}

/// A chat message template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: Role,
    /// Jinja template text.
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A few-shot example: `input` is either a literal user message (a string) or variables for
/// the version's last user template; `output` is the assistant's answer (a string, or JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShot {
    pub input: Value,
    pub output: Value,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object schema).
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

impl Artifact {
    /// The artifact as a JSON value (the input of the canonical hash).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The full content hash: SHA-256 of the canonical JSON of the parsed artifact.
    pub fn content_hash(&self) -> Result<String, String> {
        canonical::content_hash(&self.to_json())
    }

    /// The variables a caller must supply (declared without a default).
    pub fn required_variables(&self) -> impl Iterator<Item = &str> {
        self.variables
            .iter()
            .filter(|(_, v)| v.default.is_none())
            .map(|(k, _)| k.as_str())
    }
}

/// A version file, parsed and validated: the artifact, its hash and any warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub artifact: Artifact,
    pub hash: String,
    pub warnings: Vec<Diagnostic>,
}

/// Parse and validate the text of a version file. All problems are returned at once.
pub fn load(file: &Path, text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let artifact = parse(file, text).map_err(|d| vec![d])?;
    let (errors, warnings): (Vec<_>, Vec<_>) = validate(&artifact, file, text)
        .into_iter()
        .partition(|d| d.severity == crate::error::Severity::Error);
    if !errors.is_empty() {
        return Err(errors);
    }
    let hash = artifact.content_hash().map_err(|e| {
        vec![
            Diagnostic::error(format!("cannot hash this version: {e}"))
                .in_context(file.display().to_string()),
        ]
    })?;
    Ok(Loaded {
        artifact,
        hash,
        warnings,
    })
}

/// The names of the keys a struct accepts, for "expected one of" notes. Kept beside the
/// struct definitions above.
fn keys_of(context: &str) -> &'static [&'static str] {
    match context {
        "" => &[
            "description",
            "metadata",
            "model",
            "variables",
            "messages",
            "few_shot",
            "tools",
            "output_schema",
        ],
        "model" => &[
            "provider",
            "name",
            "temperature",
            "max_tokens",
            "top_p",
            "stop",
            "seed",
            "params",
        ],
        _ => &[],
    }
}

/// Parse a version file's YAML into an [`Artifact`], rejecting unknown keys.
pub fn parse(file: &Path, text: &str) -> Result<Artifact, Diagnostic> {
    if text.trim().is_empty() {
        return Err(Diagnostic::error("the version file is empty")
            .in_context(file.display().to_string())
            .hint("a version needs at least `model:` and `messages:`; see `docs/formats.md`"));
    }
    crate::yaml::bounded(file, text)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Artifact>(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        yaml_error_diagnostic(file, text, &path, &inner, keys_of)
    })
}

/// Turn a serde_yaml error into a diagnostic with file, line, column, key path and a hint.
/// `keys_of(path)` lists the accepted keys at a path, for the "did you mean" hint.
pub fn yaml_error_diagnostic(
    file: &Path,
    text: &str,
    path: &str,
    err: &serde_yaml_ng::Error,
    keys_of: fn(&str) -> &'static [&'static str],
) -> Diagnostic {
    let raw = err.to_string();
    // serde_yaml's text is "<yaml path>: <message> at line L column C"; keep the message only.
    let mut msg = raw.clone();
    if let Some(i) = msg.find(" at line ") {
        // libyaml puts the position mid-sentence: "… at line 2 column 9, while parsing …".
        let after = &msg[i + " at line ".len()..];
        let skip = after.find(',').map(|j| j + 1).unwrap_or(after.len());
        msg = format!("{}{}", &msg[..i], &after[skip..]);
    }
    if let Some((pre, rest)) = msg.split_once(": ")
        && !pre.contains(' ')
        && !pre.is_empty()
    {
        msg = rest.to_string();
    }
    let location = err
        .location()
        .map(|l| Location::in_text(file, text, l.line(), l.column()));
    let path = if path == "." || path.ends_with('?') {
        String::new()
    } else {
        path.to_string()
    };
    if msg.contains("while parsing")
        || msg.contains("while scanning")
        || msg.starts_with("did not find")
    {
        let mut d = Diagnostic::error(format!("invalid YAML: {}", msg.trim())).at(location);
        d = d.hint(if msg.contains("flow mapping") {
            "a `{` opened at or before this line is not closed with `}` (or a `,` is missing)"
        } else if msg.contains("flow sequence") {
            "a `[` opened at or before this line is not closed with `]` (or a `,` is missing)"
        } else {
            "check the indentation, quotes and brackets near this line"
        });
        return d;
    }

    // Unknown keys: name the key and its parent, list what is accepted, suggest the closest.
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((key, tail)) = rest.split_once('`')
    {
        let parent = parent_of(&path, key);
        let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let mut d = Diagnostic::error(if parent.is_empty() {
            format!("unknown key `{key}`")
        } else {
            format!("unknown key `{key}` in `{parent}`")
        })
        .at(location);
        if !expected.is_empty() {
            d = d.note(format!("expected one of {}", list_names(&expected)));
        }
        let candidates: Vec<&str> = if expected.is_empty() {
            keys_of(&parent).to_vec()
        } else {
            expected
        };
        return match did_you_mean(key, candidates) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint("remove the key, or check the file format in `docs/formats.md`"),
        };
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((key, _)) = rest.split_once('`')
    {
        let d = Diagnostic::error(if path.is_empty() {
            format!("missing required key `{key}`")
        } else {
            format!("missing required key `{key}` in `{path}`")
        })
        .at(location);
        return d.hint(format!("add `{key}:`; see `docs/formats.md`"));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((val, tail)) = rest.split_once('`')
    {
        let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let mut d = Diagnostic::error(format!("`{val}` is not a valid value for `{path}`"))
            .at(location)
            .note(format!("expected one of {}", list_names(&expected)));
        if let Some(s) = did_you_mean(val, expected) {
            d = d.hint(format!("did you mean `{s}`?"));
        }
        return d;
    }
    let d = Diagnostic::error(if path.is_empty() {
        msg
    } else {
        format!("{msg} (at `{path}`)")
    })
    .at(location);
    if err.location().is_none() {
        d.in_context(file.display().to_string())
    } else {
        d
    }
}

/// serde_path_to_error reports the path *including* the unknown key; drop it to get the parent.
fn parent_of(path: &str, key: &str) -> String {
    if path == key {
        return String::new();
    }
    path.strip_suffix(&format!(".{key}"))
        .unwrap_or(path)
        .to_string()
}

/// Check what parsing cannot: templates compile, every variable used is declared, schemas are
/// valid JSON Schemas, tool names are unique, parameters are in range.
pub fn validate(a: &Artifact, file: &Path, text: &str) -> Vec<Diagnostic> {
    let mut v = Validation {
        a,
        file,
        text,
        out: Vec::new(),
    };
    if a.messages.is_empty() {
        let d = v.err_at(
            &KeyPath::default().key("messages"),
            "`messages` is empty".into(),
        );
        v.out.push(d.hint(
            "add at least one message, e.g. `- { role: user, content: \"{{ question }}\" }`",
        ));
    }
    let declared: BTreeSet<&str> = a.variables.keys().map(String::as_str).collect();
    let used = v.templates(&declared);
    v.few_shot(&declared);
    v.variables(&used);
    v.parameters();
    v.tools();
    v.output_schema();
    v.out
}

/// A version's checks, each part of the artifact on its own, every problem placed at its line.
struct Validation<'a> {
    a: &'a Artifact,
    file: &'a Path,
    text: &'a str,
    out: Vec<Diagnostic>,
}

impl Validation<'_> {
    fn at(&self, path: &KeyPath) -> Option<Location> {
        locate(self.text, path).map(|(l, c)| Location::in_text(self.file, self.text, l, c))
    }

    fn err_at(&self, path: &KeyPath, msg: String) -> Diagnostic {
        placed(Diagnostic::error(msg), self.at(path), self.file, path)
    }

    /// Templates compile, use known filters and tests, and only declared variables. Returns
    /// every variable some template uses.
    fn templates(&mut self, declared: &BTreeSet<&str>) -> BTreeSet<String> {
        let (a, file, text) = (self.a, self.file, self.text);
        let root = KeyPath::default();
        let mut used_anywhere: BTreeSet<String> = BTreeSet::new();
        for (i, m) in a.messages.iter().enumerate() {
            let path = root.clone().key("messages").index(i).key("content");
            match template::variables_used(&m.content) {
                Err(e) => {
                    let key_loc = locate(text, &path);
                    let tline = e.line().unwrap_or(1);
                    let loc = key_loc.map(|(l, c)| {
                        if locate::is_block_scalar(text, l) {
                            let line = l + tline;
                            let col = text
                                .lines()
                                .nth(line - 1)
                                .map(|s| s.len() - s.trim_start().len() + 1)
                                .unwrap_or(c);
                            Location::in_text(file, text, line, col)
                        } else {
                            Location::in_text(file, text, l, c)
                        }
                    });
                    let d = Diagnostic::error(format!(
                        "template error in `{path}`: {}",
                        e.detail().unwrap_or(&e.kind().to_string())
                    ));
                    self.out.push(placed(d, loc, file, &path).hint(
                        "check the Jinja syntax: `{{ variable }}`, `{% if … %}…{% endif %}`",
                    ));
                }
                Ok(vars) => {
                    for u in template::unknown_filters_and_tests(&m.content) {
                        let d = placed(
                            Diagnostic::error(format!("template in `{path}` uses {u}")),
                            template_location(file, text, &path, &m.content, &u.name)
                                .or_else(|| self.at(&path)),
                            file,
                            &path,
                        );
                        self.out.push(match u.suggestion {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d.hint(format!(
                                "minijinja's built-in {}s are listed at https://docs.rs/minijinja/latest/minijinja/{}s/",
                                u.what, u.what
                            )),
                        });
                    }
                    for v in vars {
                        if !declared.contains(v.as_str()) {
                            let mut d = placed(
                                Diagnostic::error(format!(
                                    "template in `{path}` uses undeclared variable `{v}`"
                                )),
                                template_location(file, text, &path, &m.content, &v)
                                    .or_else(|| self.at(&path)),
                                file,
                                &path,
                            );
                            d = match did_you_mean(&v, declared.iter().copied()) {
                                Some(s) => d.hint(format!("did you mean `{s}`? Otherwise declare it under `variables:`, e.g. `{v}: {{ type: string }}`")),
                                None => d.hint(format!("declare it under `variables:`, e.g. `{v}: {{ type: string }}`")),
                            };
                            self.out.push(d);
                        }
                        used_anywhere.insert(v);
                    }
                }
            }
        }
        used_anywhere
    }

    /// Few-shot inputs name declared variables, and have a user message to render them.
    fn few_shot(&mut self, declared: &BTreeSet<&str>) {
        let a = self.a;
        let root = KeyPath::default();
        for (i, ex) in a.few_shot.iter().enumerate() {
            let path = root.clone().key("few_shot").index(i).key("input");
            match &ex.input {
                Value::String(_) => {}
                Value::Object(map) => {
                    for k in map.keys() {
                        if !declared.contains(k.as_str()) {
                            self.out.push(
                                self.err_at(
                                    &path,
                                    format!("few-shot example {i} sets undeclared variable `{k}`"),
                                )
                                .note(format!(
                                    "declared variables: {}",
                                    list_names(&declared.iter().collect::<Vec<_>>())
                                )),
                            );
                        }
                    }
                    if !a.messages.iter().any(|m| m.role == Role::User) {
                        self.out.push(self.err_at(&path, "few-shot inputs given as variables need a `user` message template to render them".into()));
                    }
                }
                _ => self.out.push(self.err_at(
                    &path,
                    format!("few-shot example {i}: `input` must be a string or a map of variables"),
                )),
            }
        }
    }

    /// Declared variables: defaults have the declared type; one no template uses is a warning.
    fn variables(&mut self, used_anywhere: &BTreeSet<String>) {
        let (a, file) = (self.a, self.file);
        let root = KeyPath::default();
        for (name, var) in &a.variables {
            let path = root.clone().key("variables").key(name.as_str());
            if let Some(def) = &var.default
                && !var.kind.accepts(def)
            {
                self.out.push(self.err_at(
                    &path,
                    format!(
                        "the default of variable `{name}` is not a {}",
                        var.kind.name()
                    ),
                ));
            }
            if !used_anywhere.contains(name) {
                self.out.push(placed(
                    Diagnostic::warning(format!(
                        "variable `{name}` is declared but no template uses it"
                    )),
                    self.at(&path),
                    file,
                    &path,
                ));
            }
        }
    }

    /// Model parameters in range.
    fn parameters(&mut self) {
        let a = self.a;
        let root = KeyPath::default();
        let model = root.clone().key("model");
        if let Some(t) = a.model.temperature
            && !(0.0..=2.0).contains(&t)
        {
            self.out.push(self.err_at(
                &model.clone().key("temperature"),
                format!("`temperature` {t} is outside 0..=2"),
            ));
        }
        if let Some(p) = a.model.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            self.out.push(self.err_at(
                &model.clone().key("top_p"),
                format!("`top_p` {p} is outside (0, 1]"),
            ));
        }
        if a.model.max_tokens == Some(0) {
            self.out.push(self.err_at(
                &model.clone().key("max_tokens"),
                "`max_tokens` must be at least 1".into(),
            ));
        }
    }

    /// Tools: unique, well-formed names; valid object schemas for their parameters.
    fn tools(&mut self) {
        let a = self.a;
        let root = KeyPath::default();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, tool) in a.tools.iter().enumerate() {
            let path = root.clone().key("tools").index(i);
            if let Some(first) = seen.insert(tool.name.as_str(), i) {
                self.out.push(
                    self.err_at(
                        &path.clone().key("name"),
                        format!(
                            "tool name `{}` is used twice (tools[{first}] and tools[{i}])",
                            tool.name
                        ),
                    )
                    .hint("tool names must be unique; rename one of them"),
                );
            }
            let valid_name = !tool.name.is_empty()
                && tool.name.len() <= 64
                && tool
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                self.out.push(self.err_at(
                    &path.clone().key("name"),
                    format!(
                        "tool name `{}` must be 1-64 characters of letters, digits, `_` or `-`",
                        tool.name
                    ),
                ));
            }
            let ppath = path.clone().key("parameters");
            if let Some((d, ptr)) = schema_problem_at(&tool.parameters) {
                let deeper = pointer_path(ppath.clone(), &ptr);
                self.out
                    .push(self.err_at(&deeper, format!("invalid JSON Schema in `{ppath}`: {d}")));
            } else if tool.parameters.get("type").and_then(Value::as_str) != Some("object") {
                self.out.push(
                    self.err_at(
                        &ppath,
                        format!("`{ppath}` must be an object schema (`type: object`)"),
                    )
                    .hint("tool arguments are a JSON object; put them under `properties:`"),
                );
            }
        }
    }

    fn output_schema(&mut self) {
        let a = self.a;
        let root = KeyPath::default();
        if let Some(schema) = &a.output_schema {
            let path = root.clone().key("output_schema");
            if let Some((d, ptr)) = schema_problem_at(schema) {
                let deeper = pointer_path(path.clone(), &ptr);
                self.out.push(
                    self.err_at(
                        &deeper,
                        format!("invalid JSON Schema in `output_schema`: {d}"),
                    )
                    .hint("see https://json-schema.org/understanding-json-schema for the keywords"),
                );
            }
        }
    }
}

/// A diagnostic placed at `loc` (when found), naming the key path; or, without a line, naming
/// the file and key path.
fn placed(d: Diagnostic, loc: Option<Location>, file: &Path, path: &KeyPath) -> Diagnostic {
    match loc {
        Some(l) => d.at(Some(l)).note(format!("at `{path}`")),
        None => d.in_context(format!("{} `{path}`", file.display())),
    }
}

/// The position of variable `var` inside the template of `path`: the template line that uses
/// it, mapped into the file (block scalars start on the line after their key).
fn template_location(
    file: &Path,
    text: &str,
    path: &KeyPath,
    template: &str,
    var: &str,
) -> Option<Location> {
    let (key_line, _) = locate(text, path)?;
    let (idx, col) = template
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find(var).map(|c| (i, c)))?;
    let file_line = if locate::is_block_scalar(text, key_line) {
        key_line + 1 + idx
    } else {
        key_line
    };
    let line_text = text.lines().nth(file_line - 1)?;
    let column = line_text.find(var).map(|c| c + 1).unwrap_or(col + 1);
    Some(Location::in_text(file, text, file_line, column))
}

/// Extend a key path with the segments of a JSON pointer (`/properties/answer/type`).
fn pointer_path(mut path: KeyPath, pointer: &str) -> KeyPath {
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        path = match seg.parse::<usize>() {
            Ok(i) => path.index(i),
            Err(_) => path.key(seg),
        };
    }
    path
}

/// Why `schema` is not a valid JSON Schema, if it is not.
pub fn schema_problem(schema: &Value) -> Option<String> {
    schema_problem_at(schema).map(|(msg, at)| {
        if at.is_empty() {
            msg
        } else {
            format!("{msg} (at `{at}`)")
        }
    })
}

/// Why `schema` is not a valid JSON Schema, and the JSON pointer of the offending part.
fn schema_problem_at(schema: &Value) -> Option<(String, String)> {
    if !schema.is_object() && !schema.is_boolean() {
        return Some((
            "a schema must be a mapping (or `true`/`false`)".to_string(),
            String::new(),
        ));
    }
    // The crate documents a panic when it cannot detect the meta-schema; never let user input
    // crash us.
    let meta = std::panic::catch_unwind(|| {
        jsonschema::meta::validate(schema)
            .map_err(|e| (e.to_string(), e.instance_path().to_string()))
    });
    match meta {
        Err(_) => {
            return Some((
                "its `$schema` dialect is not supported".to_string(),
                String::new(),
            ));
        }
        Ok(Err(e)) => return Some(e),
        Ok(Ok(())) => {}
    }
    jsonschema::validator_for(schema)
        .err()
        .map(|e| (e.to_string(), String::new()))
}

/// Why a JSON Schema cannot be sent as an OpenAI strict structured output (`strict: true`
/// needs every object to set `additionalProperties: false` and to require every property),
/// or `None` when it can.
pub fn strict_problem(schema: &Value) -> Option<String> {
    fn walk(v: &Value, at: &str) -> Option<String> {
        let Value::Object(o) = v else {
            return None;
        };
        let is_object = o.get("type").is_some_and(|t| {
            t == "object"
                || t.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "object"))
        }) || o.contains_key("properties");
        if is_object {
            let here = if at.is_empty() { "/" } else { at };
            if o.get("additionalProperties") != Some(&Value::Bool(false)) {
                return Some(format!(
                    "the object at `{here}` does not set `additionalProperties: false`"
                ));
            }
            let required: BTreeSet<&str> = o
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(Value::Object(props)) = o.get("properties")
                && let Some(missing) = props.keys().find(|k| !required.contains(k.as_str()))
            {
                return Some(format!(
                    "property `{missing}` of the object at `{here}` is not required"
                ));
            }
        }
        for (k, child) in o {
            let nested = match (k.as_str(), child) {
                ("properties" | "$defs" | "definitions", Value::Object(m)) => m
                    .iter()
                    .find_map(|(name, s)| walk(s, &format!("{at}/{k}/{name}"))),
                ("items" | "additionalProperties" | "not", s) => walk(s, &format!("{at}/{k}")),
                ("anyOf" | "allOf" | "oneOf" | "prefixItems", Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| walk(s, &format!("{at}/{k}/{i}"))),
                _ => None,
            };
            if nested.is_some() {
                return nested;
            }
        }
        None
    }
    walk(schema, "")
}

/// Check a version against the repository's providers, as `add` and `check` do: its provider
/// is configured, and its parameters are in the ranges that provider accepts. A schema that
/// cannot be strict is a warning: it is sent with `strict: false`.
pub fn check_provider(
    a: &Artifact,
    file: &Path,
    text: &str,
    providers: &BTreeMap<String, crate::config::ProviderConfig>,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    use crate::config::ProviderKind;
    let at = |path: &KeyPath| locate(text, path).map(|(l, c)| Location::in_text(file, text, l, c));
    let model = KeyPath::default().key("model");
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let Some(cfg) = providers.get(&a.model.provider) else {
        let names: Vec<&str> = providers.keys().map(String::as_str).collect();
        let path = model.clone().key("provider");
        let mut d = placed(
            Diagnostic::error(format!(
                "provider `{}` is not in promptgate.yaml",
                a.model.provider
            )),
            at(&path),
            file,
            &path,
        )
        .note(format!("providers: {}", list_names(&names)));
        d = match did_you_mean(&a.model.provider, names.iter().copied()) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint(format!(
                "add it under `providers:` in promptgate.yaml, e.g. `{}: {{ kind: openai, base_url: …, api_key_env: … }}`",
                a.model.provider
            )),
        };
        errors.push(d);
        return (errors, warnings);
    };
    let range =
        |name: &str, v: Option<f64>, lo: f64, hi: f64, who: &str, out: &mut Vec<Diagnostic>| {
            if let Some(v) = v
                && !(lo..=hi).contains(&v)
            {
                let path = model.clone().key(name);
                out.push(placed(
                    Diagnostic::error(format!(
                        "`{name}` {v} is outside {lo}..={hi}, the range {who} accepts"
                    )),
                    at(&path),
                    file,
                    &path,
                ));
            }
        };
    match cfg.kind {
        ProviderKind::Anthropic => {
            range(
                "temperature",
                a.model.temperature,
                0.0,
                1.0,
                "Anthropic's Messages API",
                &mut errors,
            );
            range(
                "top_p",
                a.model.top_p,
                0.0,
                1.0,
                "Anthropic's Messages API",
                &mut errors,
            );
        }
        ProviderKind::Openai => {
            if let Some(schema) = &a.output_schema
                && let Some(why) = strict_problem(schema)
            {
                let path = KeyPath::default().key("output_schema");
                warnings.push(
                    placed(
                        Diagnostic::warning(format!(
                            "`output_schema` is sent with `strict: false`: {why}"
                        )),
                        at(&path),
                        file,
                        &path,
                    )
                    .note("OpenAI's strict structured outputs need `additionalProperties: false` and every property in `required` on every object")
                    .hint("make it strict to have the provider enforce it; a non-strict schema is only a hint to the model"),
                );
            }
        }
        ProviderKind::Replay => {}
    }
    (errors, warnings)
}
