//! `promptgate.yaml`: the repository's configuration — providers and defaults — in one place,
//! with unknown keys rejected. Defaults live in [`defaults`] and nowhere else.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Diagnostic, Result};

/// The configuration file's name, which also marks a repository's root.
pub const FILE_NAME: &str = "promptgate.yaml";

/// The default values of every setting, documented in `docs/formats.md`.
pub mod defaults {
    /// Folder of prompts, relative to the repository root.
    pub const PROMPTS_DIR: &str = "prompts";
    /// Folder of runs, caches and locks (git-ignored).
    pub const STATE_DIR: &str = ".promptgate";
    /// In-flight requests per provider.
    pub const CONCURRENCY: usize = 8;
    /// Seconds before a provider call times out.
    pub const TIMEOUT_SECS: u64 = 60;
    /// Base delay of the exponential backoff between retries, in milliseconds.
    pub const BACKOFF_BASE_MS: u64 = 500;
    /// Longest wait between two retries, in milliseconds.
    pub const BACKOFF_MAX_MS: u64 = 30_000;
    /// Longest dataset line (a row), in bytes.
    pub const DATASET_LINE_BYTES: usize = 16 << 20;
    /// Event streams `serve` keeps open at once.
    pub const MAX_STREAMS: usize = 1_000;
    /// Retries of a transient failure before the call is an error.
    pub const MAX_RETRIES: u32 = 4;
    /// Largest share of errored calls a gate's runs may have and still count (fail closed past
    /// it). An `eval` tolerates none unless the suite sets `gate.error_budget`.
    pub const ERROR_BUDGET: f64 = 0.05;
    /// When the first this-many calls of a run all fail with the same fatal error (a wrong
    /// key, an unknown model), no more are made.
    pub const ABORT_AFTER_FATAL: usize = 5;
    /// Output tokens a call is assumed to use when it sets no `max_tokens` (what the
    /// tokens-per-minute limiter reserves before the answer says).
    pub const ESTIMATED_OUTPUT_TOKENS: u64 = 256;
    /// Tokens a judge's call is assumed to use, prompt and verdict.
    pub const JUDGE_ESTIMATED_TOKENS: u64 = 512;
    /// The most calls a plan may have for its answers to be kept as its answer snapshot (what
    /// makes an unchanged warm run fast). Beyond, holding every answer until the run ends
    /// costs more memory than the warm run gains, and the run's records stream instead.
    pub const ANSWER_SNAPSHOT_MAX_CALLS: usize = 100_000;
}

/// The parsed `promptgate.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version of this file; currently 1.
    #[serde(default = "one")]
    pub version: u32,
    /// Where prompts live (default `prompts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts_dir: Option<String>,
    /// Providers by name; a version's `model.provider` names one of these.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Where else spans go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
    /// The embeddings endpoint `similar` checks use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Embeddings>,
    /// `promptgate serve`: who may read and write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<Serve>,
    /// The audit log's trusted signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    /// Bounds on inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// How canaries are rolled out and guarded (`serve`'s rollout guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::Policy>,
}

/// `audit.keys[]` in `promptgate.yaml`: a public key trusted to sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The name signatures give (`ci`, `alice`, `serve-eu`).
    pub id: String,
    /// Base64 of the 32-byte Ed25519 public key (what `promptgate keygen` prints).
    pub public_key: String,
    /// From this instant (RFC 3339) on, entries signed by this key are refused; those signed
    /// before stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_from: Option<String>,
}

/// `audit:` in `promptgate.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Every new entry must be signed by a trusted key, and `check` refuses unsigned ones.
    #[serde(default)]
    pub require_signatures: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpec>,
}

/// `limits:` — bounds on what promptgate reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Longest dataset line (a JSONL row, a CSV line), in bytes (default 16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_line_bytes: Option<usize>,
}

/// `serve:` — the HTTP registry's access rules. Token secrets are never stored here: a token
/// names the environment variable that holds it, or lives in `tokens_file` (outside the repo).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// Address to listen on when `--listen` is not given (default 127.0.0.1:7070).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Let requests without a token read (GET) prompts; writes always need a token.
    #[serde(default)]
    pub open_reads: bool,
    /// Tokens whose secrets are in environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenSpec>,
    /// A YAML file (a list of tokens with `token:` holding the secret), relative to the
    /// repository root or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<String>,
    /// Most event streams (`/v1/events`) open at once; more get 503 (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<usize>,
}

/// One bearer token's grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Who the token is, for the audit log (`token:<name>`) and never the secret itself.
    pub name: String,
    /// The environment variable holding the secret (in `promptgate.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The secret itself (only in `tokens_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `read`, or `write` (which includes read).
    pub scope: Scope,
    /// Prompts the token may touch (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// Labels a write token may move (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    /// Send production signals (`POST /v1/traces`, `/v1/feedback`), and read.
    Ingest,
    /// Move labels and register versions, and everything below.
    Write,
}

/// `embeddings:` — an OpenAI-compatible `/v1/embeddings` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embeddings {
    /// A provider of kind `openai` in `providers:` (its base URL, key, limits and retries).
    pub provider: String,
    /// The embedding model, e.g. `text-embedding-3-small`.
    pub model: String,
}

/// Span export settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// An OTLP/HTTP endpoint (spans are POSTed as JSON to `{endpoint}/v1/traces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

fn one() -> u32 {
    1
}

/// How to reach one provider. API keys are never stored here: only the *name* of the
/// environment variable that holds the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire protocol: `openai` (Chat Completions), `anthropic` (Messages) or `replay`.
    pub kind: ProviderKind,
    /// e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key, e.g. `OPENAI_API_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Base of the exponential backoff, in milliseconds (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_base_ms: Option<u64>,
    /// Longest backoff, in milliseconds (default 30,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<u64>,
    /// USD per 1,000 input tokens, for cost reporting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_input_per_1k: Option<f64>,
    /// USD per 1,000 output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_output_per_1k: Option<f64>,
    /// For `replay`: the cassette file, relative to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassette: Option<String>,
    /// Stop making calls when the first this-many all fail with the same fatal error (default
    /// 5; 0 never stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_after_fatal: Option<usize>,
    /// Which Chat Completions field carries `max_tokens` (default: by model family —
    /// `max_completion_tokens` for o-series and gpt-5 models, `max_tokens` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensField>,
}

/// The request field for the output-token limit (OpenAI-compatible endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Replay,
}

fn keys_of(path: &str) -> &'static [&'static str] {
    match path {
        "" => &[
            "version",
            "prompts_dir",
            "providers",
            "telemetry",
            "embeddings",
            "serve",
            "audit",
            "limits",
            "rollout",
        ],
        "rollout" => &[
            "steps",
            "min_step_secs",
            "min_samples",
            "max_step_secs",
            "alpha",
            "on_regression",
            "metrics",
        ],
        p if p.starts_with("rollout.metrics") => &["metric", "worse", "tolerance", "tolerance_pct"],
        "limits" => &["dataset_line_bytes"],
        "embeddings" => &["provider", "model"],
        "audit" => &["require_signatures", "keys"],
        p if p.starts_with("audit.keys") => &["id", "public_key", "retired_from"],
        "serve" => &[
            "listen",
            "open_reads",
            "tokens",
            "tokens_file",
            "max_streams",
        ],
        p if p.starts_with("serve.tokens") => {
            &["name", "env", "token", "scope", "prompts", "labels"]
        }
        _ => &[],
    }
}

impl Config {
    /// Parse `promptgate.yaml` text.
    pub fn parse(file: &Path, text: &str) -> Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config {
                version: 1,
                ..Config::default()
            });
        }
        crate::yaml::bounded(file, text)?;
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            crate::artifact::yaml_error_diagnostic(file, text, &path, err.inner(), keys_of)
        })?;
        if cfg.version != 1 {
            return Err(Diagnostic::error(format!(
                "unsupported `version: {}` in {}",
                cfg.version,
                file.display()
            ))
            .hint("this promptgate understands `version: 1`; upgrade promptgate")
            .into());
        }
        if let Some(policy) = &cfg.rollout {
            crate::rollout::check(policy, |d, path| {
                let line = crate::artifact::locate::locate(text, &path);
                d.at(line.map(|(l, c)| crate::error::Location::in_text(file, text, l, c)))
            })?;
        }
        Ok(cfg)
    }

    pub fn prompts_dir(&self) -> &str {
        self.prompts_dir.as_deref().unwrap_or(defaults::PROMPTS_DIR)
    }
}
