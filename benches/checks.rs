//! Benchmark: 1,000,000 outputs × 5 deterministic checks (contains, regex, json_valid,
//! json_schema, edit_similarity), scored in parallel in chunks of 10,000 outputs so memory stays
//! flat (`cargo bench --bench checks`).

use std::path::Path;
use std::time::Instant;

use promptgate::artifact;
use promptgate::checks::{self, score};
use promptgate::provider::Completion;
use serde_json::json;

const VERSION: &str = r#"
model: { provider: openai, name: m }
variables: { question: {} }
messages: [ { role: user, content: "{{ question }}" } ]
output_schema:
  type: object
  properties: { answer: { type: string }, escalate: { type: boolean } }
  required: [answer, escalate]
"#;

fn peak_rss_mib() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

fn main() {
    let artifact = artifact::load(Path::new("v.yaml"), VERSION)
        .unwrap()
        .artifact;
    let specs = [
        json!({"contains": "refund"}),
        json!({"regex": "\"escalate\":\\s*(true|false)"}),
        json!({"json_valid": true}),
        json!({"json_schema": "output"}),
        json!({"edit_similarity": "Your refund for order 1234 is on its way.", "threshold": 0.7}),
    ];
    let checks: Vec<checks::Check> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| checks::parse_check(s, i, "bench").unwrap())
        .collect();
    let total = 1_000_000usize;
    let chunk = 10_000usize;
    let contexts = score::Contexts::default();
    let completions: Vec<Completion> = (0..chunk)
        .map(|i| Completion {
            content: format!(
                r#"{{"answer": "Your refund for order {} is on its way.", "escalate": {}}}"#,
                1000 + i,
                i % 7 == 0
            ),
            ..Completion::default()
        })
        .collect();
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let mut passed = 0usize;
    let mut done = 0usize;
    while done < total {
        let outputs: Vec<score::Scorable<'_>> = completions
            .iter()
            .map(|c| score::Scorable {
                case_id: "c",
                sample: 0,
                output: Some(c),
                latency_ms: 0.0,
                cost_usd: 0.0,
            })
            .collect();
        let scored = score::score_all(&checks, &artifact, &contexts, &outputs);
        passed += scored
            .iter()
            .flat_map(|s| &s.results)
            .filter(|r| r.pass)
            .count();
        done += chunk;
    }
    let secs = t.elapsed().as_secs_f64();
    let n_checks = total * checks.len();
    println!(
        "{total} outputs x {} checks = {n_checks} checks in {secs:.2} s: {:.0} checks/s ({passed} passed); peak RSS {:.0} MiB (before scoring {:.0} MiB)",
        checks.len(),
        n_checks as f64 / secs,
        peak_rss_mib(),
        rss_before
    );
}
