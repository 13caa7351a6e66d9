//! Fuzzing every parser of user, file or network input: inputs grown by mutation from a
//! checked-in corpus (`tests/fuzz/corpus/<target>/`), each fed to the parser, which must return
//! — an answer or an error — without panicking and within a second. A failing input is written
//! to `target/fuzz-failures/` to become a regression test in the corpus.
//!
//! The test suite runs 1,000 inputs per target. The documented run (README, "Fuzzing") is
//! `PROMPTGATE_FUZZ_INPUTS=100000 cargo nextest run --release -E 'test(/^fuzz::/)'`;
//! `PROMPTGATE_FUZZ_SEED` picks another sequence of inputs.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus");

/// Pieces of YAML, JSON, CSV and Jinja syntax, and values that have broken parsers before.
const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    ",",
    "- ",
    "? ",
    "&a ",
    "*a",
    "&b [*a, *a, *a]",
    "!!str ",
    "!!int ",
    "!custom ",
    "\"",
    "'",
    "\n",
    "\r\n",
    "  ",
    "\t",
    "#",
    "---\n",
    "...\n",
    "|\n",
    ">-\n",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "\\u0000",
    "\u{0}",
    "é",
    "€",
    "\u{202e}",
    "\u{1b}[2J",
    "999999999999999999999999",
    "-1",
    "1e999",
    "-0",
    ".inf",
    ".nan",
    "null",
    "~",
    "true",
    "yes",
    "0x",
    "0o9",
    "\"\\",
    "\\",
    "<<: *a",
    "=",
    "\"\"\"",
    ",,,",
    "\u{feff}",
];

/// Seeded, so that a failure can be run again (`PROMPTGATE_FUZZ_SEED`).
type Rng = fastrand::Rng;

/// A number below `n` (0 for an empty range).
fn below(rng: &mut Rng, n: usize) -> usize {
    if n == 0 { 0 } else { rng.usize(..n) }
}

/// One mutation of `input`, with `others` (the corpus) to splice from.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let at = below(rng, input.len() + 1);
    match below(rng, 8) {
        0 if !input.is_empty() => {
            let i = below(rng, input.len());
            input[i] ^= 1 << below(rng, 8);
        }
        1 => input.insert(at, rng.u8(..)),
        2 => {
            let token = DICTIONARY[below(rng, DICTIONARY.len())].as_bytes();
            input.splice(at..at, token.iter().copied());
        }
        3 if !input.is_empty() => {
            let end = (at + 1 + below(rng, 64)).min(input.len());
            let start = at.min(end);
            input.drain(start..end);
        }
        4 if !input.is_empty() => {
            let start = below(rng, input.len());
            let end = (start + 1 + below(rng, 256)).min(input.len());
            let chunk: Vec<u8> = input[start..end].to_vec();
            let times = 1 + below(rng, 4);
            for _ in 0..times {
                input.splice(at..at, chunk.iter().copied());
            }
        }
        5 => {
            let other = &others[below(rng, others.len())];
            if !other.is_empty() {
                let start = below(rng, other.len());
                let end = (start + 1 + below(rng, 512)).min(other.len());
                input.splice(at..at, other[start..end].iter().copied());
            }
        }
        6 => input.truncate(at),
        _ => {
            // Deepen: wrap a stretch in brackets or indent it.
            let open = ["[", "{a: ", "- ", "  "][below(rng, 4)];
            input.splice(at..at, open.repeat(1 + below(rng, 40)).into_bytes());
        }
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(CORPUS).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let out: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!out.is_empty(), "no corpus for {target}");
    out
}

fn inputs() -> usize {
    std::env::var("PROMPTGATE_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

/// Feed `target`'s parser inputs mutated from its corpus: no panic, none slower than 1 s.
fn fuzz(target: &str, parse: impl Fn(&[u8])) {
    let corpus = corpus(target);
    let seed: u64 = std::env::var("PROMPTGATE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_201);
    let mut rng = Rng::with_seed(
        seed ^ target
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
    );
    let n = inputs();
    let (mut slowest, mut slowest_len) = (Duration::ZERO, 0);
    // The corpus itself first, then mutants of it.
    for i in 0..n + corpus.len() {
        let input = if i < corpus.len() {
            corpus[i].clone()
        } else {
            let mut input = corpus[below(&mut rng, corpus.len())].clone();
            for _ in 0..1 + below(&mut rng, 8) {
                mutate(&mut rng, &mut input, &corpus);
            }
            input
        };
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| parse(&input)));
        let took = t.elapsed();
        if took > slowest {
            (slowest, slowest_len) = (took, input.len());
        }
        let failure = match outcome {
            Err(_) => Some("panicked"),
            Ok(()) if took > Duration::from_secs(1) => Some("took more than 1 s"),
            Ok(()) => None,
        };
        if let Some(what) = failure {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{target}-{i}"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "{target}: input {i} {what} ({took:?}); saved to {}",
                file.display()
            );
        }
    }
    eprintln!(
        "fuzz {target}: {} inputs, 0 failures, slowest {slowest:?} ({slowest_len} bytes)",
        n + corpus.len()
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_files() {
    fuzz("version", |b| {
        let _ = promptgate::artifact::load(Path::new("v1.yaml"), &text(b));
    });
}

#[test]
fn suites() {
    fuzz("suite", |b| {
        if let Ok(s) = promptgate::suite::parse(Path::new("suite.yaml"), &text(b)) {
            // A suite that parses is one whose gate can decide on data.
            let _ = s.gate.gated();
        }
    });
}

#[test]
fn configurations() {
    fuzz("config", |b| {
        if let Ok(c) = promptgate::config::Config::parse(Path::new("promptgate.yaml"), &text(b)) {
            let _ = promptgate::registry::signing::Trust::from_config(c.audit.as_ref());
        }
    });
}

#[test]
fn registries() {
    fuzz("registry", |b| {
        let _ = promptgate::registry::parse_registry(Path::new("registry.yaml"), &text(b));
    });
}

#[test]
fn audit_logs() {
    fuzz("audit", |b| {
        let log = promptgate::registry::audit::parse(Path::new("audit.jsonl"), &text(b));
        let _ = promptgate::registry::replay("p", &log.entries[..log.valid]);
    });
}

#[test]
fn jsonl_datasets() {
    fuzz("jsonl", |b| {
        let _ = promptgate::dataset::parse_bytes(Path::new("d.jsonl"), b, "group");
    });
}

#[test]
fn csv_datasets() {
    fuzz("csv", |b| {
        let _ = promptgate::dataset::parse_bytes(Path::new("d.csv"), b, "group");
    });
}

#[test]
fn cassettes() {
    fuzz("cassette", |b| {
        let _ = promptgate::provider::replay::Replay::parse("r", Path::new("c.jsonl"), &text(b));
    });
}

#[test]
fn openai_responses() {
    fuzz("openai", |b| {
        let _ = promptgate::provider::openai::decode(b);
        let _ = promptgate::provider::openai::decode_embedding(b);
    });
}

#[test]
fn anthropic_responses() {
    fuzz("anthropic", |b| {
        let _ = promptgate::provider::anthropic::decode(b);
    });
}

#[test]
fn label_move_bodies() {
    fuzz("move_body", |b| {
        if let Ok(m) = promptgate::serve::parse_move_body(b) {
            let _ = promptgate::registry::Target::parse(&m.to);
        }
    });
}
