//! `promptgate eval`: run a version over its suite and print a summary.

use super::printer::{Printer, note, out, text, warning};
use std::sync::Arc;

use clap::Args;

use super::running::{ReportArgs, RunArgs, run_interruptible};
use super::{Outcome, open_repo, progress::Bar};
use crate::checks::score::{self, FailingCheck, MetricSummary};
use crate::engine::session;
use crate::engine::store::{RunDir, list_runs};
use crate::engine::{Summary, over_error_budget};
use crate::error::{Error, Result};
use crate::pipeline::{RunSide, Scoring, Streamed};

#[derive(Debug, Args)]
#[command(
    after_help = "The suite is prompts/<name>/suite.yaml unless --suite names another. Answers are cached\nunder .promptgate/cache/: running an unchanged version again makes no calls (nightly\ndrift checks pass --refresh).\n\nExamples:\n  promptgate eval support_agent@v3\n  promptgate eval support_agent@production --provider openai --concurrency 32\n  promptgate eval support_agent@production --refresh --compare-to last --report md,junit\n  promptgate eval support_agent@v3 --resume 20261125T101500Z-support_agent-v3-1a2b\n\nExit codes: 0 done (or no significant drop), 1 a significant drop against --compare-to,\n2 bad input, 3 --compare-to cannot tell, 4 an errored call (or, when the suite sets\n`gate.error_budget`, more errored calls than that share), 130 interrupted."
)]
pub struct EvalArgs {
    /// The version, e.g. `support_agent@v3`.
    pub reference: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// Finish an interrupted run: make only the calls it is missing.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Compare with a stored run (id, folder, or `last`: the latest complete run of this
    /// version) using the gate's statistics: model or provider drift.
    #[arg(long, value_name = "RUN|last")]
    pub compare_to: Option<String>,
    #[command(flatten)]
    pub reports: ReportArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(
    pr: Printer,
    start: &std::path::Path,
    from_cwd: bool,
    args: EvalArgs,
) -> Result<Outcome> {
    let repo = open_repo(start, from_cwd)?;
    let formats = args.reports.formats()?;
    if args.compare_to.is_none() && !formats.is_empty() {
        return Err(
            Error::usage("`--report` needs `--compare-to`: a report compares two runs")
                .with_hint("add `--compare-to last` to compare with this version's previous run"),
        );
    }
    let req = args.run.request(&args.reference, args.resume.clone());
    let planned = session::plan_eval(&repo, &req)?;
    // Everything the stages after the run need is validated before the first call, and before
    // the run folder exists.
    let scoring = Scoring::new(&planned, &[], &repo)?;
    for w in &scoring.warnings {
        warning!(pr, "{w}");
    }
    let prepared_budget_explicit = planned.suite.suite.explicit_error_budget;
    let prepared = planned.start(&repo)?;
    let stored = match &args.compare_to {
        Some(which) => Some(stored_run(&repo, which, &prepared.manifest)?),
        None => None,
    };
    let bar = Arc::new(Bar::new(pr, args.run.quiet || args.json));
    let scoring = Arc::new(scoring);
    // Nothing after the run reads its records (no judge, no comparison): they are scored as
    // they are written and dropped, so memory does not grow with the dataset.
    let streams = scoring.streams() && stored.is_none();
    let (evaluation, scored, (metrics, failing)) = run_interruptible(async |interrupt| {
        if streams {
            let keep = prepared.takes_snapshot();
            let sink = Streamed::new(
                scoring.clone(),
                prepared.artifact.clone(),
                &prepared.run,
                keep,
            )?;
            let (ev, sink) = session::run_folded(
                &repo,
                prepared,
                sink,
                Streamed::take_kept,
                bar.clone(),
                interrupt,
            )
            .await?;
            let summary = sink.finish(&ev.run)?.finish();
            return Ok((ev, Vec::new(), summary));
        }
        let ev = session::run(&repo, prepared, bar.clone(), interrupt.clone()).await?;
        let scored = if ev.summary.missing > 0 {
            crate::pipeline::score_records(&ev.records, &ev.artifact, &scoring)
        } else {
            crate::pipeline::score_run(
                &scoring,
                &ev.run,
                &ev.records,
                &ev.artifact,
                bar.clone(),
                interrupt,
            )
            .await?
        };
        if !scoring.is_empty() {
            crate::pipeline::write_scored(&ev.run, &scored)?;
        }
        let summary = score::summarize(&scored, |id| scoring.metrics_of(id));
        Ok((ev, scored, summary))
    })?;
    bar.finish();
    for w in &evaluation.warnings {
        warning!(pr, "{w}");
    }
    let s = &evaluation.summary;
    let unjudged: Vec<&score::Scored> = scored
        .iter()
        .filter(|x| !x.judge_errors.is_empty())
        .collect();
    if args.json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("judge_errors".into(), unjudged.len().into());
            o.insert(
                "metrics".into(),
                serde_json::to_value(&metrics).unwrap_or_default(),
            );
            o.insert(
                "failing_checks".into(),
                serde_json::to_value(&failing).unwrap_or_default(),
            );
        }
        pr.json(&v);
    } else {
        text!(
            pr,
            "{}",
            render_summary(s, &evaluation.manifest, &repo.root)
        );
        text!(pr, "{}", render_checks(&metrics, &failing));
        if let Some(first) = unjudged.first() {
            out!(
                pr,
                "  judge errors  {} output(s) could not be judged (errored, not failed), e.g. case `{}`: {}",
                unjudged.len(),
                first.case_id,
                first.judge_errors[0]
            );
        }
    }
    if s.missing > 0 {
        note!(
            pr,
            "interrupted: {} of {} calls not made; finish with `promptgate eval {} --resume {}`",
            s.missing,
            s.calls,
            args.reference,
            s.run_id
        );
        return Ok(Outcome::Interrupted);
    }
    let with_judges = crate::engine::Summary {
        errors: s.errors + unjudged.len(),
        ..s.clone()
    };
    // An eval tolerates no errored call unless the suite sets a budget itself: a nightly run
    // that lost calls must not look clean.
    let budget = if prepared_budget_explicit {
        scoring.policy.error_budget()
    } else {
        0.0
    };
    if over_error_budget(&with_judges, budget) {
        note!(
            pr,
            "error: {} of {} calls errored or could not be judged, over the {:.0} % error budget: this run does not count",
            with_judges.errors,
            s.calls,
            budget * 100.0
        );
        if !prepared_budget_explicit {
            note!(
                pr,
                "hint: an eval allows no errored call unless the suite sets `gate.error_budget` (e.g. 0.05)"
            );
        }
        return Ok(Outcome::Infrastructure);
    }
    let Some((run, manifest)) = stored else {
        return Ok(Outcome::Success);
    };
    // Nightly drift: the stored run is the baseline, this one the candidate.
    let prompt = repo.prompt(&manifest.prompt)?;
    let version = prompt
        .version(&manifest.version_id)
        .cloned()
        .ok_or_else(|| {
            Error::usage(format!(
                "run `{}` evaluated `{}@{}`, which is not registered any more",
                run.id, manifest.prompt, manifest.version_id
            ))
        })?;
    let stored_artifact = repo.load_version(&prompt, &version)?.artifact;
    let stored_records = run.records()?;
    let (stored_scored, scored, pairwise) = run_interruptible(async |interrupt| {
        crate::pipeline::score_pair(
            &scoring,
            crate::pipeline::ToScore {
                run: &run,
                records: &stored_records,
                artifact: &stored_artifact,
                scored: None,
            },
            crate::pipeline::ToScore {
                run: &evaluation.run,
                records: &evaluation.records,
                artifact: &evaluation.artifact,
                // Scored above, judges and all: not scored again.
                scored: Some(scored),
            },
            Arc::new(crate::engine::Silent),
            interrupt,
        )
        .await
    })?;
    let mut report = crate::pipeline::compare(
        "compare",
        &scoring,
        &scoring.policy,
        &RunSide {
            reference: run.id.clone(),
            run: &run,
            manifest: &manifest,
            labels: vec![],
            records: &stored_records,
            artifact: &stored_artifact,
        },
        &RunSide {
            reference: args.reference.clone(),
            run: &evaluation.run,
            manifest: &evaluation.manifest,
            labels: vec![],
            records: &evaluation.records,
            artifact: &evaluation.artifact,
        },
        (stored_scored, scored),
        &crate::pipeline::case_order(&evaluation.plan),
    )?;
    report.pairwise = pairwise;
    crate::pipeline::gating::persist(&evaluation.run, &report)?;
    if !args.json {
        out!(pr);
        text!(pr, "{}", crate::report::terminal(&report));
    }
    args.reports
        .write(pr, &formats, &report, &evaluation.run.path)?;
    Ok(Outcome::of_decision(&report.decision))
}

/// The stored run `--compare-to` names: an id, a folder, or `last` (the latest complete run of
/// the same version, before this one).
fn stored_run(
    repo: &crate::registry::Repo,
    which: &str,
    current: &crate::engine::store::Manifest,
) -> Result<(RunDir, crate::engine::store::Manifest)> {
    if which == "last" {
        return list_runs(&repo.state_dir())
            .into_iter()
            .rev()
            .find(|(r, m)| {
                r.id != current.run_id
                    && m.prompt == current.prompt
                    && m.version_hash == current.version_hash
                    && m.status == "complete"
            })
            .ok_or_else(|| {
                Error::usage(format!(
                    "no earlier complete run of `{}@{}` to compare with",
                    current.prompt, current.version_id
                ))
                .with_hint("run `promptgate eval` once first; later runs compare against it")
            });
    }
    let run = RunDir::open(&repo.state_dir(), which)?;
    let m = run.manifest()?;
    if m.prompt != current.prompt {
        return Err(Error::usage(format!(
            "run `{}` evaluated prompt `{}`, not `{}`",
            run.id, m.prompt, current.prompt
        )));
    }
    Ok((run, m))
}

/// Per-metric pass rates and the checks that fail most, one example each.
pub fn render_checks(metrics: &[MetricSummary], failing: &[FailingCheck]) -> String {
    let mut out = String::new();
    if metrics.is_empty() {
        return out;
    }
    out.push_str("  metrics\n");
    for m in metrics {
        let errored = if m.errored > 0 {
            format!(", {} errored", m.errored)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "    {:<12} {:>5.1} % pass ({}/{}{errored}), mean score {:.2}\n",
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
        format!(
            "{} error{} ({})",
            s.errors,
            if s.errors == 1 { "" } else { "s" },
            kinds.join(", ")
        )
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
    for (class, e) in &s.error_examples {
        let message: String = e.message.chars().take(200).collect();
        let cut = if message.len() < e.message.len() {
            "…"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {class:<10} e.g. case `{}`: {}{cut}\n",
            e.case_id,
            message.replace('\n', " ")
        ));
    }
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
