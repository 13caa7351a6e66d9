//! The promotion pipeline end to end: `gate`, `promote`, `rollback`, `eval --compare-to`,
//! `runs`, and the reports — the real binary against the stub server on 127.0.0.1, whose
//! answers depend on the version's system prompt so a candidate can be truly better, equal or
//! worse.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use promptgate_stub::{self as stub, Answer, Fault, Server};
use serde_json::Value;

use crate::support::TestRepo;

/// The system prompt and the question's number decide the answer: "MODE bad" (or a drifted
/// model) gets 2 cases in 5 wrong.
fn responder(drift: Arc<AtomicBool>) -> stub::Responder {
    Arc::new(move |body: &Value| {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let system = messages
            .iter()
            .find(|m| m["role"] == "system")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let question = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let n: u64 = question
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let bad = system.contains("MODE bad") || drift.load(Ordering::SeqCst);
        let content = if bad && n % 5 < 2 {
            format!("nope {n}")
        } else {
            format!("ok {n}")
        };
        Answer {
            content,
            tool_calls: vec![],
        }
    })
}

fn server(latency: Duration, fault_rate: f64, drift: Arc<AtomicBool>) -> Server {
    Server::start(stub::Config {
        latency,
        fault_rate,
        faults: vec![Fault::ServerError],
        responder: responder(drift),
        ..stub::Config::default()
    })
    .expect("stub server")
}

fn version(system: &str) -> String {
    format!(
        "model: {{ provider: stub, name: stub-model, temperature: 0 }}\nvariables:\n  question: {{ type: string }}\n\
         messages:\n  - role: system\n    content: \"{system}\"\n  - role: user\n    content: \"{{{{ question }}}}\"\n"
    )
}

/// Prompt `p`: v1 (good, production), v2 (equal: reworded), v3 (worse). A suite of `cases`
/// questions checked for "ok", and `datasets/small.jsonl` with 10.
fn repo_for(server: &Server, cases: usize, provider_extra: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "promptgate.yaml",
        &format!(
            "version: 1\nproviders:\n  stub:\n    kind: openai\n    base_url: {}\n    backoff_base_ms: 1\n{provider_extra}",
            server.base_url()
        ),
    );
    repo.write("prompts/p/v1.yaml", &version("MODE good. Answer ok."));
    repo.write(
        "prompts/p/v2.yaml",
        &version("MODE good. Answer ok, and kindly."),
    );
    repo.write("prompts/p/v3.yaml", &version("MODE bad. Answer."));
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: ok\n    id: says-ok\ngate:\n  min_cases: 30\n",
    );
    let rows = |n: usize| -> String {
        (0..n)
            .map(|i| format!("{{\"id\": \"c{i:03}\", \"question\": \"question number {i}\"}}\n"))
            .collect()
    };
    repo.write("datasets/p.jsonl", &rows(cases));
    repo.write("datasets/small.jsonl", &rows(10));
    repo.pg(&["add", "p"]).ok();
    repo.label_set("p", "production", "v1", "none", "first");
    repo
}

fn label(repo: &TestRepo, label: &str) -> String {
    let out = repo.pg(&["show", &format!("p@{label}"), "--json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("show json");
    v["version_id"].as_str().expect("version_id").to_string()
}

fn audit(repo: &TestRepo) -> Vec<Value> {
    repo.read("prompts/p/audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .collect()
}

fn id_of(repo: &TestRepo, v: &str) -> String {
    label(repo, v)
}

#[test]
fn a_worse_candidate_fails_and_moves_nothing() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 60, "");
    let before = repo.read("prompts/p/audit.jsonl");
    let out = repo
        .pg(&[
            "promote",
            "p@v3",
            "--label",
            "production",
            "-m",
            "try v3",
            "-q",
        ])
        .code(1);
    assert!(out.stdout.starts_with("FAIL"), "{}", out.stdout);
    assert!(
        out.stdout.contains("regressions: 24 of 60 cases"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("not promoted"), "{}", out.stderr);
    assert_eq!(label(&repo, "production"), id_of(&repo, "v1"));
    assert_eq!(repo.read("prompts/p/audit.jsonl"), before);
    // `gate` alone says the same, and the decision is in the candidate's run folder.
    let out = repo
        .pg(&["gate", "p", "--candidate", "v3", "--json", "-q"])
        .code(1);
    let report: Value = serde_json::from_str(&out.stdout).expect("json report");
    assert_eq!(report["decision"]["verdict"], "FAIL");
    let run = report["candidate"]["run_id"].as_str().unwrap();
    let gate: Value =
        serde_json::from_str(&repo.read(&format!(".promptgate/runs/{run}/gate.json"))).unwrap();
    assert_eq!(gate["verdict"], "FAIL");
    // The baseline was answered from the cache the second time.
    assert_eq!(report["baseline"]["cached"], 60);
}

#[test]
fn an_equal_candidate_passes_and_is_promoted_with_its_evidence() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 80, "");
    let out = repo
        .pg(&[
            "promote",
            "p@v2",
            "--label",
            "production",
            "-m",
            "kinder",
            "-q",
        ])
        .ok();
    assert!(out.stdout.starts_with("PASS"), "{}", out.stdout);
    assert!(
        out.stdout.contains("promoted p@production"),
        "{}",
        out.stdout
    );
    assert_eq!(label(&repo, "production"), id_of(&repo, "v2"));
    let last = audit(&repo).pop().unwrap();
    assert_eq!(last["action"], "promote");
    assert_eq!(last["reason"], "kinder");
    let run = last["gate_run"].as_str().expect("gate_run");
    let report = std::fs::read(repo.file(&format!(".promptgate/runs/{run}/report.json"))).unwrap();
    assert_eq!(
        last["report_digest"].as_str().unwrap(),
        promptgate::artifact::canonical::sha256_hex(&report)
    );
    // The audit chain still verifies.
    repo.pg(&["check"]).ok();

    // Rollback returns the label to v1, audited, without a gate.
    let requests = s.stats.requests();
    let out = repo
        .pg(&[
            "rollback",
            "p",
            "--label",
            "production",
            "-m",
            "v2 upset a customer",
        ])
        .ok();
    assert!(
        out.stdout.contains("rolled back p@production"),
        "{}",
        out.stdout
    );
    assert_eq!(s.stats.requests(), requests, "a rollback makes no calls");
    assert_eq!(label(&repo, "production"), id_of(&repo, "v1"));
    let last = audit(&repo).pop().unwrap();
    assert_eq!(last["action"], "rollback");
    assert_eq!(last["from"], id_of(&repo, "v2"));
    assert_eq!(last["to"], id_of(&repo, "v1"));
    assert_eq!(last["reason"], "v2 upset a customer");

    // `runs` lists the gate's runs with its verdict; prune keeps the evidence.
    let list = repo.pg(&["runs", "list", "--json"]).ok();
    let runs: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().any(|r| r["gate"]["verdict"] == "PASS"));
    repo.pg(&["eval", "p@v3", "-q"]).ok();
    let out = repo.pg(&["runs", "prune", "--keep", "0"]).ok();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    let left: Vec<Value> =
        serde_json::from_str(&repo.pg(&["runs", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        left.len(),
        2,
        "the gate's candidate and baseline runs are kept"
    );
    repo.pg(&["runs", "show", run]).ok();
}

#[test]
fn too_few_cases_is_inconclusive() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 60, "");
    let out = repo
        .pg(&[
            "gate",
            "p",
            "--candidate",
            "v2",
            "--dataset",
            "datasets/small.jsonl",
            "-q",
        ])
        .code(3);
    assert!(out.stdout.starts_with("INCONCLUSIVE"), "{}", out.stdout);
    assert!(
        out.stdout.contains("only 10 paired cases"),
        "{}",
        out.stdout
    );
    let before = repo.read("prompts/p/audit.jsonl");
    repo.pg(&[
        "promote",
        "p@v2",
        "--label",
        "production",
        "--dataset",
        "datasets/small.jsonl",
        "-q",
    ])
    .code(3);
    assert_eq!(label(&repo, "production"), id_of(&repo, "v1"));
    assert_eq!(repo.read("prompts/p/audit.jsonl"), before);
}

#[test]
fn a_label_moved_during_the_gate_is_a_conflict() {
    let s = server(Duration::from_millis(25), 0.0, Arc::default());
    let repo = repo_for(&s, 80, "    concurrency: 2\n");
    let child = repo
        .command(&[
            "promote",
            "p@v2",
            "--label",
            "production",
            "-m",
            "slow",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promote");
    let t0 = Instant::now();
    while s.stats.requests() == 0 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(s.stats.requests() > 0, "the gate never started");
    repo.label_set("p", "production", "v3", "v1", "hotfix meanwhile");
    assert!(
        s.stats.requests() < 160,
        "the gate finished before the label moved"
    );
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "stderr: {stderr}");
    assert!(
        stderr.contains("hotfix meanwhile") || stderr.contains("tester"),
        "{stderr}"
    );
    assert_eq!(
        label(&repo, "production"),
        id_of(&repo, "v3"),
        "nothing overwritten"
    );
    let last = audit(&repo).pop().unwrap();
    assert_eq!(last["action"], "label_set");
}

#[test]
fn errors_over_the_budget_fail_closed() {
    let s = server(Duration::ZERO, 0.3, Arc::default());
    let repo = repo_for(&s, 60, "    max_retries: 0\n");
    let before = repo.read("prompts/p/audit.jsonl");
    let out = repo
        .pg(&["promote", "p@v2", "--label", "production", "-m", "x", "-q"])
        .code(4);
    assert!(out.stdout.starts_with("INVALID"), "{}", out.stdout);
    assert!(out.stdout.contains("error budget"), "{}", out.stdout);
    assert_eq!(label(&repo, "production"), id_of(&repo, "v1"));
    assert_eq!(repo.read("prompts/p/audit.jsonl"), before);
}

#[test]
fn rollback_needs_a_previous_target_and_skip_gate_needs_a_reason() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 30, "");
    let out = repo
        .pg(&["rollback", "p", "--label", "production", "-m", "undo"])
        .code(2);
    assert!(out.stderr.contains("no previous target"), "{}", out.stderr);
    repo.pg(&[
        "rollback",
        "p",
        "--label",
        "production",
        "--to",
        "v3",
        "-m",
        "undo",
    ])
    .ok();
    assert_eq!(label(&repo, "production"), id_of(&repo, "v3"));
    let out = repo
        .pg(&["rollback", "p", "--label", "staging", "-m", "undo"])
        .code(2);
    assert!(out.stderr.contains("no label `staging`"), "{}", out.stderr);
    let out = repo
        .pg(&["promote", "p@v2", "--label", "production", "--skip-gate"])
        .code(2);
    assert!(out.stderr.contains("needs a reason"), "{}", out.stderr);
    repo.pg(&[
        "promote",
        "p@v2",
        "--label",
        "production",
        "--skip-gate",
        "-m",
        "INC-7",
    ])
    .ok();
    let last = audit(&repo).pop().unwrap();
    assert_eq!(last["skip_gate"], true);
    assert_eq!(last["action"], "promote");
    assert_eq!(s.stats.requests(), 0, "--skip-gate makes no calls");
}

#[test]
fn nightly_compare_to_last_flags_model_drift() {
    let drift = Arc::new(AtomicBool::new(false));
    let s = server(Duration::ZERO, 0.0, drift.clone());
    let repo = repo_for(&s, 60, "");
    let out = repo
        .pg(&["eval", "p@v1", "--compare-to", "last", "-q"])
        .code(2);
    assert!(
        out.stderr.contains("no earlier complete run"),
        "{}",
        out.stderr
    );
    repo.pg(&["eval", "p@v1", "-q"]).ok();
    // Same model answers the same: no drop.
    let out = repo
        .pg(&["eval", "p@v1", "--refresh", "--compare-to", "last", "-q"])
        .ok();
    assert!(out.stdout.contains("PASS"), "{}", out.stdout);
    drift.store(true, Ordering::SeqCst);
    let out = repo
        .pg(&[
            "eval",
            "p@v1",
            "--refresh",
            "--compare-to",
            "last",
            "-q",
            "--report",
            "md",
            "--out",
            "nightly",
        ])
        .code(1);
    assert!(out.stdout.contains("FAIL"), "{}", out.stdout);
    assert!(repo.read("nightly/report.md").contains("FAIL"));
}

/// Replace what changes from run to run.
fn stable(repo: &TestRepo, text: &str) -> String {
    let runs = regex::Regex::new(r"\d{8}T\d{6}Z-p-v\d+-[0-9a-f]{4}").unwrap();
    let text = runs.replace_all(text, "[RUN]");
    repo.redact(&text)
        .replace(env!("CARGO_PKG_VERSION"), "[VERSION]")
}

#[test]
fn reports_in_every_format() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 40, "");
    let out = repo
        .pg(&[
            "gate",
            "p",
            "--candidate",
            "v3",
            "-q",
            "--report",
            "md,json,junit,html,terminal",
            "--out",
            "out",
        ])
        .code(1);
    for f in [
        "report.md",
        "report.json",
        "junit.xml",
        "report.html",
        "report.txt",
    ] {
        assert!(out.stderr.contains(f), "{f} not announced: {}", out.stderr);
    }
    insta::assert_snapshot!("gate_terminal", stable(&repo, &repo.read("out/report.txt")));
    insta::assert_snapshot!("gate_markdown", stable(&repo, &repo.read("out/report.md")));
    insta::assert_snapshot!("gate_junit", stable(&repo, &repo.read("out/junit.xml")));

    // The JSON report validates against its published schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let report: Value = serde_json::from_str(&repo.read("out/report.json")).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(report["report_version"], 1);
    assert_eq!(report["cases"].as_array().unwrap().len(), 40);
    // A schema that can fail: a report missing its decision does not validate.
    let mut broken = report.clone();
    broken.as_object_mut().unwrap().remove("decision");
    assert!(!validator.is_valid(&broken));

    // The HTML page is self-contained: nothing is fetched when it opens.
    let html = repo.read("out/report.html");
    assert!(html.starts_with("<!doctype html>"));
    for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!html.contains(needle), "the HTML report fetches `{needle}`");
    }
    assert!(html.contains("<svg"), "the intervals are drawn");
    assert!(html.contains("c001"), "the cases are listed");

    // The terminal output leads with the decision.
    assert!(out.stdout.starts_with("FAIL  p: v3-"), "{}", out.stdout);
    let out = repo
        .pg(&["gate", "p", "--candidate", "v3", "--report", "pdf"])
        .code(2);
    assert!(
        out.stderr.contains("unknown report format `pdf`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sequential_gate_stops_the_calls_once_the_answer_is_clear() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 300, "");
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: ok\n    id: says-ok\ngate:\n  sequential: { looks: 3 }\n",
    );
    // Clearly worse: FAIL at the first look, a third of the calls made.
    let out = repo
        .pg(&["gate", "p", "--candidate", "v3", "--json", "-q"])
        .code(1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["sequential"]["stopped_at_look"], 1,
        "{}",
        report["sequential"]
    );
    assert_eq!(report["sequential"]["cases_used"], 100);
    assert_eq!(report["sequential"]["calls_saved"], 400);
    assert_eq!(s.stats.requests(), 200);
    assert_eq!(report["decision"]["n"], 100);
    let run = report["candidate"]["run_id"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_str(&repo.read(&format!(".promptgate/runs/{run}/manifest.json"))).unwrap();
    assert_eq!(manifest["status"], "stopped_early");
    // Equal: no discordant pair, and 200 cases are enough at the interim α of 0.001.
    let out = repo.pg(&["gate", "p", "--candidate", "v2", "-q"]).ok();
    assert!(out.stdout.starts_with("PASS"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("decided at look 2 of 3 (200 of 300 cases"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_canary_rollout_is_gated_audited_and_rolled_back_to_the_stable_version() {
    let s = server(Duration::ZERO, 0.0, Arc::default());
    let repo = repo_for(&s, 80, "");
    let (v1, v2) = (id_of(&repo, "v1"), id_of(&repo, "v2"));
    let promote = |extra: &[&str]| {
        let mut args = vec!["promote", "p@v2", "--label", "production", "-q"];
        args.extend_from_slice(extra);
        repo.pg(&args).ok()
    };
    let out = promote(&["--canary", "10", "-m", "canary 10"]);
    assert!(out.stdout.starts_with("PASS"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("promoted p@production: {v1} → {v2}:10,{v1}:90")),
        "{}",
        out.stdout
    );
    // registry.yaml records the split as a mapping; show and list display it.
    let reg = repo.read("prompts/p/registry.yaml");
    assert!(reg.contains(&format!("{v2}: 10")), "{reg}");
    let show = repo.pg(&["show", "p@production"]).ok().stdout;
    assert!(show.starts_with(&format!("p@{v1}")), "the primary: {show}");
    assert!(
        show.contains(&format!("split      production: {v2} 10% · {v1} 90%")),
        "{show}"
    );
    let list = repo.pg(&["list", "p"]).ok().stdout;
    assert!(list.contains("production (10%)"), "{list}");
    assert!(list.contains("production (90%)"), "{list}");

    // 50 %, gated against the stable side again (the same cached calls: no new requests).
    let requests = s.stats.requests();
    promote(&["--canary", "50", "-m", "canary 50"]);
    assert_eq!(s.stats.requests(), requests);
    let last = audit(&repo).pop().unwrap();
    assert_eq!(
        last["from"],
        serde_json::json!({ v1.clone(): 90, v2.clone(): 10 })
    );
    assert_eq!(
        last["to"],
        serde_json::json!({ v1.clone(): 50, v2.clone(): 50 })
    );
    assert!(last["gate_run"].is_string());

    // A rollback from the split returns to the single version it started from.
    let out = repo
        .pg(&["rollback", "p", "--label", "production", "-m", "errors up"])
        .ok();
    assert!(
        out.stdout.contains(&format!("{v2}:50,{v1}:50 → {v1}")),
        "{}",
        out.stdout
    );
    assert_eq!(label(&repo, "production"), v1);

    // Finishing a rollout: canary, then plain promote; rollback goes back past the split.
    promote(&["--canary", "10", "-m", "again"]);
    promote(&["-m", "all in"]);
    let reg = repo.read("prompts/p/registry.yaml");
    assert!(reg.contains(&format!("production: {v2}")), "{reg}");
    repo.pg(&["rollback", "p", "--label", "production", "-m", "undo"])
        .ok();
    assert_eq!(label(&repo, "production"), v1);
    // Every step was a compare-and-swap move with an audit entry, and the chain verifies.
    let moves = audit(&repo)
        .iter()
        .filter(|e| e["label"] == "production")
        .count();
    assert_eq!(moves, 1 + 6);
    repo.pg(&["check"]).ok();
    let log = repo.pg(&["log", "p", "--label", "production"]).ok().stdout;
    assert!(log.contains(&format!("{v1} → {v2}:10,{v1}:90")), "{log}");

    // A split can be set by hand too; bad weights are refused with the rule.
    let out = repo
        .pg(&[
            "label",
            "set",
            "p",
            "production",
            "v1:70,v2:20",
            "--expect",
            "v1",
            "-m",
            "x",
        ])
        .code(2);
    assert!(out.stderr.contains("add up to 100"), "{}", out.stderr);
    repo.pg(&[
        "label",
        "set",
        "p",
        "production",
        "v1:70,v2:30",
        "--expect",
        "v1",
        "-m",
        "x",
    ])
    .ok();
    let out = repo
        .pg(&[
            "label",
            "set",
            "p",
            "production",
            "v1",
            "--expect",
            "v1",
            "-m",
            "y",
        ])
        .code(5);
    assert!(
        out.stderr.contains(&format!("{v2}:30,{v1}:70")),
        "{}",
        out.stderr
    );
}

/// A typo in a check template once scored both sides 0 % and PASSed a broken candidate.
#[test]
fn a_template_typo_in_a_check_is_refused_before_any_request() {
    let s = server(Duration::ZERO, 0.0, Arc::new(AtomicBool::new(false)));
    let repo = repo_for(&s, 40, "");
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: \"{{ questio }}\"\n    id: echoes\n",
    );
    let out = repo
        .pg(&["gate", "p", "--candidate", "v3", "--quiet"])
        .code(2);
    assert_eq!(s.stats.requests(), 0, "not one request");
    for needed in [
        "check `echoes` reads `questio`",
        "none of the 40 cases has it",
        "did you mean `question`?",
        "suite.yaml:3:5",
        "datasets/p.jsonl:1 (case `c000`)",
    ] {
        assert!(out.stderr.contains(needed), "{needed}: {}", out.stderr);
    }
    assert!(
        !repo.file(".promptgate/runs").exists()
            || std::fs::read_dir(repo.file(".promptgate/runs"))
                .unwrap()
                .next()
                .is_none(),
        "no run folder is left behind"
    );
}

/// A check that cannot apply to the baseline at all (here: it has no `output_schema`) makes
/// the gate INVALID, a configuration problem (exit 2) — never a PASS.
#[test]
fn a_baseline_the_suite_cannot_score_makes_the_gate_invalid() {
    let s = server(Duration::ZERO, 0.0, Arc::new(AtomicBool::new(false)));
    let repo = repo_for(&s, 40, "");
    repo.write(
        "prompts/p/v4.yaml",
        &(version("MODE good. Answer ok.")
            + "output_schema: { type: object, properties: { answer: { type: string } }, required: [answer], additionalProperties: false }\n"),
    );
    repo.pg(&["add", "p"]).ok();
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - json_schema: output\n    id: schema\n",
    );
    let out = repo
        .pg(&["gate", "p", "--candidate", "v4", "--quiet"])
        .code(2);
    assert!(out.stdout.starts_with("INVALID"), "{}", out.stdout);
    assert!(
        out.stdout.contains("`pass` cannot be scored")
            && out.stdout.contains("check `schema` that could not apply"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("which `p@v1-") && out.stderr.contains("does not have"),
        "warned before the run: {}",
        out.stderr
    );
}
