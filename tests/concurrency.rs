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
    assert!(moves[0].contains(&p.labels["production"].to_string()));
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
        let current = r.prompt("p").expect("registry readable").labels["production"].to_string();
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
    let current = r.prompt("p").unwrap().labels["production"].clone();
    repo.label_set("p", "canary", "v1", "none", "after");
    assert_eq!(r.prompt("p").unwrap().labels["production"], current);
    assert_repo_valid(&repo, "at the end");
}

/// Files in the prompt's folder that are neither registered nor the registry's own.
fn orphans(repo: &TestRepo) -> Vec<String> {
    let r = Repo::open(repo.path()).unwrap();
    let registered: Vec<String> = r
        .prompt("p")
        .map(|p| p.versions.iter().map(|v| v.file.clone()).collect())
        .unwrap_or_default();
    std::fs::read_dir(repo.file("prompts/p"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !["registry.yaml", "audit.jsonl"].contains(&f.as_str()))
        .filter(|f| !registered.contains(f))
        .collect()
}

/// A kill during `add p FILE` (FILE outside the tree) once left a `vN.yaml` that made the
/// retry fail ("that file already exists"), and temporary files from killed writes stayed
/// forever.
#[cfg(unix)]
#[test]
fn sigkill_during_add_of_an_outside_file_leaves_nothing_a_retry_cannot_finish() {
    let repo = TestRepo::with_versions(1);
    let outside = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut killed_mid_run = 0;
    for i in 0..200 {
        let file = outside.path().join(format!("draft-{i}.yaml"));
        std::fs::write(
            &file,
            crate::support::version_yaml(&format!("Draft number {i}."), 0.2),
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let mut child = repo
            .command(&["add", "p", f])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.next() % 8_000));
        if child.try_wait().expect("try_wait").is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_repo_valid(&repo, &format!("iteration {i}"));
        // Registered, or the retry registers it.
        let listed = repo.pg(&["list", "p", "--json"]).ok().stdout;
        let versions = serde_json::from_str::<serde_json::Value>(&listed).unwrap()["versions"]
            .as_array()
            .unwrap()
            .len();
        if versions < i + 2 {
            let retry = repo.pg(&["add", "p", f]);
            assert_eq!(
                retry.code, 0,
                "iteration {i}: the retry fails: {}",
                retry.stderr
            );
        }
        let orphans = orphans(&repo);
        let stray: Vec<&String> = orphans
            .iter()
            .filter(|f| !f.starts_with(".promptgate-tmp-"))
            .collect();
        assert!(stray.is_empty(), "iteration {i}: orphans {stray:?}");
    }
    assert!(
        killed_mid_run > 20,
        "only {killed_mid_run} of 200 kills landed mid-run"
    );
    // The next write under the lock removes what killed writes left; `check` is clean.
    repo.label_set("p", "production", "v1", "none", "after");
    assert!(orphans(&repo).is_empty(), "{:?}", orphans(&repo));
    let out = repo.pg(&["check"]).ok();
    assert!(!out.stderr.contains("temporary file"), "{}", out.stderr);
}

/// Every write once created its files 0600 under umask 022, so a `serve` or CI job running as
/// another user lost read access; `init` even re-moded an existing `.gitignore`.
#[cfg(unix)]
#[test]
fn written_files_take_the_umask_and_replaced_ones_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let repo = TestRepo::new();
    let pg = |args: &[&str]| {
        let mut c = repo.command(args);
        // SAFETY: umask is async-signal-safe and only changes the child's own mask.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        crate::support::Run::from_output(c.output().unwrap())
    };
    let mode = |rel: &str| {
        std::fs::metadata(repo.file(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    repo.write(
        "prompts/p/v1.yaml",
        &crate::support::version_yaml("Hi.", 0.1),
    );
    pg(&["add", "p"]).ok();
    assert_eq!(mode("prompts/p/registry.yaml"), 0o644);
    assert_eq!(mode("prompts/p/audit.jsonl"), 0o644);
    // A replaced file keeps the mode it had.
    std::fs::set_permissions(
        repo.file("prompts/p/registry.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    pg(&[
        "label",
        "set",
        "p",
        "production",
        "v1",
        "--expect",
        "none",
        "-m",
        "m",
    ])
    .ok();
    assert_eq!(mode("prompts/p/registry.yaml"), 0o640);
    assert_eq!(mode("prompts/p/audit.jsonl"), 0o644);
    // `init` into a folder with a .gitignore of its own keeps that file's mode.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("r");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(".gitignore"), "node_modules/\n").unwrap();
    std::fs::set_permissions(
        target.join(".gitignore"),
        std::fs::Permissions::from_mode(0o664),
    )
    .unwrap();
    pg(&["init", target.to_str().unwrap()]).ok();
    let m = std::fs::metadata(target.join(".gitignore"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(m, 0o664);
    let m = std::fs::metadata(target.join("promptgate.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(m, 0o644);
}
