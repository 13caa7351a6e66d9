//! Deterministic regression checks: each scores one output pass/fail with a score in [0, 1]
//! and a short reason. Checks are declared in `suite.yaml` under `checks:`; each belongs to a
//! metric (default `pass`) with a weight (default 1). A case's metric score is the weighted
//! mean of its checks' scores; it passes the metric when all its checks pass, unless the metric
//! has a threshold.

pub mod parse;
pub mod resolve;
pub mod score;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::artifact::{Artifact, template};

use crate::call::Completion;

/// The defaults of check settings, in one table used by every input path.
pub mod defaults {
    pub const METRIC: &str = "pass";
    pub const WEIGHT: f64 = 1.0;
    /// `edit_similarity` passes at or above this normalised similarity.
    pub const EDIT_SIMILARITY_THRESHOLD: f64 = 0.8;
    /// `json_field` numeric comparisons allow this absolute tolerance.
    pub const NUMERIC_TOLERANCE: f64 = 1e-9;
    /// `similar` passes at or above this cosine similarity.
    pub const SIMILAR_THRESHOLD: f64 = 0.8;
    /// Calls a judge gets per output before a malformed answer is an errored check.
    pub const JUDGE_ATTEMPTS: u32 = 3;
}

/// A text value that may be a template over the case's variables and expectations.
#[derive(Debug, Clone)]
pub struct Text(pub(crate) String);

impl Text {
    pub fn render(&self, ctx: &Map<String, Value>) -> std::result::Result<String, String> {
        if !self.0.contains("{{") && !self.0.contains("{%") {
            return Ok(self.0.clone());
        }
        template::environment()
            .render_str(&self.0, minijinja::Value::from_serialize(ctx))
            .map_err(|e| {
                format!(
                    "cannot render `{}`: {}",
                    self.0,
                    e.detail().unwrap_or(&e.kind().to_string())
                )
            })
    }
}

impl Kind {
    /// Scored by a model after the run (judges, `similar`), not by the deterministic scorer.
    pub fn model_scored(&self) -> bool {
        matches!(self, Kind::Judge { .. } | Kind::Similar { .. })
    }
}

/// What a check tests.
#[derive(Debug, Clone)]
pub enum Kind {
    Equals {
        value: Text,
        trim: bool,
        case_insensitive: bool,
        collapse_whitespace: bool,
    },
    Contains(Text),
    IContains(Text),
    ContainsAll(Vec<Text>),
    ContainsAny(Vec<Text>),
    StartsWith(Text),
    Regex(regex::Regex),
    MinLength(usize),
    MaxLength(usize),
    MinWords(usize),
    MaxWords(usize),
    EditSimilarity {
        value: Text,
        threshold: f64,
    },
    JsonValid,
    /// `None`: the version's own `output_schema`.
    JsonSchema(Option<Value>),
    JsonField {
        pointer: String,
        equals: Value,
        tolerance: f64,
    },
    ToolCall {
        name: String,
        arguments: Option<Value>,
    },
    LatencyMs(f64),
    Cost(f64),
    OutputTokens(u64),
    /// Cosine similarity of the output's and a reference text's embeddings (see
    /// `pipeline::similar`).
    Similar {
        value: Text,
        threshold: f64,
    },
    /// An LLM judge: a prompt in the registry, scored by a model (see `pipeline::judge`).
    Judge {
        /// `judges/correctness@production`.
        reference: String,
        /// The scale the judge answers on, mapped to [0, 1].
        scale: (f64, f64),
        /// Calls per output before a malformed answer becomes an errored check.
        attempts: u32,
        /// Compare the candidate's and the baseline's outputs (gates only), asking twice with
        /// the order swapped.
        pairwise: bool,
    },
}

/// A declared check.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub metric: String,
    pub weight: f64,
    pub negate: bool,
    pub kind: Kind,
    /// The variables its templated values read, sorted: a whole attribute path
    /// (`expected_json.escalate`) when a value is exactly that path, else the first name.
    pub vars: Vec<String>,
    /// Where it is declared (suite checks; a dataset row's checks have none).
    pub origin: Option<Box<crate::error::Location>>,
}

/// What a check found on one output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The judge version that produced this result (judge checks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    pub check: String,
    pub metric: String,
    pub pass: bool,
    pub score: f64,
    pub reason: String,
    /// The check could not be applied at all (a template that does not render, no schema to
    /// validate against): a problem of the suite or the version, not of this output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cannot_apply: bool,
}

/// The output as checks see it.
pub struct Output<'a> {
    pub completion: &'a Completion,
    pub latency_ms: f64,
    pub cost_usd: f64,
}

pub use parse::{parse_check, parse_checks, to_pointer};

/// A value that may be a template: a templated string renders, and its text becomes JSON when
/// it parses as JSON (`"{{ expected_json.escalate }}"` → `true`); plain strings stay strings.
fn templated_value(v: &Value, ctx: &Map<String, Value>) -> std::result::Result<Value, String> {
    match v {
        // Exactly one `{{ expression }}`: evaluate it and keep its type (a bool stays a bool).
        Value::String(s) if is_single_expression(s) => {
            let expr = expression_of(s);
            let compiled = template::environment()
                .compile_expression(expr)
                .map_err(|e| {
                    format!(
                        "cannot compile `{s}`: {}",
                        e.detail().unwrap_or(&e.kind().to_string())
                    )
                })?;
            let value = compiled
                .eval(minijinja::Value::from_serialize(ctx))
                .map_err(|e| {
                    format!(
                        "cannot evaluate `{s}`: {}",
                        e.detail().unwrap_or(&e.kind().to_string())
                    )
                })?;
            serde_json::to_value(&value).map_err(|e| format!("`{s}` is not a JSON value: {e}"))
        }
        Value::String(s) if s.contains("{{") || s.contains("{%") => {
            let text = Text(s.clone()).render(ctx)?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        other => Ok(other.clone()),
    }
}

/// The expression inside `{{ … }}`.
pub(crate) fn expression_of(s: &str) -> &str {
    s.trim()
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim()
}

pub(crate) fn is_single_expression(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("{{")
        && t.ends_with("}}")
        && t.matches("{{").count() == 1
        && t.matches("}}").count() == 1
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

fn verdict(pass: bool, reason: String) -> (bool, f64, String) {
    (pass, if pass { 1.0 } else { 0.0 }, reason)
}

/// Checks prepared to score many outputs: JSON Schemas compiled once.
pub struct Scorer<'a> {
    pub checks: &'a [Check],
    pub artifact: &'a Artifact,
    schemas: Vec<Option<std::result::Result<jsonschema::Validator, String>>>,
    tools: std::collections::HashMap<&'a str, jsonschema::Validator>,
}

impl<'a> Scorer<'a> {
    pub fn new(checks: &'a [Check], artifact: &'a Artifact) -> Scorer<'a> {
        let schemas = checks
            .iter()
            .map(|c| match &c.kind {
                Kind::JsonSchema(schema) => {
                    Some(match schema.as_ref().or(artifact.output_schema.as_ref()) {
                        None => {
                            Err("the version has no output_schema to check against".to_string())
                        }
                        Some(s) => {
                            jsonschema::validator_for(s).map_err(|e| format!("invalid schema: {e}"))
                        }
                    })
                }
                _ => None,
            })
            .collect();
        let tools = artifact
            .tools
            .iter()
            .filter_map(|t| {
                jsonschema::validator_for(&t.parameters)
                    .ok()
                    .map(|v| (t.name.as_str(), v))
            })
            .collect();
        Scorer {
            checks,
            artifact,
            schemas,
            tools,
        }
    }

    /// Run every check on one output. `ctx` holds the case's variables plus `expected` and
    /// `expected_json`. The output's JSON is parsed once, for all the checks that need it.
    pub fn run_all(&self, out: &Output<'_>, ctx: &Map<String, Value>) -> Vec<CheckResult> {
        let json = std::cell::OnceCell::new();
        (0..self.checks.len())
            .map(|i| self.run_one(i, out, ctx, &json))
            .collect()
    }

    fn run_one(
        &self,
        i: usize,
        out: &Output<'_>,
        ctx: &Map<String, Value>,
        json: &std::cell::OnceCell<std::result::Result<Value, String>>,
    ) -> CheckResult {
        let check = &self.checks[i];
        let env = Env {
            out,
            ctx,
            schema: self.schemas[i].as_ref(),
            tools: &self.tools,
            json,
        };
        let (pass, score, reason, cannot_apply) = match evaluate(&check.kind, &env) {
            Ok((pass, score, reason)) if check.negate => {
                (!pass, 1.0 - score, format!("not: {reason}"), false)
            }
            Ok((pass, score, reason)) => (pass, score, reason, false),
            // A check that cannot apply fails, negated or not: garbage must not pass a `not:`.
            Err(Inapplicable { reason, config }) => {
                (false, 0.0, format!("cannot apply: {reason}"), config)
            }
        };
        CheckResult {
            judge: None,
            check: check.id.clone(),
            metric: check.metric.clone(),
            pass,
            score: score.clamp(0.0, 1.0),
            reason,
            cannot_apply,
        }
    }
}

/// Run one check (compiling what it needs; use [`Scorer`] for many outputs).
pub fn run(
    check: &Check,
    out: &Output<'_>,
    ctx: &Map<String, Value>,
    artifact: &Artifact,
) -> CheckResult {
    let checks = std::slice::from_ref(check);
    Scorer::new(checks, artifact).run_all(out, ctx).remove(0)
}

struct Env<'a, 'b> {
    out: &'b Output<'b>,
    ctx: &'b Map<String, Value>,
    schema: Option<&'b std::result::Result<jsonschema::Validator, String>>,
    tools: &'b std::collections::HashMap<&'a str, jsonschema::Validator>,
    json: &'b std::cell::OnceCell<std::result::Result<Value, String>>,
}

impl Env<'_, '_> {
    fn json(&self) -> &std::result::Result<Value, String> {
        self.json.get_or_init(|| {
            serde_json::from_str(&self.out.completion.content).map_err(|e| e.to_string())
        })
    }
}

/// Why a check could not be applied to an output. It fails the output either way (negated
/// or not: garbage must not pass a `not:`); `config` tells a problem of the suite or the
/// version (a template that does not render) from one of this output (not JSON).
struct Inapplicable {
    reason: String,
    config: bool,
}

impl Inapplicable {
    fn output(reason: String) -> Inapplicable {
        Inapplicable {
            reason,
            config: false,
        }
    }
}

impl From<String> for Inapplicable {
    fn from(reason: String) -> Inapplicable {
        Inapplicable {
            reason,
            config: true,
        }
    }
}

fn evaluate(
    kind: &Kind,
    env: &Env<'_, '_>,
) -> std::result::Result<(bool, f64, String), Inapplicable> {
    let (text, out, ctx) = (env.out.completion.content.as_str(), env.out, env.ctx);
    Ok(match kind {
        Kind::Equals {
            value,
            trim,
            case_insensitive,
            collapse_whitespace,
        } => {
            let want = value.render(ctx)?;
            equals(text, &want, *trim, *collapse_whitespace, *case_insensitive)
        }
        Kind::Contains(v) => {
            let want = v.render(ctx)?;
            let ok = text.contains(&want);
            verdict(
                ok,
                format!(
                    "{} \"{}\"",
                    if ok { "contains" } else { "does not contain" },
                    short(&want)
                ),
            )
        }
        Kind::IContains(v) => {
            let want = v.render(ctx)?;
            let ok = text.to_lowercase().contains(&want.to_lowercase());
            verdict(
                ok,
                format!(
                    "{} \"{}\" (any case)",
                    if ok { "contains" } else { "does not contain" },
                    short(&want)
                ),
            )
        }
        Kind::ContainsAll(vs) => contains_all(text, &render_all(vs, ctx)?),
        Kind::ContainsAny(vs) => contains_any(text, &render_all(vs, ctx)?),
        Kind::StartsWith(v) => {
            let want = v.render(ctx)?;
            let ok = text.starts_with(&want);
            verdict(
                ok,
                format!(
                    "{} with \"{}\"",
                    if ok { "starts" } else { "does not start" },
                    short(&want)
                ),
            )
        }
        Kind::Regex(re) => {
            let ok = re.is_match(text);
            verdict(
                ok,
                format!(
                    "{} /{}/",
                    if ok { "matches" } else { "does not match" },
                    re.as_str()
                ),
            )
        }
        Kind::MinLength(n) => {
            let len = text.chars().count();
            verdict(len >= *n, format!("{len} characters (minimum {n})"))
        }
        Kind::MaxLength(n) => {
            let len = text.chars().count();
            verdict(len <= *n, format!("{len} characters (maximum {n})"))
        }
        Kind::MinWords(n) => {
            let w = text.split_whitespace().count();
            verdict(w >= *n, format!("{w} words (minimum {n})"))
        }
        Kind::MaxWords(n) => {
            let w = text.split_whitespace().count();
            verdict(w <= *n, format!("{w} words (maximum {n})"))
        }
        Kind::EditSimilarity { value, threshold } => {
            let want = value.render(ctx)?;
            // Bit-parallel Levenshtein (Hyyrö 2003); 1 − distance / longer length in characters.
            let sim =
                rapidfuzz::distance::levenshtein::normalized_similarity(text.chars(), want.chars());
            (
                sim >= *threshold,
                sim,
                format!("edit similarity {sim:.2} (threshold {threshold:.2})"),
            )
        }
        Kind::JsonValid => match env.json() {
            Ok(_) => verdict(true, "valid JSON".into()),
            Err(e) => verdict(false, format!("not JSON: {e}")),
        },
        Kind::JsonSchema(_) => json_schema(env)?,
        Kind::JsonField {
            pointer,
            equals,
            tolerance,
        } => json_field(env, pointer, equals, *tolerance)?,
        Kind::ToolCall { name, arguments } => tool_call(env, name, arguments.as_ref())?,
        Kind::LatencyMs(max) => verdict(
            out.latency_ms <= *max,
            format!("{:.0} ms (maximum {max:.0})", out.latency_ms),
        ),
        Kind::Cost(max) => verdict(
            out.cost_usd <= *max,
            format!("${:.5} (maximum ${max})", out.cost_usd),
        ),
        Kind::Judge { reference, .. } => {
            return Err(format!(
                "judge `{reference}` is scored by the judge stage, not deterministically"
            )
            .into());
        }
        Kind::Similar { .. } => {
            return Err(String::from("`similar` is scored by the embeddings stage").into());
        }
        Kind::OutputTokens(max) => verdict(
            out.completion.output_tokens <= *max,
            format!(
                "{} output tokens (maximum {max})",
                out.completion.output_tokens
            ),
        ),
    })
}

type Verdict = (bool, f64, String);

/// Render each of a check's templated texts against a case.
fn render_all(vs: &[Text], ctx: &Map<String, Value>) -> std::result::Result<Vec<String>, String> {
    vs.iter().map(|v| v.render(ctx)).collect()
}

fn equals(text: &str, want: &str, trim: bool, collapse_ws: bool, any_case: bool) -> Verdict {
    let norm = |s: &str| {
        let mut s = s.to_string();
        if trim {
            s = s.trim().to_string();
        }
        if collapse_ws {
            s = collapse(&s);
        }
        if any_case {
            s = s.to_lowercase();
        }
        s
    };
    let ok = norm(text) == norm(want);
    verdict(
        ok,
        if ok {
            format!("equals \"{}\"", short(want))
        } else {
            format!("\"{}\" is not \"{}\"", short(text), short(want))
        },
    )
}

/// The share of `wants` the text contains; passes when it contains them all.
fn contains_all(text: &str, wants: &[String]) -> Verdict {
    let missing: Vec<&String> = wants
        .iter()
        .filter(|w| !text.contains(w.as_str()))
        .collect();
    let found = wants.len() - missing.len();
    let score = if wants.is_empty() {
        1.0
    } else {
        found as f64 / wants.len() as f64
    };
    let reason = if missing.is_empty() {
        format!("contains all {} texts", wants.len())
    } else {
        format!(
            "missing {}",
            missing
                .iter()
                .map(|m| format!("\"{}\"", short(m)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    (missing.is_empty(), score, reason)
}

fn contains_any(text: &str, wants: &[String]) -> Verdict {
    let hit = wants.iter().find(|w| text.contains(w.as_str()));
    verdict(
        hit.is_some(),
        match hit {
            Some(h) => format!("contains \"{}\"", short(h)),
            None => format!("contains none of {} texts", wants.len()),
        },
    )
}

/// The output against the version's output schema: a schema that does not compile is the
/// suite's problem, an output that is not JSON this output's.
fn json_schema(env: &Env<'_, '_>) -> std::result::Result<Verdict, Inapplicable> {
    let validator = match env.schema {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(e.clone().into()),
        None => return Err(String::from("no schema").into()),
    };
    let v = match env.json() {
        Ok(v) => v,
        Err(e) => return Err(Inapplicable::output(format!("not JSON: {e}"))),
    };
    Ok(match validator.iter_errors(v).next() {
        None => verdict(true, "matches the schema".into()),
        Some(e) => verdict(false, format!("at `{}`: {e}", instance_path(&e))),
    })
}

/// Where in the instance a schema error is (`/` for the whole of it).
fn instance_path(e: &jsonschema::ValidationError<'_>) -> String {
    let at = e.instance_path().to_string();
    if at.is_empty() { "/".to_string() } else { at }
}

/// One field of the JSON output (a JSON pointer) against a value, numbers within `tolerance`.
fn json_field(
    env: &Env<'_, '_>,
    pointer: &str,
    equals: &Value,
    tolerance: f64,
) -> std::result::Result<Verdict, Inapplicable> {
    let v = match env.json() {
        Ok(v) => v,
        Err(e) => {
            return Err(Inapplicable::output(format!(
                "the output is not JSON, so it has no `{pointer}` ({e})"
            )));
        }
    };
    let Some(got) = v.pointer(pointer) else {
        return Ok(verdict(false, format!("no field `{pointer}`")));
    };
    let want = templated_value(equals, env.ctx)?;
    let ok = match (got.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= tolerance,
        _ => got == &want,
    };
    Ok(verdict(
        ok,
        format!(
            "`{pointer}` is {got}{}",
            if ok {
                String::new()
            } else {
                format!(", expected {want}")
            }
        ),
    ))
}

/// A call of tool `name` with arguments valid for the tool's schema and, when given, these.
fn tool_call(
    env: &Env<'_, '_>,
    name: &str,
    arguments: Option<&Value>,
) -> std::result::Result<Verdict, Inapplicable> {
    let calls = &env.out.completion.tool_calls;
    let Some(call) = calls.iter().find(|c| c.name == name) else {
        let called: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        return Ok(verdict(
            false,
            if called.is_empty() {
                format!("no tool call (expected `{name}`)")
            } else {
                format!("called {} instead of `{name}`", called.join(", "))
            },
        ));
    };
    if let Some(validator) = env.tools.get(name)
        && let Some(e) = validator.iter_errors(&call.arguments).next()
    {
        return Ok(verdict(
            false,
            format!("`{name}` arguments invalid at `{}`: {e}", instance_path(&e)),
        ));
    }
    if let Some(Value::Object(want)) = arguments {
        for (k, v) in want {
            let want_v = templated_value(v, env.ctx)?;
            if call.arguments.get(k) != Some(&want_v) {
                return Ok(verdict(
                    false,
                    format!(
                        "`{name}` argument `{k}` is {}, expected {want_v}",
                        call.arguments.get(k).cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
        }
    }
    Ok(verdict(
        true,
        format!("called `{name}` with valid arguments"),
    ))
}

/// A case's score on one metric: the weighted mean of its checks' scores (in [0, 1]), and
/// whether it passes (all checks of the metric pass).
pub fn metric_scores(
    results: &[CheckResult],
    weights: &BTreeMap<String, f64>,
) -> BTreeMap<String, (f64, bool)> {
    let mut acc: BTreeMap<String, (f64, f64, bool)> = BTreeMap::new();
    for r in results {
        let w = weights.get(&r.check).copied().unwrap_or(defaults::WEIGHT);
        let e = acc.entry(r.metric.clone()).or_insert((0.0, 0.0, true));
        e.0 += w * r.score;
        e.1 += w;
        e.2 &= r.pass;
    }
    acc.into_iter()
        .map(|(m, (s, w, pass))| {
            (
                m,
                (
                    if w > 0.0 {
                        (s / w).clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                    pass,
                ),
            )
        })
        .collect()
}

/// Apply metric thresholds: a metric with a threshold passes when its score reaches it;
/// without one, when every check of the metric passed.
pub fn apply_thresholds(
    metrics: &mut BTreeMap<String, (f64, bool)>,
    thresholds: &BTreeMap<String, f64>,
) {
    for (m, (score, pass)) in metrics.iter_mut() {
        if let Some(t) = thresholds.get(m) {
            *pass = *score >= *t;
        }
    }
}

/// The context check templates see: the case's variables, `expected` and `expected_json`.
pub fn context(
    vars: Map<String, Value>,
    expected: Option<&Value>,
    expected_json: Option<&Value>,
) -> Map<String, Value> {
    let mut ctx = vars;
    ctx.insert("expected".into(), expected.cloned().unwrap_or(Value::Null));
    ctx.insert(
        "expected_json".into(),
        expected_json.cloned().unwrap_or(Value::Null),
    );
    ctx
}
