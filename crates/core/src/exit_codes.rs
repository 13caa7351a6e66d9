//! The process exit codes of `promptgate`, in one documented table (DESIGN.md §4).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success, or the gate decided PASS |
//! | 1 | the gate decided FAIL |
//! | 2 | usage or configuration error: bad flags, a malformed file, a failed `check` |
//! | 3 | the gate decided INCONCLUSIVE (policy decides whether that blocks) |
//! | 4 | provider or infrastructure failure: I/O, network, too many errored cases |
//! | 5 | conflict: a label moved under you (compare-and-swap failed) |
//! | 130 | interrupted (Ctrl-C) before the run finished; `--resume` completes it |
//!
//! Unknown failures are never 0: a panic maps to 101 (Rust's default), and every
//! error the library returns carries one of the kinds below.

/// Success, or a gate PASS.
pub const SUCCESS: i32 = 0;
/// The gate decided FAIL.
pub const GATE_FAIL: i32 = 1;
/// Usage or configuration error (including a `check` that found problems).
pub const USAGE: i32 = 2;
/// The gate decided INCONCLUSIVE.
pub const INCONCLUSIVE: i32 = 3;
/// Provider or infrastructure failure.
pub const INFRASTRUCTURE: i32 = 4;
/// A compare-and-swap label move lost: the label no longer points where you expected.
pub const CONFLICT: i32 = 5;
/// Interrupted by Ctrl-C before a run finished (the shell convention, 128 + SIGINT).
pub const INTERRUPTED: i32 = 130;
