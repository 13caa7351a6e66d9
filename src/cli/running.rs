//! What every command that runs a model shares: the flags of a run (`RunArgs`) and of its
//! reports (`ReportArgs`), and the async runtime with Ctrl-C wired to an interrupt.

use super::printer::{Printer, note};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::engine::Interrupt;
use crate::engine::session::EvalRequest;
use crate::error::{Diagnostic, Error, ErrorKind, Result};

/// How to run a suite: shared by `eval`, `gate` and `promote`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The suite file.
    #[arg(long, value_name = "FILE")]
    pub suite: Option<PathBuf>,
    /// Evaluate on this dataset instead of the suite's (repeatable).
    #[arg(long = "dataset", value_name = "FILE")]
    pub datasets: Vec<PathBuf>,
    /// Use this provider from promptgate.yaml instead of the suite's or version's.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Use this model instead of the suite's or version's.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Calls in flight at once (default: the provider's `concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Samples per case (default: the suite's `repeats`).
    #[arg(long = "repeat", value_name = "K")]
    pub repeat: Option<u32>,
    /// Neither read nor write the response cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Make every call again and overwrite the cache.
    #[arg(long, conflicts_with = "no_cache")]
    pub refresh: bool,
    /// Serve answers recorded in a run (id or folder) or a cassette file; make no live calls.
    #[arg(long, value_name = "RUN|FILE")]
    pub replay: Option<String>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

impl RunArgs {
    pub fn request(&self, reference: &str, resume: Option<String>) -> EvalRequest {
        EvalRequest {
            reference: reference.to_string(),
            suite: self.suite.clone(),
            datasets: self.datasets.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            concurrency: self.concurrency,
            repeats: self.repeat,
            no_cache: self.no_cache,
            refresh: self.refresh,
            resume,
            replay: self.replay.clone(),
        }
    }
}

/// Where reports go: shared by `eval --compare-to`, `gate` and `promote`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Also write these reports: any of md, json, junit, html, terminal (comma-separated).
    #[arg(long, value_name = "FORMATS")]
    pub report: Option<String>,
    /// Folder for --report files (default: the candidate's run folder).
    #[arg(long, value_name = "DIR", requires = "report")]
    pub out: Option<PathBuf>,
}

impl ReportArgs {
    /// Validate `--report` before any call is made.
    pub fn formats(&self) -> Result<Vec<&'static dyn crate::report::Sink>> {
        match &self.report {
            Some(spec) => crate::report::parse_formats(spec),
            None => Ok(vec![]),
        }
    }

    /// Write the chosen formats and say where.
    pub fn write(
        &self,
        pr: Printer,
        formats: &[&'static dyn crate::report::Sink],
        report: &crate::report::Report,
        run_dir: &std::path::Path,
    ) -> Result<()> {
        if formats.is_empty() {
            return Ok(());
        }
        let dir = self.out.clone().unwrap_or_else(|| run_dir.to_path_buf());
        for path in crate::report::write(report, formats, &dir)? {
            note!(pr, "wrote {}", path.display());
        }
        Ok(())
    }
}

/// Build the runtime, run `work` with Ctrl-C wired to an [`Interrupt`] (first: drain, second:
/// abort), and shut the runtime down without waiting for the signal task.
pub fn run_interruptible<T>(work: impl AsyncFnOnce(Arc<Interrupt>) -> Result<T>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Infrastructure,
                Diagnostic::error(format!("cannot start the async runtime: {e}")),
            )
        })?;
    let interrupt = Arc::new(Interrupt::new());
    let out = runtime.block_on(async {
        let i = interrupt.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                i.escalate();
                if i.aborting() {
                    break;
                }
            }
        });
        work(interrupt.clone()).await
    });
    runtime.shutdown_background();
    out
}
