//! Rendering: a version plus variables becomes the exact provider-neutral request — messages
//! with few-shot examples expanded, tools, response format and parameters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::artifact::{Artifact, Role, template};
use crate::error::{Diagnostic, Error, ErrorKind, Result, did_you_mean, list_names};

/// The request a provider receives, before provider-specific encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub prompt: String,
    pub version_id: String,
    pub provider: String,
    pub model: String,
    /// Inference parameters: temperature, max_tokens, top_p, stop, seed and pass-through ones.
    pub params: BTreeMap<String, Value>,
    pub messages: Vec<ChatMessage>,
    /// Always serialized (as `[]` when there are none), like `response_format` (as `null`):
    /// the request's content hash is its serialization, and absent and empty must hash alike.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
}

/// Structured output: the version's `output_schema` as a strict JSON Schema format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub schema: Value,
    pub strict: bool,
}

/// Who is being rendered, for error messages: `support_agent@v3-9f2c1ab`, and optionally the
/// dataset row (`datasets/x.jsonl:12 (case refund-1)`).
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub prompt: &'a str,
    pub version_id: &'a str,
    pub row: Option<&'a str>,
}

impl Subject<'_> {
    fn describe(&self) -> String {
        match self.row {
            Some(row) => format!("`{}@{}` for {row}", self.prompt, self.version_id),
            None => format!("`{}@{}`", self.prompt, self.version_id),
        }
    }
}

/// Check and complete the variables for a version: unknown names and wrong types are errors,
/// defaults fill the gaps, and a missing required variable names itself and the version.
/// `strict_unknown` refuses variables the version does not declare (for `--var`; datasets
/// carry extra columns such as expectations).
pub fn bind_variables(
    artifact: &Artifact,
    given: &Map<String, Value>,
    subject: &Subject<'_>,
    strict_unknown: bool,
) -> Result<Map<String, Value>> {
    let mut problems = Vec::new();
    let mut out = Map::new();
    if strict_unknown {
        for k in given.keys() {
            if !artifact.variables.contains_key(k) {
                let mut d =
                    Diagnostic::error(format!("{} declares no variable `{k}`", subject.describe()))
                        .note(format!(
                            "declared: {}",
                            list_names(&artifact.variables.keys().collect::<Vec<_>>())
                        ));
                if let Some(s) = did_you_mean(k, artifact.variables.keys().map(String::as_str)) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                problems.push(d);
            }
        }
    }
    for (name, var) in &artifact.variables {
        match given.get(name).or(var.default.as_ref()) {
            Some(v) if var.kind.accepts(v) => {
                out.insert(name.clone(), v.clone());
            }
            Some(v) => problems.push(Diagnostic::error(format!(
                "variable `{name}` of {} must be a {}, got {}",
                subject.describe(),
                var.kind.name(),
                json_type(v)
            ))),
            None => problems.push(
                Diagnostic::error(format!("missing variable `{name}` for {}", subject.describe()))
                    .hint(match subject.row {
                        Some(_) => format!("add a `{name}` column (or key) to the dataset, or give the variable a default"),
                        None => format!("pass `--var {name}=…`, or put it in a `--vars-file`"),
                    }),
            ),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::many(ErrorKind::Usage, problems))
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn template_error(e: minijinja::Error, source: &str, what: &str, subject: &Subject<'_>) -> Error {
    let line = e
        .line()
        .map(|l| format!(" (template line {l})"))
        .unwrap_or_default();
    let detail = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    let src_line = e
        .line()
        .and_then(|l| source.lines().nth(l.saturating_sub(1)))
        .map(|s| s.trim().to_string());
    let mut d = Diagnostic::error(format!(
        "cannot render {what} of {}: {detail}{line}",
        subject.describe()
    ));
    if let Some(s) = src_line {
        d = d.note(format!("in `{s}`"));
    }
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        d = d.hint("a value used by the template is missing (templates use strict undefined): check the variable's fields");
    }
    Error::new(ErrorKind::Usage, d)
}

/// A version with its templates compiled once, to render many cases.
pub struct Compiled<'a> {
    artifact: &'a Artifact,
    /// The message templates, named by their index.
    env: minijinja::Environment<'a>,
}

impl<'a> Compiled<'a> {
    pub fn new(artifact: &'a Artifact, subject: &Subject<'_>) -> Result<Compiled<'a>> {
        let mut env = template::new_environment();
        for (i, m) in artifact.messages.iter().enumerate() {
            env.add_template_owned(format!("m{i}"), m.content.clone())
                .map_err(|e| template_error(e, &m.content, &format!("`messages[{i}]`"), subject))?;
        }
        Ok(Compiled { artifact, env })
    }

    fn template(&self, i: usize) -> Result<minijinja::Template<'_, 'a>> {
        self.env
            .get_template(&format!("m{i}"))
            .map_err(|e| Error::usage(format!("template {i}: {e}")))
    }

    /// Render with already-bound variables (see [`bind_variables`]).
    pub fn render(&self, vars: &Map<String, Value>, subject: &Subject<'_>) -> Result<Request> {
        let artifact = self.artifact;
        let ctx = minijinja::Value::from_serialize(vars);
        let mut rendered: Vec<ChatMessage> =
            Vec::with_capacity(artifact.messages.len() + 2 * artifact.few_shot.len());
        for (i, m) in artifact.messages.iter().enumerate() {
            rendered.push(ChatMessage {
                role: m.role.as_str().to_string(),
                content: self.template(i)?.render(&ctx).map_err(|e| {
                    template_error(e, &m.content, &format!("`messages[{i}]`"), subject)
                })?,
            });
        }
        // Few-shot turns go after the leading system messages.
        if !artifact.few_shot.is_empty() {
            let last_user = artifact.messages.iter().rposition(|m| m.role == Role::User);
            let mut shots = Vec::with_capacity(2 * artifact.few_shot.len());
            for (i, ex) in artifact.few_shot.iter().enumerate() {
                let user = match &ex.input {
                    Value::String(s) => s.clone(),
                    Value::Object(inputs) => {
                        let idx = last_user.ok_or_else(|| {
                            Error::usage(
                                "few-shot inputs given as variables need a user message template",
                            )
                        })?;
                        let mut merged = vars.clone();
                        for (k, v) in inputs {
                            merged.insert(k.clone(), v.clone());
                        }
                        self.template(idx)?
                            .render(minijinja::Value::from_serialize(&merged))
                            .map_err(|e| {
                                template_error(
                                    e,
                                    &artifact.messages[idx].content,
                                    &format!("few-shot example {i}"),
                                    subject,
                                )
                            })?
                    }
                    other => other.to_string(),
                };
                let assistant = match &ex.output {
                    Value::String(s) => s.clone(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                shots.push(ChatMessage {
                    role: "user".into(),
                    content: user,
                });
                shots.push(ChatMessage {
                    role: "assistant".into(),
                    content: assistant,
                });
            }
            let at = artifact
                .messages
                .iter()
                .take_while(|m| m.role == Role::System)
                .count();
            rendered.splice(at..at, shots);
        }

        let m = &artifact.model;
        let mut params: BTreeMap<String, Value> = m.params.clone();
        if let Some(t) = m.temperature {
            params.insert("temperature".into(), Value::from(t));
        }
        if let Some(t) = m.max_tokens {
            params.insert("max_tokens".into(), Value::from(t));
        }
        if let Some(t) = m.top_p {
            params.insert("top_p".into(), Value::from(t));
        }
        if !m.stop.is_empty() {
            params.insert("stop".into(), Value::from(m.stop.clone()));
        }
        if let Some(s) = m.seed {
            params.insert("seed".into(), Value::from(s));
        }
        Ok(Request {
            prompt: subject.prompt.to_string(),
            version_id: subject.version_id.to_string(),
            provider: m.provider.clone(),
            model: m.name.clone(),
            params,
            messages: rendered,
            tools: artifact
                .tools
                .iter()
                .map(|t| ToolSpec {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.parameters.clone(),
                })
                .collect(),
            response_format: artifact.output_schema.as_ref().map(|s| ResponseFormat {
                kind: "json_schema".into(),
                name: "output".into(),
                schema: s.clone(),
                // Strict only when the provider would accept it as strict.
                strict: crate::artifact::strict_problem(s).is_none(),
            }),
        })
    }
}

/// Bind caller-supplied variables (unknown names refused) and render: what `promptgate
/// render`, `GET /v1/prompts/{name}/render` and the client's `render` all do.
pub fn render_variables(
    artifact: &Artifact,
    prompt: &str,
    version_id: &str,
    given: &Map<String, Value>,
) -> Result<Request> {
    let subject = Subject {
        prompt,
        version_id,
        row: None,
    };
    let bound = bind_variables(artifact, given, &subject, true)?;
    render(artifact, &bound, &subject)
}

/// Render a version with already-bound variables (see [`bind_variables`]).
pub fn render(
    artifact: &Artifact,
    vars: &Map<String, Value>,
    subject: &Subject<'_>,
) -> Result<Request> {
    Compiled::new(artifact, subject)?.render(vars, subject)
}
