//! promptgate: prompt management as infrastructure. Immutable, content-addressed prompt
//! versions kept in Git; labels that point at versions and move only through audited,
//! compare-and-swap writes; and (as the pipeline grows) an evaluation gate that decides
//! statistically whether a label may move.
//!
//! Data flows one way (DESIGN.md §3): [`artifact`] → [`render`] → provider → checks → stats →
//! gate → report, with [`registry`] holding versions, labels and the audit log. The library
//! never prints; [`cli`] owns the terminal.

pub mod artifact;
pub mod bundle;
pub mod checks;
pub mod cli;
pub mod client;
pub mod config;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod exit_codes;
pub mod fsutil;
pub mod gate;
pub mod pipeline;
pub mod provider;
pub mod redact;
pub mod registry;
pub mod render;
pub mod report;
pub mod safe;
pub mod serve;
pub mod stats;
pub mod stub;
pub mod suite;
pub mod yaml;

pub use error::{Diagnostic, Error, ErrorKind, Result};
