//! Benchmark: the statistics of the gate (`cargo bench --bench stats`).
//!
//! 1. The full comparison of 1,000,000 paired cases on 3 metrics (no bootstrap).
//! 2. A BCa bootstrap with B = 10,000 on 10,000 paired cases.

use std::time::Instant;

use promptgate::gate::{self, Input, MetricData, Policy};
use promptgate::stats::bootstrap;
use serde_json::json;

fn main() {
    let mut rng = fastrand::Rng::with_seed(1);
    let n = 1_000_000;
    let mut metrics = Vec::new();
    for (name, binary) in [("pass", true), ("format", true), ("quality", false)] {
        let mut c = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        for _ in 0..n {
            if binary {
                let p = if rng.f64() < 0.8 { 0.95 } else { 0.5 };
                b.push(f64::from(rng.f64() < p));
                c.push(f64::from(rng.f64() < p));
            } else {
                let x = rng.f64();
                b.push(x);
                c.push((x + 0.05 * (rng.f64() - 0.5)).clamp(0.0, 1.0));
            }
        }
        metrics.push(MetricData {
            name: name.into(),
            candidate: c,
            baseline: b,
            groups: vec![],
        });
    }
    let policy = Policy::from_value(
        Some(&json!({"metrics": {"pass": {}, "format": {}, "quality": {"margin": 0.02}}})),
        "bench",
    )
    .unwrap();
    let input = Input {
        metrics,
        calls: 2 * n,
        ..Input::default()
    };
    let runs = 5;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let d = gate::decide(&policy, &input);
        times.push(t.elapsed());
        assert_eq!(d.metrics.len(), 3);
    }
    times.sort();
    println!(
        "decide: 1,000,000 paired cases x 3 metrics: median {:?} (min {:?}, {runs} runs)",
        times[runs / 2],
        times[0]
    );

    let d: Vec<f64> = (0..10_000).map(|_| rng.f64() - 0.45).collect();
    let mut times = Vec::new();
    for seed in 0..runs as u64 {
        let t = Instant::now();
        let b = bootstrap::paired_bootstrap(&d, None, 10_000, 0.90, seed);
        times.push(t.elapsed());
        assert!(b.bca.lower < b.bca.upper);
    }
    times.sort();
    println!(
        "BCa bootstrap, B = 10,000 on 10,000 paired cases: median {:?} (min {:?}, {runs} runs)",
        times[runs / 2],
        times[0]
    );
}
