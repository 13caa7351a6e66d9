//! Safety under concurrency and crashes: compare-and-swap label moves from 16 processes at
//! once, and SIGKILL at random instants during label moves.

use std::process::Stdio;
use std::time::Duration;

use promptgate::registry::{Repo, check};

use crate::support::TestRepo;

fn assert_repo_valid(repo: &TestRepo, context: &str) {
    let r = Repo::open(repo.path()).expect("open repo");
    let report = check::check(&r);
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == promptgate::error::Severity::Error)
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{context}: repository does not verify:\n{}",
        errors.join("\n")
    );
}

#[test]
fn sixteen_concurrent_label_moves_one_wins() {
    let repo = TestRepo::with_versions(17);
    repo.label_set("p", "production", "v1", "none", "start");
    let children: Vec<_> = (2..=17)
        .map(|i| {
            repo.command(&[
                "label",
                "set",
                "p",
                "production",
                &format!("v{i}"),
                "--expect",
                "v1",
                "-m",
                &format!("race {i}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| {
            c.wait_with_output()
                .expect("wait")
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(
        codes.iter().filter(|&&c| c == 0).count(),
        1,
        "exactly one winner: {codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|&&c| c == 5).count(),
        15,
        "fifteen conflicts: {codes:?}"
    );
    assert_repo_valid(&repo, "after the race");
    // One label move beyond the first, and the label points at the winner.
    let audit = repo.read("prompts/p/audit.jsonl");
    let moves: Vec<&str> = audit.lines().filter(|l| l.contains("\"race ")).collect();
    assert_eq!(moves.len(), 1, "{audit}");
    let r = Repo::open(repo.path()).unwrap();
    let p = r.prompt("p").unwrap();
    assert!(moves[0].contains(&p.registry.labels["production"].to_string()));
}

/// A tiny deterministic generator (xorshift) so the test needs no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(unix)]
#[test]
fn sigkill_during_label_moves_never_corrupts() {
    let repo = TestRepo::with_versions(3);
    repo.label_set("p", "production", "v1", "none", "start");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let r = Repo::open(repo.path()).unwrap();
    let mut killed_mid_run = 0;
    for i in 0..200 {
        let current =
            r.prompt("p").expect("registry readable").registry.labels["production"].to_string();
        let number: u32 = current[1..current.find('-').unwrap()].parse().unwrap();
        let target = number % 3 + 1;
        let mut child = repo
            .command(&[
                "label",
                "set",
                "p",
                "production",
                &format!("v{target}"),
                "--expect",
                &current,
                "-m",
                &format!("move {i}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill somewhere between start-up and completion (a run takes a few milliseconds).
        std::thread::sleep(Duration::from_micros(rng.next() % 12_000));
        if child.try_wait().expect("try_wait").is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_repo_valid(&repo, &format!("iteration {i}"));
    }
    // The kills must really have landed during runs, or this test proves nothing.
    assert!(
        killed_mid_run > 20,
        "only {killed_mid_run} of 200 kills landed mid-run"
    );
    // And the repository is still writable.
    let current = r.prompt("p").unwrap().registry.labels["production"].clone();
    repo.label_set("p", "canary", "v1", "none", "after");
    assert_eq!(
        r.prompt("p").unwrap().registry.labels["production"],
        current
    );
    assert_repo_valid(&repo, "at the end");
}
