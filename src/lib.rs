//! promptgate: prompt management as infrastructure. Immutable, content-addressed prompt
//! versions kept in Git; labels that point at versions and move only through audited,
//! compare-and-swap writes; and (as the pipeline grows) an evaluation gate that decides
//! statistically whether a label may move.
//!
//! Data flows one way (DESIGN.md §3): [`artifact`] → [`render`] → provider → checks → stats →
//! gate → report, with [`registry`] holding versions, labels and the audit log. The library
//! never prints; [`cli`] owns the terminal.

pub mod cli;

// The pure stages live in promptgate-core; they are re-exported so that `promptgate::artifact`
// and `crate::artifact` name the same module everywhere.
pub use promptgate_client as client;
pub use promptgate_core::{
    Diagnostic, Error, ErrorKind, Result, artifact, call, checks, clock, config, dataset, error,
    exit_codes, fsutil, gate, redact, render, report, safe, stats, suite, yaml,
};
pub use promptgate_engine::{self as engine, pipeline, provider};
pub use promptgate_registry::{self as registry, bundle};
pub use promptgate_server as serve;
