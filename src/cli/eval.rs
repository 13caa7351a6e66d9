//! `promptgate eval`: run a version over its suite and print a summary.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{Outcome, open_repo, progress::Bar};
use crate::checks::Check;
use crate::checks::score::{self, Cases, FailingCheck, MetricSummary, Scorable};
use crate::engine::session::{self, EvalRequest};
use crate::engine::{Interrupt, Summary, over_error_budget};
use crate::error::{Diagnostic, Error, ErrorKind, Result};
use crate::gate::Policy;

#[derive(Debug, Args)]
#[command(
    after_help = "The suite is prompts/<name>/suite.yaml unless --suite names another. Answers are cached\nunder .promptgate/cache/: running an unchanged version again makes no calls.\n\nExamples:\n  promptgate eval support_agent@v3\n  promptgate eval support_agent@production --provider openai --concurrency 32\n  promptgate eval support_agent@v3 --resume 20261125T101500Z-support_agent-v3-1a2b\n\nExit codes: 0 done, 2 bad input, 4 more errored calls than the error budget
(`gate.error_budget` in the suite, default 5 %), 130 interrupted."
)]
pub struct EvalArgs {
    /// The version, e.g. `support_agent@v3`.
    pub reference: String,
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
    /// Finish an interrupted run: make only the calls it is missing.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Serve answers recorded in a run (id or folder) or a cassette file; make no live calls.
    #[arg(long, value_name = "RUN|FILE")]
    pub replay: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn eval(start: &std::path::Path, from_cwd: bool, args: EvalArgs) -> Result<Outcome> {
    let repo = open_repo(start, from_cwd)?;
    let req = EvalRequest {
        reference: args.reference.clone(),
        suite: args.suite.clone(),
        datasets: args.datasets.clone(),
        provider: args.provider.clone(),
        model: args.model.clone(),
        concurrency: args.concurrency,
        repeats: args.repeat,
        no_cache: args.no_cache,
        refresh: args.refresh,
        resume: args.resume.clone(),
        replay: args.replay.clone(),
    };
    let prepared = session::prepare(&repo, &req)?;
    // Everything the stages after the run need is validated before the first call.
    let suite_file = prepared
        .suite
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "suite".into());
    let checks = crate::checks::parse_checks(&prepared.suite.suite.checks, &suite_file)?;
    let policy = Policy::from_value(prepared.suite.suite.gate.as_ref(), &suite_file)?;
    let cases = Cases::from_plan(&prepared.plan.case_data, !checks.is_empty())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Infrastructure,
                Diagnostic::error(format!("cannot start the async runtime: {e}")),
            )
        })?;
    let bar = Arc::new(Bar::new(args.quiet || args.json));
    let interrupt = Arc::new(Interrupt::new());
    let evaluation = runtime.block_on(async {
        let i = interrupt.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                i.escalate();
                if i.aborting() {
                    break;
                }
            }
        });
        session::run(&repo, prepared, bar.clone(), interrupt.clone()).await
    })?;
    bar.finish();
    for w in &evaluation.warnings {
        eprintln!("warning: {w}");
    }
    let s = &evaluation.summary;
    let (metrics, failing) = score_checks(&evaluation, &checks, &cases)?;
    if args.json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "metrics".into(),
                serde_json::to_value(&metrics).unwrap_or_default(),
            );
            o.insert(
                "failing_checks".into(),
                serde_json::to_value(&failing).unwrap_or_default(),
            );
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render_summary(s, &evaluation.manifest, &repo.root));
        print!("{}", render_checks(&metrics, &failing));
    }
    // Drop the runtime without waiting for the signal task.
    runtime.shutdown_background();
    if s.missing > 0 {
        eprintln!(
            "interrupted: {} of {} calls not made; finish with `promptgate eval {} --resume {}`",
            s.missing, s.calls, args.reference, s.run_id
        );
        return Ok(Outcome::Interrupted);
    }
    if over_error_budget(s, policy.error_budget()) {
        eprintln!(
            "error: {} of {} calls errored, over the {:.0} % budget: this run does not count",
            s.errors,
            s.calls,
            policy.error_budget() * 100.0
        );
        return Ok(Outcome::Infrastructure);
    }
    Ok(Outcome::Success)
}

/// Score the run's outputs with the suite's and the cases' checks and write `checks.jsonl`
/// beside the results.
fn score_checks(
    ev: &crate::engine::session::Evaluation,
    checks: &[Check],
    cases: &Cases,
) -> Result<(Vec<MetricSummary>, Vec<FailingCheck>)> {
    if checks.is_empty() && cases.own.is_empty() {
        return Ok((vec![], vec![]));
    }
    let outputs: Vec<Scorable<'_>> = ev
        .records
        .iter()
        .map(|r| Scorable {
            case_id: &r.case_id,
            sample: r.sample,
            output: r.output.as_ref(),
            latency_ms: r.latency_ms,
            cost_usd: r.cost_usd,
        })
        .collect();
    let scored =
        score::score_with_case_checks(checks, &cases.own, &ev.artifact, &cases.contexts, &outputs);
    let mut text = String::new();
    for s in &scored {
        text.push_str(&serde_json::to_string(s).unwrap_or_default());
        text.push('\n');
    }
    crate::fsutil::write_atomic(&ev.run.path.join("checks.jsonl"), text.as_bytes())?;
    Ok(score::summarize(&scored))
}

/// Per-metric pass rates and the checks that fail most, one example each.
pub fn render_checks(metrics: &[MetricSummary], failing: &[FailingCheck]) -> String {
    let mut out = String::new();
    if metrics.is_empty() {
        return out;
    }
    out.push_str("  metrics\n");
    for m in metrics {
        out.push_str(&format!(
            "    {:<12} {:>5.1} % pass ({}/{}), mean score {:.2}\n",
            m.metric,
            m.pass_rate * 100.0,
            m.passed,
            m.scored,
            m.mean_score
        ));
    }
    if !failing.is_empty() {
        out.push_str("  failing checks\n");
        for f in failing.iter().take(5) {
            out.push_str(&format!(
                "    {:<24} {:>4} x  e.g. case `{}`: {}\n",
                f.check, f.failures, f.example_case, f.example_reason
            ));
        }
    }
    out
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1} ms"))
        .unwrap_or_else(|| "-".into())
}

/// The summary people read after `eval`.
pub fn render_summary(
    s: &Summary,
    m: &crate::engine::store::Manifest,
    root: &std::path::Path,
) -> String {
    let mut out = String::new();
    let errors = if s.errors_by_class.is_empty() {
        "0 errors".to_string()
    } else {
        let kinds: Vec<String> = s
            .errors_by_class
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!("{} errors ({})", s.errors, kinds.join(", "))
    };
    out.push_str(&format!("run {}\n", s.run_id));
    out.push_str(&format!(
        "  version    {}@{}  ({} cases x {} sample(s), provider {}, model {})\n",
        m.prompt, m.version_id, s.cases, m.repeats, m.provider.name, m.provider.model
    ));
    out.push_str(&format!(
        "  calls      {} ok, {errors}, {} retries, {} from cache{}\n",
        s.ok,
        s.retries,
        s.cached,
        if s.missing > 0 {
            format!(", {} not made", s.missing)
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "  latency    p50 {}  p95 {}  p99 {}\n",
        ms(s.latency_ms_p50),
        ms(s.latency_ms_p95),
        ms(s.latency_ms_p99)
    ));
    out.push_str(&format!(
        "  tokens     {} in, {} out   cost ${:.4}\n",
        s.input_tokens, s.output_tokens, s.cost_usd
    ));
    out.push_str(&format!("  wall time  {:.2} s\n", s.wall_ms / 1000.0));
    let dir = root
        .join(crate::config::defaults::STATE_DIR)
        .join("runs")
        .join(&s.run_id);
    out.push_str(&format!("  results    {}\n", dir.display()));
    out
}
