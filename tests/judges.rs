//! LLM judges end to end: a judge prompt in the registry, served by the stub server on
//! 127.0.0.1, with a malformed answer that is asked again and a judge that keeps failing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use promptgate_stub::{self as stub, Answer, Server};
use serde_json::{Value, json};

use crate::support::TestRepo;

fn text_of(body: &Value, role: &str) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == role)
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The model answers "ok <n>" (or "nope <n>" under "MODE bad", and "gibberish" for question 5
/// under "MODE odd"). The judge (system prompt "JUDGE") scores "ok" 4 of 5 and "nope" 1 of 5;
/// for outputs "ok 3" its first answer is malformed; "gibberish" it never answers in JSON.
fn responder(calls: Arc<Mutex<HashMap<String, u32>>>) -> stub::Responder {
    Arc::new(move |body: &Value| {
        let system = text_of(body, "system");
        let user = text_of(body, "user");
        if system.contains("PAIRWISE") {
            // "A: <output>\nB: <output>": prefer "ok" over "nope"; for question 1 always "a".
            let a = user
                .lines()
                .find_map(|l| l.strip_prefix("A: "))
                .unwrap_or("");
            let b = user
                .lines()
                .find_map(|l| l.strip_prefix("B: "))
                .unwrap_or("");
            let position_bias = a.ends_with(" 1");
            let winner = if position_bias || (a.starts_with("ok") && b.starts_with("nope")) {
                "a"
            } else if b.starts_with("ok") && a.starts_with("nope") {
                "b"
            } else {
                "tie"
            };
            return Answer {
                content: json!({"winner": winner, "reason": format!("{winner} is better")})
                    .to_string(),
                tool_calls: vec![],
            };
        }
        if system.contains("JUDGE") {
            let mut c = calls.lock().unwrap();
            let seen = c.entry(user.clone()).or_default();
            *seen += 1;
            let content = if user.contains("gibberish") || (user.ends_with("ok 3") && *seen == 1) {
                "I would say it is fine.".to_string()
            } else if user.contains("nope") {
                json!({"score": 1, "pass": false, "reason": "does not answer"}).to_string()
            } else {
                json!({"score": 4, "pass": true, "reason": "answers the question"}).to_string()
            };
            return Answer {
                content,
                tool_calls: vec![],
            };
        }
        let n: u64 = user
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content = if system.contains("MODE odd") && n == 5 {
            "gibberish".to_string()
        } else if system.contains("MODE bad") && n.is_multiple_of(2) {
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

fn version(system: &str, variable: &str) -> String {
    format!(
        "model: {{ provider: stub, name: stub-model, temperature: 0 }}\nvariables:\n  {variable}: {{ type: string }}\n\
         messages:\n  - role: system\n    content: \"{system}\"\n  - role: user\n    content: \"{{{{ {variable} }}}}\"\n"
    )
}

fn setup(server: &Server) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "promptgate.yaml",
        &format!(
            "version: 1\nproviders:\n  stub:\n    kind: openai\n    base_url: {}\n    max_retries: 0\n",
            server.base_url()
        ),
    );
    repo.write(
        "prompts/judges/quality/v1.yaml",
        &version("You are a JUDGE. Rate it.", "output"),
    );
    repo.pg(&["add", "judges/quality"]).ok();
    repo.write("prompts/p/v1.yaml", &version("MODE good.", "question"));
    repo.write("prompts/p/v2.yaml", &version("MODE odd.", "question"));
    repo.write("prompts/p/v3.yaml", &version("MODE bad.", "question"));
    repo.pg(&["add", "p"]).ok();
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - judge: judges/quality@v1\n    id: quality\n    metric: quality\n    scale: [1, 5]\n    attempts: 2\n  - contains: \" \"\n    id: spaced\n",
    );
    let rows: String = (0..10)
        .map(|i| format!("{{\"id\": \"c{i}\", \"question\": \"question {i}\"}}\n"))
        .collect();
    repo.write("datasets/p.jsonl", &rows);
    repo
}

fn checks_of(repo: &TestRepo, run: &str) -> Vec<Value> {
    repo.read(&format!(".promptgate/runs/{run}/checks.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_judge_scores_every_output_and_a_malformed_answer_is_asked_again() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let server = Server::start(stub::Config {
        responder: responder(calls.clone()),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = setup(&server);
    let out = repo.pg(&["eval", "p@v1", "--json", "-q"]).ok();
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["judge_errors"], 0, "{}", out.stdout);
    let quality = summary["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "quality")
        .cloned()
        .expect("the judge's metric");
    assert_eq!(quality["passed"], 10);
    assert!(
        (quality["mean_score"].as_f64().unwrap() - 0.75).abs() < 1e-12,
        "{quality}"
    );
    let judge_id = {
        let v: Value = serde_json::from_str(
            &repo
                .pg(&["show", "judges/quality@v1", "--json"])
                .ok()
                .stdout,
        )
        .unwrap();
        v["version_id"].as_str().unwrap().to_string()
    };
    let run = summary["run_id"].as_str().unwrap();
    for line in checks_of(&repo, run) {
        let r = line["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == "quality")
            .cloned()
            .expect("a judge result on every output");
        assert_eq!(r["judge"], format!("judges/quality@{judge_id}"), "{r}");
        assert_eq!(r["reason"], "answers the question");
    }
    // The malformed first answer for "ok 3" was asked again: two judge calls for it.
    assert_eq!(calls.lock().unwrap()["ok 3"], 2);
    assert_eq!(calls.lock().unwrap()["ok 4"], 1);
    // Judges go through the cache: the same run again makes no calls at all.
    let before = server.stats.requests();
    repo.pg(&["eval", "p@v1", "--json", "-q"]).ok();
    assert_eq!(server.stats.requests(), before);
}

#[test]
fn a_judge_that_keeps_failing_is_an_errored_output_not_a_failure() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let server = Server::start(stub::Config {
        responder: responder(calls.clone()),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = setup(&server);
    // One output of ten cannot be judged: 10 % is over the 5 % error budget.
    let out = repo.pg(&["eval", "p@v2", "--json", "-q"]).code(4);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["judge_errors"], 1);
    assert_eq!(
        calls.lock().unwrap()["gibberish"],
        2,
        "asked `attempts` times"
    );
    let run = summary["run_id"].as_str().unwrap();
    let c5 = checks_of(&repo, run)
        .into_iter()
        .find(|l| l["case_id"] == "c5")
        .unwrap();
    let e = c5["judge_errors"][0].as_str().unwrap();
    assert!(
        e.contains("after 2 attempt(s)") && e.contains("malformed answer"),
        "{e}"
    );
    // The other checks still ran on it; the judge's metric is not there.
    assert!(c5["metrics"].get("pass").is_some());
    assert!(c5["metrics"].get("quality").is_none());
    // With a budget that allows it, the run counts.
    repo.write(
        "prompts/p/suite.yaml",
        &repo
            .read("prompts/p/suite.yaml")
            .replace("checks:", "gate: { error_budget: 0.2 }\nchecks:"),
    );
    let out = repo.pg(&["eval", "p@v2", "-q"]).ok();
    assert!(
        out.stdout.contains("judge errors  1 output(s)"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_gate_compares_judge_scores() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let server = Server::start(stub::Config {
        responder: responder(calls),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = setup(&server);
    repo.write(
        "prompts/p/suite.yaml",
        &repo.read("prompts/p/suite.yaml").replace(
            "checks:",
            "gate: { min_cases: 5, metrics: { quality: {} } }\nchecks:",
        ),
    );
    let out = repo
        .pg(&[
            "gate",
            "p",
            "--candidate",
            "v3",
            "--baseline",
            "v1",
            "--json",
            "-q",
        ])
        .code(1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let m = &report["decision"]["metrics"][0];
    assert_eq!(m["name"], "quality");
    assert_eq!(m["baseline_mean"], 1.0);
    assert_eq!(m["candidate_mean"], 0.5);
}

#[test]
fn judges_are_checked_before_any_call() {
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = setup(&server);
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - judge: judges/qualty@v1\n",
    );
    let out = repo.pg(&["eval", "p@v1", "-q"]).code(2);
    assert!(out.stderr.contains("judges/qualty"), "{}", out.stderr);
    repo.write("prompts/judges/strict/v1.yaml", &version("JUDGE", "rubric"));
    repo.pg(&["add", "judges/strict"]).ok();
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - judge: judges/strict@v1\n    scale: [5, 1]\n",
    );
    let out = repo.pg(&["eval", "p@v1", "-q"]).code(2);
    assert!(out.stderr.contains("scale"), "{}", out.stderr);
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - judge: judges/strict@v1\n",
    );
    let out = repo.pg(&["eval", "p@v1", "-q"]).code(2);
    assert!(
        out.stderr.contains("needs variable `rubric`"),
        "{}",
        out.stderr
    );
    assert_eq!(server.stats.requests(), 0);
}

#[test]
fn similar_compares_embeddings_through_the_cache() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let server = Server::start(stub::Config {
        responder: responder(calls),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = setup(&server);
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/e.jsonl]\nchecks:\n  - similar: \"{{ expected }}\"\n    id: close\n    metric: meaning\n",
    );
    let rows: String = (0..6)
        .map(|i| {
            format!(
                "{{\"id\": \"c{i}\", \"question\": \"question {i}\", \"expected\": \"ok {i}\"}}\n"
            )
        })
        .collect();
    repo.write("datasets/e.jsonl", &rows);
    // Without an embeddings endpoint: a clear error before any call.
    let out = repo.pg(&["eval", "p@v3", "-q"]).code(2);
    assert!(
        out.stderr.contains("names no embeddings endpoint"),
        "{}",
        out.stderr
    );
    assert_eq!(server.stats.requests(), 0);
    repo.write(
        "promptgate.yaml",
        &(repo.read("promptgate.yaml") + "embeddings: { provider: stub, model: emb-1 }\n"),
    );
    let out = repo.pg(&["eval", "p@v3", "--json", "-q"]).ok();
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let run = summary["run_id"].as_str().unwrap();
    let lines = checks_of(&repo, run);
    let result = |case: &str| -> Value {
        lines.iter().find(|l| l["case_id"] == case).unwrap()["results"][0].clone()
    };
    // "nope 0" vs "ok 0": one word of two shared — cosine 0.5, under the 0.8 default.
    assert_eq!(result("c0")["pass"], false, "{}", result("c0"));
    assert_eq!(
        result("c0")["reason"],
        "cosine similarity 0.500 (threshold 0.8)"
    );
    assert_eq!(result("c1")["pass"], true);
    assert!((result("c1")["score"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    // 6 model calls and 9 distinct texts to embed ("ok 1", "ok 3", "ok 5" are shared).
    assert_eq!(server.stats.requests(), 6 + 9);
    // The embedding calls are spans of their own kind (OpenTelemetry GenAI).
    let spans = repo.read(&format!(".promptgate/runs/{run}/embeddings/traces.jsonl"));
    let spans: Vec<Value> = spans
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(spans.len(), 9);
    for s in &spans {
        assert_eq!(
            s["attributes"]["gen_ai.operation.name"], "embeddings",
            "{s}"
        );
        assert_eq!(s["name"], "embeddings emb-1", "{s}");
    }
    let before = server.stats.requests();
    repo.pg(&["eval", "p@v3", "-q"]).ok();
    assert_eq!(
        server.stats.requests(),
        before,
        "embeddings come from the cache"
    );
}

#[test]
fn a_pairwise_judge_swaps_the_order_and_reports_position_disagreement() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let server = Server::start(stub::Config {
        responder: responder(calls),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = setup(&server);
    repo.write(
        "prompts/judges/pref/v1.yaml",
        "model: { provider: stub, name: stub-model, temperature: 0 }\nvariables:\n  output_a: { type: string }\n  output_b: { type: string }\nmessages:\n  - role: system\n    content: PAIRWISE judge. Which answer is better?\n  - role: user\n    content: \"A: {{ output_a }}\\nB: {{ output_b }}\"\n",
    );
    repo.pg(&["add", "judges/pref"]).ok();
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\ngate: { min_cases: 5, metrics: { pref: {} } }\nchecks:\n  - judge: judges/pref@v1\n    pairwise: true\n    id: pref\n    metric: pref\n",
    );
    let before = server.stats.requests();
    let out = repo
        .pg(&[
            "gate",
            "p",
            "--candidate",
            "v3",
            "--baseline",
            "v1",
            "--json",
            "-q",
        ])
        .code(1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let p = &report["pairwise"][0];
    assert_eq!(p["compared"], 10, "{p}");
    assert_eq!(p["baseline_wins"], 5);
    assert_eq!(p["candidate_wins"], 0);
    assert_eq!(p["ties"], 5);
    assert_eq!(p["position_disagreements"], 1);
    // 20 model calls (two versions) and two judge calls per pair.
    assert_eq!(server.stats.requests() - before, 20 + 20);
    let m = &report["decision"]["metrics"][0];
    assert_eq!(m["name"], "pref");
    assert_eq!(m["baseline_mean"], 1.0);
    assert_eq!(m["candidate_mean"], 0.5);
    let c1 = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "c1")
        .unwrap();
    assert_eq!(
        c1["candidate"]["metrics"]["pref"], 1.0,
        "a disagreement is a tie: {c1}"
    );
    let terminal = repo
        .pg(&["gate", "p", "--candidate", "v3", "--baseline", "v1", "-q"])
        .code(1)
        .stdout;
    assert!(
        terminal.contains(
            "candidate 0 wins, baseline 5, 5 ties over 10 pairs; 1 position disagreements"
        ),
        "{terminal}"
    );
}
