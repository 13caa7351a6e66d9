//! `promptgate runs list|show|prune`: the stored runs under `.promptgate/runs/`.

use super::printer::{Printer, note, out, text};
use std::collections::BTreeSet;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Outcome, table};
use crate::engine::store::{Manifest, RunDir, list_runs};
use crate::error::{Error, Result};
use crate::pipeline::gating::{GATE_FILE, GateRecord};
use crate::registry::Repo;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Stored runs, newest first, with the gate verdict when a gate decided on them.
    #[command(after_help = "Example:\n  promptgate runs list --prompt support_agent -n 10")]
    List {
        /// Only runs of this prompt.
        #[arg(long)]
        prompt: Option<String>,
        /// At most N runs.
        #[arg(short = 'n', long, value_name = "N")]
        limit: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run: what it evaluated, how its calls went, and its gate decision.
    Show {
        /// A run id (or its folder).
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete old runs. Runs an audit entry cites as gate evidence (and their baselines) are
    /// always kept.
    #[command(
        after_help = "Examples:\n  promptgate runs prune --keep 20\n  promptgate runs prune --older-than 30d --dry-run"
    )]
    Prune {
        /// Keep the N newest runs of each prompt.
        #[arg(long, value_name = "N", required_unless_present = "older_than")]
        keep: Option<usize>,
        /// Delete runs started longer ago than this (`30d`, `12h`, `90m`).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn runs(pr: Printer, repo: &Repo, command: RunsCommand) -> Result<Outcome> {
    match command {
        RunsCommand::List {
            prompt,
            limit,
            json,
        } => list(pr, repo, prompt.as_deref(), limit, json),
        RunsCommand::Show { run, json } => show(pr, repo, &run, json),
        RunsCommand::Prune {
            keep,
            older_than,
            dry_run,
        } => prune(pr, repo, keep, older_than.as_deref(), dry_run),
    }
}

fn gate_record(run: &RunDir) -> Option<GateRecord> {
    let text = std::fs::read_to_string(run.path.join(GATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn list(
    pr: Printer,
    repo: &Repo,
    prompt: Option<&str>,
    limit: Option<usize>,
    json: bool,
) -> Result<Outcome> {
    let mut all = list_runs(&repo.state_dir());
    all.reverse();
    let rows: Vec<(RunDir, Manifest)> = all
        .into_iter()
        .filter(|(_, m)| prompt.is_none_or(|p| m.prompt == p))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    if json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(r, m)| {
                json!({"run_id": r.id, "prompt": m.prompt, "version": m.version_id,
                       "status": m.status, "started_at": m.started_at, "calls": m.calls,
                       "gate": gate_record(r)})
            })
            .collect();
        pr.json(&Value::Array(out));
        return Ok(Outcome::Success);
    }
    if rows.is_empty() {
        note!(
            pr,
            "no runs yet: `promptgate eval <prompt>@<version>` makes one"
        );
        return Ok(Outcome::Success);
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(r, m)| {
            let gate = gate_record(r)
                .map(|g| format!("{} vs {}", g.verdict, g.baseline))
                .unwrap_or_default();
            vec![
                r.id.clone(),
                format!("{}@{}", m.prompt, m.version_id),
                m.status.clone(),
                m.started_at.clone(),
                m.calls.to_string(),
                gate,
            ]
        })
        .collect();
    text!(
        pr,
        "{}",
        table(
            &["RUN", "VERSION", "STATUS", "STARTED", "CALLS", "GATE"],
            &table_rows
        )
    );
    Ok(Outcome::Success)
}

fn show(pr: Printer, repo: &Repo, id: &str, json: bool) -> Result<Outcome> {
    let run = RunDir::open(&repo.state_dir(), id)?;
    let m = run.manifest()?;
    let records = run.records()?;
    let errors = records.iter().filter(|r| r.error.is_some()).count();
    let cached = records.iter().filter(|r| r.cached).count();
    let cost: f64 = records.iter().map(|r| r.cost_usd).sum();
    let gate = gate_record(&run);
    if json {
        pr.json(
            &json!({"manifest": m, "results": records.len(), "errors": errors,
                           "cached": cached, "cost_usd": cost, "gate": gate}),
        );
        return Ok(Outcome::Success);
    }
    out!(pr, "run {}", run.id);
    out!(
        pr,
        "  version    {}@{} ({})",
        m.prompt,
        m.version_id,
        m.version_hash
    );
    out!(
        pr,
        "  status     {} (started {}{})",
        m.status,
        m.started_at,
        m.finished_at
            .as_deref()
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default()
    );
    out!(
        pr,
        "  provider   {} ({}, model {})",
        m.provider.name,
        m.provider.system,
        m.provider.model
    );
    for d in &m.datasets {
        out!(
            pr,
            "  dataset    {} ({} cases, sha256 {})",
            d.path,
            d.cases,
            crate::safe::prefix(&d.digest, 12)
        );
    }
    out!(
        pr,
        "  calls      {} of {} recorded, {errors} errored, {cached} from cache, cost ${cost:.4}",
        records.len(),
        m.calls
    );
    if let Some(g) = gate {
        out!(
            pr,
            "  gate       {} vs {} (baseline run {}, report sha256 {})",
            g.verdict,
            g.baseline,
            g.baseline_run,
            crate::safe::prefix(&g.report_digest, 12)
        );
    }
    out!(pr, "  folder     {}", run.path.display());
    Ok(Outcome::Success)
}

/// Parse `30d`, `12h`, `90m`, `45s` into seconds.
fn parse_age(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        Error::usage(format!("`{s}` is not an age"))
            .with_hint("write it like `30d`, `12h` or `90m`")
    })?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" | "" => 1,
        _ => {
            return Err(Error::usage(format!("unknown unit `{unit}` in `{s}`"))
                .with_hint("use d (days), h (hours), m (minutes) or s (seconds)"));
        }
    };
    Ok(n * mult)
}

fn prune(
    pr: Printer,
    repo: &Repo,
    keep: Option<usize>,
    older_than: Option<&str>,
    dry_run: bool,
) -> Result<Outcome> {
    let max_age = older_than.map(parse_age).transpose()?;
    let runs = list_runs(&repo.state_dir());
    // Evidence of label moves is never deleted.
    let mut protected: BTreeSet<String> = BTreeSet::new();
    for name in repo.prompt_names()? {
        for e in repo.audit(&name)?.entries {
            if let Some(r) = e.gate_run {
                protected.insert(r);
            }
        }
    }
    for (r, _) in &runs {
        if protected.contains(&r.id)
            && let Some(g) = gate_record(r)
        {
            protected.insert(g.baseline_run);
        }
    }
    let now = jiff::Timestamp::now();
    let mut newest_per_prompt: std::collections::HashMap<String, usize> = Default::default();
    let mut doomed = Vec::new();
    for (r, m) in runs.iter().rev() {
        let rank = newest_per_prompt.entry(m.prompt.clone()).or_default();
        *rank += 1;
        let too_many = keep.is_some_and(|k| *rank > k);
        let too_old = max_age.is_some_and(|age| {
            m.started_at
                .parse::<jiff::Timestamp>()
                .map(|t| now.as_second() - t.as_second() > age)
                .unwrap_or(false)
        });
        let selected = match (keep, max_age) {
            (Some(_), Some(_)) => too_many && too_old,
            (Some(_), None) => too_many,
            (None, _) => too_old,
        };
        if selected && !protected.contains(&r.id) && m.status != "running" {
            doomed.push(r);
        }
    }
    for r in &doomed {
        if dry_run {
            out!(pr, "would delete {}", r.id);
        } else {
            std::fs::remove_dir_all(&r.path).map_err(|e| Error::io(&r.path, "delete", e))?;
            out!(pr, "deleted {}", r.id);
        }
    }
    note!(
        pr,
        "{} {} of {} runs ({} kept as evidence of label moves)",
        if dry_run { "would delete" } else { "deleted" },
        doomed.len(),
        runs.len(),
        protected.len()
    );
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_age("12h").unwrap(), 12 * 3_600);
        assert_eq!(parse_age("90m").unwrap(), 90 * 60);
        assert!(parse_age("soon").is_err());
        assert!(parse_age("3w").is_err());
    }
}
