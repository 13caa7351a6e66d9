//! `promptgate serve`, the client, canary splits and bundles: the real binary serving a
//! temporary repository on 127.0.0.1 (an ephemeral port), driven over HTTP.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use promptgate::client::Client;
use promptgate::registry::Target;
use serde_json::{Value, json};

use crate::support::{TestRepo, version_yaml, walk};

const WRITE_SECRET: &str = "pg-write-7f3a9c1e5b";
const READ_SECRET: &str = "pg-read-2d8e4b6a0c";
const CANARY_SECRET: &str = "pg-canary-9b1c3e5f7a";
const FILE_SECRET: &str = "pg-file-4c6e8a0b2d";
const INGEST_SECRET: &str = "pg-ingest-6a2c8e0f4b";

/// The token secrets `repo()`'s configuration names, in the environment of `command`.
fn with_secrets(mut command: std::process::Command) -> std::process::Command {
    command
        .env("PG_TEST_WRITE", WRITE_SECRET)
        .env("PG_TEST_READ", READ_SECRET)
        .env("PG_TEST_CANARY", CANARY_SECRET)
        .env("PG_TEST_INGEST", INGEST_SECRET);
    command
}

/// A running `promptgate serve`, killed on drop.
struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Serve {
    fn start(repo: &TestRepo, extra: &[&str]) -> Serve {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("serve.log");
        // A scan only every minute: changes must arrive through file events.
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--poll-ms", "60000"];
        args.extend_from_slice(extra);
        let mut child = with_secrets(repo.command(&args))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(|a| format!("http://{a}"))
            .unwrap_or_else(|| {
                panic!(
                    "no address in {line:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Serve {
            child,
            base,
            log,
            _logdir: logdir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tokens file outside any repository, holding one read token.
fn tokens_file() -> PathBuf {
    static FILE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = FILE.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("tokens.yaml"),
            format!("- {{ name: dashboard, token: {FILE_SECRET}, scope: read }}\n"),
        )
        .unwrap();
        d
    });
    dir.path().join("tokens.yaml")
}

/// Prompt `p` with v1..v3, `production` → v1; tokens: a writer, a reader limited to `p`, a
/// writer limited to the `canary` label, a collector that may send signals, and (from the
/// tokens file) a reader of everything.
fn repo(open_reads: bool) -> TestRepo {
    let repo = TestRepo::with_versions(3);
    let cfg = repo.read("promptgate.yaml");
    repo.write(
        "promptgate.yaml",
        &format!(
            "{cfg}serve:\n  open_reads: {open_reads}\n  tokens_file: {}\n  tokens:\n    - {{ name: ci, env: PG_TEST_WRITE, scope: write }}\n    - {{ name: svc, env: PG_TEST_READ, scope: read, prompts: [p] }}\n    - {{ name: canary-bot, env: PG_TEST_CANARY, scope: write, labels: [canary] }}\n    - {{ name: collector, env: PG_TEST_INGEST, scope: ingest }}\n",
            tokens_file().display()
        ),
    );
    repo.label_set("p", "production", "v1", "none", "first");
    repo.write("prompts/q/v1.yaml", &version_yaml("Other prompt.", 0.0));
    repo.pg(&["add", "q"]).ok();
    repo
}

fn id(repo: &TestRepo, v: &str) -> String {
    let out = repo.pg(&["show", &format!("p@{v}"), "--json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["version_id"].as_str().unwrap().to_string()
}

fn hash(repo: &TestRepo, v: &str) -> String {
    let out = repo.pg(&["show", &format!("p@{v}"), "--json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["hash"].as_str().unwrap().to_string()
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut rb = reqwest::Client::new().get(url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

async fn put_label(
    s: &Serve,
    label: &str,
    if_match: &str,
    to: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut rb = reqwest::Client::new()
        .put(s.url(&format!("/v1/prompts/p/labels/{label}")))
        .header("If-Match", if_match)
        .json(&json!({"to": to, "reason": "test move"}));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn rollback(
    s: &Serve,
    label: &str,
    if_match: Option<&str>,
    body: Value,
    token: &str,
) -> (u16, Value) {
    let mut rb = reqwest::Client::new()
        .post(s.url(&format!("/v1/prompts/p/labels/{label}/rollback")))
        .bearer_auth(token)
        .json(&body);
    if let Some(m) = if_match {
        rb = rb.header("If-Match", m);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_is_rolled_back_over_http_as_on_the_command_line() {
    let repo = repo(true);
    let (v1, v2) = (id(&repo, "v1"), id(&repo, "v2"));
    repo.label_set("p", "production", "v2", &v1, "second");
    let s = Serve::start(&repo, &[]);
    // Scoped like every write; a reason is required; a stale If-Match moves nothing.
    let body = json!({"reason": "errors up"});
    let (status, _) = rollback(&s, "production", None, body.clone(), CANARY_SECRET).await;
    assert_eq!(status, 403);
    let (status, err) =
        rollback(&s, "production", None, json!({"reason": " "}), WRITE_SECRET).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = rollback(&s, "production", None, json!({"why": "x"}), WRITE_SECRET).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = rollback(&s, "production", Some(&v1), body.clone(), WRITE_SECRET).await;
    assert_eq!(
        (status, err["current"].as_str()),
        (412, Some(v2.as_str())),
        "{err}"
    );
    // Back to where the audit log says it was, and served at once.
    let (status, entry) = rollback(&s, "production", Some(&v2), body.clone(), WRITE_SECRET).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        (&entry["action"], &entry["to"]),
        (&json!("rollback"), &json!(v1)),
        "{entry}"
    );
    let (_, got, _) = get(&s.url("/v1/prompts/p?label=production"), None).await;
    assert_eq!(got["version_id"], v1, "{got}");
    // The same entry the command line would have written, and the chain still verifies.
    let last = repo.read("prompts/p/audit.jsonl");
    let last: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&last["actor"], &last["reason"]),
        (&json!("token:ci"), &json!("errors up"))
    );
    repo.pg(&["check"]).ok();
    // `to` names the target; an unknown label is 404 naming the labels there are.
    let (status, entry) = rollback(
        &s,
        "production",
        None,
        json!({"to": "v3", "reason": "r"}),
        WRITE_SECRET,
    )
    .await;
    assert_eq!(
        (status, entry["to"].as_str()),
        (200, Some(id(&repo, "v3").as_str())),
        "{entry}"
    );
    let (status, err) = rollback(&s, "staging", None, body, WRITE_SECRET).await;
    assert_eq!(status, 404, "{err}");
    assert!(
        err["details"].as_str().unwrap().contains("production"),
        "{err}"
    );
    assert!(s.log().contains("rollback"), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_label_id_and_hash_with_etags_and_helpful_404s() {
    let repo = repo(true);
    let s = Serve::start(&repo, &[]);
    let (v1, h1) = (id(&repo, "v1"), hash(&repo, "v1"));

    let (status, body, headers) = get(&s.url("/v1/prompts/p?label=production"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version_id"], v1);
    assert_eq!(body["label"], "production");
    assert_eq!(body["hash"], h1);
    assert_eq!(body["artifact"]["messages"][0]["role"], "system");
    assert_eq!(headers["etag"], format!("\"{h1}\"").as_str());

    // 304 on a matching If-None-Match, 200 on another.
    let r = reqwest::Client::new()
        .get(s.url("/v1/prompts/p?label=production"))
        .header("If-None-Match", format!("\"{h1}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
    let r = reqwest::Client::new()
        .get(s.url("/v1/prompts/p?label=production"))
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // By id, by number, by hash prefix; no label: the latest.
    for sel in [v1.as_str(), "v1", &h1[..9], &h1] {
        let (status, body, _) = get(&s.url(&format!("/v1/prompts/p/versions/{sel}")), None).await;
        assert_eq!(
            (status, body["version_id"].as_str()),
            (200, Some(v1.as_str())),
            "{sel}"
        );
    }
    let (_, body, _) = get(&s.url("/v1/prompts/p"), None).await;
    assert_eq!(body["version_id"], id(&repo, "v3"));

    // Unknown prompt, label, version: 404 with what exists.
    let (status, body, _) = get(&s.url("/v1/prompts/nope?label=production"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["prompts"], json!(["p", "q"]));
    let (status, body, _) = get(&s.url("/v1/prompts/p?label=staging"), None).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no label `staging`"),
        "{body}"
    );
    assert_eq!(body["labels"], json!(["production"]));
    assert_eq!(body["versions"].as_array().unwrap().len(), 3);
    let (status, body, _) = get(&s.url("/v1/prompts/p/versions/v9"), None).await;
    assert_eq!(status, 404, "{body}");

    // The listing and rendering.
    let (_, body, _) = get(&s.url("/v1/prompts"), None).await;
    assert_eq!(body["prompts"][0]["name"], "p");
    assert_eq!(body["prompts"][0]["labels"]["production"], v1);
    let r = reqwest::Client::new()
        .post(s.url("/v1/prompts/p/render?label=production"))
        .json(&json!({"variables": {"question": "Where is my order?"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let req: Value = r.json().await.unwrap();
    assert_eq!(req["messages"][1]["content"], "Where is my order?");
    assert_eq!(req["version_id"], v1);
    // The same code as `promptgate render`.
    let cli = repo
        .pg(&[
            "render",
            "p@production",
            "--var",
            "question=Where is my order?",
        ])
        .ok();
    assert_eq!(req, serde_json::from_str::<Value>(&cli.stdout).unwrap());
    let r = reqwest::Client::new()
        .post(s.url("/v1/prompts/p/render?label=production"))
        .json(&json!({"variables": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("question"),
        "{body}"
    );

    // Health and the OpenAPI document.
    let (status, body, _) = get(&s.url("/healthz"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _, _) = get(&s.url("/openapi.json"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_moves_have_exactly_one_winner() {
    let repo = repo(true);
    let s = Serve::start(&repo, &[]);
    let (v1, v2) = (id(&repo, "v1"), id(&repo, "v2"));
    let before = repo.read("prompts/p/audit.jsonl").lines().count();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = s.url("/v1/prompts/p/labels/production");
        let (v1, v2) = (v1.clone(), v2.clone());
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .put(url)
                .bearer_auth(WRITE_SECRET)
                .header("If-Match", v1)
                .json(&json!({"to": v2, "reason": "race"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            412 => {
                conflicts += 1;
                assert_eq!(body["current"], v2, "{body}");
                assert!(body["error"].as_str().unwrap().contains(&v2), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 15));
    let audit = repo.read("prompts/p/audit.jsonl");
    assert_eq!(audit.lines().count(), before + 1, "{audit}");
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["actor"], "token:ci");
    assert_eq!(last["to"], v2);
    repo.pg(&["check"]).ok();
    // `none` creates a label; a missing If-Match is refused.
    let (status, _) = put_label(&s, "canary", "none", "v3", Some(WRITE_SECRET)).await;
    assert_eq!(status, 200);
    let r = reqwest::Client::new()
        .put(s.url("/v1/prompts/p/labels/canary"))
        .bearer_auth(WRITE_SECRET)
        .json(&json!({"to": "v1", "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 428);
    // What does not exist is 404, over HTTP as everywhere: an unknown version to move to.
    let (status, body) = put_label(&s, "canary", "v3", "v9", Some(WRITE_SECRET)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("v9"), "{body}");

    // Registering a version over HTTP: same validation as `add`.
    let post = |body: String| {
        reqwest::Client::new()
            .post(s.url("/v1/prompts/p/versions"))
            .bearer_auth(WRITE_SECRET)
            .body(body)
            .send()
    };
    let r = post(version_yaml("You are assistant number 4.", 0.2))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["registered"][0]["version_id"]
            .as_str()
            .unwrap()
            .starts_with("v4-"),
        "{body}"
    );
    assert!(repo.file("prompts/p/v4.yaml").is_file());
    let r = post("model: { provider: openai, name: x }\nmesages: []\n".into())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["details"].as_str().unwrap().contains("mesages"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_scoped_and_never_logged() {
    let repo = repo(false);
    let s = Serve::start(&repo, &[]);
    // Reads need a token when reads are not open.
    let (status, _, headers) = get(&s.url("/v1/prompts/p?label=production"), None).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = get(&s.url("/v1/prompts/p?label=production"), Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, _, _) = get(&s.url("/v1/prompts/p?label=production"), Some(READ_SECRET)).await;
    assert_eq!(status, 200);
    // The reader is limited to `p`, and sees only `p` listed.
    let (status, _, _) = get(&s.url("/v1/prompts/q"), Some(READ_SECRET)).await;
    assert_eq!(status, 403);
    let (_, body, _) = get(&s.url("/v1/prompts"), Some(READ_SECRET)).await;
    assert_eq!(body["prompts"].as_array().unwrap().len(), 1);
    // The token from the tokens file reads everything, and writes nothing.
    let (status, _, _) = get(&s.url("/v1/prompts/q"), Some(FILE_SECRET)).await;
    assert_eq!(status, 200);
    // Writes: none, a reader, a writer limited to another label, then the real writer.
    let v1 = id(&repo, "v1");
    assert_eq!(put_label(&s, "production", &v1, "v2", None).await.0, 401);
    assert_eq!(
        put_label(&s, "production", &v1, "v2", Some(READ_SECRET))
            .await
            .0,
        403
    );
    let (status, body) = put_label(&s, "production", &v1, "v2", Some(CANARY_SECRET)).await;
    assert_eq!(status, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("may not move `p@production`"),
        "{body}"
    );
    assert_eq!(
        put_label(&s, "canary", "none", "v2", Some(CANARY_SECRET))
            .await
            .0,
        200
    );
    assert_eq!(
        put_label(&s, "production", &v1, "v2", Some(WRITE_SECRET))
            .await
            .0,
        200
    );
    // No secret anywhere: the server's log, its metrics, the repository.
    let (_, _, _) = get(&s.url("/healthz"), None).await;
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("promptgate_http_requests_total{route=\"/v1/prompts/{name}/labels/{label}\",status=\"403\"} 2"), "{metrics}");
    assert!(
        metrics.contains("promptgate_label_moves_total 2"),
        "{metrics}"
    );
    let mut haystacks = vec![s.log(), metrics];
    let mut files = Vec::new();
    walk(repo.path(), &mut files);
    haystacks.extend(files.iter().filter_map(|f| std::fs::read_to_string(f).ok()));
    for h in &haystacks {
        for secret in [WRITE_SECRET, READ_SECRET, CANARY_SECRET, FILE_SECRET] {
            assert!(!h.contains(secret), "a token leaked");
        }
    }
    assert!(s.log().contains("by token:ci"), "{}", s.log());
}

/// Read server-sent events until one satisfies `want` or the deadline passes.
async fn next_event(
    resp: &mut reqwest::Response,
    buf: &mut String,
    deadline: Instant,
) -> Option<(String, Value, String)> {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut kind = String::new();
            let mut data = String::new();
            let mut id = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().into();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().into();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !kind.is_empty() {
                return Some((kind, serde_json::from_str(&data).unwrap_or(Value::Null), id));
            }
            continue;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(c))) => buf.push_str(&String::from_utf8_lossy(&c)),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_disk_reach_subscribers_and_clients_and_failures_keep_the_last_good_state() {
    let repo = repo(true);
    let mut s = Serve::start(&repo, &[]);
    let (v1, v2) = (id(&repo, "v1"), id(&repo, "v2"));
    let disk = tempfile::tempdir().unwrap();
    let client = Client::builder(&s.base)
        .cache_dir(disk.path())
        .ttl(Duration::from_secs(600))
        .build()
        .unwrap();
    assert_eq!(
        client
            .get("p", "production", None)
            .await
            .unwrap()
            .version_id,
        v1
    );
    let mut events = reqwest::Client::new()
        .get(s.url("/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A CLI label move in another process.
    let t = Instant::now();
    repo.label_set("p", "production", "v2", "v1", "ship v2");
    let mut buf = String::new();
    let (kind, e, move_id) = next_event(&mut events, &mut buf, t + Duration::from_secs(1))
        .await
        .expect("an event within a second");
    assert_eq!(kind, "label");
    assert_eq!(
        (e["prompt"].as_str(), e["label"].as_str()),
        (Some("p"), Some("production"))
    );
    assert_eq!(
        (e["from"].as_str(), e["to"].as_str()),
        (Some(v1.as_str()), Some(v2.as_str()))
    );
    assert_eq!(e["actor"], "tester");
    assert_eq!(e["audit_hash"].as_str().unwrap().len(), 64);
    let seen = loop {
        if client
            .cached("p", "production", None)
            .map(|r| r.version_id.clone())
            == Some(v2.clone())
        {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the client did not see the move within a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(seen < Duration::from_secs(1));

    // Resuming with Last-Event-ID replays what was missed.
    repo.write("prompts/p/v4.yaml", &version_yaml("Four.", 0.3));
    repo.pg(&["add", "p"]).ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut r = reqwest::Client::new()
        .get(s.url("/v1/events"))
        .header("Last-Event-ID", &move_id)
        .send()
        .await
        .unwrap();
    let mut b = String::new();
    let (kind, e, _) = next_event(&mut r, &mut b, Instant::now() + Duration::from_secs(2))
        .await
        .expect("the missed event, replayed");
    assert_eq!(kind, "version", "{e}");
    assert!(e["to"].as_str().unwrap().starts_with("v4-"), "{e}");
    let mut r = reqwest::Client::new()
        .get(s.url("/v1/events"))
        .header("Last-Event-ID", "1-1")
        .send()
        .await
        .unwrap();
    let mut b = String::new();
    let (kind, _, _) = next_event(&mut r, &mut b, Instant::now() + Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(kind, "reset", "an id from another server instance");

    // An invalid file on disk: the server keeps serving the last good state and says so.
    let good = repo.read("prompts/p/v2.yaml");
    repo.write("prompts/p/v2.yaml", "model: [this is not a version\n");
    let t = Instant::now();
    let health = loop {
        let (_, h, _) = get(&s.url("/healthz"), None).await;
        if h["status"] == "degraded" {
            break h;
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        health["problems"]["p"].as_str().unwrap().contains("v2"),
        "{health}"
    );
    let (status, body, _) = get(&s.url("/v1/prompts/p?label=production"), None).await;
    assert_eq!(
        (status, body["version_id"].as_str()),
        (200, Some(v2.as_str()))
    );
    assert!(
        s.log().contains("still serving its last good state"),
        "{}",
        s.log()
    );
    repo.write("prompts/p/v2.yaml", &good);

    // The server stops: the client keeps answering from memory.
    s.stop();
    assert_eq!(
        client
            .get("p", "production", None)
            .await
            .unwrap()
            .version_id,
        v2
    );
    client.refresh().await;
    assert_eq!(
        client
            .get("p", "production", None)
            .await
            .unwrap()
            .version_id,
        v2
    );
    // A new client started while the server is down loads the last-known-good copy (the
    // first client's copies are written in the background: wait for them).
    client.flush_disk().await;
    let cold = Client::builder(&s.base)
        .cache_dir(disk.path())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = cold.get("p", "production", None).await.unwrap();
    assert_eq!(r.version_id, v2);
    assert_eq!(
        r.span_attributes(),
        [
            ("prompt.name", "p"),
            ("prompt.version_id", v2.as_str()),
            ("prompt.label", "production")
        ]
    );
    // Without a copy on disk, the error says why.
    let none = Client::builder(&s.base)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = none
        .get("p", "production", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach the registry"), "{err}");
}

#[test]
fn canary_assignment_is_sticky_and_matches_the_weights() {
    let at = |p: u32| Target::parse(&format!("v4-new:{p},v3-old:{}", 100 - p)).unwrap();
    let keys: Vec<String> = (0..100_000).map(|i| format!("user-{i}")).collect();
    let assign = |t: &Target| -> Vec<bool> {
        keys.iter()
            .map(|k| t.assign("production", Some(k)) == "v4-new")
            .collect()
    };
    let (ten, fifty) = (assign(&at(10)), assign(&at(50)));
    for (share, on) in [(0.10, &ten), (0.50, &fifty)] {
        let got = on.iter().filter(|x| **x).count() as f64 / keys.len() as f64;
        assert!((got - share).abs() <= 0.01, "{got} for {share}");
    }
    // From 10 % to 50 %: keys move onto the new version, never back.
    assert!(ten.iter().zip(&fifty).all(|(a, b)| !a || *b));
    // Another label splits independently.
    let other: Vec<bool> = keys
        .iter()
        .take(1000)
        .map(|k| at(50).assign("canary", Some(k)) == "v4-new")
        .collect();
    assert_ne!(other, fifty[..1000].to_vec());
    // No routing key: the primary (the larger weight).
    assert_eq!(at(10).assign("production", None), "v3-old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_label_is_served_by_routing_key_the_same_way_everywhere() {
    let repo = repo(true);
    let (v1, v2) = (id(&repo, "v1"), id(&repo, "v2"));
    repo.pg(&[
        "label",
        "set",
        "p",
        "production",
        "v2:30,v1:70",
        "--expect",
        "v1",
        "-m",
        "canary",
    ])
    .ok();
    let s = Serve::start(&repo, &[]);
    let client = Client::builder(&s.base).build().unwrap();
    let target = Target::parse(&format!("{v2}:30,{v1}:70")).unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..40 {
        let key = format!("session-{i}");
        let want = target.assign("production", Some(&key)).to_string();
        let (_, body, _) = get(
            &s.url(&format!("/v1/prompts/p?label=production&key={key}")),
            None,
        )
        .await;
        assert_eq!(body["version_id"], want.as_str());
        assert_eq!(body["split"][&v2], 30);
        let c = client.get("p", "production", Some(&key)).await.unwrap();
        assert_eq!(c.version_id, want);
        seen.insert(want);
    }
    assert_eq!(seen.len(), 2, "both versions are served");
    let (_, body, _) = get(&s.url("/v1/prompts"), None).await;
    assert_eq!(body["prompts"][0]["labels"]["production"][&v1], 70);
}

#[test]
fn the_openapi_document_lists_exactly_the_routes() {
    let doc: Value =
        serde_json::from_str(promptgate::serve::OPENAPI).expect("docs/openapi.json parses");
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = promptgate::serve::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_carry_every_version_and_label_and_are_served_read_only() {
    let repo = repo(true);
    let v1 = id(&repo, "v1");
    let out = repo.pg(&["bundle", "--out", "dist/prompts.json"]).ok();
    assert!(
        out.stdout.contains("2 prompts, 4 versions"),
        "{}",
        out.stdout
    );
    let path = repo.file("dist/prompts.json");
    let b = promptgate::bundle::Bundle::load(&path).unwrap();
    assert_eq!(b.prompts["p"].labels["production"], Target::One(v1.clone()));
    assert_eq!(b.prompts["p"].versions.len(), 3);

    // The client reads it without a server.
    let c = Client::from_bundle(&path).unwrap();
    let r = c.get("p", "production", None).await.unwrap();
    assert_eq!(r.version_id, v1);
    let req = r
        .render(json!({"question": "hi"}).as_object().unwrap())
        .unwrap();
    assert_eq!(req.messages[1].content, "hi");

    // The server serves it, read-only.
    let s = Serve::start(&repo, &["--bundle", path.to_str().unwrap()]);
    let (status, body, _) = get(&s.url("/v1/prompts/p?label=production"), None).await;
    assert_eq!(
        (status, body["version_id"].as_str()),
        (200, Some(v1.as_str()))
    );
    let (status, _) = put_label(&s, "production", &v1, "v2", Some(WRITE_SECRET)).await;
    assert_eq!(status, 405);
    let (status, _) = rollback(&s, "production", None, json!({"reason": "x"}), WRITE_SECRET).await;
    assert_eq!(status, 405);
    let (_, health, _) = get(&s.url("/healthz"), None).await;
    assert_eq!(health["source"], path.to_str().unwrap(), "{health}");
    assert_eq!(health["prompts"], 2, "{health}");

    // A tampered bundle is refused with the reason.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("You are assistant number 1.", "You are evil."),
    )
    .unwrap();
    let err = promptgate::bundle::Bundle::load(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("digest does not match"), "{err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_even_with_a_stream_open() {
    let repo = repo(true);
    let mut s = Serve::start(&repo, &[]);
    let mut events = reqwest::Client::new()
        .get(s.url("/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    unsafe {
        libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(s.log().contains("shutting down"), "{}", s.log());
    // The stream ended instead of hanging.
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(end.is_ok());
}

/// `serve` errors once showed the server's temporary path, a CLI hint (`--expect`) and, with
/// no tokens configured, no word on how to configure one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_errors_speak_http() {
    let repo = repo(true);
    let s = Serve::start(&repo, &[]);
    // A version that does not validate: named as what was posted, no server path.
    let r = reqwest::Client::new()
        .post(s.url("/v1/prompts/p/versions"))
        .bearer_auth(WRITE_SECRET)
        .body("model: { provider: openai, name: m }\nmessages: [ { role: user, content: hi } ]\ntemprature: 3\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("the POSTed version"), "{body}");
    for leak in ["/tmp", ".tmp", "version.yaml"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
    // A lost compare-and-swap says which header to send.
    let (status, body) = put_label(&s, "production", "v2", "v3", Some(WRITE_SECRET)).await;
    assert_eq!(status, 412, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("If-Match") && !text.contains("--expect"),
        "{text}"
    );
    // With no token configured at all, a write says how to configure one.
    let bare = TestRepo::with_versions(1);
    let s = Serve::start(&bare, &[]);
    let r = reqwest::Client::new()
        .put(s.url("/v1/prompts/p/labels/production"))
        .header("If-Match", "none")
        .json(&json!({"to": "v1", "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("none configured") && body.contains("serve.tokens"),
        "{body}"
    );
}

/// A 100,000-deep YAML (200 KB) once took 28 s to `check` and held the prompt's lock for 94 s
/// when posted to `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_version_is_refused_at_once_and_holds_no_lock() {
    let deep = format!(
        "model: {{ provider: openai, name: m }}\nmessages: [ {{ role: user, content: hi }} ]\nmetadata:\n  x:\n    {}x\n",
        "- ".repeat(100_000)
    );
    // Through the CLI.
    let cli = TestRepo::with_versions(1);
    cli.write("prompts/p/v2.yaml", &deep);
    let t = Instant::now();
    let out = cli.pg(&["add", "p"]).code(2);
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    assert!(out.stderr.contains("levels deep"), "{}", out.stderr);
    // Through POST, while a CLI move of the same prompt goes through unhindered.
    let repo = repo(true);
    let s = Serve::start(&repo, &[]);
    let t = Instant::now();
    let r = reqwest::Client::new()
        .post(s.url("/v1/prompts/p/versions"))
        .bearer_auth(WRITE_SECRET)
        .body(deep.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    let posts: Vec<_> = (0..8)
        .map(|_| {
            let (url, body) = (s.url("/v1/prompts/p/versions"), deep.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .bearer_auth(WRITE_SECRET)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let t = Instant::now();
    repo.label_set("p", "canary", "v2", "none", "while deep posts arrive");
    let during = t.elapsed();
    for p in posts {
        assert_eq!(p.await.unwrap().unwrap(), 422);
    }
    assert!(
        during < Duration::from_secs(1),
        "the move waited {during:?}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 10,000 event streams were once all accepted (RSS 20 → 256 MB) and their memory kept after
/// they closed.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_and_their_memory_returned() {
    let repo = TestRepo::with_versions(1);
    let cfg = repo.read("promptgate.yaml");
    repo.write(
        "promptgate.yaml",
        &format!("{cfg}serve:\n  open_reads: true\n  max_streams: 2000\n"),
    );
    let s = Serve::start(&repo, &[]);
    let pid = s.child.id();
    let client = reqwest::Client::new();
    // Warm up, then measure.
    let _ = get(&s.url("/v1/prompts/p"), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(pid);
    let mut open = Vec::new();
    for _ in 0..2000 {
        let r = client.get(s.url("/v1/events")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    // One more than the cap: 503, with Retry-After.
    let r = client.get(s.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let at_peak = rss_kib(pid);
    drop(open);
    drop(client);
    // The server notices closed streams (their connections end), and counts them out.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(s.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "promptgate_event_streams 0") || Instant::now() > deadline {
            assert!(
                text.lines().any(|l| l == "promptgate_event_streams 0"),
                "{text}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss_kib(pid);
    while after > before + 20 * 1024 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = rss_kib(pid);
    }
    eprintln!(
        "RSS before {before} KiB, with 2,000 streams {at_peak} KiB, after they closed {after} KiB"
    );
    assert!(
        after <= before + 20 * 1024,
        "RSS {before} KiB before, {at_peak} KiB at peak, {after} KiB after"
    );
    // And new streams are accepted again.
    let r = reqwest::Client::new()
        .get(s.url("/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_the_server_no_longer_has_stops_being_served_by_the_client() {
    let repo = repo(true);
    let s = Serve::start(&repo, &[]);
    let disk = tempfile::tempdir().unwrap();
    let client = Client::builder(&s.base)
        .cache_dir(disk.path())
        .push(false)
        .build()
        .unwrap();
    client.get("p", "production", None).await.unwrap();
    client.flush_disk().await;
    let copy = disk.path().join("p@production.json");
    assert!(copy.is_file());
    // A server that cannot be reached changes nothing; one that says "gone" does.
    std::fs::remove_dir_all(repo.file("prompts/p")).unwrap();
    let gone = || async {
        get(&s.url("/v1/prompts"), None).await.1["prompts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|p| p["name"] != "p"))
    };
    let t0 = std::time::Instant::now();
    while !gone().await {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "serve still lists `p`"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.refresh().await;
    assert!(client.cached("p", "production", None).is_none());
    assert!(client.get("p", "production", None).await.is_err());
    client.flush_disk().await;
    assert!(!copy.exists(), "the disk copy of a gone prompt is removed");
}

/// OTLP spans over HTTP, as a Collector's `otlphttp` exporter sends them: protobuf (gzipped)
/// and JSON both aggregate into the version's signals; the wrong token, content type, body or
/// size gets a 4xx with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_over_otlp_become_signals_per_version() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as V};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    let repo = repo(false);
    let v1 = id(&repo, "v1");
    // The policy's metrics are what the signals keep of span attributes.
    let cfg = repo.read("promptgate.yaml");
    repo.write(
        "promptgate.yaml",
        &format!("{cfg}rollout:\n  metrics:\n    - {{ metric: app.tool_call.ok, worse: lower, tolerance: 0.05 }}\n"),
    );
    let s = Serve::start(&repo, &[]);
    let kv = |k: &str, v: V| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    };
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans: Vec<Span> = (1..=100u64)
        .map(|i| Span {
            name: "chat".into(),
            trace_id: u128::from(i).to_be_bytes().to_vec(),
            start_time_unix_nano: now_ns - i * 1_000_000,
            end_time_unix_nano: now_ns,
            attributes: vec![
                kv("prompt.name", V::StringValue("p".into())),
                kv("prompt.version_id", V::StringValue(v1.clone())),
                kv("prompt.label", V::StringValue("production".into())),
                kv("gen_ai.usage.input_tokens", V::IntValue(7)),
                kv("app.tool_call.ok", V::BoolValue(i % 10 != 0)),
                kv("app.untracked", V::DoubleValue(1.0)),
            ],
            status: Some(Status {
                code: if i % 10 == 0 { 2 } else { 1 },
                message: String::new(),
            }),
            ..Span::default()
        })
        .chain(std::iter::once(Span {
            name: "unrelated".into(),
            ..Span::default()
        }))
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &request.encode_to_vec()).unwrap();
    let body = gz.finish().unwrap();
    let http = reqwest::Client::new();
    let post = |ct: &str, token: Option<&str>, body: Vec<u8>| {
        let mut r = http
            .post(s.url("/v1/traces"))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    let r = post("application/x-protobuf", Some(INGEST_SECRET), body.clone())
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    assert!(r.bytes().await.unwrap().is_empty());
    // The same spans as OTLP/JSON, sent by a write token (write includes ingest).
    let json = serde_json::to_vec(&request).unwrap();
    let r = post("application/json", Some(WRITE_SECRET), json.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");

    let (status, signals, _) = get(&s.url("/v1/signals?prompt=p"), Some(READ_SECRET)).await;
    assert_eq!(status, 200, "{signals}");
    let versions = signals["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{signals}");
    let v = &versions[0];
    assert_eq!(
        (v["version_id"].as_str(), v["label"].as_str()),
        (Some(v1.as_str()), Some("production"))
    );
    assert_eq!(
        (v["calls"].as_u64(), v["errors"].as_u64()),
        (Some(200), Some(20)),
        "{v}"
    );
    assert_eq!(v["input_tokens"], 1400);
    assert_eq!(v["metrics"]["app.tool_call.ok"]["n"], 200, "{v}");
    assert!((v["metrics"]["app.tool_call.ok"]["mean"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    assert!(v["metrics"].get("app.untracked").is_none(), "{v}");
    let p95 = v["latency_ms"]["p95"].as_f64().unwrap();
    assert!((p95 - 95.0).abs() <= 95.0 * 0.011, "{v}");
    assert_eq!(signals["spans_ignored"], 2);
    // Spans of another prompt: a token limited to `p` does not see them.
    let q_span = std::fs::read_to_string("crates/server/tests/data/otlp_trace.json")
        .unwrap()
        .replace("support_agent", "q");
    let r = post("application/json", Some(INGEST_SECRET), q_span.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, limited, _) = get(&s.url("/v1/signals"), Some(READ_SECRET)).await;
    let prompts: Vec<&str> = limited["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, ["p"], "{limited}");
    let (_, everything, _) = get(&s.url("/v1/signals"), Some(WRITE_SECRET)).await;
    assert_eq!(
        everything["versions"].as_array().unwrap().len(),
        2,
        "{everything}"
    );

    // Late feedback, by trace or by version; all of a list or none.
    let feedback = |body: Value, token: &str| {
        reqwest::Client::new()
            .post(s.url("/v1/feedback"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let trace = format!("{:032x}", 1u128);
    let r = feedback(
        json!([
            {"metric": "app.tool_call.ok", "value": 1, "trace_id": trace},
            {"metric": "app.tool_call.ok", "value": 0, "prompt": "p", "version_id": v1, "label": "production"},
        ]),
        INGEST_SECRET,
    )
    .await
    .unwrap();
    let (status, answer) = (r.status(), r.text().await.unwrap());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["accepted"],
        2
    );
    let r = feedback(
        json!([
            {"metric": "app.tool_call.ok", "value": 1, "trace_id": trace},
            {"metric": "app.csat", "value": 5, "trace_id": trace},
        ]),
        INGEST_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let why = r.text().await.unwrap();
    assert!(
        why.contains("item 1") && why.contains("rollout.metrics"),
        "{why}"
    );
    let r = feedback(
        json!({"metric": "app.tool_call.ok", "value": 1, "trace_id": trace}),
        READ_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let (_, with_feedback, _) = get(&s.url("/v1/signals?prompt=p"), Some(READ_SECRET)).await;
    assert_eq!(
        with_feedback["versions"][0]["metrics"]["app.tool_call.ok"]["n"],
        202
    );
    assert_eq!(
        with_feedback["versions"][0]["calls"], 200,
        "feedback is not a call"
    );

    // Refusals, each with its reason.
    let r = post("application/x-protobuf", Some(READ_SECRET), body.clone())
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("may not send signals"));
    let r = post("application/x-protobuf", None, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post("text/plain", Some(INGEST_SECRET), json.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = post(
        "application/x-protobuf",
        Some(INGEST_SECRET),
        b"\xff\xff\xff".to_vec(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("ExportTraceServiceRequest")
    );
    let r = post("application/json", Some(INGEST_SECRET), vec![b' '; 9 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Nothing refused was counted.
    let (_, after, _) = get(&s.url("/v1/signals?prompt=p"), Some(READ_SECRET)).await;
    assert_eq!(after["versions"][0]["calls"], 200);
    assert!(!s.log().contains(INGEST_SECRET));

    // A restart loses nothing saved: signals are saved within seconds of changing (a crash,
    // SIGKILL, loses at most that), and once more at a graceful shutdown.
    let saved_calls = || {
        let text = std::fs::read_to_string(repo.file(".promptgate/signals.json")).ok()?;
        let saved: promptgate::signals::Signals = serde_json::from_str(&text).ok()?;
        let key = saved.keys().next()?.clone();
        Some(saved.since(&key, 0).calls)
    };
    let t = Instant::now();
    while saved_calls() != Some(200) {
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "signals never saved: {:?}",
            saved_calls()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut s = s;
    s.stop();
    let s = Serve::start(&repo, &[]);
    let calls = |v: &Value| v["versions"][0]["calls"].as_u64();
    let (_, back, _) = get(&s.url("/v1/signals?prompt=p"), Some(READ_SECRET)).await;
    assert_eq!(calls(&back), Some(200), "after SIGKILL: {back}");
    let r = reqwest::Client::new()
        .post(s.url("/v1/traces"))
        .header("content-type", "application/json")
        .bearer_auth(INGEST_SECRET)
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut s = s;
    unsafe {
        libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let t = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop();
    let s = Serve::start(&repo, &[]);
    let (_, back, _) = get(&s.url("/v1/signals?prompt=p"), Some(READ_SECRET)).await;
    assert_eq!(calls(&back), Some(300), "after SIGTERM: {back}");
    // A damaged file stops `serve` with the way out, instead of overwriting what it held.
    drop(s);
    repo.write(".promptgate/signals.json", "{\"tracked\": [");
    let out = with_secrets(repo.command(&["serve", "--listen", "127.0.0.1:0"]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("signals.json") && err.contains("delete it"),
        "{err}"
    );
}

/// A guarded rollout end to end: a simulated service resolves the label through the real
/// client with random routing keys, "answers" with an error rate per version, and exports
/// OTLP spans to a real `serve`. A canary with a worse error rate is rolled back by the guard
/// itself (audited as `promptgate-guard`, the client switched back); a healthy canary advances
/// through every step and finishes; pause and abort work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_rolls_a_bad_canary_back_and_a_good_one_forward() {
    let repo = repo_with_rollout("[10, 50, 100]", 150);
    let (v1, v2, v3) = (id(&repo, "v1"), id(&repo, "v2"), id(&repo, "v3"));
    let s = Serve::start(&repo, &["--guard-ms", "200"]);
    let client = Client::builder(&s.base)
        .ttl(Duration::from_millis(200))
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let error_rate = |v: &str| if v == v2 { 0.40 } else { 0.02 };
    let mut rng = fastrand::Rng::with_seed(11);
    // The service: 400 calls, each resolved through the client, exported as one batch.
    let serve_calls = async |rng: &mut fastrand::Rng| {
        let mut calls: Vec<(String, bool)> = Vec::new();
        for _ in 0..400 {
            let key = format!("user-{}", rng.u32(..));
            let p = client.get("p", "production", Some(&key)).await.unwrap();
            assert_eq!(p.span_attributes()[2], ("prompt.label", "production"));
            let failed = rng.f64() < error_rate(&p.version_id);
            calls.push((p.version_id.clone(), failed));
        }
        let spans: Vec<(&str, bool)> = calls.iter().map(|(v, f)| (v.as_str(), *f)).collect();
        let r = http
            .post(s.url("/v1/traces"))
            .bearer_auth(INGEST_SECRET)
            .header("content-type", "application/x-protobuf")
            .body(otlp_batch(&spans))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = || rollout_status(&repo);
    let production = |repo: &TestRepo| -> Value {
        let out = repo.pg(&["show", "p@production", "--json"]).ok();
        serde_json::from_str::<Value>(&out.stdout).unwrap()["version_id"].clone()
    };

    // A bad canary (40 % errors against 2 %): rolled back by the guard alone.
    repo.pg(&[
        "rollout",
        "start",
        "p@v2",
        "--label",
        "production",
        "--skip-gate",
        "-m",
        "try v2",
    ])
    .ok();
    let t = Instant::now();
    while status()[0]["status"]["state"] == "active" {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no decision: {}",
            status()
        );
        serve_calls(&mut rng).await;
    }
    let st = status();
    assert_eq!(st[0]["status"]["state"], "rolled_back", "{st}");
    assert!(
        st[0]["status"]["why"]
            .as_str()
            .unwrap()
            .starts_with("error_rate is worse by")
    );
    assert_eq!(production(&repo), v1);
    let last = production_log(&repo).remove(0);
    assert_eq!(
        (last["actor"].as_str(), last["action"].as_str()),
        (Some("promptgate-guard"), Some("rollback")),
        "{last}"
    );
    assert_eq!(
        last["report_digest"].as_str().map(str::len),
        Some(64),
        "the evidence's digest"
    );
    // The client follows: every key gets v1 again.
    let t = Instant::now();
    loop {
        let mut served = BTreeSet::new();
        for i in 0..50 {
            served.insert(
                client
                    .get("p", "production", Some(&format!("k{i}")))
                    .await
                    .unwrap()
                    .version_id
                    .clone(),
            );
        }
        if served == BTreeSet::from([v1.clone()]) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "client still serves {served:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A healthy canary: through 10 % and 50 % to the whole label.
    repo.pg(&[
        "rollout",
        "start",
        "p@v3",
        "--label",
        "production",
        "--skip-gate",
        "-m",
        "try v3",
    ])
    .ok();
    // Paused, it is not moved however good it looks; resumed, it is.
    repo.pg(&[
        "rollout",
        "pause",
        "p",
        "--label",
        "production",
        "-m",
        "hold on",
    ])
    .ok();
    for _ in 0..4 {
        serve_calls(&mut rng).await;
    }
    let st = status();
    assert_eq!(
        (
            st[0]["status"]["state"].as_str(),
            st[0]["progress"]["step"].as_u64()
        ),
        (Some("paused"), Some(0)),
        "{st}"
    );
    repo.pg(&["rollout", "resume", "p", "--label", "production"])
        .ok();
    let t = Instant::now();
    let mut steps_seen = BTreeSet::new();
    while status()[0]["status"]["state"] == "active" {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not finished: {}",
            status()
        );
        steps_seen.insert(status()[0]["progress"]["step"].as_u64().unwrap());
        serve_calls(&mut rng).await;
    }
    assert_eq!(status()[0]["status"]["state"], "finished", "{}", status());
    assert!(
        steps_seen.contains(&1),
        "it went through 50 %: {steps_seen:?}"
    );
    assert_eq!(production(&repo), v3);
    let log = production_log(&repo);
    let guard_moves = log
        .iter()
        .take_while(|e| e["actor"] == "promptgate-guard")
        .count();
    assert_eq!(guard_moves, 2, "10 → 50 → 100: {log:?}");

    // Abort sends the label back at once.
    repo.pg(&[
        "rollout",
        "start",
        "p@v2",
        "--label",
        "production",
        "--skip-gate",
        "-m",
        "again",
    ])
    .ok();
    repo.pg(&[
        "rollout",
        "abort",
        "p",
        "--label",
        "production",
        "-m",
        "wrong tone",
    ])
    .ok();
    assert_eq!(production(&repo), v3);
    assert_eq!(status()[0]["status"]["state"], "aborted");
    let out = repo
        .pg(&["rollout", "pause", "p", "--label", "production"])
        .code(2);
    assert!(out.stderr.contains("not active"), "{}", out.stderr);
}

/// `repo(true)` with a rollout policy for the tests: these steps, no minimum time, this many
/// canary calls a step, error rate within 5 points.
fn repo_with_rollout(steps: &str, min_samples: u64) -> TestRepo {
    let repo = repo(true);
    let cfg = repo.read("promptgate.yaml");
    repo.write(
        "promptgate.yaml",
        &format!(
            "{cfg}rollout:\n  steps: {steps}\n  min_step_secs: 0\n  min_samples: {min_samples}\n  metrics:\n    - {{ metric: error_rate, tolerance: 0.05 }}\n"
        ),
    );
    repo
}

/// `log p --label production --json`, newest first.
fn production_log(repo: &TestRepo) -> Vec<Value> {
    repo.pg(&["log", "p", "--label", "production", "--json"])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `rollout status --json`.
fn rollout_status(repo: &TestRepo) -> Value {
    serde_json::from_str(&repo.pg(&["rollout", "status", "--json"]).ok().stdout).unwrap()
}

/// Start a rollout of `reference` under `production`, the gate skipped (the gate's own tests
/// cover it).
fn start_rollout(repo: &TestRepo, reference: &str) {
    repo.pg(&[
        "rollout",
        "start",
        reference,
        "--label",
        "production",
        "--skip-gate",
        "-m",
        "try",
    ])
    .ok();
}

/// Send spans of `p` under `production` to `s` as an OTLP batch: (version, failed) each.
async fn send_spans(s: &Serve, spans: &[(&str, bool)]) {
    let r = reqwest::Client::new()
        .post(s.url("/v1/traces"))
        .bearer_auth(INGEST_SECRET)
        .header("content-type", "application/x-protobuf")
        .body(otlp_batch(spans))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// OTLP protobuf for spans of prompt `p` under `production`: (version, failed) each.
fn otlp_batch(spans: &[(&str, bool)]) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as V};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(V::StringValue(v.into())),
        }),
        ..KeyValue::default()
    };
    let spans = spans
        .iter()
        .map(|(version, failed)| Span {
            name: "chat".into(),
            start_time_unix_nano: now - 20_000_000,
            end_time_unix_nano: now,
            attributes: vec![
                kv("prompt.name", "p"),
                kv("prompt.version_id", version),
                kv("prompt.label", "production"),
            ],
            status: Some(Status {
                code: if *failed { 2 } else { 1 },
                message: String::new(),
            }),
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// A restart of `serve` mid-rollout loses nothing: the rollout and the signals it had are read
/// back, and the guard decides on them without any new traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_a_restart_of_serve() {
    let repo = repo_with_rollout("[20, 100]", 200);
    let (v1, v2) = (id(&repo, "v1"), id(&repo, "v2"));
    start_rollout(&repo, "p@v2");
    // A guard that never looks while the signals come in.
    let mut s = Serve::start(&repo, &["--guard-ms", "3600000"]);
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..10 {
        let spans: Vec<(&str, bool)> = (0..400)
            .map(|i| {
                (
                    if i % 5 == 0 { v2.as_str() } else { v1.as_str() },
                    rng.f64() < 0.02,
                )
            })
            .collect();
        send_spans(&s, &spans).await;
    }
    unsafe {
        libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let t = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop();
    let status = || rollout_status(&repo);
    assert_eq!(status()[0]["status"]["state"], "active");
    // Back, with a guard that looks: 800 canary calls within tolerance were kept, so it
    // finishes on them alone.
    let _s = Serve::start(&repo, &["--guard-ms", "100"]);
    let t = Instant::now();
    while status()[0]["status"]["state"] == "active" {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status()[0]["status"]["state"], "finished", "{}", status());
    let out = repo.pg(&["show", "p@production", "--json"]).ok();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["version_id"],
        v2.as_str()
    );
}

/// Two `serve`s over one repository: one guard acts (the other does not fight it over the
/// label, which would abort the rollout), and the rollout finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_over_one_repository_run_one_guard() {
    let repo = repo_with_rollout("[20, 100]", 200);
    let (v1, v2) = (id(&repo, "v1"), id(&repo, "v2"));
    start_rollout(&repo, "p@v2");
    let servers = [
        Serve::start(&repo, &["--guard-ms", "50"]),
        Serve::start(&repo, &["--guard-ms", "50"]),
    ];
    let mut rng = fastrand::Rng::with_seed(9);
    let status = || rollout_status(&repo);
    let t = Instant::now();
    while status()[0]["status"]["state"] == "active" {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", status());
        let spans: Vec<(&str, bool)> = (0..400)
            .map(|i| {
                (
                    if i % 5 == 0 { v2.as_str() } else { v1.as_str() },
                    rng.f64() < 0.02,
                )
            })
            .collect();
        for s in &servers {
            send_spans(s, &spans).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Exactly one of them leads; the other stands by.
    let mut roles = Vec::new();
    for s in &servers {
        let (_, health, _) = get(&s.url("/healthz"), None).await;
        roles.push(health["guard"].as_str().unwrap().to_string());
    }
    roles.sort();
    assert_eq!(roles, ["leading", "standby"]);
    // Let the other guard look a few more times: it must not act on a finished rollout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status()[0]["status"]["state"], "finished", "{}", status());
    let log = production_log(&repo);
    let guard_moves = log
        .iter()
        .filter(|e| e["actor"] == "promptgate-guard")
        .count();
    assert_eq!(guard_moves, 1, "one move, 20 % → 100 %: {log:?}");
}
