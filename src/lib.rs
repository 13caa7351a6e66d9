//! promptgate: prompt management as infrastructure. Immutable, content-addressed prompt
//! versions kept in Git; labels that point at versions and move only through audited,
//! compare-and-swap writes; and an evaluation gate that decides statistically whether a label
//! may move.
//!
//! This crate is the `promptgate` binary's command line ([`cli`]) and a facade over the
//! workspace, whose crate graph is the pipeline (DESIGN.md §3, ARCHITECTURE.md):
//! promptgate-core ([`artifact`] → [`render`] → [`checks`] → [`stats`] → [`gate`] →
//! [`report`]), promptgate-registry ([`registry`]), promptgate-engine ([`engine`],
//! [`provider`], [`pipeline`]), promptgate-server ([`serve`]) and promptgate-client
//! ([`client`]). The libraries never print; [`cli`] owns the terminal.

pub mod cli;

// The workspace's crates under the names the pipeline gives them, for the command line and
// the integration tests.
pub use promptgate_client as client;
pub use promptgate_core::{
    Diagnostic, Error, ErrorKind, Result, artifact, call, checks, clock, config, dataset, error,
    exit_codes, fsutil, gate, redact, render, report, rollout, safe, signals, stats, suite, yaml,
};
pub use promptgate_engine::{self as engine, pipeline, provider};
pub use promptgate_registry::{self as registry, bundle};
pub use promptgate_server as serve;
