//! Deterministic checks: every type, its negation and its reason; templated values; weights.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};

use promptgate_core::artifact;
use promptgate_core::call::{Completion, ToolCall};
use promptgate_core::checks::{self, Kind, Output};

const VERSION: &str = r#"
model: { provider: openai, name: m }
variables: { question: {} }
messages: [ { role: user, content: "{{ question }}" } ]
tools:
  - name: search_kb
    parameters: { type: object, properties: { query: { type: string }, top_k: { type: integer } }, required: [query] }
output_schema:
  type: object
  properties:
    answer: { type: string }
    meta: { type: object, properties: { lang: { type: string } }, required: [lang] }
  required: [answer, meta]
"#;

fn artifact() -> artifact::Artifact {
    artifact::load(Path::new("v.yaml"), VERSION)
        .unwrap()
        .artifact
}

fn run(spec: Value, content: &str, tool_calls: Vec<ToolCall>) -> checks::CheckResult {
    let check = checks::parse_check(&spec, 0, "suite.yaml").unwrap_or_else(|d| panic!("{d}"));
    let completion = Completion {
        content: content.into(),
        tool_calls,
        output_tokens: 42,
        ..Completion::default()
    };
    let out = Output {
        completion: &completion,
        latency_ms: 800.0,
        cost_usd: 0.002,
    };
    let vars = json!({"question": "How do I get a refund?", "product": "Acme"});
    let ctx = checks::context(
        vars.as_object().unwrap().clone(),
        Some(&json!("refund")),
        Some(&json!({"answer": "x"})),
    );
    checks::run(&check, &out, &ctx, &artifact())
}

#[test]
fn every_check_type_with_its_negation_and_reason() {
    let answer = r#"{"answer": "Your refund is on its way", "meta": {"lang": "en"}}"#;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"equals": "  Refund  issued ", "trim": true, "collapse_whitespace": true, "case_insensitive": true}),
            "refund issued",
        ),
        (json!({"equals": "refund issued"}), "Refund issued"),
        (
            json!({"contains": "{{ expected }}"}),
            "your refund is ready",
        ),
        (json!({"contains": "{{ expected }}"}), "no money back"),
        (json!({"icontains": "REFUND"}), "your refund"),
        (
            json!({"contains_all": ["refund", "{{ product }}"]}),
            "Acme sent your refund",
        ),
        (
            json!({"contains_all": ["refund", "{{ product }}", "today"]}),
            "Acme sent your refund",
        ),
        (
            json!({"contains_any": ["refund", "credit"]}),
            "store credit",
        ),
        (json!({"starts_with": "Sure"}), "Sure, here it is"),
        (json!({"regex": "^\\d{3}-\\d{4}$"}), "555-1234"),
        (json!({"regex": "^\\d{3}-\\d{4}$"}), "call 555-1234"),
        (json!({"min_length": 10}), "short"),
        (json!({"max_length": 10}), "short"),
        (json!({"min_words": 3}), "one two three"),
        (json!({"max_words": 2}), "one two three"),
        (
            json!({"edit_similarity": "refund issued", "threshold": 0.8}),
            "refund issued!",
        ),
        (
            json!({"edit_similarity": "refund issued"}),
            "something else",
        ),
        (json!({"json_valid": true}), answer),
        (json!({"json_valid": true}), "{not json"),
        (json!({"json_schema": "output"}), answer),
        (
            json!({"json_schema": "output"}),
            r#"{"answer": "x", "meta": {}}"#,
        ),
        (
            json!({"json_field": {"path": "meta.lang", "equals": "en"}}),
            answer,
        ),
        (
            json!({"json_field": {"path": "/score", "equals": 0.5, "tolerance": 0.01}}),
            r#"{"score": 0.505}"#,
        ),
        (
            json!({"json_field": {"path": "/answer", "equals": "x"}}),
            "plain text",
        ),
        (json!({"latency_ms": 1000}), "x"),
        (json!({"cost": 0.001}), "x"),
        (json!({"output_tokens": 40}), "x"),
    ];
    let mut table = String::new();
    for (spec, content) in cases {
        for negate in [false, true] {
            let s = if negate {
                json!({"not": spec.clone()})
            } else {
                spec.clone()
            };
            let r = run(s.clone(), content, vec![]);
            let plain = run(spec.clone(), content, vec![]);
            if plain.reason.starts_with("cannot apply") {
                assert!(
                    !r.pass && !plain.pass,
                    "a check that cannot apply fails, negated or not"
                );
            } else if negate {
                assert_eq!(r.pass, !plain.pass, "negation inverts {spec}");
                assert!((r.score - (1.0 - plain.score)).abs() < 1e-12);
            }
            table.push_str(&format!(
                "{:<5} {:.2}  {:<28} {}\n",
                if r.pass { "pass" } else { "FAIL" },
                r.score,
                r.check,
                r.reason
            ));
        }
    }
    insta::assert_snapshot!(table);
}

#[test]
fn tool_calls_are_checked_against_the_versions_schema() {
    let call = |args: Value| {
        vec![ToolCall {
            name: "search_kb".into(),
            arguments: args,
        }]
    };
    let ok = run(
        json!({"tool_call": {"name": "search_kb", "arguments": {"query": "{{ expected }}"}}}),
        "",
        call(json!({"query": "refund", "top_k": 3})),
    );
    assert!(ok.pass, "{}", ok.reason);
    let bad_type = run(
        json!({"tool_call": "search_kb"}),
        "",
        call(json!({"query": "refund", "top_k": "three"})),
    );
    assert!(!bad_type.pass);
    assert!(bad_type.reason.contains("/top_k"), "{}", bad_type.reason);
    let missing = run(
        json!({"tool_call": "search_kb"}),
        "",
        call(json!({"top_k": 3})),
    );
    assert!(
        !missing.pass && missing.reason.contains("query"),
        "{}",
        missing.reason
    );
    let wrong_arg = run(
        json!({"tool_call": {"name": "search_kb", "arguments": {"query": "billing"}}}),
        "",
        call(json!({"query": "refund"})),
    );
    assert!(
        !wrong_arg.pass && wrong_arg.reason.contains("expected \"billing\""),
        "{}",
        wrong_arg.reason
    );
    let none = run(json!({"tool_call": "search_kb"}), "plain answer", vec![]);
    assert!(
        !none.pass && none.reason.contains("no tool call"),
        "{}",
        none.reason
    );
}

#[test]
fn bad_check_declarations_are_clear_errors() {
    let err = |v: Value| {
        checks::parse_check(&v, 2, "prompts/p/suite.yaml")
            .unwrap_err()
            .to_string()
    };
    let e = err(json!({"contians": "x"}));
    assert!(
        e.contains("checks[2]") && e.contains("did you mean `contains`"),
        "{e}"
    );
    let e = err(json!({"regex": "(unclosed"}));
    assert!(e.contains("invalid regular expression"), "{e}");
    let e = err(json!({"contains": "a", "regex": "b"}));
    assert!(e.contains("one check type per entry"), "{e}");
    let e = err(json!({"json_schema": {"type": "strng"}}));
    assert!(e.contains("invalid JSON Schema"), "{e}");
    let e = err(json!({"contains": "a", "weight": -1}));
    assert!(e.contains("negative"), "{e}");
}

#[test]
fn metric_scores_are_weighted_means() {
    let r = |check: &str, metric: &str, pass: bool, score: f64| checks::CheckResult {
        judge: None,
        check: check.into(),
        metric: metric.into(),
        pass,
        score,
        reason: String::new(),
        cannot_apply: false,
    };
    let results = vec![
        r("a", "pass", true, 1.0),
        r("b", "pass", false, 0.5),
        r("c", "style", true, 1.0),
    ];
    let weights: BTreeMap<String, f64> = [("a".to_string(), 3.0), ("b".to_string(), 1.0)].into();
    let m = checks::metric_scores(&results, &weights);
    assert!((m["pass"].0 - 3.5 / 4.0).abs() < 1e-12);
    assert!(
        !m["pass"].1,
        "a metric passes only when all its checks pass"
    );
    assert_eq!(m["style"], (1.0, true));
}

proptest! {
    #[test]
    fn negation_inverts_and_weighted_scores_stay_in_range(
        text in "[a-z ]{0,30}",
        needle in "[a-z]{1,4}",
        weights in proptest::collection::vec(0.0f64..10.0, 1..6),
        scores in proptest::collection::vec(0.0f64..=1.0, 1..6),
    ) {
        let plain = run(json!({"contains": needle.clone()}), &text, vec![]);
        let negated = run(json!({"not": {"contains": needle}}), &text, vec![]);
        prop_assert_eq!(plain.pass, !negated.pass);
        let n = weights.len().min(scores.len());
        let results: Vec<checks::CheckResult> = (0..n).map(|i| checks::CheckResult {
            judge: None,
            check: format!("c{i}"), metric: "m".into(), pass: scores[i] > 0.5, score: scores[i], reason: String::new(), cannot_apply: false,
        }).collect();
        let w: BTreeMap<String, f64> = (0..n).map(|i| (format!("c{i}"), weights[i])).collect();
        let (s, _) = checks::metric_scores(&results, &w)["m"];
        prop_assert!((0.0..=1.0).contains(&s));
    }
}

proptest! {
    #[test]
    fn a_metric_threshold_passes_exactly_the_scores_that_reach_it(
        scores in proptest::collection::vec(0.0f64..=1.0, 1..6),
        threshold in 0.0f64..=1.0,
    ) {
        let results: Vec<checks::CheckResult> = scores.iter().enumerate().map(|(i, s)| checks::CheckResult {
            judge: None,
            check: format!("c{i}"), metric: "m".into(), pass: *s == 1.0, score: *s, reason: String::new(), cannot_apply: false,
        }).collect();
        let mut m = checks::metric_scores(&results, &BTreeMap::new());
        let (score, all_pass) = m["m"];
        prop_assert_eq!(all_pass, scores.iter().all(|s| *s == 1.0));
        checks::apply_thresholds(&mut m, &[("m".to_string(), threshold)].into());
        prop_assert_eq!(m["m"].1, score >= threshold);
        prop_assert_eq!(m["m"].0, score);
    }
}

#[test]
fn metric_thresholds_are_validated_in_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suite.yaml");
    std::fs::write(&path, "metrics:\n  quality: { threshold: 1.5 }\n").unwrap();
    let e = promptgate_core::suite::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("`metrics.quality.threshold` must be between 0 and 1"),
        "{e}"
    );
    std::fs::write(&path, "metrics:\n  quality: { treshold: 0.5 }\n").unwrap();
    let e = promptgate_core::suite::load(&path).unwrap_err().to_string();
    assert!(e.contains("treshold") && e.contains("threshold"), "{e}");
    std::fs::write(&path, "metrics:\n  quality: { threshold: 0.5 }\n").unwrap();
    let s = promptgate_core::suite::load(&path).unwrap();
    assert_eq!(s.suite.metrics["quality"].threshold, Some(0.5));
}

/// Each check type with another type's option, and with a value of the wrong type: every
/// problem at once, each at its line and column, none silently ignored.
#[test]
fn every_check_type_rejects_foreign_options_and_wrong_types() {
    // (type, a valid value, another type's option, a wrongly typed value)
    let types: &[(&str, &str, &str, &str)] = &[
        ("equals", "\"x\"", "threshold: 0.5", "{ a: 1 }"),
        ("contains", "x", "trim: true", "[x]"),
        ("icontains", "x", "scale: [1, 5]", "{ a: 1 }"),
        ("contains_all", "[a, b]", "case_insensitive: true", "a"),
        ("contains_any", "[a, b]", "pairwise: true", "3"),
        ("starts_with", "x", "attempts: 2", "[x]"),
        ("regex", "\"a+\"", "trim: true", "5"),
        ("min_length", "1", "threshold: 1", "\"3\""),
        ("max_length", "1", "tolerance: 1", "-2"),
        ("min_words", "1", "trim: true", "1.5"),
        ("max_words", "1", "collapse_whitespace: true", "many"),
        ("edit_similarity", "x", "trim: true", "[x]"),
        ("json_valid", "true", "threshold: 0.5", "false"),
        ("json_schema", "output", "trim: true", "3"),
        (
            "json_field",
            "{ path: /a, equals: 1 }",
            "tolerance: 0.1",
            "\"/a\"",
        ),
        ("tool_call", "search", "threshold: 0.5", "3"),
        ("latency_ms", "100", "trim: true", "fast"),
        ("cost", "0.1", "threshold: 0.5", "-1"),
        ("output_tokens", "5", "trim: true", "1.5"),
        ("judge", "judges/j@production", "trim: true", "nope"),
        ("similar", "x", "trim: true", "[x]"),
        ("not", "{ contains: x }", "trim: true", "x"),
    ];
    let mut suite = String::from("checks:\n");
    for (ty, valid, option, _) in types {
        suite.push_str(&format!("  - {ty}: {valid}\n    {option}\n"));
    }
    for (ty, _, _, wrong) in types {
        suite.push_str(&format!("  - {ty}: {wrong}\n"));
    }
    // Wrongly typed options of a check's own.
    suite.push_str("  - equals: x\n    trim: \"yes\"\n");
    suite.push_str("  - edit_similarity: x\n    threshold: high\n");
    suite.push_str("  - judge: j@production\n    attempts: 20\n    scale: [5, 1]\n");
    suite.push_str("  - json_field: { path: /a, equals: 1, tolerance: \"0.1\" }\n");
    suite.push_str("  - contains: x\n    id: 7\n    weight: heavy\n");
    suite.push_str("  - not: { contains: x }\n    weight: \"2\"\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suite.yaml");
    std::fs::write(&path, &suite).unwrap();
    let err = promptgate_core::suite::load(&path).unwrap_err();
    let text = err
        .to_string()
        .replace(&dir.path().display().to_string(), "[DIR]");
    // Every entry of the file produced its own problem, none was taken silently.
    assert_eq!(err.diagnostics().len(), 2 * types.len() + 8, "{text}");
    insta::assert_snapshot!(text);
}

/// Check values at their bounds, through the same parser as `suite.yaml`.
#[test]
fn check_values_are_exact_at_their_bounds() {
    let parse = |v: Value| checks::parse_check(&v, 0, "suite.yaml").map_err(|d| d.to_string());
    let ok = |v: Value| parse(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
    let bad = |v: Value| assert!(parse(v.clone()).is_err(), "{v} should be refused");
    // Text: numbers and booleans are text; templates only when they look like one.
    for (v, text) in [
        (json!(42), "42"),
        (json!(true), "true"),
        (json!(0.5), "0.5"),
    ] {
        let out = Output {
            completion: &Completion {
                content: format!("x{text}x"),
                ..Completion::default()
            },
            latency_ms: 0.0,
            cost_usd: 0.0,
        };
        let ctx = serde_json::Map::new();
        let r = checks::run(&ok(json!({"contains": v})), &out, &ctx, &artifact());
        assert!(r.pass, "{text}: {}", r.reason);
    }
    let plain = ok(json!({"contains": "{# not a comment"}));
    assert!(plain.vars.is_empty());
    bad(json!({"contains": {"a": 1}}));
    // Limits: 0 is a limit, a negative one is not.
    ok(json!({"latency_ms": 0}));
    ok(json!({"cost": 0}));
    bad(json!({"cost": -0.01}));
    ok(json!({"contains": "a", "weight": 0}));
    assert_eq!(ok(json!({"contains": "a", "weight": 2.5})).weight, 2.5);
    bad(json!({"contains": "a", "weight": -0.5}));
    // Thresholds.
    ok(json!({"similar": "x", "threshold": -1}));
    ok(json!({"similar": "x", "threshold": -0.5}));
    bad(json!({"similar": "x", "threshold": 1.5}));
    ok(json!({"edit_similarity": "x", "threshold": 0}));
    bad(json!({"edit_similarity": "x", "threshold": -0.1}));
    // json_schema: `output`, `true`, or a schema.
    assert!(matches!(
        ok(json!({"json_schema": true})).kind,
        Kind::JsonSchema(None)
    ));
    assert!(matches!(
        ok(json!({"json_schema": "output"})).kind,
        Kind::JsonSchema(None)
    ));
    bad(json!({"json_schema": "input"}));
    bad(json!({"json_schema": false}));
    // json_field needs both `path` and `equals`.
    for (spec, missing) in [
        (json!({"json_field": {"path": "/a"}}), "needs `equals`"),
        (json!({"json_field": {"equals": 1}}), "needs `path`"),
    ] {
        let e = parse(spec).unwrap_err();
        assert!(e.contains(missing), "{e}");
    }
    ok(json!({"json_field": {"path": "/a", "equals": 1}}));
    // tool_call: a name, not an empty one.
    bad(json!({"tool_call": ""}));
    ok(json!({"tool_call": "t"}));
    // Judges: 1 to 10 attempts, a scale going up.
    for a in [1, 5, 10] {
        ok(json!({"judge": "j@v1", "attempts": a}));
    }
    for a in [0, 11] {
        bad(json!({"judge": "j@v1", "attempts": a}));
    }
    ok(json!({"judge": "j@v1", "scale": [1, 5]}));
    bad(json!({"judge": "j@v1", "scale": [1, 1]}));
    bad(json!({"judge": "j@v1", "scale": [5, 1]}));
    bad(json!({"judge": "@v1"}));
    bad(json!({"judge": "j@"}));
    // A non-finite number is no text, and a repeated id says where the first one is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suite.yaml");
    std::fs::write(&path, "checks:\n  - contains: .inf\n").unwrap();
    let e = promptgate_core::suite::load(&path).unwrap_err().to_string();
    assert!(e.contains("must be text"), "{e}");
    std::fs::write(
        &path,
        "checks:\n  - contains: a\n    id: x\n  - contains: b\n    id: x\n",
    )
    .unwrap();
    let e = promptgate_core::suite::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("the check id `x` is used twice") && e.contains("the first is at line 2"),
        "{e}"
    );
    // A list of checks from JSON (a dataset row's column) reports every problem at once.
    let e =
        checks::parse_checks(&[json!({"contians": 1}), json!({"regex": "("})], "row").unwrap_err();
    assert_eq!(e.diagnostics().len(), 2);
    assert_eq!(
        checks::parse_checks(&[json!({"contains": "a"})], "row")
            .unwrap()
            .len(),
        1
    );
}
