//! The engine end to end: the real binary and the real HTTP client against the stub server on
//! 127.0.0.1, with injected faults, limits, the cache, replay, interruption and resume.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use promptgate_stub::{self as stub, Fault, Server};
use serde_json::{Value, json};

use crate::support::{TestRepo, walk};

const KEY_VAR: &str = "PG_TEST_STUB_KEY";
const SECRET: &str = "sk-test-DO-NOT-LEAK-93f1c2";

/// A repository whose provider `stub` points at `server`, with a prompt `p` (v1) and a dataset
/// of `cases` questions.
fn repo_for(server: &Server, cases: usize, provider_extra: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "promptgate.yaml",
        &format!(
            "version: 1\nproviders:\n  stub:\n    kind: openai\n    base_url: {}\n    api_key_env: {KEY_VAR}\n{provider_extra}",
            server.base_url()
        ),
    );
    repo.write(
        "prompts/p/v1.yaml",
        "model: { provider: stub, name: stub-model, temperature: 0 }\nvariables:\n  question: { type: string }\nmessages:\n  - role: system\n    content: Answer briefly.\n  - role: user\n    content: \"{{ question }}\"\n",
    );
    repo.write("prompts/p/suite.yaml", "datasets: [datasets/p.jsonl]\n");
    let rows: String = (0..cases)
        .map(|i| format!("{{\"id\": \"c{i:03}\", \"question\": \"question number {i}\"}}\n"))
        .collect();
    repo.write("datasets/p.jsonl", &rows);
    repo.pg(&["add", "p"]).ok();
    repo
}

/// `promptgate eval p@v1 --json …` with the provider's key set.
fn eval_run(repo: &TestRepo, extra: &[&str]) -> crate::support::Run {
    eval(repo, extra).0
}

fn eval(repo: &TestRepo, extra: &[&str]) -> (crate::support::Run, Value) {
    let mut args = vec!["eval", "p@v1", "--json"];
    args.extend_from_slice(extra);
    let mut c = repo.command(&args);
    c.env(KEY_VAR, SECRET);
    let out = c.output().expect("run");
    let run = crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let summary = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run, summary)
}

fn results(repo: &TestRepo, run_id: &str) -> Vec<Value> {
    repo.read(&format!(".promptgate/runs/{run_id}/results.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("result line"))
        .collect()
}

fn faulty(rate: f64, faults: Vec<Fault>) -> stub::Config {
    stub::Config {
        fault_rate: rate,
        faults,
        retry_after: Duration::from_millis(30),
        hang: Duration::from_millis(1500),
        ..stub::Config::default()
    }
}

const ALL_FAULTS: [Fault; 5] = [
    Fault::RateLimit,
    Fault::ServerError,
    Fault::Hang,
    Fault::Truncate,
    Fault::Malformed,
];

#[test]
fn twenty_percent_faults_lose_no_case() {
    let server = Server::start(faulty(0.2, ALL_FAULTS.to_vec())).unwrap();
    let repo = repo_for(
        &server,
        60,
        "    concurrency: 8\n    timeout_secs: 0.4\n    max_retries: 12\n    backoff_base_ms: 5\n    backoff_max_ms: 50\n",
    );
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s["ok"], 60, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert!(
        s["retries"].as_u64().unwrap() > 0,
        "faults were injected: {s}"
    );
    let lines = results(&repo, s["run_id"].as_str().unwrap());
    let ids: HashSet<&str> = lines
        .iter()
        .map(|l| l["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 60);
    assert_eq!(ids.len(), 60, "every case exactly once");
    assert!(lines.iter().all(|l| {
        l["output"]["content"]
            .as_str()
            .unwrap()
            .starts_with("echo: question number")
    }));
    // The server really saw every kind of fault.
    let seen = server.stats.seen();
    assert!(
        seen.iter().any(|s| s.status == 429) && seen.iter().any(|s| s.status == 500),
        "faults injected"
    );
}

#[test]
fn client_errors_are_fatal_and_never_retried() {
    let server = Server::start(faulty(
        1.0,
        [400, 401, 403, 404].map(Fault::Status).to_vec(),
    ))
    .unwrap();
    let repo = repo_for(
        &server,
        12,
        "    concurrency: 4\n    max_retries: 5\n    backoff_base_ms: 5\n",
    );
    let (out, s) = eval(&repo, &[]);
    // Every call failed: over the error budget, the run does not count.
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(
        (s["ok"].as_u64(), s["errors"].as_u64()),
        (Some(0), Some(12)),
        "{s}"
    );
    assert_eq!(s["retries"], 0, "{s}");
    assert_eq!(s["errors_by_class"]["fatal"], 12, "{s}");
    assert_eq!(
        server.stats.requests(),
        12,
        "one request a case, none repeated"
    );
    let lines = results(&repo, s["run_id"].as_str().unwrap());
    assert_eq!(lines.len(), 12, "every case kept, with its error");
    for l in &lines {
        assert_eq!(l["attempts"], 1, "{l}");
        let status = l["error"]["status"].as_u64().unwrap();
        assert!([400, 401, 403, 404].contains(&status), "{l}");
        assert_eq!(l["error"]["class"], "fatal", "{l}");
    }
}

#[test]
fn without_retries_every_case_is_answered_or_reported() {
    let server = Server::start(faulty(0.2, ALL_FAULTS.to_vec())).unwrap();
    let repo = repo_for(
        &server,
        60,
        "    concurrency: 8\n    timeout_secs: 0.4\n    max_retries: 0\n",
    );
    let (out, s) = eval(&repo, &[]);
    // Errored calls and no budget in the suite: the run does not count (exit 4), but nothing
    // is lost.
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("over the 0 % error budget"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("gate.error_budget"), "{}", out.stderr);
    let (ok, errors) = (s["ok"].as_u64().unwrap(), s["errors"].as_u64().unwrap());
    assert!(errors > 0);
    assert_eq!(ok + errors, 60, "{s}");
    let lines = results(&repo, s["run_id"].as_str().unwrap());
    assert_eq!(lines.len(), 60);
    for l in &lines {
        assert!(
            l["output"].is_object() != l["error"].is_object(),
            "exactly one of output/error: {l}"
        );
        if let Some(e) = l.get("error") {
            let class = e["class"].as_str().unwrap();
            assert!(
                [
                    "rate_limited",
                    "server",
                    "timeout",
                    "connection",
                    "malformed"
                ]
                .contains(&class),
                "{e}"
            );
        }
    }
    let by_class = s["errors_by_class"].as_object().unwrap();
    assert!(by_class.values().map(|v| v.as_u64().unwrap()).sum::<u64>() == errors);
}

#[test]
fn retry_after_is_honoured() {
    let mut cfg = faulty(0.4, vec![Fault::RateLimit]);
    cfg.retry_after = Duration::from_secs(1); // sent as `Retry-After: 1`
    let server = Server::start(cfg).unwrap();
    let repo = repo_for(
        &server,
        12,
        "    concurrency: 12\n    max_retries: 10\n    backoff_base_ms: 1\n",
    );
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s["ok"], 12);
    let seen = server.stats.seen();
    let mut checked = 0;
    for (i, a) in seen.iter().enumerate() {
        if a.status != 429 {
            continue;
        }
        let next = seen[i + 1..]
            .iter()
            .find(|b| b.key == a.key)
            .expect("the call was retried");
        let gap = next.at.duration_since(a.at);
        assert!(
            gap >= Duration::from_secs(1),
            "retried after {gap:?}, sooner than Retry-After"
        );
        checked += 1;
    }
    assert!(checked > 0, "some calls were rate limited");
}

#[test]
fn never_more_in_flight_than_the_concurrency() {
    let server = Server::start(stub::Config {
        latency: Duration::from_millis(40),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(&server, 40, "    concurrency: 5\n");
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s["ok"], 40);
    let peak = server.stats.max_in_flight();
    assert!(peak <= 5, "peak {peak} in flight");
    assert!(peak >= 3, "the limit was actually used: peak {peak}");
    // --concurrency overrides the provider's setting.
    let server2 = Server::start(stub::Config {
        latency: Duration::from_millis(40),
        ..stub::Config::default()
    })
    .unwrap();
    let repo2 = repo_for(&server2, 20, "    concurrency: 5\n");
    eval(&repo2, &["--concurrency", "2"]).0.ok();
    assert!(server2.stats.max_in_flight() <= 2);
}

#[test]
fn the_cache_answers_a_second_run_and_refresh_bypasses_it() {
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = repo_for(&server, 25, "");
    let (_, s1) = eval(&repo, &[]);
    assert_eq!(server.stats.requests(), 25);
    assert_eq!(s1["cached"], 0);
    let (_, s2) = eval(&repo, &[]);
    assert_eq!(server.stats.requests(), 25, "second run: zero requests");
    assert_eq!(s2["cached"], 25);
    assert_eq!(s2["ok"], 25);
    let (_, s3) = eval(&repo, &["--refresh"]);
    assert_eq!(
        server.stats.requests(),
        50,
        "--refresh makes every call again"
    );
    assert_eq!(s3["cached"], 0);
    eval(&repo, &["--no-cache"]).0.ok();
    assert_eq!(
        server.stats.requests(),
        75,
        "--no-cache neither reads nor writes"
    );
    // Outputs from the cache equal the live ones.
    let a = results(&repo, s1["run_id"].as_str().unwrap());
    let b = results(&repo, s2["run_id"].as_str().unwrap());
    let out = |v: &[Value]| -> Vec<(String, String)> {
        let mut x: Vec<_> = v
            .iter()
            .map(|l| {
                (
                    l["case_id"].as_str().unwrap().to_string(),
                    l["output"]["content"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        x.sort();
        x
    };
    assert_eq!(out(&a), out(&b));
    // The warm run came from the plan cache: same request hashes as the rendered run.
    let hashes = |v: &[Value]| -> Vec<(String, String)> {
        let mut x: Vec<_> = v
            .iter()
            .map(|l| {
                (
                    l["case_id"].as_str().unwrap().to_string(),
                    l["request_hash"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        x.sort();
        x
    };
    assert_eq!(hashes(&a), hashes(&b));
    let plans: Vec<_> = std::fs::read_dir(repo.file(".promptgate/plans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".answers.jsonl"))
        .collect();
    assert_eq!(plans.len(), 1, "one plan for one version and dataset");
}

/// The answer snapshot a complete run leaves beside its plan.
fn snapshot_file(repo: &TestRepo) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(repo.file(".promptgate/plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".answers.jsonl"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn an_answer_snapshot_serves_warm_runs_until_a_stored_answer_is_replaced() {
    // Every answer differs from the ones before, so we can tell where an answer came from.
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = n.clone();
    let server = Server::start(stub::Config {
        responder: std::sync::Arc::new(move |body: &Value| {
            let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut a = stub::echo(body);
            a.content = format!("answer {i}");
            a
        }),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(&server, 10, "");
    let contents = |s: &Value| -> Vec<String> {
        let mut c: Vec<String> = results(&repo, s["run_id"].as_str().unwrap())
            .iter()
            .map(|l| l["output"]["content"].as_str().unwrap().to_string())
            .collect();
        c.sort();
        c
    };
    let (_, cold) = eval(&repo, &[]);
    assert_eq!(server.stats.requests(), 10);
    // The cold run's answers went into the cache unopposed: they are the snapshot.
    let snap = snapshot_file(&repo);
    let lines = std::fs::read_to_string(&snap).unwrap();
    assert_eq!(lines.lines().count(), 11, "a header and ten answers");
    assert!(!lines.contains(SECRET));
    // A warm run reads it: an answer edited in the snapshot (by hand, here) shows.
    std::fs::write(&snap, lines.replacen("\"answer ", "\"snapshot answer ", 1)).unwrap();
    let (_, warm) = eval(&repo, &[]);
    assert_eq!(server.stats.requests(), 10, "no calls");
    assert_eq!(warm["cached"], 10);
    let w = contents(&warm);
    assert_eq!(
        w.iter().filter(|c| c.starts_with("snapshot ")).count(),
        1,
        "{w:?}"
    );
    std::fs::write(&snap, &lines).unwrap();
    assert_eq!(contents(&eval(&repo, &[]).1), contents(&cold));
    // --refresh replaces the stored answers: the snapshot no longer holds, and the next run
    // takes the new answers from the cache (and snapshots them).
    let (_, refreshed) = eval(&repo, &["--refresh"]);
    assert_eq!(server.stats.requests(), 20);
    assert_ne!(contents(&refreshed), contents(&cold));
    let (_, after) = eval(&repo, &[]);
    assert_eq!(server.stats.requests(), 20);
    assert_eq!(contents(&after), contents(&refreshed));
    let head: Value = serde_json::from_str(
        std::fs::read_to_string(snapshot_file(&repo))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(head["cache"]["generation"], 1, "{head}");
    assert_eq!(contents(&eval(&repo, &[]).1), contents(&refreshed));
    // An answer deleted from the cache by hand: the snapshot no longer holds either.
    let db = repo.file(".promptgate/cache/responses.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "DELETE FROM responses WHERE key = (SELECT key FROM responses LIMIT 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let (_, s) = eval(&repo, &[]);
    assert_eq!(
        server.stats.requests(),
        21,
        "the deleted answer is asked for again"
    );
    assert_eq!(s["cached"], 9);
}

#[test]
fn a_cached_plan_with_answers_missing_renders_and_calls() {
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = repo_for(&server, 10, "");
    eval(&repo, &[]).0.ok();
    // The plan is cached but the answers are gone: the run must render and call again.
    std::fs::remove_dir_all(repo.file(".promptgate/cache")).unwrap();
    let (_, s) = eval(&repo, &[]);
    assert_eq!(server.stats.requests(), 20);
    assert_eq!(s["ok"], 10);
    // A changed dataset is a different plan.
    let rows: String = (0..10)
        .map(|i| format!("{{\"id\": \"c{i}\", \"question\": \"changed {i}\"}}\n"))
        .collect();
    repo.write("datasets/p.jsonl", &rows);
    let (_, s) = eval(&repo, &[]);
    assert_eq!(s["cached"], 0, "{s}");
    assert_eq!(server.stats.requests(), 30);
    let names: Vec<String> = std::fs::read_dir(repo.file(".promptgate/plans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let plans = names.iter().filter(|n| !n.ends_with(".answers.jsonl"));
    assert_eq!(plans.count(), 2, "{names:?}");
}

#[test]
fn the_api_key_appears_nowhere() {
    let server = Server::start(faulty(0.3, vec![Fault::ServerError, Fault::RateLimit])).unwrap();
    let repo = repo_for(&server, 10, "    max_retries: 0\n");
    let (out1, _) = eval(&repo, &[]);
    let (out2, _) = eval(&repo, &["--refresh"]);
    // The key was really sent…
    assert!(
        server
            .stats
            .seen()
            .iter()
            .any(|s| s.authorization.as_deref() == Some(&format!("Bearer {SECRET}")))
    );
    // …and is nowhere in what promptgate wrote or printed.
    for text in [&out1.stdout, &out1.stderr, &out2.stdout, &out2.stderr] {
        assert!(!text.contains(SECRET));
    }
    let mut files = Vec::new();
    walk(&repo.file(".promptgate"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("responses.sqlite3")),
        "the cache was written: {files:?}"
    );
    assert!(
        files
            .iter()
            .filter(|f| f.ends_with("results.jsonl"))
            .count()
            == 2,
        "two runs were written"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "key found in {}",
            f.display()
        );
    }
    // A missing key is a clear error naming the variable.
    let out = repo.pg(&["eval", "p@v1", "--no-cache"]).code(2);
    assert!(
        out.stderr.contains(&format!("${KEY_VAR}")),
        "{}",
        out.stderr
    );
}

/// `promptgate eval p@v1 --quiet` in the background, its output piped, once the server has
/// seen `requests` requests (polling, not a fixed sleep: robust under load).
#[cfg(unix)]
fn eval_in_background(repo: &TestRepo, server: &Server, requests: u64) -> std::process::Child {
    let mut c = repo.command(&["eval", "p@v1", "--quiet"]);
    c.env(KEY_VAR, SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.stats.requests() < requests && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Ctrl-C, as a terminal sends it.
#[cfg(unix)]
fn sigint(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// An interrupted run's id, from the hint `eval` prints, after checking it exited 130.
#[cfg(unix)]
fn interrupted_run(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    stderr
        .split("--resume ")
        .nth(1)
        .expect("resume hint")
        .trim()
        .trim_end_matches('`')
        .to_string()
}

#[cfg(unix)]
fn run_status(repo: &TestRepo, run_id: &str) -> Value {
    let manifest: Value =
        serde_json::from_str(&repo.read(&format!(".promptgate/runs/{run_id}/manifest.json")))
            .unwrap();
    manifest["status"].clone()
}

#[cfg(unix)]
#[test]
fn ctrl_c_then_resume_completes_exactly_the_missing_cases() {
    let server = Server::start(stub::Config {
        latency: Duration::from_millis(150),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(&server, 30, "    concurrency: 2\n");
    // Interrupt once a few calls have finished.
    let child = eval_in_background(&repo, &server, 3);
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child);
    let run_id = interrupted_run(&child.wait_with_output().unwrap());
    let first = results(&repo, &run_id);
    assert!(
        !first.is_empty() && first.len() < 30,
        "{} of 30 done before the interrupt",
        first.len()
    );
    let before = server.stats.requests();
    assert_eq!(
        before as usize,
        first.len(),
        "in-flight calls were drained and written, not lost"
    );

    let (out, s) = eval(&repo, &["--resume", &run_id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.stats.requests() - before,
        30 - first.len() as u64,
        "only the missing calls were made"
    );
    let all = results(&repo, &run_id);
    let ids: HashSet<&str> = all.iter().map(|l| l["case_id"].as_str().unwrap()).collect();
    assert_eq!(all.len(), 30);
    assert_eq!(ids.len(), 30);
    assert_eq!(s["ok"], 30);
    assert_eq!(run_status(&repo, &run_id), "complete");
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_abandons_the_calls_in_flight() {
    // Calls that would take 20 s: the first interrupt waits for them, the second does not.
    let server = Server::start(stub::Config {
        latency: Duration::from_secs(20),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(&server, 10, "    concurrency: 2\n    timeout_secs: 60\n");
    let child = eval_in_background(&repo, &server, 2);
    sigint(&child);
    std::thread::sleep(Duration::from_millis(300));
    let second = std::time::Instant::now();
    sigint(&child);
    let run_id = interrupted_run(&child.wait_with_output().unwrap());
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "the second interrupt did not wait for the 20 s calls: {:?}",
        second.elapsed()
    );
    assert_eq!(
        server.stats.requests(),
        2,
        "nothing dispatched after the first"
    );
    assert!(results(&repo, &run_id).is_empty(), "no call finished");
    assert_eq!(run_status(&repo, &run_id), "interrupted");
}

#[test]
fn replay_serves_recorded_answers_and_names_a_miss() {
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = repo_for(&server, 8, "");
    let (_, s) = eval(&repo, &[]);
    let run_id = s["run_id"].as_str().unwrap().to_string();
    let before = server.stats.requests();
    let (out, r) = eval(&repo, &["--replay", &run_id, "--no-cache"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.stats.requests(), before, "replay makes no live call");
    assert_eq!(r["ok"], 8);
    let replayed = results(&repo, r["run_id"].as_str().unwrap());
    assert!(replayed.iter().all(|l| {
        l["output"]["content"]
            .as_str()
            .unwrap()
            .starts_with("echo: question number")
    }));
    // A case whose request changed has no recording: an error naming the case.
    repo.write(
        "datasets/p.jsonl",
        &format!(
            "{}{{\"id\": \"new-case\", \"question\": \"never recorded\"}}\n",
            repo.read("datasets/p.jsonl")
        ),
    );
    let (out, r) = eval(&repo, &["--replay", &run_id]);
    assert_eq!(
        out.code, 4,
        "one miss in nine is over the error budget: {}",
        out.stderr
    );
    assert_eq!(r["errors_by_class"]["replay_miss"], 1);
    let lines = results(&repo, r["run_id"].as_str().unwrap());
    let miss = lines.iter().find(|l| l["case_id"] == "new-case").unwrap();
    assert!(
        miss["error"]["message"]
            .as_str()
            .unwrap()
            .contains("case `new-case`"),
        "{miss}"
    );
}

#[test]
fn anthropic_requests_and_responses_map_through_the_messages_api() {
    let server = Server::start(stub::Config {
        responder: std::sync::Arc::new(|body: &Value| {
            // The system prompt arrives in `system`, not among the messages.
            assert!(
                body["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["role"] != "system")
            );
            assert_eq!(body["tools"][0]["name"], "lookup");
            assert!(body["tools"][0]["input_schema"].is_object());
            stub::Answer {
                content: format!("system was: {}", body["system"].as_str().unwrap_or("")),
                tool_calls: vec![("lookup".into(), serde_json::json!({"id": "42"}))],
            }
        }),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = TestRepo::new();
    repo.write("promptgate.yaml", &format!("version: 1\nproviders:\n  claude: {{ kind: anthropic, base_url: {}, api_key_env: {KEY_VAR} }}\n", server.base_url()));
    repo.write("prompts/p/v1.yaml", "model: { provider: claude, name: claude-test, max_tokens: 50 }\nvariables: { question: {} }\nmessages:\n  - { role: system, content: Be brief. }\n  - { role: user, content: \"{{ question }}\" }\ntools:\n  - name: lookup\n    parameters: { type: object, properties: { id: { type: string } } }\n");
    repo.write(
        "datasets/p.jsonl",
        "{\"id\": \"a\", \"question\": \"hi\"}\n",
    );
    repo.pg(&["add", "p"]).ok();
    let (out, s) = eval(&repo, &["--dataset", "datasets/p.jsonl"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = results(&repo, s["run_id"].as_str().unwrap());
    assert_eq!(lines[0]["output"]["content"], "system was: Be brief.");
    assert_eq!(lines[0]["output"]["tool_calls"][0]["name"], "lookup");
    assert_eq!(lines[0]["output"]["tool_calls"][0]["arguments"]["id"], "42");
    assert_eq!(lines[0]["output"]["finish_reason"], "tool_use");
    assert!(lines[0]["output"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(
        server.stats.seen()[0].authorization.as_deref() == Some(SECRET),
        "x-api-key sent"
    );
}

#[test]
fn bad_rows_are_all_reported_before_any_call() {
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = repo_for(&server, 3, "");
    repo.write(
        "datasets/bad.csv",
        "id,question,extra\na,first,x\nb,,y\nc,third\nb,again,z\n",
    );
    let out = repo
        .pg(&["eval", "p@v1", "--dataset", "datasets/bad.csv"])
        .code(2);
    assert_eq!(
        server.stats.requests(),
        0,
        "no call before the data is valid"
    );
    assert!(
        out.stderr.contains("bad.csv:4"),
        "short row: {}",
        out.stderr
    );
    let out2 = {
        repo.write("datasets/bad.csv", "id,question\na,first\nb,\nc,\n");
        repo.pg(&["eval", "p@v1", "--dataset", "datasets/bad.csv"])
            .code(2)
    };
    assert!(
        out2.stderr.contains("bad.csv:3 (case `b`)")
            && out2.stderr.contains("bad.csv:4 (case `c`)"),
        "{}",
        out2.stderr
    );
    assert!(
        out2.stderr.contains("missing variable `question`"),
        "{}",
        out2.stderr
    );
}

#[test]
fn spans_carry_prompt_identity_and_genai_attributes() {
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = repo_for(&server, 3, "");
    let (_, s) = eval(&repo, &[]);
    let spans: Vec<Value> = repo
        .read(&format!(
            ".promptgate/runs/{}/traces.jsonl",
            s["run_id"].as_str().unwrap()
        ))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(spans.len(), 3);
    let a = &spans[0]["attributes"];
    assert_eq!(a["prompt.name"], "p");
    assert!(a["prompt.version_id"].as_str().unwrap().starts_with("v1-"));
    assert_eq!(a["gen_ai.system"], "openai");
    assert_eq!(a["gen_ai.request.model"], "stub-model");
    assert!(a["gen_ai.usage.input_tokens"].as_u64().unwrap() > 0);
    assert!(a["gen_ai.usage.output_tokens"].as_u64().unwrap() > 0);
    assert!(a["promptgate.case_id"].as_str().unwrap().starts_with('c'));
}

#[test]
fn the_bundled_example_evaluates_offline_from_its_cassette() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/support");
    promptgate::fsutil::copy_tree(&example, dir.path(), &[".promptgate"]).unwrap();
    for v in ["v1", "v2", "v3", "production"] {
        let out = std::process::Command::new(crate::support::BIN)
            .arg("-C")
            .arg(dir.path())
            .args(["eval", &format!("support_agent@{v}"), "--json"])
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{v}: {stderr}\n(re-record with `cargo run --example record_support_cassette`)"
        );
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["ok"], 12, "{v}: {s}");
        assert_eq!(s["errors"], 0, "{v}: {s}");
    }
}

#[test]
fn spans_are_exported_to_an_otlp_endpoint() {
    use std::sync::{Arc, Mutex};
    // A minimal OTLP/HTTP collector that keeps what it receives.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let addr = crate::support::serve_router(axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "{}"
            }
        }),
    ));
    let server = Server::start(stub::Config::default()).unwrap();
    let repo = repo_for(&server, 4, "");
    let config = repo.read("promptgate.yaml");
    repo.write(
        "promptgate.yaml",
        &format!("{config}telemetry:\n  otlp_endpoint: http://{addr}\n"),
    );
    let (out, _) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let spans = bodies[0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    assert_eq!(spans.len(), 4);
    let attrs = spans[0]["attributes"].as_array().unwrap();
    let get = |k: &str| {
        attrs
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
    };
    assert_eq!(get("prompt.name").unwrap()["stringValue"], "p");
    assert_eq!(get("gen_ai.system").unwrap()["stringValue"], "openai");
    assert!(get("gen_ai.usage.input_tokens").unwrap()["intValue"].is_string());
    assert_eq!(spans[0]["kind"], 3);
}

#[test]
fn two_processes_share_the_cache_at_once() {
    let server = Server::start(stub::Config {
        latency: Duration::from_millis(5),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(&server, 40, "    concurrency: 4\n");
    let spawn = || {
        let mut c = repo.command(&["eval", "p@v1", "--json"]);
        c.env(KEY_VAR, SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Not a terminal: no progress bar in the output.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("ETA") && !stderr.contains('\r'),
            "{stderr}"
        );
    }
    let before = server.stats.requests();
    assert!(before <= 80);
    let (_, s) = eval(&repo, &[]);
    assert_eq!(
        server.stats.requests(),
        before,
        "everything was cached by one process or the other"
    );
    assert_eq!(s["cached"], 40);
}

#[test]
fn eval_scores_checks_and_writes_them_beside_the_results() {
    let server = Server::start(faulty(0.0, vec![])).unwrap();
    let repo = repo_for(&server, 10, "");
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - starts_with: \"echo:\"\n  - contains: \"{{ question }}\"\n    metric: faithful\n  - regex: \"number [0-4]$\"\n    id: low-numbers\n",
    );
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let metrics = s["metrics"].as_array().unwrap();
    let get = |m: &str| metrics.iter().find(|x| x["metric"] == m).unwrap().clone();
    assert_eq!(get("faithful")["pass_rate"], 1.0);
    assert_eq!(get("pass")["passed"], 5, "c000..c004 match the regex: {s}");
    let failing = &s["failing_checks"][0];
    assert_eq!(failing["check"], "low-numbers");
    assert_eq!(failing["failures"], 5);
    let lines: Vec<Value> = repo
        .read(&format!(
            ".promptgate/runs/{}/checks.jsonl",
            s["run_id"].as_str().unwrap()
        ))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[0]["results"].as_array().unwrap().len(), 3);
    // A bad check declaration is an error before any call.
    let before = server.stats.requests();
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - regex: \"(\"\n",
    );
    let out = eval_run(&repo, &["--no-cache"]).code(2);
    assert!(
        out.stderr.contains("invalid regular expression"),
        "{}",
        out.stderr
    );
    assert_eq!(server.stats.requests(), before);
}

#[test]
fn cases_can_carry_their_own_checks() {
    let server = Server::start(faulty(0.0, vec![])).unwrap();
    let repo = repo_for(&server, 0, "");
    repo.write(
        "datasets/p.jsonl",
        "{\"id\": \"a\", \"question\": \"alpha\", \"checks\": [{\"contains\": \"alpha\", \"id\": \"says-alpha\"}]}\n{\"id\": \"b\", \"question\": \"beta\"}\n{\"id\": \"c\", \"question\": \"gamma\", \"checks\": [{\"contains\": \"delta\", \"id\": \"says-delta\"}]}\n",
    );
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - starts_with: \"echo:\"\n",
    );
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<Value> = repo
        .read(&format!(
            ".promptgate/runs/{}/checks.jsonl",
            s["run_id"].as_str().unwrap()
        ))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |id: &str| {
        lines.iter().find(|l| l["case_id"] == id).unwrap()["results"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(of("a").len(), 2);
    assert_eq!(of("b").len(), 1, "only the suite's check");
    assert_eq!(of("c")[1]["check"], "says-delta");
    assert_eq!(of("c")[1]["pass"], false);
    assert_eq!(s["failing_checks"][0]["check"], "says-delta");
    // A malformed case check names the file, line and case before any call.
    let before = server.stats.requests();
    repo.write("datasets/p.jsonl", "{\"id\": \"a\", \"question\": \"alpha\"}\n{\"id\": \"x\", \"question\": \"q\", \"checks\": [{\"contians\": \"q\"}]}\n");
    let out = eval_run(&repo, &["--no-cache"]).code(2);
    assert!(
        out.stderr.contains("p.jsonl:2 (case `x`)")
            && out.stderr.contains("did you mean `contains`"),
        "{}",
        out.stderr
    );
    assert_eq!(server.stats.requests(), before);
}

#[test]
fn eval_reads_the_suites_gate_policy_before_any_call() {
    let server = Server::start(faulty(0.2, vec![Fault::ServerError])).unwrap();
    let repo = repo_for(&server, 40, "    max_retries: 0\n");
    // A typo in `gate:` is an error before any call.
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\ngate:\n  error_budgt: 0.5\n",
    );
    let out = eval_run(&repo, &[]).code(2);
    assert!(
        out.stderr.contains("error_budgt") && out.stderr.contains("did you mean `error_budget`"),
        "{}",
        out.stderr
    );
    assert_eq!(server.stats.requests(), 0);
    // A generous budget lets a run with ~20 % errored calls count; the default would not.
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\ngate:\n  error_budget: 0.6\n",
    );
    let (out, s) = eval(&repo, &["--no-cache"]);
    assert!(s["errors"].as_u64().unwrap() > 2, "{s}");
    assert_eq!(out.code, 0, "within the suite's budget: {}", out.stderr);
    repo.write("prompts/p/suite.yaml", "datasets: [datasets/p.jsonl]\n");
    let (out, _) = eval(&repo, &["--no-cache"]);
    assert_eq!(
        out.code, 4,
        "without a budget in the suite an eval allows no errored call: {}",
        out.stderr
    );
}

/// `eval` once hid an errored case from the pass rate (`pass 100.0 % (31/31)`), named neither
/// the case nor the reason, and exited 0.
#[test]
fn an_eval_with_one_400_counts_it_names_it_and_fails() {
    let server = Server::start(stub::Config {
        refuse: Some(Arc::new(|body: &Value, _| {
            body.to_string().contains("question number 17").then(|| {
                (
                    400,
                    "{\"error\": {\"message\": \"This model's maximum context length is 8192 tokens\"}}"
                        .to_string(),
                )
            })
        })),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(&server, 32, "    max_retries: 0\n");
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: echo\n",
    );
    let mut c = repo.command(&["eval", "p@v1"]);
    c.env(KEY_VAR, SECRET);
    let out = crate::support::Run::from_output(c.output().unwrap());
    assert_eq!(out.code, 4, "an errored call fails an eval: {out:?}");
    assert!(
        out.stdout.contains("96.9 % pass (31/32, 1 errored)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("fatal 1"), "{}", out.stdout);
    assert!(
        out.stdout.contains("e.g. case `c017`")
            && out.stdout.contains("maximum context length is 8192 tokens"),
        "the server's message and the case: {}",
        out.stdout
    );
    // With a budget in the suite, the same run counts.
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: echo\ngate:\n  error_budget: 0.05\n",
    );
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s["metrics"][0]["errored"], 1, "{s}");
    assert_eq!(s["metrics"][0]["scored"], 32, "{s}");
    assert_eq!(s["error_examples"]["fatal"]["case_id"], "c017", "{s}");
}

/// A wrong key once cost one doomed request per case.
#[test]
fn a_bad_key_stops_after_the_configured_number_of_calls() {
    let server = Server::start(stub::Config {
        refuse: Some(Arc::new(|_: &Value, _| {
            Some((
                401,
                "{\"error\": {\"message\": \"Incorrect API key provided\"}}".to_string(),
            ))
        })),
        ..stub::Config::default()
    })
    .unwrap();
    let repo = repo_for(
        &server,
        200,
        "    concurrency: 1\n    abort_after_fatal: 3\n",
    );
    let (out, _) = eval(&repo, &[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(
        server.stats.requests(),
        3,
        "no call after the third identical 401"
    );
    for needed in [
        "stopped after the first 3 calls all failed the same way",
        "provider `stub`",
        "model `stub-model`",
        &server.base_url(),
        "HTTP 401",
        "Incorrect API key provided",
        "api_key_env",
    ] {
        assert!(out.stderr.contains(needed), "{needed}: {}", out.stderr);
    }
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    let runs = repo.file(".promptgate/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["status"], "aborted");
    // With the default and concurrency 8, a handful of calls, never all 200.
    let repo = repo_for(&server, 200, "");
    let before = server.stats.requests();
    eval(&repo, &[]).0.code(4);
    let made = server.stats.requests() - before;
    assert!((5..=12).contains(&made), "{made} calls");
}

/// Transport errors once said `<url>`: now where the request went (scheme, host, port) without
/// what may be secret in the URL, and a timeout names its limit and the setting.
#[test]
fn transport_errors_name_the_origin_and_timeouts_their_limit() {
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let repo = TestRepo::new();
    repo.write(
        "promptgate.yaml",
        &format!(
            "version: 1\nproviders:\n  stub:\n    kind: openai\n    base_url: http://user:pw-SECRET-9@127.0.0.1:{port}/v1?token=q-SECRET-7\n    max_retries: 0\n"
        ),
    );
    repo.write(
        "prompts/p/v1.yaml",
        "model: { provider: stub, name: m }\nvariables: { question: {} }\nmessages: [ { role: user, content: \"{{ question }}\" } ]\n",
    );
    repo.write("prompts/p/suite.yaml", "datasets: [d.jsonl]\n");
    repo.write("d.jsonl", "{\"question\": \"q\"}\n");
    repo.pg(&["add", "p"]).ok();
    let (out, s) = eval(&repo, &[]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let e = &results(&repo, s["run_id"].as_str().unwrap())[0]["error"];
    let msg = e["message"].as_str().unwrap();
    assert_eq!(e["class"], "connection", "{e}");
    assert!(msg.contains(&format!("http://127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("SECRET") && !msg.contains("<url>"), "{msg}");
    // A server that does not answer in time.
    let server = Server::start(faulty(1.0, vec![Fault::Hang])).unwrap();
    let repo = repo_for(&server, 1, "    timeout_secs: 0.3\n    max_retries: 0\n");
    let (_, s) = eval(&repo, &[]);
    let e = &results(&repo, s["run_id"].as_str().unwrap())[0]["error"];
    let msg = e["message"].as_str().unwrap();
    assert_eq!(e["class"], "timeout", "{e}");
    assert!(
        msg.contains("no answer within 0.3 s") && msg.contains("`timeout_secs`"),
        "{msg}"
    );
}

/// A provider (or proxy) that echoes the request's headers in its errors once put the full key
/// into every errored line of results.jsonl and into every report the Action uploads; a model
/// that repeats the key, and an OTLP collector that echoes its bearer token, likewise.
#[test]
fn secrets_a_server_echoes_back_are_redacted_everywhere() {
    const OTLP_TOKEN: &str = "otlp-collector-token-5521";
    let server = Server::start(stub::Config {
        refuse: Some(Arc::new(|body: &Value, auth: Option<&str>| {
            let text = body.to_string();
            let n: u64 = text
                .split("question number ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())?;
            let echo = json!({"error": {"message": "refused", "request_headers": {"Authorization": auth, "x-api-key": auth}}}).to_string();
            match n % 5 {
                0 => Some((400, echo)),
                1 => Some((401, echo)),
                2 => Some((500, echo)),
                // A 200 whose answer repeats the key.
                3 => Some((
                    200,
                    json!({"choices": [{"message": {"content": format!("your key is {}", auth.unwrap_or(""))}, "finish_reason": "stop"}]}).to_string(),
                )),
                _ => None,
            }
        })),
        ..stub::Config::default()
    })
    .unwrap();
    let received = Arc::new(std::sync::Mutex::new(0usize));
    let seen = received.clone();
    let collector = crate::support::serve_router(axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() += 1;
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("{{\"error\": \"bad span\", \"your_headers\": {{\"authorization\": \"{auth}\"}}}}"),
                )
            }
        }),
    ));
    let repo = repo_for(
        &server,
        20,
        "    max_retries: 1\n    backoff_base_ms: 1\n    abort_after_fatal: 0\n",
    );
    repo.write(
        "promptgate.yaml",
        &format!(
            "{}telemetry:\n  otlp_endpoint: http://{collector}\n",
            repo.read("promptgate.yaml")
        ),
    );
    repo.write(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: echo\ngate:\n  error_budget: 1\n  min_cases: 1\n",
    );
    let run = |args: &[&str]| {
        let mut c = repo.command(args);
        c.env(KEY_VAR, SECRET).env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer%20{OTLP_TOKEN}"),
        );
        crate::support::Run::from_output(c.output().unwrap())
    };
    let first = run(&["eval", "p@v1"]);
    let second = run(&[
        "eval",
        "p@v1",
        "--refresh",
        "--compare-to",
        "last",
        "--report",
        "md,json,junit,html,terminal",
        "--out",
        "reports",
    ]);
    assert!(*received.lock().unwrap() >= 2, "the collector was called");
    assert!(
        second.stderr.contains("OTLP endpoint answered HTTP 400"),
        "{}",
        second.stderr
    );
    // The secrets were really sent and really echoed…
    assert!(server.stats.seen().iter().any(|s| s.status == 401));
    // …and are in nothing promptgate wrote or printed.
    for text in [&first.stdout, &first.stderr, &second.stdout, &second.stderr] {
        assert!(
            !text.contains(SECRET) && !text.contains(OTLP_TOKEN),
            "{text}"
        );
    }
    let mut files = Vec::new();
    walk(repo.path(), &mut files);
    let reports: Vec<_> = files
        .iter()
        .filter(|f| f.starts_with(repo.file("reports")))
        .collect();
    assert_eq!(reports.len(), 5, "every format was written: {reports:?}");
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        assert!(
            !text.contains(SECRET) && !text.contains(&SECRET[8..20]) && !text.contains(OTLP_TOKEN),
            "a secret in {}",
            f.display()
        );
    }
    // What was redacted says so, where it was.
    let redacted = files
        .iter()
        .filter(|f| f.ends_with("results.jsonl"))
        .any(|f| std::fs::read_to_string(f).unwrap().contains("[REDACTED]"));
    assert!(redacted, "the echoed key is replaced by a marker");
}
