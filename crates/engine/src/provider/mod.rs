//! Providers: the [`Provider`] trait and its OpenAI-compatible, Anthropic and replay clients;
//! explicit classification of failures into transient and fatal; the content-addressed
//! response cache; and rate limiting.

pub mod anthropic;
pub mod cache;
pub mod limiter;
pub mod openai;
pub mod replay;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use promptgate_core::artifact::canonical;
use promptgate_core::config::{ProviderConfig, ProviderKind, defaults};
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result, did_you_mean, list_names};
use promptgate_core::render::Request;

/// A boxed future, so providers can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use promptgate_core::call::{CallError, Completion, ErrorClass, ToolCall};

/// Classify a transport error from reqwest. The URL keeps only its scheme, host and port
/// (credentials, path and query may carry secrets); a timeout names its limit and the
/// setting that raises it.
pub fn call_error(e: &reqwest::Error, timeout: Duration) -> CallError {
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_decode() {
        ErrorClass::Malformed
    } else {
        ErrorClass::Connection
    };
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), &origin(url));
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    if class == ErrorClass::Timeout {
        msg = format!(
            "no answer within {} s ({msg}); raise `timeout_secs` of the provider in promptgate.yaml",
            timeout.as_secs_f64()
        );
    }
    CallError::new(class, msg)
}

/// `scheme://host:port` of a URL: where a request went, without what may be secret in it.
pub fn origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// What identifies one call: the request's content hash, the sample index and the case.
#[derive(Debug, Clone)]
pub struct CallKey {
    pub request_hash: ContentHash,
    pub sample: u32,
    pub case_id: String,
}

/// A model provider.
pub trait Provider: Send + Sync {
    /// The name in `promptgate.yaml`.
    fn name(&self) -> &str;
    /// The OpenTelemetry `gen_ai.system` value (`openai`, `anthropic`, …).
    fn system(&self) -> &str;
    /// What distinguishes this endpoint's answers in the cache (kind and base URL; never a key).
    fn endpoint(&self) -> String;
    /// The OpenTelemetry `gen_ai.operation.name` of its calls (`chat`, `embeddings`).
    fn operation(&self) -> &'static str {
        "chat"
    }
    /// Make one call.
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        key: &'a CallKey,
    ) -> BoxFuture<'a, Result<Completion, CallError>>;
}

/// An API key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The fields of a [`Request`] that say where it comes from rather than what the model is
/// asked: they are left out of its content hash, so two versions (or two providers of one
/// endpoint) that render the same request share answers.
pub const IDENTITY_FIELDS: [&str; 3] = ["prompt", "provider", "version_id"];

/// A SHA-256 content hash (a request's): 32 bytes, written everywhere as 64 lowercase hex
/// digits. Held as bytes: a plan of 1M calls holds one per case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        use sha2::Digest;
        ContentHash(sha2::Sha256::digest(bytes).into())
    }

    /// From 64 hex digits.
    pub fn parse(hex: &str) -> Option<ContentHash> {
        let b = hex.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
        }
        Some(ContentHash(out))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&canonical::hex(&self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ContentHash::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("a content hash is 64 hexadecimal digits"))
    }
}

/// The content hash of a request as the model sees it: the SHA-256 of the canonical JSON
/// (`docs/formats.md`) of the request's serde serialization without its
/// [`IDENTITY_FIELDS`] — every other field, including any added later, is part of it.
pub fn request_hash(req: &Request) -> ContentHash {
    let Ok(mut v) = serde_json::to_value(req) else {
        // Unreachable for these types (string keys, JSON values); never one hash for all.
        return ContentHash::of(format!("{req:?}").as_bytes());
    };
    if let serde_json::Value::Object(m) = &mut v {
        for f in IDENTITY_FIELDS {
            m.remove(f);
        }
    }
    // A value with no canonical form (a number JSON cannot carry) still gets a hash of its own.
    match canonical::to_canonical_string(&v) {
        Ok(text) => ContentHash::of(text.as_bytes()),
        Err(_) => ContentHash::of(v.to_string().as_bytes()),
    }
}

/// `Retry-After` (seconds) or `retry-after-ms`, whichever is present.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// Settings for building a provider from its configuration.
pub struct Settings<'a> {
    pub name: &'a str,
    pub config: &'a ProviderConfig,
    pub repo_root: &'a Path,
}

/// The effective timeout of a provider.
pub fn timeout(config: &ProviderConfig) -> Duration {
    Duration::from_secs_f64(
        config
            .timeout_secs
            .unwrap_or(defaults::TIMEOUT_SECS as f64)
            .max(0.001),
    )
}

/// Build the HTTP client shared by a provider's calls.
pub fn http_client(config: &ProviderConfig) -> Result<reqwest::Client> {
    let concurrency = config.concurrency.unwrap_or(defaults::CONCURRENCY);
    reqwest::Client::builder()
        .timeout(timeout(config))
        .pool_max_idle_per_host(concurrency.max(1))
        .user_agent(concat!("promptgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Infrastructure,
                Diagnostic::error(format!("cannot build the HTTP client: {e}")),
            )
        })
}

/// What an HTTP provider client holds: its name, base URL, the parsed URL it posts to, the
/// key (from the environment) and the shared HTTP client.
pub struct HttpEndpoint {
    pub name: String,
    pub base_url: String,
    pub url: reqwest::Url,
    pub key: Option<Secret>,
    pub http: reqwest::Client,
    /// Each call's time limit (for messages).
    pub timeout: Duration,
}

impl HttpEndpoint {
    /// `Authorization: Bearer KEY` when a key is configured (OpenAI-style endpoints).
    pub fn bearer(&self) -> Vec<(&'static str, String)> {
        self.key
            .iter()
            .map(|k| ("authorization", format!("Bearer {}", k.expose())))
            .collect()
    }

    /// `path` is appended to the configured base URL (or `default_base`).
    pub fn new(
        name: &str,
        config: &ProviderConfig,
        default_base: &str,
        path: &str,
    ) -> Result<HttpEndpoint> {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| default_base.to_string())
            .trim_end_matches('/')
            .to_string();
        let key = api_key(name, config)?;
        Ok(HttpEndpoint {
            name: name.to_string(),
            url: endpoint_url(name, &base_url, path)?,
            base_url,
            key,
            http: http_client(config)?,
            timeout: timeout(config),
        })
    }
}

/// `{base_url}/{path}` as a URL, or a configuration error naming the provider.
pub fn endpoint_url(name: &str, base_url: &str, path: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(&format!("{base_url}/{path}")).map_err(|e| {
        Error::usage(format!(
            "provider `{name}`: `base_url: {base_url}` is not a valid URL ({e})"
        ))
        .with_hint("e.g. `base_url: https://api.openai.com/v1` or `http://localhost:11434/v1`")
    })
}

/// Read the API key from the environment variable the configuration names.
pub fn api_key(name: &str, config: &ProviderConfig) -> Result<Option<Secret>> {
    let Some(var) = &config.api_key_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => {
            // Whatever a server echoes of it is redacted from here on.
            promptgate_core::redact::register(&v);
            Ok(Some(Secret(v)))
        }
        _ => Err(Error::usage(format!("provider `{name}` needs an API key in `${var}`, which is not set"))
            .with_hint(format!("export {var}=… (keys come from the environment, never from files), or point the suite at a `replay` provider"))),
    }
}

/// The provider `name` of a repository's `promptgate.yaml`, built, with its configuration.
pub fn of_repo(
    repo: &promptgate_registry::Repo,
    name: &str,
) -> Result<(Arc<dyn Provider>, ProviderConfig)> {
    let config = lookup(&repo.config.providers, name)?.clone();
    let provider = build(Settings {
        name,
        config: &config,
        repo_root: &repo.root,
    })?;
    Ok((provider, config))
}

/// Build the provider called `name` from the repository's configuration.
pub fn build(settings: Settings<'_>) -> Result<Arc<dyn Provider>> {
    let Settings {
        name,
        config,
        repo_root,
    } = settings;
    Ok(match config.kind {
        ProviderKind::Openai => Arc::new(openai::OpenAi::new(name, config)?),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(name, config)?),
        ProviderKind::Replay => {
            let Some(cassette) = &config.cassette else {
                return Err(Error::usage(format!(
                    "replay provider `{name}` needs `cassette:` (a file or a run folder)"
                )));
            };
            Arc::new(replay::Replay::load(name, &repo_root.join(cassette))?)
        }
    })
}

/// Look a provider up by name, with "did you mean".
pub fn lookup<'a>(
    providers: &'a std::collections::BTreeMap<String, ProviderConfig>,
    name: &str,
) -> Result<&'a ProviderConfig> {
    providers.get(name).ok_or_else(|| {
        let names: Vec<&str> = providers.keys().map(String::as_str).collect();
        let mut d = Diagnostic::error(format!("no provider named `{name}` in promptgate.yaml"))
            .note(format!("providers: {}", list_names(&names)));
        if let Some(s) = did_you_mean(name, names.iter().copied()) {
            d = d.hint(format!("did you mean `{s}`?"));
        } else {
            d = d.hint(format!("add it under `providers:` in promptgate.yaml, e.g. `{name}: {{ kind: openai, base_url: …, api_key_env: … }}`"));
        }
        Error::new(ErrorKind::Usage, d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_hash_is_64_hex_digits_both_ways() {
        let h = ContentHash::of(b"abc");
        let hex = h.to_string();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ContentHash::parse(&hex), Some(h));
        assert_eq!(ContentHash::parse(&hex.to_uppercase()), Some(h));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), h);
        for bad in [
            "",
            "ab",
            &hex[..63],
            &format!("{hex}0"),
            &hex.replace('b', "g"),
        ] {
            assert_eq!(ContentHash::parse(bad), None, "{bad}");
            assert!(serde_json::from_str::<ContentHash>(&format!("\"{bad}\"")).is_err());
        }
    }
    use promptgate_core::render::{ChatMessage, ResponseFormat, ToolSpec};
    use serde_json::json;

    #[test]
    fn request_hash_equals_the_generic_canonical_hash() {
        let mut req = Request {
            prompt: "p".into(),
            version_id: "v1-abc".into(),
            provider: "openai".into(),
            model: "m\"odel".into(),
            params: [
                ("temperature".to_string(), json!(0.5)),
                ("max_tokens".to_string(), json!(10)),
            ]
            .into(),
            messages: vec![
                ChatMessage {
                    role: "system".into(),
                    content: "Be \\ brief\n".into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: "héllo \u{1}".into(),
                },
            ],
            tools: vec![],
            response_format: None,
        };
        let generic = |r: &Request| {
            canonical::content_hash(&json!({
                "model": r.model, "params": r.params, "messages": r.messages,
                "tools": r.tools, "response_format": r.response_format,
            }))
            .unwrap()
        };
        assert_eq!(request_hash(&req).to_string(), generic(&req));
        req.tools = vec![
            ToolSpec {
                name: "a".into(),
                description: Some("d".into()),
                parameters: json!({"type": "object", "b": [1, 2.5]}),
            },
            ToolSpec {
                name: "b".into(),
                description: None,
                parameters: json!({"type": "object"}),
            },
        ];
        req.response_format = Some(ResponseFormat {
            kind: "json_schema".into(),
            name: "output".into(),
            schema: json!({"z": 1, "a": null}),
            strict: true,
        });
        assert_eq!(request_hash(&req).to_string(), generic(&req));
        // Name and version are not part of it.
        let mut other = req.clone();
        other.prompt = "q".into();
        other.version_id = "v9".into();
        assert_eq!(request_hash(&req), request_hash(&other));
    }

    /// Every field of a request but its identity changes the cache key; the identity does not.
    /// The destructuring below stops compiling when a field is added: decide then whether it
    /// is identity (add it to `IDENTITY_FIELDS`) or content (nothing to do: it is hashed).
    #[test]
    fn every_field_of_a_request_but_its_identity_enters_the_hash() {
        let req = Request {
            prompt: "p".into(),
            version_id: "v1-abc".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            params: [("temperature".to_string(), json!(0.5))].into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            tools: vec![ToolSpec {
                name: "lookup".into(),
                description: Some("d".into()),
                parameters: json!({"type": "object"}),
            }],
            response_format: Some(ResponseFormat {
                kind: "json_schema".into(),
                name: "output".into(),
                schema: json!({"type": "object"}),
                strict: true,
            }),
        };
        let Request {
            prompt: _,
            version_id: _,
            provider: _,
            model: _,
            params: _,
            messages: _,
            tools: _,
            response_format: _,
        } = &req;
        use serde_json::Value;
        fn changed(v: &Value) -> Value {
            match v {
                Value::String(s) => Value::String(format!("{s}x")),
                Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) + 1.0),
                Value::Bool(b) => Value::Bool(!b),
                Value::Array(a) => {
                    let mut a = a.clone();
                    a.push(a.last().cloned().unwrap_or(Value::Null));
                    Value::Array(a)
                }
                Value::Object(o) => {
                    let mut o = o.clone();
                    if let Some((k, first)) = o.iter().next().map(|(k, v)| (k.clone(), v.clone())) {
                        o.insert(k, changed(&first));
                    }
                    Value::Object(o)
                }
                Value::Null => json!({}),
            }
        }
        let full = serde_json::to_value(&req).unwrap();
        let fields = full.as_object().unwrap();
        assert_eq!(fields.len(), 8, "every field is serialized: {fields:?}");
        let hash = request_hash(&req);
        for (k, v) in fields {
            let mut other = full.clone();
            other[k] = changed(v);
            let other: Request = serde_json::from_value(other)
                .unwrap_or_else(|e| panic!("`{k}` changed is still a request: {e}"));
            let same = request_hash(&other) == hash;
            assert_eq!(same, IDENTITY_FIELDS.contains(&k.as_str()), "field `{k}`");
        }
    }
}
