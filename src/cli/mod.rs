//! The command line: clap definitions and one thin handler per command. Every handler writes
//! through the one [`printer::Printer`]: data to stdout, diagnostics and warnings to stderr.

mod eval;
mod gate;
pub mod printer;
mod progress;
mod rollout;
mod running;
mod runs;
mod serve;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use printer::{Printer, note, out, text};
use serde_json::{Map, Value, json};

use crate::artifact::diff;
use crate::error::{Diagnostic, Error, Result, Severity};
use crate::fsutil;
use crate::gate::Verdict;
use crate::registry::{self, Expect, LabelMove, Ref, Repo, Target, audit, target};
use crate::render;

/// What a successful command run means for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// The command ran and found problems (`check`): exit 2.
    Problems,
    /// Too many calls errored to trust the run: exit 4 (fail closed).
    Infrastructure,
    /// Interrupted before every call was made: exit 130.
    Interrupted,
    /// The gate decided FAIL: exit 1.
    GateFail,
    /// The gate decided INCONCLUSIVE: exit 3.
    Inconclusive,
}

impl Outcome {
    /// The exit a gate's decision maps to: an INVALID that is the suite's fault is a
    /// configuration error, any other an infrastructure failure.
    pub fn of_decision(d: &crate::gate::Decision) -> Outcome {
        match d.verdict {
            Verdict::Pass => Outcome::Success,
            Verdict::Fail => Outcome::GateFail,
            Verdict::Inconclusive => Outcome::Inconclusive,
            Verdict::Invalid if d.misconfigured => Outcome::Problems,
            Verdict::Invalid => Outcome::Infrastructure,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "promptgate",
    version,
    about = "Prompt versions in Git, labels that move only through audited compare-and-swap, and an evaluation gate.",
    after_help = "Examples:\n  promptgate init my-prompts\n  promptgate add support_agent prompts/support_agent/v2.yaml\n  promptgate render support_agent@production --var question='Where is my order?'\n  promptgate diff support_agent@production support_agent@v3\n  promptgate label set support_agent production v3 --expect v2 -m 'ship v3'\n\nExit codes: 0 success, 1 gate FAIL, 2 usage/config error, 3 INCONCLUSIVE,\n4 provider/infrastructure failure, 5 conflict (the label moved under you)."
)]
pub struct Cli {
    /// Run as if started in DIR (the repository root or a folder inside it).
    #[arg(
        short = 'C',
        long = "repo",
        global = true,
        value_name = "DIR",
        env = "PROMPTGATE_REPO"
    )]
    pub repo: Option<PathBuf>,
    /// Who is acting, for the audit log (default: $PROMPTGATE_ACTOR, CI user, git user, OS user).
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a prompt repository: config, folders, one example prompt, .gitignore.
    #[command(
        after_help = "Example:\n  promptgate init my-prompts && cd my-prompts && promptgate list"
    )]
    Init {
        /// Where to create it (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Register new version file(s) of a prompt: content hash, version id, audit entry.
    #[command(
        after_help = "With no FILE, registers every unregistered *.yaml in prompts/<PROMPT>/.\nA FILE outside that folder is copied in as v<N>.yaml.\n\nExamples:\n  promptgate add support_agent\n  promptgate add support_agent ~/drafts/shorter-answers.yaml"
    )]
    Add {
        /// The prompt's name, e.g. `support_agent` or `judges/correctness`.
        prompt: String,
        /// Version files to register.
        files: Vec<PathBuf>,
    },
    /// List prompts with their labels, or one prompt's versions.
    #[command(after_help = "Examples:\n  promptgate list\n  promptgate list support_agent --json")]
    List {
        /// Show this prompt's versions.
        prompt: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one version: id, hash, labels, parameters and its file.
    #[command(
        after_help = "Refs: NAME@LABEL, NAME@v3, NAME@v3-9f2c1ab, NAME@<hash prefix>, NAME (latest).\n\nExample:\n  promptgate show support_agent@production --json"
    )]
    Show {
        /// The version, e.g. `support_agent@production`.
        reference: String,
        /// Print JSON (the resolved artifact and its identity).
        #[arg(long)]
        json: bool,
    },
    /// Compare two versions; names breaking changes to output and tool schemas.
    #[command(
        after_help = "NEW may be a bare version or label of OLD's prompt.\n\nExamples:\n  promptgate diff support_agent@production support_agent@v3\n  promptgate diff support_agent@v1 v2 --json"
    )]
    Diff {
        /// The old side, e.g. `support_agent@production`.
        old: String,
        /// The new side, e.g. `support_agent@v3` or just `v3`.
        new: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the exact provider-neutral request a version renders to.
    #[command(
        after_help = "Values given with --var are typed by the variable's declaration (`--var n=3` is a\nnumber when `n` is declared `type: number`).\n\nExample:\n  promptgate render support_agent@production --var product_name=Acme --var question='Refund?'"
    )]
    Render {
        /// The version, e.g. `support_agent@production`.
        reference: String,
        /// A variable, `NAME=VALUE` (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// A YAML or JSON file of variables (a mapping); --var wins over it.
        #[arg(long, value_name = "FILE")]
        vars_file: Option<PathBuf>,
    },
    /// Move labels (raw and ungated; `promote` is the gated way).
    Label {
        #[command(subcommand)]
        command: LabelCommand,
    },
    /// Who changed what, when and why — newest first.
    #[command(after_help = "Example:\n  promptgate log support_agent --label production")]
    Log(LogArgs),
    /// Run a version over its suite's golden datasets (nightly regression with --compare-to).
    Eval(eval::EvalArgs),
    /// Decide statistically whether a candidate version is not worse than a baseline.
    Gate(gate::GateArgs),
    /// Gate a version against a label's target, then move the label (compare-and-swap, audited).
    Promote(gate::PromoteArgs),
    /// Move a label back to its previous target, instantly (compare-and-swap, audited).
    Rollback(gate::RollbackArgs),
    /// Guarded rollouts: start one (gate, first canary step), see them, pause, resume, abort.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// List, inspect and prune stored runs.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Lint everything: files parse, hashes match, labels resolve, audit chains verify.
    #[command(after_help = "Lists every problem; exits 2 if there is any.")]
    Check,
    /// Serve the registry over HTTP: fetch by label, move labels, stream changes.
    Serve(serve::ServeArgs),
    /// Write every version and label into one JSON file with its own digest.
    Bundle(serve::BundleArgs),
    /// Create a key pair for signing audit entries: the private key for the environment, the
    /// public key for `audit.keys` in promptgate.yaml.
    #[command(
        after_help = "The private key is printed once: put it in your CI's secrets or a file outside the\nrepository (PROMPTGATE_SIGNING_KEY or PROMPTGATE_SIGNING_KEY_FILE). Every audit entry\nwritten with it is signed; `check` verifies every signature against `audit.keys`.\n\nExamples:\n  promptgate keygen --id ci\n  promptgate keygen --id alice > ~/.config/promptgate/alice.key"
    )]
    Keygen {
        /// The key's id, recorded in every entry it signs (e.g. `ci`, `alice`, `serve-eu`).
        #[arg(long, value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabelCommand {
    /// Point LABEL at VERSION, if it currently points at --expect (compare-and-swap).
    #[command(
        after_help = "Exits 5 if the label no longer points at --expect, naming who moved it.\n\nExamples:\n  promptgate label set support_agent production v3 --expect v2 -m 'ship v3'\n  promptgate label set support_agent canary v3 --expect none -m 'start canary'"
    )]
    Set {
        /// The prompt, e.g. `support_agent`.
        prompt: String,
        /// The label to move or create, e.g. `production`.
        label: String,
        /// The new target: `v3`, `v3-9f2c1ab`, a hash prefix, or another label.
        version: String,
        /// What the label must point at now: a version, or `none` for a new label.
        #[arg(long, value_name = "CURRENT|none")]
        expect: String,
        /// Why (recorded in the audit log).
        #[arg(short = 'm', long = "message", value_name = "WHY")]
        message: String,
    },
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The prompt whose log to show.
    prompt: String,
    /// Only entries that moved this label.
    #[arg(long)]
    label: Option<String>,
    /// At most N entries.
    #[arg(short = 'n', long, value_name = "N")]
    limit: Option<usize>,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// Run a parsed command line.
pub fn run(pr: Printer, cli: Cli) -> Result<Outcome> {
    let cwd = match &cli.repo {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::io(Path::new("."), "read the current directory", e))?,
    };
    let open = || open_repo(&cwd, cli.repo.is_none());
    let actor = || audit::actor(cli.actor.as_deref());
    match cli.command {
        Command::Init { dir } => init(pr, &dir.unwrap_or(cwd), &actor()),
        Command::Add { prompt, files } => {
            let repo = open()?;
            for r in repo.add(&prompt, &files, &actor())? {
                pr.diagnostics(&r.warnings);
                out!(pr, "registered {prompt}@{} ({})", r.id, rel(&repo, &r.path));
            }
            Ok(Outcome::Success)
        }
        Command::List { prompt, json } => list(pr, &open()?, prompt.as_deref(), json),
        Command::Show { reference, json } => show(pr, &open()?, &reference, json),
        Command::Diff { old, new, json } => diff_cmd(pr, &open()?, &old, &new, json),
        Command::Render {
            reference,
            vars,
            vars_file,
        } => render_cmd(pr, &open()?, &reference, &vars, vars_file.as_deref()),
        Command::Label {
            command:
                LabelCommand::Set {
                    prompt,
                    label,
                    version,
                    expect,
                    message,
                },
        } => {
            let repo = open()?;
            let e = repo.move_label(&LabelMove::set(
                prompt.clone(),
                label.clone(),
                version,
                Expect::parse(&expect),
                actor(),
                message,
            ))?;
            out!(
                pr,
                "{prompt}@{label}: {} → {}",
                target::show(e.from.as_ref(), "(new)"),
                target::show(e.to.as_ref(), "(none)")
            );
            Ok(Outcome::Success)
        }
        Command::Log(args) => log(pr, &open()?, &args),
        Command::Check => check(pr, &open()?),
        Command::Eval(args) => eval::eval(pr, &cwd, cli.repo.is_none(), args),
        Command::Gate(args) => gate::gate(pr, &open()?, args),
        Command::Promote(args) => gate::promote(pr, &open()?, args, &actor()),
        Command::Rollback(args) => gate::rollback(pr, &open()?, args, &actor()),
        Command::Rollout { command } => rollout::rollout(pr, &open()?, command, &actor()),
        Command::Runs { command } => runs::runs(pr, &open()?, command),
        Command::Serve(args) => {
            let repo = match &args.bundle {
                Some(_) => open().ok(),
                None => Some(open()?),
            };
            serve::serve_cmd(pr, repo, args)
        }
        Command::Bundle(args) => serve::bundle_cmd(pr, &open()?, args),
        Command::Keygen { id } => keygen(pr, &id),
    }
}

fn keygen(pr: Printer, id: &str) -> Result<Outcome> {
    if id.trim().is_empty() || id.contains([':', ' ', '\n']) {
        return Err(Error::usage(format!("`{id}` is not a key id"))
            .with_hint("use a short name without spaces or colons, e.g. `ci`"));
    }
    let key = registry::signing::Signer::generate(id)?;
    out!(
        pr,
        "# The private key: keep it out of the repository (your CI's secrets, or a file that\n\
         # PROMPTGATE_SIGNING_KEY_FILE names).\n\
         {}={}\n\
         # Trust it: under `audit:` in promptgate.yaml\n\
         #   keys:\n\
         #     - {{ id: {id}, public_key: {} }}",
        registry::signing::KEY_ENV,
        key.secret_line(),
        key.public_key()
    );
    Ok(Outcome::Success)
}

/// Find the repository. Started from the current directory, paths are shown relative to it
/// (`prompts/p/v1.yaml`, not `/home/…/prompts/p/v1.yaml`).
fn open_repo(start: &Path, from_cwd: bool) -> Result<Repo> {
    let mut repo = Repo::discover(start)?;
    if from_cwd && let Ok(rest) = start.strip_prefix(&repo.root) {
        repo.root = rest.components().map(|_| "..").collect();
    }
    Ok(repo)
}

/// A path relative to the repository root, for display.
fn rel(repo: &Repo, path: &Path) -> String {
    path.strip_prefix(&repo.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn list(pr: Printer, repo: &Repo, prompt: Option<&str>, json: bool) -> Result<Outcome> {
    if let Some(name) = prompt {
        let p = repo.prompt(name)?;
        let mut versions: Vec<_> = p.versions.iter().collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.number));
        if json {
            let rows: Vec<Value> = versions
                .iter()
                .map(|v| json!({"id": v.id, "number": v.number, "hash": v.hash, "file": v.file, "labels": p.labels_of(&v.id)}))
                .collect();
            pr.json(&json!({"prompt": name, "versions": rows}));
            return Ok(Outcome::Success);
        }
        let rows: Vec<Vec<String>> = versions
            .iter()
            .map(|v| {
                vec![
                    v.id.clone(),
                    v.file.clone(),
                    p.label_notes(&v.id).join(", "),
                ]
            })
            .collect();
        text!(pr, "{}", table(&["VERSION", "FILE", "LABELS"], &rows));
        return Ok(Outcome::Success);
    }
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for name in repo.prompt_names()? {
        let p = repo.prompt(&name)?;
        let latest = p.latest().map(|v| v.id.clone()).unwrap_or_default();
        let labels: Vec<String> = p.labels.iter().map(|(l, v)| format!("{l}={v}")).collect();
        out.push(json!({"prompt": name, "versions": p.versions.len(), "latest": latest, "labels": p.labels}));
        rows.push(vec![
            name.clone(),
            p.versions.len().to_string(),
            latest,
            labels.join(" "),
        ]);
    }
    if json {
        pr.json(&Value::Array(out));
    } else if rows.is_empty() {
        note!(
            pr,
            "no prompts yet: create prompts/<name>/v1.yaml and run `promptgate add <name>`"
        );
    } else {
        text!(
            pr,
            "{}",
            table(&["PROMPT", "VERSIONS", "LATEST", "LABELS"], &rows)
        );
    }
    Ok(Outcome::Success)
}

/// A plain left-aligned table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |cells: Vec<&str>, s: &mut String| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.push('\n');
    };
    line(header.to_vec(), &mut s);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut s);
    }
    s
}

fn show(pr: Printer, repo: &Repo, reference: &str, json: bool) -> Result<Outcome> {
    let r = Ref::parse(reference)?;
    let (prompt, v, label) = repo.resolve(&r)?;
    let loaded = repo.load_version(&prompt, &v)?;
    let path = repo.prompt_dir(&prompt.name).join(&v.file);
    let labels = prompt.labels_of(&v.id);
    // A label that splits its traffic: `show` names the version a caller without a routing
    // key gets (the primary), and the whole split.
    let split = label
        .as_ref()
        .and_then(|l| prompt.labels.get(l))
        .filter(|t| t.single().is_none());
    if json {
        pr.json(&json!({
            "prompt": prompt.name, "version_id": v.id, "number": v.number, "hash": v.hash,
            "file": rel(repo, &path), "label": label, "labels": labels, "split": split,
            "artifact": loaded.artifact,
        }));
        return Ok(Outcome::Success);
    }
    let a = &loaded.artifact;
    let mut params = vec![];
    if let Some(t) = a.model.temperature {
        params.push(format!("temperature {t}"));
    }
    if let Some(t) = a.model.max_tokens {
        params.push(format!("max_tokens {t}"));
    }
    if let Some(t) = a.model.top_p {
        params.push(format!("top_p {t}"));
    }
    if let Some(t) = a.model.seed {
        params.push(format!("seed {t}"));
    }
    let vars: Vec<String> = a
        .variables
        .iter()
        .map(|(n, var)| match &var.default {
            None => format!("{n}: {} (required)", var.kind.name()),
            Some(d) => format!("{n}: {} = {d}", var.kind.name()),
        })
        .collect();
    out!(pr, "{}@{}", prompt.name, v.id);
    out!(pr, "  hash       {}", v.hash);
    out!(pr, "  file       {}", rel(repo, &path));
    let labels = prompt.label_notes(&v.id);
    out!(
        pr,
        "  labels     {}",
        if labels.is_empty() {
            "(none)".into()
        } else {
            labels.join(", ")
        }
    );
    if let (Some(l), Some(Target::Split(parts))) = (&label, split) {
        let shares: Vec<String> = parts.iter().map(|(id, w)| format!("{id} {w}%")).collect();
        out!(pr, "  split      {l}: {}", shares.join(" · "));
    }
    if let Some(d) = &a.description {
        out!(pr, "  about      {}", crate::safe::line(d));
    }
    out!(
        pr,
        "  model      {}/{}{}",
        a.model.provider,
        crate::safe::line(&a.model.name),
        if params.is_empty() {
            String::new()
        } else {
            format!(" ({})", params.join(", "))
        }
    );
    out!(
        pr,
        "  variables  {}",
        if vars.is_empty() {
            "(none)".into()
        } else {
            vars.join(", ")
        }
    );
    out!(
        pr,
        "  messages   {} ({} few-shot examples)",
        a.messages.len(),
        a.few_shot.len()
    );
    if !a.tools.is_empty() {
        out!(
            pr,
            "  tools      {}",
            a.tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(s) = &a.output_schema {
        let props: Vec<&str> = s
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        out!(
            pr,
            "  output     JSON Schema{}",
            if props.is_empty() {
                String::new()
            } else {
                format!(" ({})", props.join(", "))
            }
        );
    }
    pr.diagnostics(&loaded.warnings);
    Ok(Outcome::Success)
}

fn diff_cmd(pr: Printer, repo: &Repo, old: &str, new: &str, json: bool) -> Result<Outcome> {
    let a = Ref::parse(old)?;
    let b = if new.contains('@') || repo.prompt_dir(new).join(registry::REGISTRY_FILE).is_file() {
        Ref::parse(new)?
    } else {
        Ref {
            prompt: a.prompt.clone(),
            selector: Some(new.to_string()),
        }
    };
    let (pa, va, _) = repo.resolve(&a)?;
    let (pb, vb, _) = repo.resolve(&b)?;
    let la = repo.load_version(&pa, &va)?;
    let lb = repo.load_version(&pb, &vb)?;
    let d = diff::diff(&la.artifact, &lb.artifact);
    let (na, nb) = (
        format!("{}@{}", pa.name, va.id),
        format!("{}@{}", pb.name, vb.id),
    );
    if json {
        pr.json(
            &json!({"old": na, "new": nb, "messages_diff": d.messages, "changes": d.changes,
            "breaking": d.breaking().count()}),
        );
    } else {
        text!(pr, "{}", d.render(&na, &nb));
    }
    Ok(Outcome::Success)
}

fn render_cmd(
    pr: Printer,
    repo: &Repo,
    reference: &str,
    vars: &[String],
    vars_file: Option<&Path>,
) -> Result<Outcome> {
    let r = Ref::parse(reference)?;
    let (prompt, v, _) = repo.resolve(&r)?;
    let loaded = repo.load_version(&prompt, &v)?;
    let artifact = &loaded.artifact;
    let mut given = Map::new();
    if let Some(f) = vars_file {
        let text = fsutil::read_to_string(f)?;
        crate::yaml::bounded(f, &text)?;
        let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
            Error::from(
                Diagnostic::error(format!("cannot read variables: {e}"))
                    .in_context(f.display().to_string()),
            )
        })?;
        match value {
            Value::Object(m) => given.extend(m),
            Value::Null => {}
            _ => {
                return Err(Error::usage(format!(
                    "`{}` must be a mapping of variable names to values",
                    f.display()
                )));
            }
        }
    }
    for kv in vars {
        let Some((k, text)) = kv.split_once('=') else {
            return Err(Error::usage(format!("`--var {kv}` is not NAME=VALUE"))
                .with_hint("e.g. `--var question='Where is my order?'`"));
        };
        let value = match artifact.variables.get(k) {
            Some(decl) => decl
                .kind
                .coerce(text)
                .map_err(|e| Error::usage(format!("`--var {kv}`: variable `{k}` {e}")))?,
            None => Value::String(text.to_string()),
        };
        given.insert(k.to_string(), value);
    }
    let request = render::render_variables(artifact, &prompt.name, &v.id, &given)?;
    out!(
        pr,
        "{}",
        serde_json::to_string_pretty(&request).unwrap_or_default()
    );
    Ok(Outcome::Success)
}

fn log(pr: Printer, repo: &Repo, args: &LogArgs) -> Result<Outcome> {
    let log = repo.audit(&args.prompt)?;
    if !log.problems.is_empty() {
        pr.diagnostics(
            &log.problems
                .iter()
                .cloned()
                .map(|mut d| {
                    d.severity = Severity::Warning;
                    d
                })
                .collect::<Vec<_>>(),
        );
    }
    let entries = log
        .entries
        .iter()
        .rev()
        .filter(|e| args.label.is_none() || e.label == args.label)
        .take(args.limit.unwrap_or(usize::MAX));
    for e in entries {
        if args.json {
            text!(pr, "{}", e.to_line());
            continue;
        }
        let what = match e.action {
            audit::Action::Register => format!(
                "registered {} ({})",
                target::show(e.to.as_ref(), "?"),
                e.file.as_deref().unwrap_or("?")
            ),
            _ => format!(
                "{} {}: {} → {}",
                e.action.as_str(),
                e.label.as_deref().unwrap_or("?"),
                target::show(e.from.as_ref(), "(new)"),
                target::show(e.to.as_ref(), "(removed)")
            ),
        };
        // Reasons and actors come from whoever moved the label (a CLI user, a token over
        // HTTP): shown escaped, so that they cannot drive the terminal.
        out!(
            pr,
            "#{:<4} {}  {}  {}",
            e.seq,
            crate::safe::line(&e.ts),
            crate::safe::line(&e.actor),
            crate::safe::line(&what)
        );
        if let Some(r) = &e.reason {
            out!(pr, "      why: {}", crate::safe::line(r));
        }
        if let Some(g) = &e.gate_run {
            out!(pr, "      gate run: {}", crate::safe::line(g));
        }
        if let Some(d) = &e.report_digest {
            out!(pr, "      report: sha256:{}", crate::safe::line(d));
        }
        if e.skip_gate {
            out!(pr, "      gate SKIPPED");
        }
    }
    Ok(Outcome::Success)
}

fn check(pr: Printer, repo: &Repo) -> Result<Outcome> {
    let report = registry::check::check(repo);
    pr.diagnostics(&report.diagnostics);
    let errors = report.errors();
    let warnings = report.diagnostics.len() - errors;
    note!(
        pr,
        "checked {} prompt(s), {} version(s), {} audit entries: {errors} error(s), {warnings} warning(s)",
        report.prompts,
        report.versions,
        report.audit_entries
    );
    if !repo.trust().is_signed() && report.audit_entries > 0 {
        note!(
            pr,
            "note: the audit logs are unsigned: their chains detect accidents, not forgery (list trusted keys under `audit.keys`; see `promptgate keygen`)"
        );
    }
    Ok(if errors > 0 {
        Outcome::Problems
    } else {
        Outcome::Success
    })
}

const INIT_CONFIG: &str = "\
# promptgate configuration. See docs/formats.md for every key.
version: 1
# Where prompts live, relative to this file.
prompts_dir: prompts
# Providers a version's `model.provider` can name. Keys come from the environment:
# only the variable's *name* is written here.
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
";

const INIT_PROMPT: &str = "\
# A prompt version. Once registered (`promptgate add hello`) this file never changes:
# write v2.yaml for the next version.
description: Greets a user by name
model:
  provider: openai
  name: gpt-4o-mini
  temperature: 0.2
  max_tokens: 200
variables:
  name: { type: string, description: Who to greet }
messages:
  - role: system
    content: You are a friendly assistant. Answer in one sentence.
  - role: user
    content: \"Say hello to {{ name }}.\"
";

fn init(pr: Printer, dir: &Path, actor: &str) -> Result<Outcome> {
    let config = dir.join(crate::config::FILE_NAME);
    if config.exists() {
        return Err(Error::usage(format!(
            "`{}` already exists: this is a promptgate repository",
            config.display()
        )));
    }
    fsutil::create_dir_all(&dir.join("prompts/hello"))?;
    fsutil::create_dir_all(&dir.join("datasets"))?;
    fsutil::write_atomic(&config, INIT_CONFIG.as_bytes())?;
    fsutil::write_atomic(&dir.join("prompts/hello/v1.yaml"), INIT_PROMPT.as_bytes())?;
    fsutil::write_atomic(
        &dir.join("datasets/hello.jsonl"),
        b"{\"id\": \"ada\", \"name\": \"Ada\", \"expected\": \"Ada\"}\n{\"id\": \"grace\", \"name\": \"Grace\", \"expected\": \"Grace\"}\n",
    )?;
    let gitignore = dir.join(".gitignore");
    let mut ignore = std::fs::read_to_string(&gitignore).unwrap_or_default();
    for line in [".promptgate/", &format!("{}*", fsutil::TEMP_PREFIX)] {
        if !ignore.lines().any(|l| l.trim() == line) {
            if !ignore.is_empty() && !ignore.ends_with('\n') {
                ignore.push('\n');
            }
            ignore.push_str(line);
            ignore.push('\n');
        }
    }
    fsutil::write_atomic(&gitignore, ignore.as_bytes())?;
    let repo = Repo::open(dir)?;
    let reg = repo.add("hello", &[], actor)?;
    repo.move_label(&LabelMove::set(
        "hello",
        "production",
        reg[0].id.clone(),
        Expect::Absent,
        actor,
        "initial version (promptgate init)",
    ))?;
    out!(pr, "created a promptgate repository in {}", dir.display());
    out!(
        pr,
        "  prompts/hello/v1.yaml  registered as hello@{}, labelled production",
        reg[0].id
    );
    out!(
        pr,
        "\nnext: promptgate -C {} render hello@production --var name=Ada",
        dir.display()
    );
    Ok(Outcome::Success)
}
