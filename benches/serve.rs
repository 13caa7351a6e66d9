//! Benchmark: `promptgate serve` and the client (`cargo bench --bench serve`).
//!
//! 1. `GET /v1/prompts/{name}?label=production` on a 1,000-prompt repository, loaded with `wrk`
//!    (Debian's `wrk`, one thread; skipped with a note when it is not installed) at 1, 16 and
//!    64 connections: requests per second and p50/p99 latency. Server and load generator share
//!    the same 2 cores.
//! 2. `Client::get` on a cache hit: time per call and heap allocations per call (a counting
//!    allocator wraps the system one in this binary).
//! 3. Propagation: 100 label moves (HTTP `PUT`), time until a client sees each one through the
//!    event stream, p50/p99; and 20 moves written by another writer on disk (as the CLI does),
//!    seen through the server's file events.
//!
//! The load runs twice: with the default workers (one per core but one), then `--workers N`
//! with one per core.
//!
//! `cargo bench --bench serve -- --quick` runs shorter load tests.
//!
//! `cargo bench --bench serve -- --ingest [SPANS]` measures OTLP trace ingest instead: batches
//! of 512 spans carrying the prompt attributes (20 versions), gzipped protobuf as a Collector
//! sends them, over 2 connections, 10 million spans by default: spans per second, and the
//! server's resident memory after each tenth (flat: aggregates, not spans, are kept).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use promptgate::client::Client;
use promptgate::registry::{Expect, LabelMove, Repo};

const BIN: &str = env!("CARGO_BIN_EXE_promptgate");
const PROMPTS: usize = 1000;
const TOKEN: &str = "bench-token-not-secret";

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn version(i: usize, v: usize) -> String {
    format!(
        "description: prompt {i}, version {v}\nmodel: {{ provider: openai, name: gpt-4o-mini, temperature: 0.2, max_tokens: 400 }}\nvariables:\n  question: {{ type: string }}\n  product: {{ type: string, default: Acme }}\nmessages:\n  - role: system\n    content: |\n      You are the support agent for {{{{ product }}}} (prompt {i}, revision {v}).\n      Answer in two sentences and cite the knowledge base.\n  - role: user\n    content: \"{{{{ question }}}}\"\n"
    )
}

fn build_repo(dir: &Path) -> Repo {
    std::fs::write(
        dir.join("promptgate.yaml"),
        "version: 1\nproviders:\n  openai: { kind: openai }\nserve:\n  open_reads: true\n  tokens:\n    - { name: bench, env: PG_BENCH_TOKEN, scope: write }\n",
    )
    .unwrap();
    let repo = Repo::open(dir).unwrap();
    for i in 0..PROMPTS {
        let name = format!("p{i:04}");
        let d = dir.join("prompts").join(&name);
        std::fs::create_dir_all(&d).unwrap();
        let versions = if i == 0 { 2 } else { 1 };
        for v in 1..=versions {
            std::fs::write(d.join(format!("v{v}.yaml")), version(i, v)).unwrap();
        }
        repo.add(&name, &[], "bench").unwrap();
        repo.move_label(&mv(&name, "v1", Expect::Absent)).unwrap();
    }
    repo
}

/// `promptgate serve` over `dir` on a free port: the process and its base URL.
fn start_serve(dir: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("PG_BENCH_TOKEN", TOKEN)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = format!(
        "http://{}",
        line.split("http://")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
    (server, base)
}

fn mv(name: &str, to: &str, expect: Expect) -> LabelMove {
    LabelMove::set(name, "production", to, expect, "bench", "bench")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo bench --bench serve -- --ingest [SPANS]` measures OTLP ingest only.
    if let Some(i) = std::env::args().position(|a| a == "--ingest") {
        let spans = std::env::args()
            .nth(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000_000);
        return ingest(spans);
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let repo = build_repo(dir.path());
    println!(
        "repository: {PROMPTS} prompts built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let start = |extra: &[&str]| start_serve(dir.path(), extra);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut all, base_all) = start(&["--workers", &cores.to_string()]);
    println!("serve --workers {cores} (one per core):");
    load(&base_all, quick);
    let _ = all.kill();
    let _ = all.wait();
    let (mut server, base) = start(&[]);
    println!("serve (default: one worker per core but one):");
    load(&base, quick);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(client_hit(&base));
    runtime.block_on(propagation(&base, &repo));
    let _ = server.kill();
    let _ = server.wait();
}

fn load(base: &str, quick: bool) {
    let url = format!("{base}/v1/prompts/p0500?label=production");
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("load: `wrk` is not installed (apt-get install wrk); skipped");
        return;
    }
    let secs = if quick { "3s" } else { "10s" };
    for conns in [1, 16, 64] {
        // One load-generator thread: on 2 cores, a second one takes the server's CPU.
        let threads = "1".to_string();
        let out = Command::new("wrk")
            .args([
                "-t",
                &threads,
                "-c",
                &conns.to_string(),
                "-d",
                secs,
                "--latency",
                &url,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |prefix: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(prefix))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        let errors = text
            .lines()
            .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
            .unwrap_or("no errors");
        println!(
            "GET by label, {conns:>2} connections: {:>9} req/s, p50 {:>8}, p99 {:>8} ({errors})",
            field("Requests/sec:"),
            field("50%"),
            field("99%"),
        );
    }
}

async fn client_hit(base: &str) {
    let client = Client::builder(base).build().unwrap();
    client.get("p0500", "production", None).await.unwrap();
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let n: u64 = 2_000_000;
    // Warm up, then measure.
    for _ in 0..10_000 {
        let mut f = std::pin::pin!(client.get("p0500", "production", Some("user-1")));
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..n {
        let mut f = std::pin::pin!(client.get("p0500", "production", None));
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => {
                std::hint::black_box(r);
            }
            _ => panic!("a cache hit must be ready at once"),
        }
    }
    let per = t.elapsed().as_nanos() as f64 / n as f64;
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "Client::get, cache hit: {per:.0} ns per call, {:.3} allocations per call",
        allocs as f64 / n as f64
    );
    // A canary split assigns by routing key (one SHA-256 of the key).
    let t = Instant::now();
    for i in 0..n / 4 {
        let key = if i % 2 == 0 { "user-1" } else { "user-2" };
        std::hint::black_box(client.cached("p0500", "production", Some(key)));
    }
    println!(
        "Client::cached with a routing key: {:.0} ns per call",
        t.elapsed().as_nanos() as f64 / (n / 4) as f64
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn propagation(base: &str, repo: &Repo) {
    let client = Client::builder(base)
        .ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let id = |v: &str| {
        repo.prompt("p0000")
            .unwrap()
            .resolve(Some(v))
            .unwrap()
            .0
            .id
            .clone()
    };
    let (v1, v2) = (id("v1"), id("v2"));
    client.get("p0000", "production", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let wait_for = async |want: &str, t: Instant| -> Duration {
        loop {
            if client
                .cached("p0000", "production", None)
                .is_some_and(|r| r.version_id == want)
            {
                return t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(5), "move not seen");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    let mut current = v1.clone();
    let next_of = |current: &str| {
        if current == v1 {
            v2.clone()
        } else {
            v1.clone()
        }
    };
    let mut seen = Vec::new();
    let mut put_times = Vec::new();
    for _ in 0..100 {
        let next = next_of(&current);
        let t = Instant::now();
        let r = http
            .put(format!("{base}/v1/prompts/p0000/labels/production"))
            .bearer_auth(TOKEN)
            .header("If-Match", &current)
            .json(&serde_json::json!({"to": next, "reason": "bench"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        put_times.push(t.elapsed());
        seen.push(wait_for(&next, t).await);
        current = next;
    }
    report("label move over HTTP → client (100 moves)", &mut seen);
    report(
        "the PUT itself (answered after the move is on disk and announced)",
        &mut put_times,
    );
    // Moves written to the files by another writer (the CLI, a git pull): the server notices
    // them through file events.
    let mut seen = Vec::new();
    for _ in 0..20 {
        let next = next_of(&current);
        let t = Instant::now();
        repo.move_label(&mv("p0000", &next, Expect::Version(current.clone())))
            .unwrap();
        seen.push(wait_for(&next, t).await);
        current = next;
    }
    report(
        "label move on disk → client (20 moves, seen through file events)",
        &mut seen,
    );
}

fn report(what: &str, seen: &mut [Duration]) {
    seen.sort();
    println!(
        "propagation, {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(seen, 0.5).as_secs_f64() * 1e3,
        percentile(seen, 0.99).as_secs_f64() * 1e3,
        seen.last().unwrap().as_secs_f64() * 1e3
    );
}

/// OTLP ingest: spans per second and the server's memory as the spans add up.
fn ingest(total: u64) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as V};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    const BATCH: u64 = 512;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("promptgate.yaml"),
        "version: 1\nserve:\n  tokens:\n    - { name: collector, env: PG_BENCH_TOKEN, scope: ingest }\nrollout:\n  metrics:\n    - { metric: error_rate, tolerance: 0.01 }\n    - { metric: app.tool_call.ok, worse: lower, tolerance: 0.05 }\n",
    )
    .unwrap();
    let (mut server, base) = start_serve(dir.path(), &[]);
    let kv = |k: &str, v: V| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // One batch, encoded once: 512 spans over 20 versions of 4 prompts.
    let spans: Vec<Span> = (0..BATCH)
        .map(|i| Span {
            trace_id: u128::from(i + 1).to_be_bytes().to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: "chat gpt-4o-mini".into(),
            start_time_unix_nano: now - (50 + i % 400) * 1_000_000,
            end_time_unix_nano: now,
            attributes: vec![
                kv("prompt.name", V::StringValue(format!("p{}", i % 4))),
                kv(
                    "prompt.version_id",
                    V::StringValue(format!("v{}-abcdef0", i % 5 + 1)),
                ),
                kv("prompt.label", V::StringValue("production".into())),
                kv("gen_ai.system", V::StringValue("openai".into())),
                kv("gen_ai.usage.input_tokens", V::IntValue(812)),
                kv("gen_ai.usage.output_tokens", V::IntValue(95)),
                kv("app.tool_call.ok", V::BoolValue(i % 17 != 0)),
            ],
            status: Some(Status {
                code: if i % 50 == 0 { 2 } else { 1 },
                message: String::new(),
            }),
            ..Span::default()
        })
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
    let body = axum::body::Bytes::from(gz.finish().unwrap());
    println!(
        "OTLP ingest: batches of {BATCH} spans, {} KB gzipped protobuf ({} KB raw), 2 connections",
        body.len() / 1024,
        request.encoded_len() / 1024
    );
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    let pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let batches = total.div_ceil(BATCH);
    let tenth = (batches / 10).max(1);
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("{base}/v1/traces");
        let next = std::sync::Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let mut lap = (Instant::now(), 0u64);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (http, url, body, next) =
                    (http.clone(), url.clone(), body.clone(), next.clone());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < batches {
                        let r = http
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/x-protobuf")
                            .header("content-encoding", "gzip")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                        r.bytes().await.unwrap();
                    }
                })
            })
            .collect();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let done = next.load(Ordering::Relaxed).min(batches);
            if done / tenth > lap.1 / tenth || done >= batches {
                let dt = lap.0.elapsed().as_secs_f64();
                let rate = (done - lap.1) as f64 * BATCH as f64 / dt;
                println!(
                    "  {:>5.1} M spans: {:>7.0} spans/s since the last line, server RSS {:.1} MiB",
                    (done * BATCH) as f64 / 1e6,
                    rate,
                    rss(pid) as f64 / 1024.0
                );
                lap = (Instant::now(), done);
            }
            if done >= batches {
                break;
            }
        }
        for w in workers {
            w.await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} spans in {secs:.1} s = {:.0} spans/s; server RSS {:.1} MiB at the end",
            batches * BATCH,
            (batches * BATCH) as f64 / secs,
            rss(pid) as f64 / 1024.0
        );
        let signals: serde_json::Value = http
            .get(format!("{base}/v1/signals"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let calls: u64 = signals["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["calls"].as_u64().unwrap())
            .sum();
        assert_eq!(calls, batches * BATCH, "every span counted");
    });
    let _ = server.kill();
    let _ = server.wait();
}
