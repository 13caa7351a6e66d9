//! The GitHub Action for real: its script (`action/promptgate_action.py`) on a Git repository
//! whose pull request changes a prompt, the real `promptgate` binary against the stub model
//! server, and a fake GitHub REST API on 127.0.0.1 that records the comments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch};
use promptgate_stub::{self as stub, Answer, Server};
use serde_json::{Value, json};

use crate::support::{BIN, TestRepo, pg_in};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/action/promptgate_action.py");
const TOKEN: &str = "ghs_fake_job_token_1234";

/// What the fake API holds and saw.
#[derive(Default)]
struct Github {
    /// Comment id → body, per issue number.
    comments: BTreeMap<u64, Vec<(u64, String)>>,
    next_id: u64,
    /// (method, path) of every request.
    requests: Vec<(String, String)>,
    bad_auth: usize,
}

type Shared = Arc<Mutex<Github>>;

/// The answer to a request without the job's token.
fn refused() -> (StatusCode, Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials"})),
    )
}

fn authorized(g: &Shared, headers: &HeaderMap) -> bool {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !ok {
        g.lock().unwrap().bad_auth += 1;
    }
    ok
}

async fn list(
    State(g): State<Shared>,
    headers: HeaderMap,
    UrlPath((_, _, n)): UrlPath<(String, String, u64)>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&g, &headers) {
        return refused();
    }
    let mut g = g.lock().unwrap();
    g.requests
        .push(("GET".into(), format!("issues/{n}/comments")));
    let list: Vec<Value> = g
        .comments
        .get(&n)
        .map(|cs| {
            cs.iter()
                .map(|(id, b)| json!({"id": id, "body": b}))
                .collect()
        })
        .unwrap_or_default();
    (StatusCode::OK, Json(Value::Array(list)))
}

async fn create(
    State(g): State<Shared>,
    headers: HeaderMap,
    UrlPath((_, _, n)): UrlPath<(String, String, u64)>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&g, &headers) {
        return refused();
    }
    let mut g = g.lock().unwrap();
    g.requests
        .push(("POST".into(), format!("issues/{n}/comments")));
    g.next_id += 1;
    let id = 1000 + g.next_id;
    let text = body["body"].as_str().unwrap_or("").to_string();
    g.comments.entry(n).or_default().push((id, text));
    (StatusCode::CREATED, Json(json!({"id": id})))
}

async fn update(
    State(g): State<Shared>,
    headers: HeaderMap,
    UrlPath((_, _, id)): UrlPath<(String, String, u64)>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&g, &headers) {
        return refused();
    }
    let mut g = g.lock().unwrap();
    g.requests.push(("PATCH".into(), format!("comments/{id}")));
    let text = body["body"].as_str().unwrap_or("").to_string();
    for cs in g.comments.values_mut() {
        for c in cs.iter_mut().filter(|c| c.0 == id) {
            c.1 = text.clone();
        }
    }
    (StatusCode::OK, Json(json!({"id": id})))
}

/// The fake API on its own runtime thread; returns its base URL.
fn fake_github(state: Shared) -> String {
    let app = Router::new()
        .route(
            "/repos/{owner}/{repo}/issues/{n}/comments",
            get(list).post(create),
        )
        .route("/repos/{owner}/{repo}/issues/comments/{id}", patch(update))
        .with_state(state);
    format!("http://{}", crate::support::serve_router(app))
}

/// Answers "ok N" to question N, except that a "MODE bad" prompt gets 2 cases in 5 wrong.
fn model() -> Server {
    Server::start(stub::Config {
        responder: Arc::new(|body: &Value| {
            let text = body.to_string();
            let n: u64 = text
                .split("question number ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            let bad = text.contains("MODE bad") && n % 5 < 2;
            Answer {
                content: if bad {
                    format!("nope {n}")
                } else {
                    format!("ok {n}")
                },
                tool_calls: vec![],
            }
        }),
        ..stub::Config::default()
    })
    .unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn version(system: &str) -> String {
    format!(
        "model: {{ provider: stub, name: stub-model, temperature: 0 }}\nvariables:\n  question: {{ type: string }}\n\
         messages:\n  - role: system\n    content: \"{system}\"\n  - role: user\n    content: \"{{{{ question }}}}\"\n"
    )
}

/// A Git repository holding a promptgate repository in `prompts-repo/`, with `p@v1` in
/// production, committed on `main`. Returns it and the base commit.
fn repository(model: &Server) -> (TestRepo, PathBuf, String) {
    let top = TestRepo::new();
    let dir = top.file("prompts-repo");
    std::fs::create_dir_all(&dir).unwrap();
    let repo = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    repo(
        "promptgate.yaml",
        &format!(
            "version: 1\nproviders:\n  stub: {{ kind: openai, base_url: {} }}\n",
            model.base_url()
        ),
    );
    repo("prompts/p/v1.yaml", &version("MODE good. Answer ok."));
    repo(
        "prompts/p/suite.yaml",
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: ok\n    id: says-ok\n",
    );
    let rows: String = (0..80)
        .map(|i| format!("{{\"id\": \"c{i:03}\", \"question\": \"question number {i}\"}}\n"))
        .collect();
    repo("datasets/p.jsonl", &rows);
    repo(".gitignore", ".promptgate/\n");
    pg_in(&dir, &["add", "p"]).ok();
    pg_in(
        &dir,
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
    git(top.path(), &["init", "-q", "-b", "main"]);
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", "base"]);
    let base = git(top.path(), &["rev-parse", "HEAD"]);
    git(top.path(), &["checkout", "-q", "-b", "change"]);
    (top, dir, base)
}

/// Add a version file, register it and commit it, as a pull request's author does.
fn push_version(top: &TestRepo, dir: &Path, file: &str, system: &str) {
    std::fs::write(dir.join("prompts/p").join(file), version(system)).unwrap();
    pg_in(dir, &["add", "p"]).ok();
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", file]);
}

struct ActionRun {
    code: i32,
    stderr: String,
    summary: String,
    output: String,
}

fn run_action(
    top: &TestRepo,
    dir: &Path,
    base: &str,
    api: &str,
    extra: &[(&str, &str)],
) -> ActionRun {
    let event = top.file("event.json");
    std::fs::write(
        &event,
        json!({"pull_request": {"number": 7, "base": {"sha": base}}}).to_string(),
    )
    .unwrap();
    let summary = top.file("summary.md");
    let output = top.file("output.txt");
    let _ = std::fs::remove_file(&summary);
    let _ = std::fs::remove_file(&output);
    let mut c = Command::new("python3");
    c.arg(SCRIPT)
        .current_dir(top.path())
        .env("PROMPTGATE", BIN)
        .env("PROMPTGATE_ACTOR", "ci")
        .env("PG_DIR", dir)
        .env("PG_OUT", top.file("reports"))
        .env("GITHUB_EVENT_PATH", &event)
        .env("GITHUB_API_URL", api)
        .env("GITHUB_REPOSITORY", "acme/prompts")
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.output().expect("python3 runs the action's script");
    ActionRun {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        output: std::fs::read_to_string(&output).unwrap_or_default(),
    }
}

#[test]
fn a_pull_request_gets_one_comment_updated_in_place_and_a_fail_fails_the_job() {
    let model = model();
    let state: Shared = Arc::default();
    let api = fake_github(state.clone());
    let (top, dir, base) = repository(&model);

    // First push: an equal candidate (reworded) — PASS, one comment created.
    push_version(&top, &dir, "v2.yaml", "MODE good. Answer ok, kindly.");
    let r = run_action(&top, &dir, &base, &api, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.output.contains("verdict=PASS"), "{}", r.output);
    assert!(
        r.summary.contains("PASS") && r.summary.contains("`p` v2-"),
        "{}",
        r.summary
    );
    {
        let g = state.lock().unwrap();
        let comments = &g.comments[&7];
        assert_eq!(comments.len(), 1);
        assert!(
            comments[0].1.contains("promptgate PASS"),
            "{}",
            comments[0].1
        );
        assert_eq!(g.bad_auth, 0);
    }
    assert!(top.file("reports/p/report.json").is_file());
    assert!(top.file("reports/p/junit.xml").is_file());
    assert!(top.file("reports/p/report.html").is_file());

    // Second push: a worse candidate — FAIL, the same comment updated, the job fails.
    push_version(&top, &dir, "v3.yaml", "MODE bad. Answer.");
    let r = run_action(&top, &dir, &base, &api, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.output.contains("verdict=FAIL"), "{}", r.output);
    let g = state.lock().unwrap();
    let comments = &g.comments[&7];
    assert_eq!(comments.len(), 1, "one comment, updated in place");
    assert!(
        comments[0].1.contains("promptgate FAIL") && comments[0].1.contains("v3-"),
        "{}",
        comments[0].1
    );
    assert!(!comments[0].1.contains("promptgate PASS"));
    let methods: Vec<&str> = g.requests.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "GET", "PATCH"]);
}

#[test]
fn the_action_names_an_unregistered_version_and_allows_inconclusive_when_told() {
    let model = model();
    let state: Shared = Arc::default();
    let api = fake_github(state.clone());
    let (top, dir, base) = repository(&model);
    // A version file committed without `promptgate add`.
    std::fs::write(dir.join("prompts/p/v2.yaml"), version("MODE good. Hi.")).unwrap();
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", "unregistered"]);
    let r = run_action(&top, &dir, &base, &api, &[("PG_COMMENT", "false")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.summary
            .contains("prompts-repo/prompts/p/v2.yaml` is not registered")
            && r.summary.contains("promptgate add p"),
        "{}",
        r.summary
    );
    assert!(
        state.lock().unwrap().requests.is_empty(),
        "no comment when told not to"
    );

    // Registered, but gated on too few cases to tell: INCONCLUSIVE blocks unless allowed.
    let out = Command::new(BIN)
        .current_dir(&dir)
        .args(["add", "p"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(
        dir.join("prompts/p/suite.yaml"),
        "datasets: [datasets/p.jsonl]\nchecks:\n  - contains: ok\n    id: says-ok\ngate: { min_cases: 200 }\n",
    )
    .unwrap();
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", "registered"]);
    let r = run_action(&top, &dir, &base, &api, &[("PG_COMMENT", "false")]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = run_action(
        &top,
        &dir,
        &base,
        &api,
        &[("PG_COMMENT", "false"), ("PG_ALLOW_INCONCLUSIVE", "true")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.output.contains("verdict=INCONCLUSIVE"), "{}", r.output);
}

#[test]
fn the_actions_script_passes_flags_that_gate_takes() {
    let script = std::fs::read_to_string(SCRIPT).unwrap();
    let start = script
        .find("\"gate\", name,")
        .expect("the script runs `promptgate gate`");
    let end = script[start..]
        .find("] + extra")
        .expect("end of the invocation")
        + start;
    let invocation = &script[start..end];
    let help = TestRepo::new().pg(&["gate", "--help"]).ok().stdout;
    let flags = regex::Regex::new(r"--[a-z][a-z-]+").unwrap();
    let used: Vec<&str> = flags.find_iter(invocation).map(|m| m.as_str()).collect();
    assert!(used.len() >= 5, "{used:?}");
    for f in used {
        assert!(
            help.contains(f),
            "the action passes `{f}`, which `gate` does not take"
        );
    }
    // The action's steps run the script that this test runs.
    let action =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    assert!(action.contains("action/promptgate_action.py"));
}
