//! Benchmark: the engine against its own local stub server (`cargo bench --bench engine`).
//!
//! 1. 10,000 cases, stub latency 50 ms, concurrency 64: throughput as a share of the limit
//!    64 / 0.05 s = 1,280 requests/s, and of what `wrk` gets from the same stub over 64
//!    connections in the same run.
//! 2. 10,000 cases, zero-latency stub: wall time and peak RSS of the `promptgate` process.
//! 3. The same run again with a warm cache: wall time as a share of the cold one.
//!
//! The stub runs in this process, `promptgate eval` in a child, on the same 2 cores. Times
//! vary from run to run on a shared machine, so 2 and 3 are measured several times: three
//! cold runs, each in a fresh repository, and five warm runs after each; the share is the
//! median warm time over the median cold time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use promptgate::stats::quantile_type7;
use promptgate_stub::{self as stub, Server};

const BIN: &str = env!("CARGO_BIN_EXE_promptgate");
const CASES: usize = 10_000;

fn repo(dir: &Path, server: &Server, concurrency: usize) {
    repo_with(dir, server, concurrency, CASES, "datasets: [data.jsonl]\n")
}

fn repo_with(dir: &Path, server: &Server, concurrency: usize, cases: usize, suite: &str) {
    std::fs::write(
        dir.join("promptgate.yaml"),
        format!("version: 1\nproviders:\n  stub: {{ kind: openai, base_url: {}, concurrency: {concurrency}, max_retries: 0 }}\n", server.base_url()),
    )
    .unwrap();
    let p = dir.join("prompts/p");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("v1.yaml"),
        "model: { provider: stub, name: stub-model, temperature: 0 }\nvariables: { question: {} }\nmessages:\n  - { role: system, content: Answer in one sentence. }\n  - { role: user, content: \"{{ question }}\" }\n",
    )
    .unwrap();
    std::fs::write(p.join("suite.yaml"), suite).unwrap();
    let rows: String = (0..cases)
        .map(|i| format!("{{\"id\":\"c{i}\",\"question\":\"What is the status of order {i}?\"}}\n"))
        .collect();
    std::fs::write(dir.join("data.jsonl"), rows).unwrap();
    let ok = Command::new(BIN)
        .arg("-C")
        .arg(dir)
        .args(["add", "p"])
        .output()
        .unwrap();
    assert!(ok.status.success());
}

/// Run `promptgate eval` and return (wall time, peak RSS in MiB, summary).
fn eval(dir: &Path, extra: &[&str]) -> (Duration, f64, serde_json::Value) {
    let (wall, rss, summary) = measure(
        dir,
        &[&["eval", "p@v1", "--json", "--quiet"], extra].concat(),
    );
    assert_eq!(summary["ok"], CASES as u64, "{summary}");
    (wall, rss, summary)
}

/// Run `promptgate <args>` and return (wall time, peak RSS in MiB, its JSON on stdout).
// The child is reaped with `wait4` (for its peak RSS), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measure(dir: &Path, args: &[&str]) -> (Duration, f64, serde_json::Value) {
    let t = Instant::now();
    let child = Command::new(BIN)
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
    // wait4 gives the child's peak resident set size.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let wall = t.elapsed();
    let rss_mib = usage.ru_maxrss as f64 / 1024.0; // Linux reports KiB
    let summary: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("no summary: {text}"));
    (wall, rss_mib, summary)
}

fn main() {
    // `cargo bench --bench engine -- --fast-only` skips the 50 ms throughput run.
    let fast_only = std::env::args().any(|a| a == "--fast-only");
    // `cargo bench --bench engine -- --memory` measures peak memory at 100k and 1M cases.
    if std::env::args().any(|a| a == "--memory") {
        return memory();
    }
    // `cargo bench --bench engine -- --stub` only runs the zero-latency stub and prints its
    // address, to profile a run by hand (`heaptrack promptgate -C DIR eval …`).
    if std::env::args().any(|a| a == "--stub") {
        let stub = Server::start(stub::Config {
            record: false,
            ..stub::Config::default()
        })
        .unwrap();
        println!("{}", stub.base_url());
        loop {
            std::thread::park();
        }
    }
    if !fast_only {
        throughput();
    }
    zero_latency();
}

fn throughput() {
    // 1. Throughput against a 50 ms stub at concurrency 64.
    let slow = Server::start(stub::Config {
        latency: Duration::from_millis(50),
        record: false,
        ..stub::Config::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path(), &slow, 64);
    let (wall, _, s) = eval(dir.path(), &["--no-cache"]);
    let engine_wall = s["wall_ms"].as_f64().unwrap() / 1000.0;
    let limit = 64.0 / 0.05;
    let rate = CASES as f64 / engine_wall;
    println!(
        "50 ms stub, concurrency 64: {CASES} calls in {engine_wall:.2} s of run time ({:.2} s process) = {rate:.0} req/s, {:.1} % of the {limit:.0} req/s limit",
        wall.as_secs_f64(),
        100.0 * rate / limit
    );
    // What the same stub gives a load generator with as many connections, in the same run.
    match wrk_rate(&slow, 64) {
        Some(w) => println!(
            "wrk against the same stub, 64 connections: {w:.0} req/s; the engine reaches {:.1} % of it (bound: >= 97 %)",
            100.0 * rate / w
        ),
        None => println!(
            "wrk: not installed (apt-get install wrk); the share of its rate is not measured"
        ),
    }
}

/// Requests per second `wrk` gets from the stub's chat endpoint over `connections`
/// connections for 10 s (one thread: on 2 cores a second one takes the server's CPU).
fn wrk_rate(server: &Server, connections: usize) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{\"model\":\"stub-model\",\"temperature\":0,\"messages\":[{\"role\":\"system\",\"content\":\"Answer in one sentence.\"},{\"role\":\"user\",\"content\":\"What is the status of order 1?\"}]}'\n",
    )
    .ok()?;
    let out = Command::new("wrk")
        .args(["-t", "1", "-c", &connections.to_string(), "-d", "10s", "-s"])
        .arg(&script)
        .arg(format!("{}/chat/completions", server.base_url()))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "the stub refused wrk's requests: {text}"
    );
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn zero_latency() {
    // 2 and 3. Zero latency: cold, then warm cache, several times over.
    const COLD: usize = 3;
    const WARM: usize = 5;
    let fast = Server::start(stub::Config {
        record: false,
        ..stub::Config::default()
    })
    .unwrap();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let (mut cold_rss, mut warm_rss) = (0f64, 0f64);
    let mut kept = None;
    for _ in 0..COLD {
        let dir = tempfile::tempdir().unwrap();
        repo(dir.path(), &fast, 64);
        let (t, rss, _) = eval(dir.path(), &[]);
        cold.push(t.as_secs_f64());
        cold_rss = cold_rss.max(rss);
        for _ in 0..WARM {
            let (t, rss, s) = eval(dir.path(), &[]);
            assert_eq!(s["cached"], CASES as u64);
            warm.push(t.as_secs_f64());
            warm_rss = warm_rss.max(rss);
        }
        kept = Some(dir);
    }
    cold.sort_by(f64::total_cmp);
    warm.sort_by(f64::total_cmp);
    let (c, w) = (quantile_type7(&cold, 0.5), quantile_type7(&warm, 0.5));
    let range = |v: &[f64]| format!("{:.3}–{:.3} s", v[0], v[v.len() - 1]);
    println!(
        "zero-latency stub, cold cache ({COLD} runs): median wall {c:.3} s ({}), peak RSS {cold_rss:.1} MiB",
        range(&cold)
    );
    println!(
        "zero-latency stub, warm cache ({} runs): median wall {w:.4} s ({}) = {:.1} % of cold, peak RSS {warm_rss:.1} MiB",
        warm.len(),
        range(&warm),
        100.0 * w / c
    );
    // `PROMPTGATE_BENCH_KEEP=1` keeps the last warm repository, to profile a warm run by hand:
    // `perf record -g promptgate -C DIR eval p@v1 --quiet`.
    if let (Some(dir), Some(_)) = (kept, std::env::var_os("PROMPTGATE_BENCH_KEEP")) {
        println!("kept the repository: {}", dir.keep().display());
    }
}

/// Peak RSS of an eval over 100,000 and 1,000,000 cases and of a gate over 2 × 100,000, against
/// the zero-latency stub. The bounds (issue 16): 150 MB, 300 MB and 300 MB.
fn memory() {
    const SUITE: &str = "datasets: [data.jsonl]\nchecks:\n  - max_words: 60\n";
    let fast = Server::start(stub::Config {
        record: false,
        ..stub::Config::default()
    })
    .unwrap();
    let mb = |mib: f64| mib * 1.048_576;
    for cases in [100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        repo_with(dir.path(), &fast, 64, cases, SUITE);
        let (t, rss, s) = measure(dir.path(), &["eval", "p@v1", "--json", "--quiet"]);
        assert_eq!(s["ok"], cases as u64, "{s}");
        println!(
            "eval over {cases} cases: {:.1} s, peak RSS {:.0} MB",
            t.as_secs_f64(),
            mb(rss)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    repo_with(dir.path(), &fast, 64, 100_000, SUITE);
    let p = dir.path().join("prompts/p");
    std::fs::write(
        p.join("v2.yaml"),
        "model: { provider: stub, name: stub-model, temperature: 0 }\nvariables: { question: {} }\nmessages:\n  - { role: system, content: Answer in one short sentence. }\n  - { role: user, content: \"{{ question }}\" }\n",
    )
    .unwrap();
    for args in [
        &["add", "p"][..],
        &[
            "label",
            "set",
            "p",
            "production",
            "v1",
            "--expect",
            "none",
            "-m",
            "bench",
        ],
    ] {
        let ok = Command::new(BIN)
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{args:?}: {ok:?}");
    }
    let (t, rss, s) = measure(
        dir.path(),
        &["gate", "p", "--candidate", "v2", "--json", "--quiet"],
    );
    println!(
        "gate over 2 × 100000 cases: {:.1} s, peak RSS {:.0} MB, verdict {}",
        t.as_secs_f64(),
        mb(rss),
        s["decision"]["verdict"]
    );
}
