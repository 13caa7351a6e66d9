//! The registry commands driven through the real binary: add, list, show, render, diff,
//! label set, log, check — and the ways each refuses bad input.

use crate::support::{TestRepo, version_yaml};

use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

#[test]
fn register_show_render_diff_label_log_check() {
    let repo = TestRepo::new();
    repo.write(
        "prompts/support/v1.yaml",
        &version_yaml("You help customers.", 0.2),
    );
    let out = repo.pg(&["add", "support"]).ok();
    assert!(
        out.stdout.contains("registered support@v1-"),
        "{}",
        out.stdout
    );

    // show --json: id, hash, artifact.
    let shown = json(&repo.pg(&["show", "support@v1", "--json"]).ok().stdout);
    let id = shown["version_id"].as_str().unwrap().to_string();
    let hash = shown["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    assert_eq!(id, format!("v1-{}", &hash[..7]));
    assert_eq!(shown["artifact"]["model"]["temperature"], 0.2);

    // A second version from a file outside the folder is copied in as v2.yaml.
    repo.write(
        "drafts/better.yaml",
        &version_yaml("You help customers kindly.", 0.2),
    );
    let out = repo.pg(&["add", "support", "drafts/better.yaml"]).ok();
    assert!(
        out.stdout.contains("prompts/support/v2.yaml"),
        "{}",
        out.stdout
    );
    assert!(repo.file("prompts/support/v2.yaml").is_file());

    // Labels: create with --expect none, move with CAS.
    repo.label_set("support", "production", "v1", "none", "first");
    let out = repo
        .pg(&[
            "label",
            "set",
            "support",
            "production",
            "v2",
            "--expect",
            "v1",
            "-m",
            "kinder",
        ])
        .ok();
    assert!(out.stdout.contains("→ v2-"), "{}", out.stdout);

    // Refs: label, number, id, hash prefix all resolve to the same version.
    let v2 = json(
        &repo
            .pg(&["show", "support@production", "--json"])
            .ok()
            .stdout,
    );
    let v2_hash = v2["hash"].as_str().unwrap();
    for r in [
        "support@v2",
        &format!("support@{}", v2["version_id"].as_str().unwrap()),
        &format!("support@{}", &v2_hash[..9]),
        "support",
        "support@latest",
    ] {
        let again = json(&repo.pg(&["show", r, "--json"]).ok().stdout);
        assert_eq!(again["hash"], v2["hash"], "ref {r}");
    }

    // Render: the exact request, with strict variables.
    let req = json(
        &repo
            .pg(&[
                "render",
                "support@production",
                "--var",
                "question=Where is my order?",
            ])
            .ok()
            .stdout,
    );
    assert_eq!(req["messages"][0]["content"], "You help customers kindly.");
    assert_eq!(req["messages"][1]["content"], "Where is my order?");
    assert_eq!(req["params"]["temperature"], 0.2);
    assert_eq!(req["version_id"], v2["version_id"]);
    // What the binary prints goes through the redactor: a credential typed into a variable
    // is not echoed to the terminal.
    let shown = repo
        .pg(&[
            "render",
            "support@production",
            "--var",
            "question=my key is sk-proj-AAAAAAAAAAAAAAAA",
        ])
        .ok()
        .stdout;
    assert!(!shown.contains("sk-proj-AAAA"), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");
    let out = repo.pg(&["render", "support@production"]).code(2);
    assert!(
        out.stderr.contains("missing variable `question`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("support@v2-"),
        "names the version: {}",
        out.stderr
    );
    let out = repo
        .pg(&[
            "render",
            "support@production",
            "--var",
            "question=x",
            "--var",
            "questoin=y",
        ])
        .code(2);
    assert!(
        out.stderr.contains("did you mean `question`"),
        "{}",
        out.stderr
    );

    // Diff: messages as text.
    let out = repo.pg(&["diff", "support@v1", "v2"]).ok();
    assert!(
        out.stdout.contains("-You help customers."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("+You help customers kindly."),
        "{}",
        out.stdout
    );

    // Log: newest first, with reasons.
    let out = repo.pg(&["log", "support"]).ok();
    let first_line = out.stdout.lines().next().unwrap();
    assert!(
        first_line.contains("label_set production"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("why: kinder"));
    let lines: Vec<Value> = repo
        .pg(&["log", "support", "--label", "production", "--json"])
        .ok()
        .stdout
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["reason"], "kinder");
    assert_eq!(lines[0]["actor"], "tester");

    // Check: all good.
    let out = repo.pg(&["check"]).ok();
    assert!(out.stderr.contains("0 error(s)"), "{}", out.stderr);

    // List.
    let out = repo.pg(&["list"]).ok();
    assert!(
        out.stdout.contains("support") && out.stdout.contains("production="),
        "{}",
        out.stdout
    );
    let out = repo.pg(&["list", "support"]).ok();
    assert!(
        out.stdout.lines().nth(1).unwrap().starts_with("v2-"),
        "newest first: {}",
        out.stdout
    );
}

#[test]
fn unknown_refs_suggest_what_exists() {
    let repo = TestRepo::with_versions(2);
    repo.label_set("p", "production", "v1", "none", "x");
    let out = repo.pg(&["show", "p@prodution"]).code(2);
    assert!(
        out.stderr.contains("did you mean `p@production`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("labels: `production`"),
        "{}",
        out.stderr
    );
    repo.write("prompts/support/v1.yaml", &version_yaml("Hi.", 0.1));
    repo.pg(&["add", "support"]).ok();
    let out = repo.pg(&["show", "suport@v1"]).code(2);
    assert!(
        out.stderr.contains("no prompt named `suport`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `support`"),
        "{}",
        out.stderr
    );
    let out = repo.pg(&["show", "p@stable"]).code(2);
    assert!(
        out.stderr.contains("has no label or version `stable`"),
        "{}",
        out.stderr
    );
    let out = repo.pg(&["show", "p@abc12"]).code(2);
    assert!(out.stderr.contains("too short"), "{}", out.stderr);
    let out = repo.pg(&["show", "p@v9"]).code(2);
    assert!(out.stderr.contains("versions: `v1-"), "{}", out.stderr);
}

#[test]
fn ambiguous_hash_prefixes_are_refused() {
    // Find two versions whose hashes share a 7-digit prefix would take ~2^14 tries; instead
    // check that a prefix shared by none resolves nothing and a full hash resolves exactly.
    let repo = TestRepo::with_versions(3);
    let v = json(&repo.pg(&["show", "p@v3", "--json"]).ok().stdout);
    let hash = v["hash"].as_str().unwrap();
    let again = json(
        &repo
            .pg(&["show", &format!("p@{hash}"), "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(again["version_id"], v["version_id"]);
    let out = repo.pg(&["show", "p@v3-0000000"]).code(2);
    assert!(out.stderr.contains("not `v3-0000000`"), "{}", out.stderr);
}

#[test]
fn an_edited_registered_version_is_refused() {
    let repo = TestRepo::with_versions(2);
    let edited = version_yaml("You are assistant number 2, now edited.", 0.1);
    repo.write("prompts/p/v2.yaml", &edited);
    let out = repo.pg(&["add", "p"]).code(2);
    assert!(
        out.stderr
            .contains("v2 was edited after registration; add it as v3 instead"),
        "{}",
        out.stderr
    );
    // It cannot be rendered or labelled either: its id would lie about its content.
    let out = repo.pg(&["render", "p@v2", "--var", "question=x"]).code(2);
    assert!(
        out.stderr.contains("edited after registration"),
        "{}",
        out.stderr
    );
    let out = repo
        .pg(&[
            "label",
            "set",
            "p",
            "production",
            "v2",
            "--expect",
            "none",
            "-m",
            "x",
        ])
        .code(2);
    assert!(
        out.stderr.contains("edited after registration"),
        "{}",
        out.stderr
    );
    let out = repo.pg(&["check"]).code(2);
    assert!(
        out.stderr.contains("does not match its registered hash"),
        "{}",
        out.stderr
    );

    // Reformatting and re-commenting does not count as an edit.
    let original = version_yaml("You are assistant number 2.", 0.1);
    let reformatted = format!(
        "# a comment\n{}\n\n",
        original.replace("temperature: 0.1", "temperature: 0.10")
    );
    repo.write("prompts/p/v2.yaml", &reformatted);
    repo.pg(&["check"]).ok();
    repo.pg(&["render", "p@v2", "--var", "question=x"]).ok();
}

#[test]
fn duplicate_content_and_already_registered_files_are_refused() {
    let repo = TestRepo::with_versions(1);
    repo.write(
        "drafts/same.yaml",
        &format!(
            "# same content, new comments\n{}",
            version_yaml("You are assistant number 1.", 0.1)
        ),
    );
    let out = repo.pg(&["add", "p", "drafts/same.yaml"]).code(2);
    assert!(
        out.stderr.contains("same content as `v1-"),
        "{}",
        out.stderr
    );
    let out = repo.pg(&["add", "p", "prompts/p/v1.yaml"]).code(2);
    assert!(out.stderr.contains("already registered"), "{}", out.stderr);
    let out = repo.pg(&["add", "p"]).code(2);
    assert!(
        out.stderr.contains("no new version files"),
        "{}",
        out.stderr
    );
}

#[test]
fn label_moves_are_compare_and_swap() {
    let repo = TestRepo::with_versions(3);
    repo.label_set("p", "production", "v1", "none", "start");
    // A stale --expect is a conflict (exit 5) that says who moved the label and why.
    repo.label_set("p", "production", "v2", "v1", "to v2");
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
            "late",
        ])
        .code(5);
    assert!(out.stderr.contains("points at `v2-"), "{}", out.stderr);
    assert!(out.stderr.contains("moved by tester"), "{}", out.stderr);
    assert!(out.stderr.contains("\"to v2\""), "{}", out.stderr);
    assert!(out.stderr.contains("--expect v2-"), "{}", out.stderr);
    // --expect none on an existing label is a conflict too.
    repo.pg(&[
        "label",
        "set",
        "p",
        "production",
        "v3",
        "--expect",
        "none",
        "-m",
        "x",
    ])
    .code(5);
    // A label can point where another label points.
    repo.label_set("p", "canary", "production", "none", "mirror");
    let out = repo.pg(&["list", "p"]).ok();
    assert!(out.stdout.contains("canary, production"), "{}", out.stdout);
    // Reserved and malformed label names are refused.
    for bad in ["v4", "latest", "deadbeef", "a b"] {
        repo.pg(&[
            "label", "set", "p", bad, "v1", "--expect", "none", "-m", "x",
        ])
        .code(2);
    }
    // Nothing refused reached the audit log.
    let n = repo.read("prompts/p/audit.jsonl").lines().count();
    assert_eq!(n, 3 + 3, "3 registrations and 3 moves");
    repo.pg(&["check"]).ok();
}

#[test]
fn check_finds_a_hand_edited_registry_hash() {
    let repo = TestRepo::with_versions(2);
    let reg = repo.read("prompts/p/registry.yaml");
    let v1 = json(&repo.pg(&["show", "p@v1", "--json"]).ok().stdout);
    let h = v1["hash"].as_str().unwrap();
    let forged = format!("{}{}", &h[..60], "ffff");
    repo.write("prompts/p/registry.yaml", &reg.replace(h, &forged));
    let out = repo.pg(&["check"]).code(2);
    assert!(
        out.stderr.contains("does not match its registered hash"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the audit log registered no such version"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_finds_a_hand_moved_label() {
    let repo = TestRepo::with_versions(2);
    repo.label_set("p", "production", "v1", "none", "x");
    let reg = repo.read("prompts/p/registry.yaml");
    let v1 = json(&repo.pg(&["show", "p@v1", "--json"]).ok().stdout)["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v2 = json(&repo.pg(&["show", "p@v2", "--json"]).ok().stdout)["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    repo.write(
        "prompts/p/registry.yaml",
        &reg.replace(&format!("production: {v1}"), &format!("production: {v2}")),
    );
    let out = repo.pg(&["check"]).code(2);
    assert!(
        out.stderr.contains("label `production` is"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_finds_tampered_and_deleted_audit_lines() {
    let repo = TestRepo::with_versions(2);
    repo.label_set("p", "production", "v1", "none", "first");
    repo.label_set("p", "production", "v2", "v1", "second");
    let audit = repo.read("prompts/p/audit.jsonl");
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 4);

    // Tampered: the reason of line 3 rewritten.
    repo.write(
        "prompts/p/audit.jsonl",
        &audit.replace("\"first\"", "\"approved by CTO\""),
    );
    let out = repo.pg(&["check"]).code(2);
    assert!(
        out.stderr.contains("audit entry 3 was modified"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("audit.jsonl:3"), "{}", out.stderr);
    // Writers refuse to extend a broken chain.
    let out = repo
        .pg(&[
            "label", "set", "p", "canary", "v1", "--expect", "none", "-m", "x",
        ])
        .code(2);
    assert!(out.stderr.contains("does not verify"), "{}", out.stderr);

    // Deleted from the middle.
    let middle: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    repo.write("prompts/p/audit.jsonl", &middle);
    let out = repo.pg(&["check"]).code(2);
    assert!(
        out.stderr.contains("audit chain broken before entry 4"),
        "{}",
        out.stderr
    );

    // Deleted from the end: the chain alone cannot see it, the registry checkpoint can.
    let truncated: String = lines[..3].iter().map(|l| format!("{l}\n")).collect();
    repo.write("prompts/p/audit.jsonl", &truncated);
    let out = repo.pg(&["check"]).code(2);
    assert!(
        out.stderr.contains("entries were deleted from its end"),
        "{}",
        out.stderr
    );

    // Restored: clean again.
    repo.write("prompts/p/audit.jsonl", &audit);
    repo.pg(&["check"]).ok();
}

#[test]
fn init_scaffolds_a_working_repository() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("prompts-repo");
    let out = std::process::Command::new(crate::support::BIN)
        .args(["init", target.to_str().unwrap()])
        .env("PROMPTGATE_ACTOR", "tester")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "promptgate.yaml",
        "prompts/hello/v1.yaml",
        "prompts/hello/registry.yaml",
        "prompts/hello/audit.jsonl",
        "datasets/hello.jsonl",
        ".gitignore",
    ] {
        assert!(target.join(f).is_file(), "{f} missing");
    }
    assert!(
        std::fs::read_to_string(target.join(".gitignore"))
            .unwrap()
            .contains(".promptgate/")
    );
    let run = |args: &[&str]| {
        std::process::Command::new(crate::support::BIN)
            .arg("-C")
            .arg(&target)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["render", "hello@production", "--var", "name=Ada"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Say hello to Ada."));
    assert!(run(&["check"]).status.success());
    // A second init refuses to overwrite.
    assert_eq!(
        run(&["init", target.to_str().unwrap()]).status.code(),
        Some(2)
    );
}

#[test]
fn not_a_repository_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::support::BIN)
        .current_dir(dir.path())
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("promptgate init"));
}

#[test]
fn render_expands_few_shot_tools_and_output_schema() {
    let repo = TestRepo::new();
    repo.write("prompts/s/v1.yaml", r#"
model: { provider: openai, name: m, temperature: 0.5, max_tokens: 100, stop: ["\n\n"], seed: 3, params: { reasoning_effort: low } }
variables:
  product: { type: string, default: Acme }
  question: { type: string }
  n: { type: integer, default: 2 }
messages:
  - role: system
    content: "Support for {{ product }}; answer in {{ n }} sentences."
  - role: user
    content: "Q: {{ question }}"
few_shot:
  - input: { question: "Reset password?" }
    output: { answer: "Settings.", escalate: false }
  - input: "A literal user turn"
    output: "A literal answer"
tools:
  - name: search_kb
    parameters: { type: object, properties: { query: { type: string } }, required: [query] }
output_schema:
  type: object
  properties: { answer: { type: string }, escalate: { type: boolean } }
  required: [answer, escalate]
"#);
    repo.pg(&["add", "s"]).ok();
    let req = json(
        &repo
            .pg(&["render", "s", "--var", "question=Refund?", "--var", "n=3"])
            .ok()
            .stdout,
    );
    let roles: Vec<&str> = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user", "assistant", "user"]
    );
    assert_eq!(
        req["messages"][0]["content"],
        "Support for Acme; answer in 3 sentences."
    );
    assert_eq!(req["messages"][1]["content"], "Q: Reset password?");
    assert_eq!(
        req["messages"][2]["content"],
        r#"{"answer":"Settings.","escalate":false}"#
    );
    assert_eq!(req["messages"][3]["content"], "A literal user turn");
    assert_eq!(req["messages"][5]["content"], "Q: Refund?");
    assert_eq!(req["tools"][0]["name"], "search_kb");
    assert_eq!(req["response_format"]["type"], "json_schema");
    assert_eq!(req["response_format"]["schema"]["required"][1], "escalate");
    assert_eq!(req["params"]["reasoning_effort"], "low");
    assert_eq!(req["params"]["stop"][0], "\n\n");
    // Typed --var: an integer variable refuses text.
    let out = repo
        .pg(&["render", "s", "--var", "question=x", "--var", "n=two"])
        .code(2);
    assert!(out.stderr.contains("variable `n`"), "{}", out.stderr);
    // --vars-file.
    repo.write("vars.yaml", "question: From a file\n");
    let req = json(
        &repo
            .pg(&["render", "s", "--vars-file", "vars.yaml"])
            .ok()
            .stdout,
    );
    assert_eq!(req["messages"][5]["content"], "Q: From a file");
}

#[test]
fn diff_names_breaking_schema_changes() {
    let repo = TestRepo::new();
    let base = r#"
model: { provider: openai, name: m }
messages: [ { role: user, content: hi } ]
tools:
  - name: lookup
    parameters:
      type: object
      properties: { id: { type: string }, verbose: { type: boolean } }
      required: [id]
output_schema:
  type: object
  properties:
    answer: { type: string }
    score: { type: number }
    tier: { type: string, enum: [free, pro, team] }
  required: [answer]
"#;
    let changed = r#"
model: { provider: openai, name: m }
messages: [ { role: user, content: hi } ]
tools:
  - name: lookup
    parameters:
      type: object
      properties: { id: { type: string }, limit: { type: integer } }
      required: [id, limit]
output_schema:
  type: object
  properties:
    answer: { type: string }
    score: { type: integer }
    tier: { type: string, enum: [free, pro] }
    reason: { type: string }
  required: [answer]
"#;
    repo.write("prompts/s/v1.yaml", base);
    repo.write("prompts/s/v2.yaml", changed);
    repo.pg(&["add", "s"]).ok();
    let out = repo.pg(&["diff", "s@v1", "s@v2"]).ok();
    let s = &out.stdout;
    assert!(
        s.contains("BREAKING  lookup.limit: field became required"),
        "{s}"
    );
    assert!(
        s.contains("BREAKING  lookup.verbose: property removed"),
        "{s}"
    );
    assert!(
        s.contains("BREAKING  score: type narrowed: number → integer"),
        "{s}"
    );
    assert!(
        s.contains("BREAKING  tier: enum value(s) removed: \"team\""),
        "{s}"
    );
    assert!(s.contains("change  reason: property added"), "{s}");
    let d = json(&repo.pg(&["diff", "s@v1", "s@v2", "--json"]).ok().stdout);
    assert_eq!(d["breaking"], 4);
    // The reverse direction widens: nothing breaking but the removed `reason`.
    let d = json(&repo.pg(&["diff", "s@v2", "s@v1", "--json"]).ok().stdout);
    let breaking: Vec<&str> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["breaking"] == true)
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(breaking, ["lookup.limit", "reason"]);
}

/// A reason holding escape sequences once cleared the screen, retitled the terminal and
/// printed a fake entry in `promptgate log`.
#[test]
fn escape_sequences_in_a_reason_are_shown_escaped_by_log() {
    let repo = TestRepo::with_versions(2);
    let hostile = "fine\u{1b}[2J\u{1b}]0;owned\u{7}\n#9    2026-01-01T00:00:00Z  admin  label_set production: v1 → v2";
    repo.label_set("p", "production", "v1", "none", hostile);
    let out = repo.pg(&["log", "p"]).ok();
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'),
        "{}",
        out.stdout
    );
    let stamps = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    insta::assert_snapshot!(stamps.replace_all(&out.stdout, "[TS]"));
    // The raw text stays in --json.
    let json = repo.pg(&["log", "p", "--json"]).ok();
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["reason"], hostile);
}

/// A reader that goes away (`list --json | head -1`) once made every printing command panic
/// with "failed printing to stdout: Broken pipe".
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    use std::process::Stdio;
    let repo = TestRepo::with_versions(2);
    repo.label_set("p", "production", "v1", "none", "first");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/support");
    let commands: Vec<Vec<&str>> = vec![
        vec!["list", "--json"],
        vec!["list", "p"],
        vec!["show", "p@v1"],
        vec!["show", "p@v1", "--json"],
        vec!["log", "p"],
        vec!["render", "p@v1", "--var", "question=hi"],
        vec!["diff", "p@v1", "p@v2"],
        vec![
            "-C",
            example,
            "gate",
            "support_agent",
            "--candidate",
            "v3",
            "--quiet",
        ],
    ];
    for args in commands {
        let mut child = repo
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
    }
}

/// `check` once panicked ("byte index 12 is not a char boundary") on a registry.yaml whose
/// hash holds a non-ASCII character.
#[test]
fn check_reports_a_non_ascii_hash_instead_of_panicking() {
    let repo = TestRepo::with_versions(1);
    let text = repo.read("prompts/p/registry.yaml");
    let re = regex::Regex::new(r"hash: ([0-9a-f]{11})").unwrap();
    let edited = re.replace(&text, "hash: ${1}é€").into_owned();
    assert_ne!(edited, text);
    repo.write("prompts/p/registry.yaml", &edited);
    let out = repo.pg(&["check"]).code(2);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stderr.contains("edited by hand"), "{}", out.stderr);
}

mod signed_audit {
    use promptgate::registry::audit::Entry;
    use promptgate::registry::signing::Signer;

    use crate::support::TestRepo;

    /// A key from `promptgate keygen`: (secret line, public key).
    fn keygen(repo: &TestRepo, id: &str) -> (String, String) {
        let out = repo.pg(&["keygen", "--id", id]).ok().stdout;
        let secret = out
            .lines()
            .find_map(|l| l.strip_prefix("PROMPTGATE_SIGNING_KEY="))
            .unwrap()
            .to_string();
        let public = out
            .lines()
            .find_map(|l| l.split("public_key: ").nth(1))
            .unwrap()
            .trim_end_matches(" }")
            .to_string();
        (secret, public)
    }

    fn config(keys: &[(&str, &str, Option<&str>)], require: bool) -> String {
        let mut s = String::from(crate::support::CONFIG);
        s.push_str(&format!(
            "audit:\n  require_signatures: {require}\n  keys:\n"
        ));
        for (id, public, retired) in keys {
            s.push_str(&format!("    - {{ id: {id}, public_key: \"{public}\""));
            if let Some(r) = retired {
                s.push_str(&format!(", retired_from: \"{r}\""));
            }
            s.push_str(" }\n");
        }
        s
    }

    fn run(repo: &TestRepo, key: Option<&str>, args: &[&str]) -> crate::support::Run {
        let mut c = repo.command(args);
        match key {
            Some(k) => c.env("PROMPTGATE_SIGNING_KEY", k),
            None => c.env_remove("PROMPTGATE_SIGNING_KEY"),
        };
        crate::support::Run::from_output(c.output().unwrap())
    }

    fn production(repo: &TestRepo) -> String {
        let out = repo.pg(&["show", "p@production", "--json"]).ok().stdout;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["version_id"].as_str().unwrap().to_string()
    }

    fn entries(repo: &TestRepo) -> Vec<Entry> {
        repo.read("prompts/p/audit.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn write_entries(repo: &TestRepo, es: &[Entry]) {
        let text: String = es.iter().map(Entry::to_line).collect();
        repo.write("prompts/p/audit.jsonl", &text);
    }

    /// p with v1, v2, v3 registered and production at v1, every entry signed by `ci`.
    fn signed_repo() -> (TestRepo, String, String) {
        let repo = TestRepo::new();
        let (secret, public) = keygen(&repo, "ci");
        repo.write("promptgate.yaml", &config(&[("ci", &public, None)], false));
        for i in 1..=3 {
            repo.write(
                &format!("prompts/p/v{i}.yaml"),
                &crate::support::version_yaml(&format!("Assistant {i}."), 0.1),
            );
        }
        run(&repo, Some(&secret), &["add", "p"]).ok();
        run(
            &repo,
            Some(&secret),
            &[
                "label",
                "set",
                "p",
                "production",
                "v1",
                "--expect",
                "none",
                "-m",
                "first",
            ],
        )
        .ok();
        assert!(entries(&repo).iter().all(|e| e.sig.is_some()));
        run(&repo, None, &["check"]).ok();
        (repo, secret, public)
    }

    #[track_caller]
    fn refused_by_check(repo: &TestRepo, line: usize, why: &str) {
        let out = run(repo, None, &["check"]).code(2);
        assert!(
            out.stderr.contains(&format!("audit.jsonl:{line}")) && out.stderr.contains(why),
            "line {line}, {why}: {}",
            out.stderr
        );
    }

    #[test]
    fn an_appended_entry_with_a_correct_hash_but_no_signature_is_refused() {
        let (repo, secret, _) = signed_repo();
        let mut es = entries(&repo);
        let last = es.last().unwrap().clone();
        let out = repo.pg(&["show", "p@v3", "--json"]).ok().stdout;
        let v3 = serde_json::from_str::<serde_json::Value>(&out).unwrap()["version_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut forged = last.clone();
        forged.seq = last.seq + 1;
        forged.from = last.to.clone();
        forged.to = Some(promptgate::registry::Target::One(v3));
        forged.actor = "attacker".into();
        forged.prev = last.hash.clone();
        forged.sig = None;
        forged.hash = forged.compute_hash();
        es.push(forged);
        write_entries(&repo, &es);
        refused_by_check(
            &repo,
            es.len(),
            "is not signed, though entries before it are",
        );
        // Readers do not roll it forward, and writers refuse the broken log.
        assert!(production(&repo).starts_with("v1-"));
        let out = run(
            &repo,
            Some(&secret),
            &[
                "label",
                "set",
                "p",
                "production",
                "v2",
                "--expect",
                "v1",
                "-m",
                "x",
            ],
        )
        .code(2);
        assert!(out.stderr.contains("does not verify"), "{}", out.stderr);
    }

    #[test]
    fn a_rewritten_last_entry_with_a_recomputed_checkpoint_is_refused() {
        let (repo, _, _) = signed_repo();
        let mut es = entries(&repo);
        let n = es.len();
        let last = es.last_mut().unwrap();
        last.reason = Some("rewritten".into());
        last.hash = last.compute_hash();
        let head = last.hash.clone();
        write_entries(&repo, &es);
        // The checkpoint follows the rewrite, as a careful forger would make it.
        let text = repo.read("prompts/p/registry.yaml");
        let bytes = repo.read("prompts/p/audit.jsonl").len();
        let re = regex::Regex::new(r"head: [0-9a-f]{64}").unwrap();
        let text = re.replace(&text, format!("head: {head}")).into_owned();
        let re = regex::Regex::new(r"bytes: \d+").unwrap();
        repo.write(
            "prompts/p/registry.yaml",
            &re.replace(&text, format!("bytes: {bytes}")),
        );
        refused_by_check(&repo, n, "does not match its content");
    }

    #[test]
    fn an_entry_signed_by_a_retired_key_is_refused() {
        let (repo, secret, public) = signed_repo();
        // Retire `ci` from before its last signature: the entries signed since are refused.
        let first_ts = entries(&repo)[0].ts.clone();
        repo.write(
            "promptgate.yaml",
            &config(&[("ci", &public, Some(&first_ts))], false),
        );
        refused_by_check(&repo, 1, "retired from");
        // And the writer will not sign with it any more.
        let out = run(
            &repo,
            Some(&secret),
            &[
                "label", "set", "p", "canary", "v2", "--expect", "none", "-m", "x",
            ],
        )
        .code(2);
        assert!(out.stderr.contains("retired"), "{}", out.stderr);
    }

    #[test]
    fn a_valid_entry_re_signed_by_an_unknown_key_is_refused() {
        let (repo, _, _) = signed_repo();
        let (mallory, _) = keygen(&repo, "mallory");
        let mallory = Signer::parse(&mallory, "test").unwrap();
        let mut es = entries(&repo);
        let n = es.len();
        mallory.sign(es.last_mut().unwrap());
        write_entries(&repo, &es);
        refused_by_check(&repo, n, "signed by `mallory`, which is not a trusted key");
    }

    #[test]
    fn with_signatures_required_an_unsigned_move_is_refused() {
        let (repo, secret, public) = signed_repo();
        repo.write("promptgate.yaml", &config(&[("ci", &public, None)], true));
        let before = repo.read("prompts/p/audit.jsonl");
        let out = run(
            &repo,
            None,
            &[
                "label",
                "set",
                "p",
                "production",
                "v2",
                "--expect",
                "v1",
                "-m",
                "unsigned",
            ],
        )
        .code(2);
        assert!(
            out.stderr.contains("requires signed audit entries"),
            "{}",
            out.stderr
        );
        assert_eq!(
            repo.read("prompts/p/audit.jsonl"),
            before,
            "nothing written"
        );
        // Signed, the same move goes through; an untrusted key does not.
        let (other, _) = keygen(&repo, "other");
        let out = run(
            &repo,
            Some(&other),
            &[
                "label",
                "set",
                "p",
                "production",
                "v2",
                "--expect",
                "v1",
                "-m",
                "other",
            ],
        )
        .code(2);
        assert!(
            out.stderr.contains("not one of the trusted"),
            "{}",
            out.stderr
        );
        run(
            &repo,
            Some(&secret),
            &[
                "label",
                "set",
                "p",
                "production",
                "v2",
                "--expect",
                "v1",
                "-m",
                "signed",
            ],
        )
        .ok();
        assert!(production(&repo).starts_with("v2-"));
        run(&repo, None, &["check"]).ok();
    }
}
