//! `promptgate gate`, `promote` and `rollback`: the evaluation gate, and the only ways a label
//! moves besides the raw `label set`.

use super::printer::{Printer, note, out, text, warning};
use std::sync::Arc;

use clap::Args;

use super::running::{ReportArgs, RunArgs, run_interruptible};
use super::{Outcome, progress::Bar};
use crate::error::{Error, Result};
use crate::pipeline::gating::{GatePlan, GateRequest, GateResult, admits};
use crate::registry::promotion::{self, Evidence, Rollback, promotion};
use crate::registry::{Ref, Repo, audit, target};

#[derive(Debug, Args)]
#[command(
    after_help = "Runs both versions over the prompt's suite (one cache: an unchanged baseline costs\nnothing), pairs them case by case and decides with the suite's `gate:` policy. The decision\nand report.json go into the candidate's run folder.\n\nExamples:\n  promptgate gate support_agent --candidate v3\n  promptgate gate support_agent --candidate v4 --baseline canary --report md,junit --out reports/\n\nExit codes: 0 PASS, 1 FAIL, 2 bad input (or INVALID: the suite cannot score a gated\nmetric), 3 INCONCLUSIVE, 4 too many errored calls (INVALID: the comparison does not\ncount), 130 interrupted."
)]
pub struct GateArgs {
    /// The prompt, e.g. `support_agent`.
    pub prompt: String,
    /// The version to judge: `v3`, a label, a hash prefix, or `name@…`.
    #[arg(long, value_name = "REF")]
    pub candidate: String,
    /// What it must not be worse than.
    #[arg(long, value_name = "REF", default_value = "production")]
    pub baseline: String,
    /// Let breaking changes to the output or tool schemas through (they FAIL by default).
    #[arg(long)]
    pub allow_breaking: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
    /// Print the JSON report instead of the terminal one.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Gates the version against the label's current target and, only on PASS, moves the label\nwith compare-and-swap against the version it was gated against: if someone moved the label\nmeanwhile, nothing is overwritten (exit 5). The audit entry carries the gate's run id and\nthe SHA-256 of its JSON report. With --canary the label splits its traffic between the\nversion and the current one; callers are assigned stickily by their routing key.\n\nExamples:\n  promptgate promote support_agent@v3 --label production -m 'shorter answers'\n  promptgate promote support_agent@v3 --label production --canary 10\n  promptgate promote support_agent@v3 --label production --canary 50\n  promptgate promote support_agent@v3 --label production\n  promptgate promote support_agent@v3 --label production --skip-gate -m 'hotfix: INC-1234'\n\nExit codes: 0 moved, 1 FAIL, 2 bad input, 3 INCONCLUSIVE, 4 too many errored calls,\n5 the label moved during the gate."
)]
pub struct PromoteArgs {
    /// The version to promote, e.g. `support_agent@v3`.
    pub reference: String,
    /// The label to move, e.g. `production`.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// Why (recorded in the audit log; required with --skip-gate).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    pub message: Option<String>,
    /// Move without gating (emergencies only; recorded as such in the audit log).
    #[arg(long)]
    pub skip_gate: bool,
    /// Send only this share of the label's traffic (percent, 1-99) to the version and keep the
    /// rest on the current version (a canary); promote again without it to finish.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..100))]
    pub canary: Option<u32>,
    /// Let breaking changes to the output or tool schemas through.
    #[arg(long)]
    pub allow_breaking: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Moves LABEL back to the version it pointed at before its last move (from the audit log),\nor to --to. No gate: a rollback must be instant. Compare-and-swap and audited like every move.\n\nExamples:\n  promptgate rollback support_agent --label production -m 'v3 escalates too little'\n  promptgate rollback support_agent --label production --to v1 -m 'back to the known good'"
)]
pub struct RollbackArgs {
    /// The prompt, e.g. `support_agent`.
    pub prompt: String,
    /// The label to move back.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// Why (recorded in the audit log).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    pub message: String,
    /// Move to this version instead of the previous target.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

/// Run a gate and print it; `None` when interrupted.
fn run_gate(
    pr: Printer,
    repo: &Repo,
    req: &GateRequest,
    run: &RunArgs,
    reports: &ReportArgs,
    json: bool,
) -> Result<Option<crate::pipeline::gating::GateOutcome>> {
    let formats = reports.formats()?;
    let plan = GatePlan::prepare(repo, req)?;
    for w in &plan.scoring.warnings {
        warning!(pr, "{w}");
    }
    for note in plan
        .power
        .iter()
        .filter(|n| n.identical_pass_probability < 0.8)
    {
        warning!(pr, "`{}` is underpowered: {}", note.metric, note.text);
    }
    let bar = Arc::new(Bar::new(pr, run.quiet || json));
    let result = run_interruptible(async |interrupt| plan.run(repo, bar.clone(), interrupt).await)?;
    bar.finish();
    let outcome = match result {
        GateResult::Interrupted { missing } => {
            note!(
                pr,
                "interrupted: {missing} calls not made; run the gate again — answers already received are cached"
            );
            return Ok(None);
        }
        GateResult::Decided(o) => *o,
    };
    for w in &outcome.warnings {
        warning!(pr, "{w}");
    }
    if json {
        pr.stream(|w| outcome.report.write_json(w))
            .map_err(|e| Error::io(std::path::Path::new("<stdout>"), "write to", e))?;
    } else {
        text!(pr, "{}", crate::report::terminal(&outcome.report));
        out!(
            pr,
            "  report   {} (sha256 {})",
            outcome
                .candidate_run
                .path
                .join(crate::pipeline::gating::REPORT_FILE)
                .display(),
            &outcome.digest[..12]
        );
    }
    reports.write(pr, &formats, &outcome.report, &outcome.candidate_run.path)?;
    Ok(Some(outcome))
}

pub fn gate(pr: Printer, repo: &Repo, args: GateArgs) -> Result<Outcome> {
    let req = GateRequest {
        prompt: args.prompt.clone(),
        candidate: args.candidate.clone(),
        baseline: args.baseline.clone(),
        options: args.run.request("", None),
        allow_breaking: args.allow_breaking,
    };
    match run_gate(pr, repo, &req, &args.run, &args.reports, args.json)? {
        None => Ok(Outcome::Interrupted),
        Some(o) => Ok(Outcome::of_decision(&o.report.decision)),
    }
}

pub fn promote(pr: Printer, repo: &Repo, args: PromoteArgs, actor: &str) -> Result<Outcome> {
    let r = Ref::parse(&args.reference)?;
    let (prompt, candidate, _) = repo.resolve(&r)?;
    let plan = promotion(&prompt, &args.label, &candidate.id, args.canary)?;
    let show_to = |e: &audit::Entry| target::show(e.to.as_ref(), "?");
    if args.skip_gate {
        let Some(why) = args.message.clone().filter(|m| !m.trim().is_empty()) else {
            return Err(Error::usage("`--skip-gate` needs a reason").with_hint(
                "say why the gate is skipped with `-m \"…\"`; it goes into the audit log",
            ));
        };
        let e = repo.move_label(&plan.label_move(
            &prompt.name,
            &args.label,
            actor,
            why,
            Evidence::Skipped,
        ))?;
        warning!(pr, "promoted without a gate (recorded in the audit log)");
        out!(
            pr,
            "{}@{}: {} → {} (gate skipped)",
            prompt.name,
            args.label,
            target::show(e.from.as_ref(), "(new)"),
            show_to(&e)
        );
        return Ok(Outcome::Success);
    }
    let Some(baseline) = plan.stable.clone() else {
        return Err(Error::usage(format!(
            "label `{}` of `{}` does not exist yet: there is nothing to gate against",
            args.label, prompt.name
        ))
        .with_hint(format!(
            "create it with `promptgate label set {} {} {} --expect none -m \"…\"`",
            prompt.name, args.label, candidate.id
        )));
    };
    let req = GateRequest {
        prompt: prompt.name.clone(),
        candidate: candidate.id.clone(),
        // The version, not the label: the comparison must not change under us.
        baseline: baseline.clone(),
        options: args.run.request("", None),
        allow_breaking: args.allow_breaking,
    };
    let Some(outcome) = run_gate(pr, repo, &req, &args.run, &args.reports, false)? else {
        return Ok(Outcome::Interrupted);
    };
    let verdict = outcome.report.decision.verdict;
    let was = target::show(plan.current.as_ref(), "(new)");
    if !admits(verdict, &outcome.policy) {
        note!(
            pr,
            "not promoted: the gate decided {}; `{}@{}` still points at `{was}`",
            crate::report::verdict_word(verdict),
            prompt.name,
            args.label
        );
        return Ok(Outcome::of_decision(&outcome.report.decision));
    }
    let why = args.message.clone().unwrap_or_else(|| {
        format!(
            "gate {} (run {})",
            crate::report::verdict_word(verdict),
            outcome.candidate_run.id
        )
    });
    let e = repo.move_label(&plan.label_move(
        &prompt.name,
        &args.label,
        actor,
        why,
        Evidence::Gate {
            run: outcome.candidate_run.id.clone(),
            report_digest: outcome.digest.clone(),
        },
    ))?;
    out!(
        pr,
        "promoted {}@{}: {was} → {} (audit #{})",
        prompt.name,
        args.label,
        show_to(&e),
        e.seq
    );
    Ok(Outcome::Success)
}

pub fn rollback(pr: Printer, repo: &Repo, args: RollbackArgs, actor: &str) -> Result<Outcome> {
    let e = promotion::rollback(
        repo.store(),
        &Rollback {
            prompt: args.prompt,
            label: args.label,
            to: args.to,
            expect: None,
            actor: actor.to_string(),
            reason: args.message,
        },
    )?;
    out!(
        pr,
        "rolled back {}@{}: {} → {} (audit #{})",
        e.prompt,
        e.label.as_deref().unwrap_or_default(),
        target::show(e.from.as_ref(), "?"),
        target::show(e.to.as_ref(), "?"),
        e.seq
    );
    Ok(Outcome::Success)
}
