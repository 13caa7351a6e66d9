//! The one place the binary writes to the terminal: results on stdout (text or JSON),
//! warnings, notes and errors on stderr — every line through the redactor, every write error
//! (a closed pipe, a full disk) ignored rather than panicking.

use std::fmt;
use std::io::Write;

/// Where a command's output goes. `Copy`: every handler and the progress bar hold one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer;

impl Printer {
    pub fn new() -> Printer {
        Printer
    }

    /// A line of a command's result on stdout.
    pub fn out(&self, line: fmt::Arguments<'_>) {
        let _ = writeln!(std::io::stdout().lock(), "{}", redacted(line));
    }

    /// Text already laid out (a table, a report) on stdout, as it is.
    pub fn text(&self, text: fmt::Arguments<'_>) {
        let _ = write!(std::io::stdout().lock(), "{}", redacted(text));
    }

    /// A value as pretty JSON on stdout, on a line of its own.
    pub fn json(&self, value: &serde_json::Value) {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        crate::redact::string(&mut text);
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// Output too large to hold as one string (a report over 100,000 cases), written piece by
    /// piece to stdout through a buffer. What it writes was redacted where it entered.
    pub fn stream(
        &self,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        write(&mut out)?;
        out.flush()
    }

    /// `warning: …` on stderr.
    pub fn warn(&self, message: fmt::Arguments<'_>) {
        let _ = writeln!(std::io::stderr().lock(), "warning: {}", redacted(message));
    }

    /// A line for the person at the terminal on stderr (what happened, what to do next).
    pub fn note(&self, line: fmt::Arguments<'_>) {
        let _ = writeln!(std::io::stderr().lock(), "{}", redacted(line));
    }

    /// Diagnostics (warnings from a check, an error's) on stderr.
    pub fn diagnostics(&self, ds: &[crate::error::Diagnostic]) {
        let mut err = std::io::stderr().lock();
        for d in ds {
            let _ = write!(err, "{}", crate::redact::text(&d.to_string()));
        }
    }

    /// The error a command failed with, on stderr.
    pub fn error(&self, e: &crate::error::Error) {
        let _ = write!(
            std::io::stderr().lock(),
            "{}",
            crate::redact::text(&e.to_string())
        );
    }
}

fn redacted(args: fmt::Arguments<'_>) -> String {
    crate::redact::text(&args.to_string()).into_owned()
}

/// `out!(p, "…", args)`: a line on stdout (`out!(p)`: an empty one).
macro_rules! out {
    ($p:expr) => { $p.out(format_args!("")) };
    ($p:expr, $($arg:tt)*) => { $p.out(format_args!($($arg)*)) };
}

/// `text!(p, "…", args)`: laid-out text on stdout, no newline added.
macro_rules! text {
    ($p:expr, $($arg:tt)*) => { $p.text(format_args!($($arg)*)) };
}

/// `warning!(p, "…", args)`: `warning: …` on stderr.
macro_rules! warning {
    ($p:expr, $($arg:tt)*) => { $p.warn(format_args!($($arg)*)) };
}

/// `note!(p, "…", args)`: a line on stderr.
macro_rules! note {
    ($p:expr, $($arg:tt)*) => { $p.note(format_args!($($arg)*)) };
}

pub(crate) use {note, out, text, warning};
