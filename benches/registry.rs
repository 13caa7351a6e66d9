//! Benchmark: resolving `name@label` and rendering it touches only that prompt's files, so
//! `promptgate render` on a 1,000-prompt × 20-version repository takes as long as on a
//! 1-prompt one. Run with `cargo bench --bench registry`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use promptgate::registry::{Expect, LabelMove, Repo};

const BIN: &str = env!("CARGO_BIN_EXE_promptgate");

fn version(i: usize, j: usize) -> String {
    format!(
        "model: {{ provider: openai, name: gpt-4o-mini, temperature: 0.{j} }}\n\
         variables:\n  question: {{ type: string }}\n  product: {{ type: string, default: Acme }}\n\
         messages:\n  - role: system\n    content: |\n      You are support agent {i} for {{{{ product }}}}, revision {j}.\n      Answer briefly.\n  - role: user\n    content: \"{{{{ question }}}}\"\n"
    )
}

fn build(root: &Path, prompts: usize, versions: usize) {
    std::fs::write(root.join("promptgate.yaml"), "version: 1\n").unwrap();
    let repo = Repo::open(root).unwrap();
    for i in 0..prompts {
        let name = format!("p{i:04}");
        let dir = repo.prompt_dir(&name);
        std::fs::create_dir_all(&dir).unwrap();
        for j in 1..=versions {
            std::fs::write(dir.join(format!("v{j}.yaml")), version(i, j)).unwrap();
        }
        let reg = repo.add(&name, &[], "bench").unwrap();
        repo.move_label(&LabelMove::set(
            name,
            "production",
            reg[versions / 2].id.clone(),
            Expect::Absent,
            "bench",
            "bench",
        ))
        .unwrap();
    }
}

/// Time `promptgate render` on each (root, prompt), interleaving the runs so drift in machine
/// load affects every case alike. Returns (median, p95) per case.
fn time_render(cases: &[(&Path, &str)], runs: usize) -> Vec<(Duration, Duration)> {
    let mut times = vec![Vec::with_capacity(runs); cases.len()];
    for _ in 0..runs {
        for (k, (root, prompt)) in cases.iter().enumerate() {
            let t = Instant::now();
            let out = Command::new(BIN)
                .arg("-C")
                .arg(root)
                .args([
                    "render",
                    &format!("{prompt}@production"),
                    "--var",
                    "question=Where is my order?",
                ])
                .output()
                .unwrap();
            times[k].push(t.elapsed());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            (t[runs / 2], t[runs * 95 / 100])
        })
        .collect()
}

fn main() {
    // `cargo bench` passes flags such as `--bench`; this harness takes none.
    let runs = 300;
    let one = tempfile::tempdir().unwrap();
    let one20 = tempfile::tempdir().unwrap();
    let large = tempfile::tempdir().unwrap();
    let t = Instant::now();
    build(one.path(), 1, 1);
    build(one20.path(), 1, 20);
    build(large.path(), 1000, 20);
    eprintln!("built repositories in {:.1?}", t.elapsed());
    let cases = [
        (one.path(), "p0000"),
        (one20.path(), "p0000"),
        (large.path(), "p0500"),
    ];
    time_render(&cases, 5); // warm the page cache and the binary
    let r = time_render(&cases, runs);
    let names = [
        "1 prompt x 1 version",
        "1 prompt x 20 versions",
        "1,000 prompts x 20 versions",
    ];
    for (name, (p50, p95)) in names.iter().zip(&r) {
        println!("render, {name:<28} median {p50:>9.2?}  p95 {p95:>9.2?}  ({runs} runs)");
    }
    let ratio = r[2].0.as_secs_f64() / r[1].0.as_secs_f64();
    println!("ratio of medians, 1,000 prompts / 1 prompt (20 versions each): {ratio:.3}");
}
