//! Resolving checks against what they will meet, before the first call: every variable a
//! templated value reads is present in every case of every dataset, a `tool_call` names a tool
//! the version(s) declare, a `json_schema: output` has a schema to check against. A mistake
//! found here costs nothing; found after the run it would have scored every case 0 on both
//! sides of a gate — and two sides at 0 % look identical.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::{Check, Kind};
use crate::artifact::Artifact;
use crate::dataset::Case;
use crate::error::{Diagnostic, did_you_mean, list_names};

/// A version the checks will score.
pub struct Subject<'a> {
    /// `support_agent@v3-9f2c1ab`.
    pub name: String,
    pub artifact: &'a Artifact,
}

/// What resolution found: errors refuse the run; warnings are worth saying.
#[derive(Debug, Default)]
pub struct Resolution {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<String>,
}

/// How many example cases a message names.
const EXAMPLES: usize = 3;

/// The value a case gives a variable path, or why it gives none: `Err(prefix)` names the
/// longest part of the path the case has.
fn lookup<'c>(case: &'c Case, path: &str) -> Result<Option<&'c Value>, String> {
    let mut segs = path.split('.');
    let root = segs.next().unwrap_or(path);
    let mut value = match root {
        crate::dataset::EXPECTED => case.expected.as_deref(),
        crate::dataset::EXPECTED_JSON => case.expected_json(),
        name => case.vars.get(name),
    }
    .ok_or_else(String::new)?;
    let mut walked = root.to_string();
    for seg in segs {
        match value {
            // Only a mapping is known to lack a key; what other values answer to is the
            // template engine's business at run time.
            Value::Object(map) => match map.get(seg) {
                Some(v) => value = v,
                None => return Err(walked),
            },
            Value::Null => return Err(walked),
            _ => return Ok(None),
        }
        walked = format!("{walked}.{seg}");
    }
    Ok(Some(value))
}

/// The names a case offers check templates.
fn offered(case: &Case) -> Vec<String> {
    let mut names: Vec<String> = case.vars.keys().map(str::to_string).collect();
    if case.expected.is_some() {
        names.push(crate::dataset::EXPECTED.into());
    }
    if case.expected_json().is_some() {
        names.push(crate::dataset::EXPECTED_JSON.into());
    }
    names
}

fn place(case: &Case) -> String {
    format!("{}:{} (case `{}`)", case.file, case.line, case.id)
}

fn at(check: &Check, d: Diagnostic, suite_file: &str) -> Diagnostic {
    match &check.origin {
        Some(loc) => d.at(Some((**loc).clone())),
        None => d.in_context(suite_file.to_string()),
    }
}

/// Every variable of `checks` in every one of `cases`.
fn variables(checks: &[&Check], cases: &[Case], suite_file: &str, out: &mut Vec<Diagnostic>) {
    for check in checks {
        for var in &check.vars {
            let mut missing: Vec<(&Case, String)> = Vec::new();
            for case in cases {
                if let Err(prefix) = lookup(case, var) {
                    missing.push((case, prefix));
                }
            }
            let Some((first, prefix)) = missing.first() else {
                continue;
            };
            let root = var.split('.').next().unwrap_or(var);
            let how_many = if missing.len() == cases.len() && cases.len() > 1 {
                format!("none of the {} cases has it", cases.len())
            } else if missing.len() > 1 {
                format!("{} of {} cases lack it", missing.len(), cases.len())
            } else {
                "one case lacks it".to_string()
            };
            let what = if prefix.is_empty() {
                format!("`{root}`")
            } else {
                format!(
                    "`{var}` (`{prefix}` has no `{}`)",
                    &var[prefix.len() + 1..].split('.').next().unwrap_or("")
                )
            };
            let mut d =
                Diagnostic::error(format!("check `{}` reads {what}, but {how_many}", check.id));
            let examples: Vec<String> = missing
                .iter()
                .take(EXAMPLES)
                .map(|(c, _)| place(c))
                .collect();
            d = d.note(format!("e.g. {}", examples.join(", ")));
            d = if prefix.is_empty() {
                let columns: BTreeSet<String> = offered(first).into_iter().collect();
                let suggestion = did_you_mean(root, columns.iter().map(String::as_str));
                let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
                match suggestion {
                    Some(s) => d.hint(format!(
                        "did you mean `{s}`? the case has {}",
                        list_names(&cols)
                    )),
                    None => d.hint(format!(
                        "the case has {}; add a `{root}` column (or `expected`/`expected_json`) to every case",
                        list_names(&cols)
                    )),
                }
            } else {
                let keys: Vec<String> = match lookup(first, prefix) {
                    Ok(Some(Value::Object(m))) => m.keys().cloned().collect(),
                    _ => vec![],
                };
                let leaf = var[prefix.len() + 1..].split('.').next().unwrap_or("");
                match did_you_mean(leaf, keys.iter().map(String::as_str)) {
                    Some(s) => d.hint(format!("did you mean `{prefix}.{s}`?")),
                    None => d.hint(format!(
                        "`{prefix}` has {}; give every case a `{leaf}`",
                        list_names(&keys)
                    )),
                }
            };
            out.push(at(check, d, suite_file));
        }
    }
}

/// Check what every check needs of the versions it scores and of the cases it reads: an error
/// for what would make a check unable to apply anywhere, a warning for what only some
/// versions lack (a gate that adds a tool scores the baseline's missing call as a failure,
/// which is the point).
pub fn resolve(
    suite_checks: &[Check],
    own: &HashMap<String, Vec<Check>>,
    cases: &[Case],
    subjects: &[Subject<'_>],
    suite_file: &str,
) -> Resolution {
    let mut r = Resolution::default();
    let suite: Vec<&Check> = suite_checks.iter().collect();
    variables(&suite, cases, suite_file, &mut r.errors);
    // The few cases with checks of their own, found by walking the cases: a map of every
    // case by id held 52 MB at 1M cases.
    let mut owned: Vec<(&Case, &Vec<Check>)> = cases
        .iter()
        .filter_map(|c| own.get(&*c.id).map(|list| (c, list)))
        .collect();
    owned.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    for (case, list) in owned {
        let refs: Vec<&Check> = list.iter().collect();
        variables(
            &refs,
            std::slice::from_ref(case),
            &place(case),
            &mut r.errors,
        );
    }
    // What the versions declare.
    let mut tools_wanted: BTreeMap<&str, &Check> = BTreeMap::new();
    let mut schema_wanted: Option<&Check> = None;
    for c in suite_checks.iter().chain(own.values().flatten()) {
        match &c.kind {
            Kind::ToolCall { name, .. } => {
                tools_wanted.entry(name.as_str()).or_insert(c);
            }
            Kind::JsonSchema(None) => {
                schema_wanted.get_or_insert(c);
            }
            _ => {}
        }
    }
    for (tool, check) in tools_wanted {
        let having: Vec<&str> = subjects
            .iter()
            .filter(|s| s.artifact.tools.iter().any(|t| t.name == tool))
            .map(|s| s.name.as_str())
            .collect();
        if having.is_empty() {
            let declared: BTreeSet<&str> = subjects
                .iter()
                .flat_map(|s| s.artifact.tools.iter().map(|t| t.name.as_str()))
                .collect();
            let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
            let mut d = Diagnostic::error(format!(
                "check `{}` expects a call to tool `{tool}`, which {} does not declare",
                check.id,
                list_names(&names)
            ));
            d = match did_you_mean(tool, declared.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None if declared.is_empty() => d.hint(
                    "the version declares no `tools:`; a model can only call a declared tool",
                ),
                None => d.hint(format!(
                    "declared tools: {}",
                    list_names(&declared.into_iter().collect::<Vec<_>>())
                )),
            };
            r.errors.push(at(check, d, suite_file));
        } else if having.len() < subjects.len() {
            let lacking: Vec<&str> = subjects
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| !having.contains(n))
                .collect();
            r.warnings.push(format!(
                "check `{}` expects tool `{tool}`, which {} does not declare: every case fails it there",
                check.id,
                list_names(&lacking)
            ));
        }
    }
    // A version without an output schema fails `json_schema: output` on every case: a
    // property of that version (an older one, evaluated against today's suite), not a typo,
    // so it is said, not refused. A gate whose baseline cannot be scored this way is INVALID.
    if let Some(check) = schema_wanted {
        let lacking: Vec<&str> = subjects
            .iter()
            .filter(|s| s.artifact.output_schema.is_none())
            .map(|s| s.name.as_str())
            .collect();
        if !lacking.is_empty() {
            r.warnings.push(format!(
                "check `{}` validates against `output_schema`, which {} does not have: every case fails it there",
                check.id,
                list_names(&lacking)
            ));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(id: &str, line: usize, row: Value) -> Case {
        let text = serde_json::to_string(&row).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, format!("{}{text}\n", "\n".repeat(line - 1))).unwrap();
        let mut d = crate::dataset::load(&path, "group").unwrap();
        let mut c = d.cases.remove(0);
        c.id = id.into();
        c
    }

    fn check(spec: Value) -> Check {
        crate::checks::parse_check(&spec, 0, "suite.yaml").unwrap()
    }

    fn artifact(tools: &str) -> Artifact {
        crate::artifact::load(
            std::path::Path::new("v.yaml"),
            &format!("model: {{ provider: openai, name: m }}\nmessages: [ {{ role: user, content: hi }} ]\n{tools}"),
        )
        .unwrap()
        .artifact
    }

    #[test]
    fn a_missing_variable_or_attribute_is_named_with_its_cases() {
        let cases = vec![
            case(
                "a",
                1,
                json!({"question": "q", "expected_json": {"escalate": true}}),
            ),
            case(
                "b",
                2,
                json!({"question": "q", "expected_json": {"escalat": true}}),
            ),
        ];
        let a = artifact("");
        let subjects = [Subject {
            name: "p@v1".into(),
            artifact: &a,
        }];
        let checks = vec![check(
            json!({"json_field": {"path": "/x", "equals": "{{ expected_json.escalate }}"}, "id": "esc"}),
        )];
        let r = resolve(&checks, &HashMap::new(), &cases, &subjects, "suite.yaml");
        assert_eq!(r.errors.len(), 1);
        let e = r.errors[0].to_string();
        assert!(
            e.contains("`expected_json.escalate` (`expected_json` has no `escalate`)"),
            "{e}"
        );
        assert!(
            e.contains("one case lacks it") && e.contains("(case `b`)"),
            "{e}"
        );
        assert!(e.contains("did you mean `expected_json.escalat`?"), "{e}");
        // A root every case lacks, with the closest column.
        let checks = vec![check(json!({"contains": "{{ questin }}", "id": "c"}))];
        let r = resolve(&checks, &HashMap::new(), &cases, &subjects, "suite.yaml");
        let e = r.errors[0].to_string();
        assert!(
            e.contains("none of the 2 cases has it") && e.contains("did you mean `question`?"),
            "{e}"
        );
        // Present everywhere: nothing to say.
        let checks = vec![check(json!({"contains": "{{ question }}"}))];
        assert!(
            resolve(&checks, &HashMap::new(), &cases, &subjects, "s")
                .errors
                .is_empty()
        );
        // `expected` is a column too: a case without one cannot be checked against it.
        let checks = vec![check(json!({"equals": "{{ expected }}"}))];
        let r = resolve(&checks, &HashMap::new(), &cases, &subjects, "s");
        assert!(
            r.errors[0].to_string().contains("reads `expected`"),
            "{}",
            r.errors[0]
        );
    }

    #[test]
    fn a_cases_own_checks_are_resolved_against_that_case_only_in_id_order() {
        let cases = vec![
            case("z", 1, json!({"question": "q"})),
            case("a", 2, json!({"question": "q", "topic": "t"})),
            case("m", 3, json!({"question": "q"})),
        ];
        let a = artifact("");
        let subjects = [Subject {
            name: "p@v1".into(),
            artifact: &a,
        }];
        let reads_topic = || vec![check(json!({"contains": "{{ topic }}"}))];
        // `a` has a topic; `z` and `m` do not; `gone` is no case at all.
        let own: HashMap<String, Vec<Check>> = ["z", "a", "m", "gone"]
            .into_iter()
            .map(|id| (id.to_string(), reads_topic()))
            .collect();
        let r = resolve(&[], &own, &cases, &subjects, "suite.yaml");
        let errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("d.jsonl:3 (case `m`)"), "{errors:?}");
        assert!(errors[1].contains("d.jsonl:1 (case `z`)"), "{errors:?}");
    }

    #[test]
    fn a_tool_must_be_declared_by_some_version_and_warned_of_where_missing() {
        let with = artifact("tools: [ { name: search_kb, parameters: { type: object } } ]\n");
        let without = artifact("");
        let cases = vec![case("a", 1, json!({"question": "q"}))];
        let both = [
            Subject {
                name: "p@v2".into(),
                artifact: &with,
            },
            Subject {
                name: "p@v1".into(),
                artifact: &without,
            },
        ];
        let typo = vec![check(json!({"tool_call": "search_bk"}))];
        let r = resolve(&typo, &HashMap::new(), &cases, &both, "s");
        assert_eq!(r.errors.len(), 1);
        assert!(
            r.errors[0]
                .to_string()
                .contains("did you mean `search_kb`?"),
            "{}",
            r.errors[0]
        );
        let ok = vec![check(json!({"tool_call": "search_kb"}))];
        let r = resolve(&ok, &HashMap::new(), &cases, &both, "s");
        assert!(r.errors.is_empty());
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("`p@v1`"), "{}", r.warnings[0]);
        let one = [Subject {
            name: "p@v2".into(),
            artifact: &with,
        }];
        let r = resolve(&ok, &HashMap::new(), &cases, &one, "s");
        assert!(r.errors.is_empty() && r.warnings.is_empty());
        let none = [Subject {
            name: "p@v1".into(),
            artifact: &without,
        }];
        let r = resolve(&ok, &HashMap::new(), &cases, &none, "s");
        assert!(
            r.errors[0].to_string().contains("declares no `tools:`"),
            "{}",
            r.errors[0]
        );
    }
}
