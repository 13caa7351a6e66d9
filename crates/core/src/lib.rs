//! promptgate-core: the pure stages of the pipeline (DESIGN.md §3) — what a prompt version is
//! and how it is hashed, validated and diffed ([`artifact`]), rendered into a request
//! ([`render`]), what datasets and suites hold ([`dataset`], [`suite`]), the deterministic
//! checks ([`checks`]), the statistics ([`stats`]), the gate's policy and decision ([`gate`])
//! and the report with its sinks ([`report`]) — with the errors they share ([`error`]).
//!
//! No async runtime, HTTP or database lives here: a service that only renders prompts, or a
//! tool that only decides a gate, depends on this crate alone.

pub mod artifact;
pub mod call;
pub mod checks;
pub mod clock;
pub mod config;
pub mod dataset;
pub mod error;
pub mod exit_codes;
pub mod fsutil;
pub mod gate;
pub mod names;
pub mod redact;
pub mod render;
pub mod report;
pub mod rollout;
pub mod safe;
pub mod signals;
pub mod stats;
pub mod suite;
pub mod yaml;

pub use error::{Diagnostic, Error, ErrorKind, Result};
