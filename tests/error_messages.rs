//! What a person reads when a file is wrong: file, line, column, key path, what was expected,
//! and a hint. Snapshot-tested so a regression in wording is a reviewed diff.

use crate::support::TestRepo;

/// Register `content` as `prompts/p/v1.yaml` and return the redacted error output.
fn add_error(content: &str) -> String {
    let repo = TestRepo::new();
    repo.write("prompts/p/v1.yaml", content);
    let out = repo.pg(&["add", "p"]).code(2);
    assert!(
        !repo.file("prompts/p/registry.yaml").exists(),
        "nothing registered on error"
    );
    repo.redact(&out.stderr)
}

#[test]
fn malformed_yaml() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m\nmessages:\n  - role: user\n    content: hi\n"
    ));
}

#[test]
fn unknown_key_with_suggestion() {
    insta::assert_snapshot!(add_error(
        "model:\n  provider: openai\n  name: gpt-4o-mini\n  temprature: 0.3\nmessages:\n  - role: user\n    content: hi\n"
    ));
}

#[test]
fn unknown_top_level_key() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nmesages:\n  - role: user\n    content: hi\n"
    ));
}

#[test]
fn invalid_role() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nmessages:\n  - role: sytem\n    content: hi\n"
    ));
}

#[test]
fn undeclared_template_variable() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nvariables:\n  question: { type: string }\nmessages:\n  - role: system\n    content: |\n      You support {{ product_name }}.\n  - role: user\n    content: \"{{ questoin }}\"\n"
    ));
}

#[test]
fn template_syntax_error() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nmessages:\n  - role: system\n    content: |\n      Hello.\n      {% if x %}unterminated\n"
    ));
}

#[test]
fn invalid_json_schema() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nmessages:\n  - role: user\n    content: hi\noutput_schema:\n  type: object\n  properties:\n    answer: { type: strng }\n  required: answer\n"
    ));
}

#[test]
fn duplicate_tool_names() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nmessages:\n  - role: user\n    content: hi\ntools:\n  - name: search\n    parameters: { type: object }\n  - name: search\n    parameters: { type: object }\n"
    ));
}

#[test]
fn unused_variable_is_a_warning() {
    let repo = TestRepo::new();
    repo.write("prompts/p/v1.yaml", "model: { provider: openai, name: m }\nvariables:\n  tone: { type: string, default: warm }\nmessages:\n  - role: user\n    content: hi\n");
    let out = repo.pg(&["add", "p"]).ok();
    insta::assert_snapshot!(repo.redact(&out.stderr));
}

#[test]
fn label_conflict() {
    let repo = TestRepo::with_versions(3);
    repo.label_set("p", "production", "v1", "none", "first release");
    repo.label_set("p", "production", "v2", "v1", "hotfix");
    let out = repo
        .pg(&[
            "label",
            "set",
            "p",
            "production",
            "v3",
            "--expect",
            "v1",
            "-m",
            "mine",
        ])
        .code(5);
    let text = repo.redact(&out.stderr);
    // Timestamps and hashes vary; keep the shape.
    let text = regex_lite_replace(&text);
    insta::assert_snapshot!(text);
}

/// Replace version hashes and timestamps with placeholders.
fn regex_lite_replace(s: &str) -> String {
    let mut out = String::new();
    for word in s.split_inclusive(['`', ' ', '(', ')']) {
        let (core, tail) = match word.char_indices().last() {
            Some((i, '`' | ' ' | '(' | ')')) => (&word[..i], &word[i..]),
            _ => (word, ""),
        };
        let is_id = core.starts_with('v') && core.len() == 10 && core.as_bytes()[2] == b'-';
        let is_ts = core.len() == 20 && core.ends_with('Z') && core.contains('T');
        if is_id {
            out.push_str(&format!("{}-[hash]", &core[..2]));
        } else if is_ts {
            out.push_str("[time]");
        } else {
            out.push_str(core);
        }
        out.push_str(tail);
    }
    out
}

#[test]
fn a_provider_that_is_not_configured() {
    insta::assert_snapshot!(add_error(
        "model: { provider: opneai, name: gpt-4o-mini }\nmessages:\n  - role: user\n    content: hi\n"
    ));
}

#[test]
fn an_unknown_template_filter() {
    insta::assert_snapshot!(add_error(
        "model: { provider: openai, name: m }\nvariables: { question: {} }\nmessages:\n  - role: user\n    content: \"{{ question | uper }}\"\n"
    ));
}

#[test]
fn a_temperature_the_provider_refuses() {
    let repo = TestRepo::new();
    repo.write(
        "promptgate.yaml",
        "version: 1\nproviders:\n  claude: { kind: anthropic, api_key_env: ANTHROPIC_API_KEY }\n",
    );
    repo.write(
        "prompts/p/v1.yaml",
        "model: { provider: claude, name: claude-sonnet, temperature: 1.5 }\nmessages:\n  - role: user\n    content: hi\n",
    );
    let out = repo.pg(&["add", "p"]).code(2);
    insta::assert_snapshot!(repo.redact(&out.stderr));
}

#[test]
fn a_schema_openai_cannot_take_as_strict_is_a_warning() {
    let repo = TestRepo::new();
    repo.write(
        "prompts/p/v1.yaml",
        "model: { provider: openai, name: gpt-4o-mini }\nmessages:\n  - role: user\n    content: hi\noutput_schema:\n  type: object\n  properties: { answer: { type: string }, note: { type: string } }\n  required: [answer]\n",
    );
    let out = repo.pg(&["add", "p"]).ok();
    assert!(
        out.stderr.contains("sent with `strict: false`"),
        "{}",
        out.stderr
    );
    let out = repo.pg(&["check"]).ok();
    insta::assert_snapshot!(repo.redact(&out.stderr));
}

/// A rollout policy is checked when the configuration is read, before anything runs: a typo
/// gets its suggestion, a bad value its line.
#[test]
fn a_rollout_policy_mistake() {
    let repo = TestRepo::new();
    let cfg = repo.read("promptgate.yaml");
    repo.write(
        "promptgate.yaml",
        &format!("{cfg}rollout:\n  steps: [5, 25, 50, 100]\n  min_sample: 500\n"),
    );
    let out = repo.pg(&["list"]).code(2);
    let typo = repo.redact(&out.stderr);
    repo.write(
        "promptgate.yaml",
        &format!(
            "{cfg}rollout:\n  steps: [5, 25, 50]\n  metrics:\n    - metric: error_rate\n      tolerance: 0.01\n    - metric: app.feedback.score\n      tolerance: 0.1\n"
        ),
    );
    let out = repo.pg(&["list"]).code(2);
    insta::assert_snapshot!(format!("{typo}\n---\n{}", repo.redact(&out.stderr)));
}
