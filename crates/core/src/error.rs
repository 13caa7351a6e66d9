//! Errors a person can act on: a kind that decides the exit code, and diagnostics that name
//! the file, line, key or variable and suggest the fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, at the level that decides the exit code (see [`crate::exit_codes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad flags, a malformed file, an invalid reference, a failed `check`.
    Usage,
    /// What was asked for does not exist: a prompt, a label, a version, a run.
    NotFound,
    /// A compare-and-swap lost: the label moved under you.
    Conflict,
    /// I/O, network or provider failure.
    Infrastructure,
}

impl ErrorKind {
    /// The exit code of a command that fails with this kind of error (the one mapping; the
    /// HTTP status is `promptgate-server`'s `ApiError`).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage | ErrorKind::NotFound => crate::exit_codes::USAGE,
            ErrorKind::Conflict => crate::exit_codes::CONFLICT,
            ErrorKind::Infrastructure => crate::exit_codes::INFRASTRUCTURE,
        }
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The text of that line, for the caret display.
    pub source_line: Option<String>,
}

impl Location {
    /// A location in `text` (the content of `file`) at 1-based `line`/`column`.
    pub fn in_text(file: &Path, text: &str, line: usize, column: usize) -> Location {
        let source_line = text
            .lines()
            .nth(line.saturating_sub(1))
            .map(|l| l.to_string());
        Location {
            file: file.to_path_buf(),
            line,
            column: column.max(1),
            source_line,
        }
    }
}

/// One problem, rendered like a compiler message:
///
/// ```text
/// error: unknown key `temprature` in `model`
///   --> prompts/support_agent/v2.yaml:3:5
///    |
///  3 |   temprature: 0.3
///    |   ^
///    = expected one of `provider`, `name`, `temperature`
/// hint: did you mean `temperature`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Option<Box<Location>>,
    /// Where the problem is when there is no line to point at (a file, a key path).
    pub context: Option<String>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            context: None,
            notes: Vec::new(),
            hint: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Diagnostic {
        self.location = location.map(Box::new);
        self
    }

    pub fn in_context(mut self, context: impl Into<String>) -> Diagnostic {
        self.context = Some(context.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        if let Some(loc) = &self.location {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(
                f,
                "{pad}--> {}:{}:{}",
                loc.file.display(),
                loc.line,
                loc.column
            )?;
            if let Some(src) = &loc.source_line {
                let src = src.trim_end();
                writeln!(f, "{pad} |")?;
                writeln!(f, "{num} | {src}")?;
                // Columns count characters; tabs keep their width by being copied.
                let lead: String = src
                    .chars()
                    .take(loc.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, "{pad} | {lead}^")?;
            }
        } else if let Some(ctx) = &self.context {
            writeln!(f, "  --> {ctx}")?;
        }
        if self.location.is_some()
            && let Some(ctx) = &self.context
        {
            writeln!(f, "   = in {ctx}")?;
        }
        for note in &self.notes {
            writeln!(f, "   = {note}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

/// The library's error: what went wrong — the variant decides the exit code
/// ([`Error::kind`]) and, in `promptgate-server`'s `ApiError`, the HTTP status — and one or more
/// diagnostics a person can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad input: flags, a malformed file, an invalid reference, a failed `check`.
    #[error("{}", Shown(.diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
    /// What was asked for does not exist: a prompt, a label, a version, a run.
    #[error("{}", Shown(.diagnostics))]
    NotFound { diagnostics: Vec<Diagnostic> },
    /// A compare-and-swap lost: the label moved under you. `current` is what it points at now
    /// (`None`: it does not exist), so that a caller — `serve`'s 412, a retry — need not read
    /// it again.
    #[error("{}", Shown(.diagnostics))]
    Conflict {
        diagnostics: Vec<Diagnostic>,
        current: Option<String>,
    },
    /// A model provider failed or refused, beyond what retries fix.
    #[error("{}", Shown(.diagnostics))]
    Provider { diagnostics: Vec<Diagnostic> },
    /// A file or folder could not be read or written.
    #[error("{}", Shown(.diagnostics))]
    Io {
        path: PathBuf,
        source: std::sync::Arc<std::io::Error>,
        diagnostics: Vec<Diagnostic>,
    },
    /// Anything else the machine failed at: a runtime that would not start, a thread that
    /// panicked, a server that would not bind.
    #[error("{}", Shown(.diagnostics))]
    Internal { diagnostics: Vec<Diagnostic> },
}

/// Diagnostics shown one after another.
struct Shown<'a>(&'a [Diagnostic]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, diagnostic: Diagnostic) -> Error {
        Error::many(kind, vec![diagnostic])
    }

    /// An error of `kind` (a conflict without a known current target; an infrastructure
    /// failure that is neither a provider's nor a file's).
    pub fn many(kind: ErrorKind, diagnostics: Vec<Diagnostic>) -> Error {
        match kind {
            ErrorKind::Usage => Error::Invalid { diagnostics },
            ErrorKind::NotFound => Error::NotFound { diagnostics },
            ErrorKind::Conflict => Error::Conflict {
                diagnostics,
                current: None,
            },
            ErrorKind::Infrastructure => Error::Internal { diagnostics },
        }
    }

    /// A usage or configuration error with a plain message.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, Diagnostic::error(message))
    }

    /// Something asked for that does not exist, with a plain message.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, Diagnostic::error(message))
    }

    /// A lost compare-and-swap; `current` is what the label points at now (`None`: nothing).
    pub fn conflict(diagnostic: Diagnostic, current: Option<String>) -> Error {
        Error::Conflict {
            diagnostics: vec![diagnostic],
            current,
        }
    }

    /// A provider that failed or refused.
    pub fn provider(diagnostic: Diagnostic) -> Error {
        Error::Provider {
            diagnostics: vec![diagnostic],
        }
    }

    /// An I/O error that names its path.
    pub fn io(path: &Path, action: &str, err: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            diagnostics: vec![Diagnostic::error(format!(
                "cannot {action} `{}`: {err}",
                path.display()
            ))],
            source: std::sync::Arc::new(err),
        }
    }

    /// The level that decides the exit code. A missing or unreadable file is the user's to
    /// fix (usage); any other I/O failure is infrastructure.
    pub fn kind(&self) -> ErrorKind {
        use std::io::ErrorKind as K;
        match self {
            Error::Invalid { .. } => ErrorKind::Usage,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Io { source, .. } => match source.kind() {
                K::NotFound | K::PermissionDenied | K::AlreadyExists | K::IsADirectory => {
                    ErrorKind::Usage
                }
                _ => ErrorKind::Infrastructure,
            },
            Error::Provider { .. } | Error::Internal { .. } => ErrorKind::Infrastructure,
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid { diagnostics }
            | Error::NotFound { diagnostics }
            | Error::Conflict { diagnostics, .. }
            | Error::Provider { diagnostics }
            | Error::Io { diagnostics, .. }
            | Error::Internal { diagnostics } => diagnostics,
        }
    }

    pub fn diagnostics_mut(&mut self) -> &mut Vec<Diagnostic> {
        match self {
            Error::Invalid { diagnostics }
            | Error::NotFound { diagnostics }
            | Error::Conflict { diagnostics, .. }
            | Error::Provider { diagnostics }
            | Error::Io { diagnostics, .. }
            | Error::Internal { diagnostics } => diagnostics,
        }
    }

    pub fn into_diagnostics(mut self) -> Vec<Diagnostic> {
        std::mem::take(self.diagnostics_mut())
    }

    /// For a conflict: what the label points at now (`None`: nothing). `None` for any other
    /// error.
    pub fn current(&self) -> Option<Option<&str>> {
        match self {
            Error::Conflict { current, .. } => Some(current.as_deref()),
            _ => None,
        }
    }

    /// Add a hint to the first diagnostic.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        if let Some(d) = self.diagnostics_mut().first_mut() {
            d.hint = Some(hint.into());
        }
        self
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Error {
        Error::new(ErrorKind::Usage, d)
    }
}

/// "did you mean `x`?" — the closest candidate within a small edit distance.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Render a list of names as "`a`, `b` and `c`".
pub fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.len() {
        0 => "(none)".to_string(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_kind_diagnostics_and_conflict_target() {
        let io = |k| Error::io(Path::new("p/x.yaml"), "read", std::io::Error::from(k));
        let cases = [
            (Error::usage("bad flag"), ErrorKind::Usage),
            (Error::not_found("no prompt `p`"), ErrorKind::NotFound),
            (
                Error::conflict(Diagnostic::error("moved"), Some("v2".into())),
                ErrorKind::Conflict,
            ),
            (
                Error::provider(Diagnostic::error("401")),
                ErrorKind::Infrastructure,
            ),
            (io(std::io::ErrorKind::NotFound), ErrorKind::Usage),
            (io(std::io::ErrorKind::PermissionDenied), ErrorKind::Usage),
            (
                io(std::io::ErrorKind::StorageFull),
                ErrorKind::Infrastructure,
            ),
            (
                Error::new(ErrorKind::Infrastructure, Diagnostic::error("panicked")),
                ErrorKind::Infrastructure,
            ),
        ];
        for (e, kind) in &cases {
            assert_eq!(e.kind(), *kind, "{e:?}");
            assert_eq!(e.diagnostics().len(), 1);
            assert_eq!(e.to_string(), e.diagnostics()[0].to_string());
        }
        assert_eq!(cases[2].0.current(), Some(Some("v2")));
        assert_eq!(
            Error::conflict(Diagnostic::error("x"), None).current(),
            Some(None)
        );
        assert_eq!(cases[0].0.current(), None);
        // An I/O error names its path and keeps its cause.
        let e = io(std::io::ErrorKind::NotFound);
        assert!(e.to_string().contains("`p/x.yaml`"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        let Error::Io { path, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(path, Path::new("p/x.yaml"));
        // Several diagnostics are shown one per line; a hint goes to the first.
        let many = Error::many(
            ErrorKind::Usage,
            vec![Diagnostic::error("a"), Diagnostic::error("b")],
        )
        .with_hint("fix a");
        assert_eq!(many.diagnostics()[0].hint.as_deref(), Some("fix a"));
        assert_eq!(
            many.to_string()
                .lines()
                .filter(|l| l.starts_with("error"))
                .count(),
            2
        );
    }
}
