//! `promptgate serve` and `promptgate bundle`: the registry over HTTP, and frozen as one file.

use super::printer::{Printer, note, out};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Outcome;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::registry::Repo;
use crate::serve::{self, Source, auth::Auth};

#[derive(Debug, Args)]
#[command(
    after_help = "Routes (see GET /openapi.json):\n  GET  /v1/prompts                            names, labels, latest version\n  GET  /v1/prompts/{name}?label=L&key=K       the version L serves to routing key K (ETag, 304)\n  GET  /v1/prompts/{name}/versions/{id|hash}  one version\n  POST /v1/prompts/{name}/render?label=L      the exact request, variables in the body\n  PUT  /v1/prompts/{name}/labels/{label}      compare-and-swap move (If-Match, bearer token)\n  POST /v1/prompts/{name}/versions            register a version (bearer token)\n  GET  /v1/events                             server-sent events of moves and versions\n  POST /v1/traces                             OTLP/HTTP spans: per-version signals (ingest token)\n  POST /v1/feedback                           late signals by trace or version (ingest token)\n  GET  /v1/signals                            what the signals hold\n  GET  /healthz, /metrics\n\nChanges on disk (a git pull, a CLI label move) are seen through file events within
milliseconds. Tokens are configured under `serve:` in promptgate.yaml, their secrets in\nthe environment.\n\nExamples:\n  promptgate serve\n  promptgate serve --listen 0.0.0.0:7070\n  promptgate serve --bundle prompts.json"
)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one) [default: serve.listen, or 127.0.0.1:7070].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Serve a bundle file (read-only) instead of the repository.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Threads answering requests (default: one per core but one, at least one). The core left
    /// over serves the file watcher, writes and the rest of the machine, which keeps tail
    /// latency steady; on a machine of its own, one per core gives more requests per second.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// How often to scan for changes on disk where file events (inotify) are unavailable, in
    /// milliseconds; with file events, changes are seen at once and a full scan runs every 5 s.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub poll_ms: u64,
    /// How often the rollout guard looks at each active rollout, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub guard_ms: u64,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Every version and label in one JSON file with its own digest, for services that load\nprompts at start-up (`serve --bundle`, `promptgate::client::Client::from_bundle`).\n\nExample:\n  promptgate bundle --out prompts.json"
)]
pub struct BundleArgs {
    /// Where to write it.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn serve_cmd(pr: Printer, repo: Option<Repo>, args: ServeArgs) -> Result<Outcome> {
    let cfg = repo.as_ref().and_then(|r| r.config.serve.clone());
    let listen = args
        .listen
        .or_else(|| cfg.as_ref().and_then(|c| c.listen.clone()))
        .unwrap_or_else(|| "127.0.0.1:7070".into());
    let (source, auth) = match (args.bundle, repo) {
        (Some(b), repo) => {
            let auth = match &repo {
                Some(r) => Auth::from_config(cfg.as_ref(), &r.root)?,
                None => Auth::from_config(None, std::path::Path::new("."))?,
            };
            (Source::Bundle(b), auth)
        }
        (None, Some(r)) => {
            let auth = Auth::from_config(cfg.as_ref(), &r.root)?;
            (Source::Repo(Box::new(r)), auth)
        }
        (None, None) => {
            return Err(Error::usage("no prompt repository here")
                .with_hint("run inside a repository (or pass `-C DIR`), or serve a bundle with `--bundle FILE`"));
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(args.workers.unwrap_or_else(default_workers).max(1));
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| Error::io(std::path::Path::new("."), "start the runtime for", e))?;
    let open_reads = auth.open_reads;
    let has_tokens = auth.has_tokens();
    runtime.block_on(serve::serve(
        source,
        auth,
        serve::Options {
            listen,
            poll: Duration::from_millis(args.poll_ms.max(10)),
            guard_every: Duration::from_millis(args.guard_ms.max(10)),
            max_streams: cfg
                .as_ref()
                .and_then(|c| c.max_streams)
                .unwrap_or(crate::config::defaults::MAX_STREAMS),
        },
        |addr, app| {
            let n = app.snapshot().prompts.len();
            out!(pr, "promptgate serve: listening on http://{addr} ({n} prompts)");
            if !has_tokens {
                note!(pr,
                    "promptgate serve: no tokens configured: reads are open, writes are refused (see `serve:` in docs/formats.md)"
                );
            } else if open_reads {
                note!(pr, "promptgate serve: reads are open (serve.open_reads)");
            }
        },
    ))?;
    Ok(Outcome::Success)
}

/// One worker per core but one. Measured on 2 cores with the load generator on the same machine
/// (`cargo bench --bench serve`): two workers answered 15 % more requests per second but their
/// p99 at 16 connections swung between 0.5 and 2 ms, as three busy threads took turns on two
/// cores; one worker held p99 under 1 ms.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

pub fn bundle_cmd(pr: Printer, repo: &Repo, args: BundleArgs) -> Result<Outcome> {
    let b = Bundle::read(repo.store())?;
    b.write(&args.out)?;
    let versions: usize = b.prompts.values().map(|p| p.versions.len()).sum();
    out!(
        pr,
        "wrote {} ({} prompts, {versions} versions, sha256 {})",
        args.out.display(),
        b.prompts.len(),
        &b.digest[..12]
    );
    Ok(Outcome::Success)
}
