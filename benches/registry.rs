//! Benchmark: resolving `name@label` and rendering it touches only that prompt's files, so
//! `promptgate render` on a 1,000-prompt × 20-version repository takes as long as on a
//! 1-prompt one; and a label move costs the same signed (Ed25519) as unsigned. Run with
//! `cargo bench --bench registry`.

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
    std::fs::write(
        root.join("promptgate.yaml"),
        "version: 1\nproviders:\n  openai: { kind: openai }\n",
    )
    .unwrap();
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

/// Median and p95 of `moves` label moves (in process: the compare-and-swap, the fsynced
/// writes, the audit entry), back and forth between two versions.
fn time_moves(root: &Path, moves: usize) -> (Duration, Duration) {
    let repo = Repo::open(root).unwrap();
    let p = repo.prompt("p0000").unwrap();
    let ids: Vec<String> = p.versions.iter().map(|v| v.id.clone()).collect();
    let mut current = p.labels["production"].to_string();
    let mut times = Vec::with_capacity(moves);
    for i in 0..moves {
        let to = ids[i % 2].clone();
        let to = if to == current {
            ids[(i + 1) % 2].clone()
        } else {
            to
        };
        let t = Instant::now();
        repo.move_label(&LabelMove::set(
            "p0000".to_string(),
            "production",
            to.clone(),
            Expect::Version(current.clone()),
            "bench",
            "bench",
        ))
        .unwrap();
        times.push(t.elapsed());
        current = to;
    }
    times.sort();
    (times[moves / 2], times[moves * 95 / 100])
}

fn main() {
    // Label moves, unsigned and signed, interleaved in blocks so load drift hits both.
    let unsigned = tempfile::tempdir().unwrap();
    let signed = tempfile::tempdir().unwrap();
    build(unsigned.path(), 1, 2);
    let key = promptgate::registry::signing::Signer::generate("bench").unwrap();
    std::fs::write(
        signed.path().join("promptgate.yaml"),
        format!(
            "version: 1\nproviders:\n  openai: {{ kind: openai }}\naudit:\n  require_signatures: true\n  keys:\n    - {{ id: bench, public_key: {} }}\n",
            key.public_key()
        ),
    )
    .unwrap();
    // SAFETY: nothing else runs yet; the variable is read by this process's writers.
    unsafe { std::env::set_var(promptgate::registry::signing::KEY_ENV, key.secret_line()) };
    let repo = Repo::open(signed.path()).unwrap();
    let dir = repo.prompt_dir("p0000");
    std::fs::create_dir_all(&dir).unwrap();
    for j in 1..=2 {
        std::fs::write(dir.join(format!("v{j}.yaml")), version(0, j)).unwrap();
    }
    let reg = repo.add("p0000", &[], "bench").unwrap();
    repo.move_label(&LabelMove::set(
        "p0000".to_string(),
        "production",
        reg[0].id.clone(),
        Expect::Absent,
        "bench",
        "bench",
    ))
    .unwrap();
    let (mut u, mut s) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        u.push(time_moves(unsigned.path(), 100));
        s.push(time_moves(signed.path(), 100));
    }
    let median = |v: &mut Vec<(Duration, Duration)>| {
        v.sort();
        v[v.len() / 2]
    };
    let (u50, u95) = median(&mut u);
    let (s50, s95) = median(&mut s);
    println!("label move, unsigned: median {u50:>9.2?}  p95 {u95:>9.2?}  (5 x 100 moves)");
    println!("label move, signed:   median {s50:>9.2?}  p95 {s95:>9.2?}  (5 x 100 moves)");
    assert!(
        promptgate::registry::audit::parse(
            &repo.prompt_dir("p0000").join("audit.jsonl"),
            &std::fs::read_to_string(repo.prompt_dir("p0000").join("audit.jsonl")).unwrap()
        )
        .entries
        .iter()
        .all(|e| e.sig.is_some())
    );
    // SAFETY: as above.
    unsafe { std::env::remove_var(promptgate::registry::signing::KEY_ENV) };

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
