//! `promptgate rollout`: start a guarded rollout (gate, then the first canary step, then the
//! guard in `serve` takes it from there), see where rollouts are, and pause, resume or abort
//! one.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::Outcome;
use crate::cli::gate::{PromoteArgs, promote};
use crate::cli::printer::{Printer, note, out};
use crate::cli::running::{ReportArgs, RunArgs};
use crate::registry::promotion::{self, Rollback};
use crate::registry::{Ref, Repo, target};
use crate::rollout::{Progress, Rollout, Status};
use crate::{Error, Result};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Gate a version against the label's target, move the label to the policy's first canary
    /// step, and hand the rollout to the guard in `promptgate serve`.
    #[command(
        after_help = "The policy is `rollout:` in promptgate.yaml (steps, minimum time and calls per step,\nmetrics and tolerances). The guard in `serve` compares the canary with the stable version\nfrom the spans the services send (`POST /v1/traces`), advances it step by step, and rolls\nit back by itself on a regression.\n\nExamples:\n  promptgate rollout start support_agent@v4 --label production -m 'shorter answers'\n  promptgate rollout status\n  promptgate rollout pause support_agent --label production -m 'holiday freeze'"
    )]
    Start(Box<StartArgs>),
    /// Where every rollout is: step, weight, and the guard's last look.
    #[command(after_help = "Example:\n  promptgate rollout status --json")]
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hold a rollout where it is (the guard stops moving it).
    #[command(
        after_help = "Example:\n  promptgate rollout pause support_agent --label production -m 'investigating'"
    )]
    Pause(ChangeArgs),
    /// Hand a paused rollout back to the guard.
    #[command(
        after_help = "Example:\n  promptgate rollout resume support_agent --label production"
    )]
    Resume(ChangeArgs),
    /// Stop a rollout and send the label back to the stable version.
    #[command(
        after_help = "Example:\n  promptgate rollout abort support_agent --label production -m 'wrong tone'"
    )]
    Abort(ChangeArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The version to roll out, e.g. `support_agent@v4`.
    pub reference: String,
    /// The label to move, e.g. `production`.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// Why (recorded in the audit log; required with --skip-gate).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    pub message: Option<String>,
    /// Start without gating (emergencies only; recorded as such in the audit log).
    #[arg(long)]
    pub skip_gate: bool,
    /// Let breaking changes to the output or tool schemas through.
    #[arg(long)]
    pub allow_breaking: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub reports: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// The prompt, e.g. `support_agent`.
    pub prompt: String,
    /// The label being rolled out.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// Why (recorded with the rollout; for `abort`, in the audit log too).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    pub message: Option<String>,
}

pub fn rollout(pr: Printer, repo: &Repo, command: RolloutCommand, actor: &str) -> Result<Outcome> {
    let policy = repo.config.rollout.clone().unwrap_or_default();
    match command {
        RolloutCommand::Start(start) => {
            let start = *start;
            let r = Ref::parse(&start.reference)?;
            let (prompt, candidate, _) = repo.resolve(&r)?;
            let first = policy.steps.first().copied().unwrap_or(100);
            let args = PromoteArgs {
                reference: start.reference,
                label: start.label,
                message: start.message,
                skip_gate: start.skip_gate,
                canary: Some(u32::from(first)),
                allow_breaking: start.allow_breaking,
                run: start.run,
                reports: start.reports,
            };
            let plan =
                promotion::promotion(&prompt, &args.label, &candidate.id, Some(u32::from(first)))?;
            let Some(stable) = plan.stable.clone() else {
                return Err(Error::usage(format!(
                    "label `{}` of `{}` does not exist yet: a rollout needs a version to compare with",
                    args.label, prompt.name
                )));
            };
            if let Some(old) = repo.store().rollouts()?.get(&prompt.name, &args.label)
                && matches!(old.status, Status::Active | Status::Paused { .. })
            {
                return Err(Error::usage(format!(
                    "`{}@{}` is already rolling out `{}`",
                    prompt.name, args.label, old.canary
                ))
                .with_hint(format!(
                    "see it with `promptgate rollout status`, or stop it with `promptgate rollout abort {} --label {}`",
                    prompt.name, args.label
                )));
            }
            let label = args.label.clone();
            let outcome = promote(pr, repo, args, actor)?;
            if outcome != Outcome::Success {
                return Ok(outcome);
            }
            let t = crate::clock::now_unix_s();
            repo.store().update_rollouts(&mut |all| {
                all.start(Rollout {
                    prompt: prompt.name.clone(),
                    label: label.clone(),
                    canary: candidate.id.clone(),
                    stable: stable.clone(),
                    progress: Progress {
                        step: 0,
                        started_unix_s: t,
                        step_started_unix_s: t,
                    },
                    status: Status::Active,
                    actor: actor.to_string(),
                    last_look: None,
                })
                .map_err(Error::usage)
            })?;
            out!(
                pr,
                "rollout of {}@{} started: {} at {first} %, {stable} at {} %; steps {:?}; the guard in `promptgate serve` takes it from here",
                prompt.name,
                label,
                candidate.id,
                100 - u32::from(first),
                policy.steps
            );
            Ok(Outcome::Success)
        }
        RolloutCommand::Status { json } => {
            let all = repo.store().rollouts()?;
            if json {
                out!(
                    pr,
                    "{}",
                    serde_json::to_string_pretty(&all.rollouts).unwrap_or_default()
                );
                return Ok(Outcome::Success);
            }
            if all.rollouts.is_empty() {
                note!(
                    pr,
                    "no rollouts: start one with `promptgate rollout start PROMPT@VERSION --label LABEL`"
                );
                return Ok(Outcome::Success);
            }
            for r in &all.rollouts {
                let state = match &r.status {
                    Status::Active => format!(
                        "active, step {} of {} ({} %)",
                        r.progress.step + 1,
                        policy.steps.len(),
                        r.weight(&policy)
                    ),
                    Status::Paused { why } => format!("paused at {} %: {why}", r.weight(&policy)),
                    Status::Finished => "finished".to_string(),
                    Status::RolledBack { why } => format!("rolled back: {why}"),
                    Status::Aborted { why } => format!("aborted: {why}"),
                };
                out!(
                    pr,
                    "{}@{}: {} → {} — {state}",
                    r.prompt,
                    r.label,
                    r.stable,
                    r.canary
                );
                if let Some(look) = &r.last_look {
                    out!(pr, "  last look: {}", json!(look.action));
                    for m in look.metrics.as_array().into_iter().flatten() {
                        out!(pr, "  {}: {}", m["metric"].as_str().unwrap_or("?"), m);
                    }
                }
            }
            Ok(Outcome::Success)
        }
        RolloutCommand::Pause(c) | RolloutCommand::Resume(c) | RolloutCommand::Abort(c)
            if repo.store().rollouts()?.get(&c.prompt, &c.label).is_none() =>
        {
            Err(
                Error::not_found(format!("`{}@{}` has no rollout", c.prompt, c.label))
                    .with_hint("see them with `promptgate rollout status`"),
            )
        }
        RolloutCommand::Pause(c) => {
            let why = c.message.unwrap_or_else(|| format!("paused by {actor}"));
            change(repo, &c.prompt, &c.label, |r| match r.status {
                Status::Active => {
                    r.status = Status::Paused { why: why.clone() };
                    Ok(())
                }
                _ => Err(format!("it is not active ({:?})", r.status)),
            })?;
            out!(pr, "rollout of {}@{} paused", c.prompt, c.label);
            Ok(Outcome::Success)
        }
        RolloutCommand::Resume(c) => {
            let t = crate::clock::now_unix_s();
            change(repo, &c.prompt, &c.label, |r| match r.status {
                Status::Paused { .. } => {
                    r.status = Status::Active;
                    // The step's clock starts again: its minimum time counts from now.
                    r.progress.step_started_unix_s = t;
                    Ok(())
                }
                _ => Err(format!("it is not paused ({:?})", r.status)),
            })?;
            out!(
                pr,
                "rollout of {}@{} handed back to the guard",
                c.prompt,
                c.label
            );
            Ok(Outcome::Success)
        }
        RolloutCommand::Abort(c) => {
            let why = c
                .message
                .clone()
                .unwrap_or_else(|| format!("aborted by {actor}"));
            let rollout = repo
                .store()
                .rollouts()?
                .get(&c.prompt, &c.label)
                .cloned()
                .ok_or_else(|| Error::not_found("no rollout"))?;
            if !matches!(rollout.status, Status::Active | Status::Paused { .. }) {
                return Err(Error::usage(format!(
                    "the rollout of `{}@{}` has ended ({:?})",
                    c.prompt, c.label, rollout.status
                )));
            }
            let e = promotion::rollback(
                repo.store(),
                &Rollback {
                    prompt: c.prompt.clone(),
                    label: c.label.clone(),
                    to: Some(rollout.stable.clone()),
                    expect: None,
                    actor: actor.to_string(),
                    reason: format!("rollout aborted: {why}"),
                },
            )?;
            change(repo, &c.prompt, &c.label, |r| {
                r.status = Status::Aborted { why: why.clone() };
                Ok(())
            })?;
            out!(
                pr,
                "rollout of {}@{} aborted: {} → {} (audit #{})",
                c.prompt,
                c.label,
                target::show(e.from.as_ref(), "?"),
                target::show(e.to.as_ref(), "?"),
                e.seq
            );
            Ok(Outcome::Success)
        }
    }
}

fn change(
    repo: &Repo,
    prompt: &str,
    label: &str,
    mut f: impl FnMut(&mut Rollout) -> std::result::Result<(), String>,
) -> Result<()> {
    repo.store().update_rollouts(&mut |all| {
        let r = all
            .get_mut(prompt, label)
            .ok_or_else(|| Error::not_found(format!("`{prompt}@{label}` has no rollout")))?;
        f(r).map_err(|why| {
            Error::usage(format!(
                "cannot do that to the rollout of `{prompt}@{label}`: {why}"
            ))
        })
    })?;
    Ok(())
}
