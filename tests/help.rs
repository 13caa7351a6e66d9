//! `--help` is read by people: snapshot it so wording changes are reviewed.

use crate::support::TestRepo;

fn help(args: &[&str]) -> String {
    let repo = TestRepo::new();
    let mut c = repo.command(args);
    c.env("COLUMNS", "100");
    let out = c.output().expect("run");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn label_set_help() {
    insta::assert_snapshot!(help(&["label", "set", "--help"]));
}

#[test]
fn render_help() {
    insta::assert_snapshot!(help(&["render", "--help"]));
}

#[test]
fn gate_help() {
    insta::assert_snapshot!(help(&["gate", "--help"]));
}

#[test]
fn promote_help() {
    insta::assert_snapshot!(help(&["promote", "--help"]));
}

#[test]
fn rollback_help() {
    insta::assert_snapshot!(help(&["rollback", "--help"]));
}

#[test]
fn serve_help() {
    insta::assert_snapshot!(help(&["serve", "--help"]));
}

#[test]
fn bundle_help() {
    insta::assert_snapshot!(help(&["bundle", "--help"]));
}

#[test]
fn rollout_start_help() {
    insta::assert_snapshot!(help(&["rollout", "start", "--help"]));
}
