//! Helpers: temporary repositories and running the real `promptgate` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_promptgate");

/// A temporary promptgate repository.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

/// The result of running the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Run {
        Run::from(o)
    }

    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub const CONFIG: &str =
    "version: 1\nproviders:\n  openai: { kind: openai, api_key_env: OPENAI_API_KEY }\n";

/// A version file with a given system prompt and temperature.
pub fn version_yaml(system: &str, temperature: f64) -> String {
    format!(
        "model: {{ provider: openai, name: gpt-4o-mini, temperature: {temperature} }}\n\
         variables:\n  question: {{ type: string }}\n\
         messages:\n  - role: system\n    content: \"{system}\"\n  - role: user\n    content: \"{{{{ question }}}}\"\n"
    )
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("promptgate.yaml"), CONFIG).expect("write config");
        TestRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.file(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).expect("read")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        command_in(self.path(), args)
    }

    pub fn pg(&self, args: &[&str]) -> Run {
        pg_in(self.path(), args)
    }

    /// `promptgate label set PROMPT LABEL TARGET --expect EXPECT -m WHY`, which must succeed.
    pub fn label_set(
        &self,
        prompt: &str,
        label: &str,
        target: &str,
        expect: &str,
        why: &str,
    ) -> Run {
        self.pg(&[
            "label", "set", prompt, label, target, "--expect", expect, "-m", why,
        ])
        .ok()
    }

    /// A repository with prompt `p` holding `n` registered versions (v1..vn).
    pub fn with_versions(n: usize) -> TestRepo {
        let repo = TestRepo::new();
        for i in 1..=n {
            repo.write(
                &format!("prompts/p/v{i}.yaml"),
                &version_yaml(&format!("You are assistant number {i}."), 0.1),
            );
        }
        repo.pg(&["add", "p"]).ok();
        repo
    }

    /// Replace the temporary path in text, for snapshots.
    pub fn redact(&self, text: &str) -> String {
        let p = self.path().display().to_string();
        let canon = self
            .path()
            .canonicalize()
            .map(|c| c.display().to_string())
            .unwrap_or_else(|_| p.clone());
        text.replace(&canon, "[REPO]").replace(&p, "[REPO]")
    }
}

/// Every file below `dir`.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)
        } else {
            out.push(p)
        }
    }
}

/// The binary, run in `dir` as the tester.
pub fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .args(args)
        .env("PROMPTGATE_ACTOR", "tester")
        .env_remove("PROMPTGATE_REPO")
        .env_remove("GITHUB_ACTOR");
    c
}

/// Run the binary in `dir`.
pub fn pg_in(dir: &Path, args: &[&str]) -> Run {
    Run::from(command_in(dir, args).output().expect("run promptgate"))
}

/// Serve an axum router on 127.0.0.1 (an ephemeral port) from its own thread, for fakes of
/// services promptgate talks to (an OTLP collector, the GitHub API).
pub fn serve_router(app: axum::Router) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(l, app).await;
        });
    });
    addr
}
