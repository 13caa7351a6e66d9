//! The runtime client: a service asks for "the `production` version of `support_agent`" and
//! gets it from memory. Entries are refreshed in the background (every TTL, with `ETag`s) and
//! invalidated by the server's event stream; on any error the client keeps serving what it has,
//! and at start-up with the server down it loads the last-known-good copy from disk.
//!
//! ```no_run
//! # async fn demo() -> promptgate::Result<()> {
//! use promptgate::client::Client;
//! let client = Client::builder("http://127.0.0.1:7070")
//!     .cache_dir(".promptgate/client")
//!     .build()?;
//! let p = client.get("support_agent", "production", Some("user-42")).await?;
//! let vars = serde_json::json!({"question": "Where is my invoice?"});
//! let request = p.render(vars.as_object().unwrap())?;
//! for (k, v) in p.span_attributes() { /* span.set_attribute(k, v) */ }
//! # let _ = request; Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use promptgate_core::artifact::Artifact;
use promptgate_core::error::{Diagnostic, Error, ErrorKind, Result};
use promptgate_core::render::Request;
use promptgate_registry::Target;
use promptgate_registry::bundle::Bundle;

/// Default time between background refreshes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Default limit on a cold fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// One version of a prompt as a label serves it to a caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    pub name: String,
    pub label: String,
    pub version_id: String,
    pub hash: String,
    pub artifact: Artifact,
}

impl Resolved {
    /// Render locally, with the same code as `promptgate render`.
    pub fn render(&self, variables: &Map<String, Value>) -> Result<Request> {
        promptgate_core::render::render_variables(
            &self.artifact,
            &self.name,
            &self.version_id,
            variables,
        )
    }

    /// The attributes to put on the caller's own spans.
    pub fn span_attributes(&self) -> [(&'static str, &str); 3] {
        [
            ("prompt.name", self.name.as_str()),
            ("prompt.version_id", self.version_id.as_str()),
            ("prompt.label", self.label.as_str()),
        ]
    }
}

/// A label's state: its target and every version it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LabelState {
    target: Target,
    /// The `ETag` of the label's primary fetch, for conditional refreshes.
    etag: Option<String>,
    versions: HashMap<String, Arc<Resolved>>,
}

type Entries = HashMap<String, HashMap<String, Arc<LabelState>>>;

struct Inner {
    base: Option<String>,
    token: Option<String>,
    http: reqwest::Client,
    entries: RwLock<Entries>,
    ttl: Duration,
    disk: Option<PathBuf>,
    /// The disk writer's queue: last-known-good copies are written (and fsynced) by a task of
    /// their own on the blocking pool, in order, never on a caller's request path.
    disk_tx: Option<tokio::sync::mpsc::UnboundedSender<DiskOp>>,
}

/// What the disk writer does: write a copy, remove one (gone from the server), or report that
/// everything before is done.
enum DiskOp {
    Write(PathBuf, Vec<u8>),
    Remove(PathBuf),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Write the queued copies one after the other, each where blocking is allowed.
async fn disk_writer(mut rx: tokio::sync::mpsc::UnboundedReceiver<DiskOp>) {
    while let Some(op) = rx.recv().await {
        match op {
            DiskOp::Write(path, bytes) => {
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
                    let _ = promptgate_core::fsutil::write_atomic(&path, &bytes);
                })
                .await;
            }
            DiskOp::Remove(path) => {
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            }
            DiskOp::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The client. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Settings for [`Client`].
pub struct Builder {
    base: String,
    token: Option<String>,
    ttl: Duration,
    timeout: Duration,
    disk: Option<PathBuf>,
    push: bool,
}

impl Builder {
    /// A bearer token (read scope is enough).
    pub fn token(mut self, token: impl Into<String>) -> Builder {
        self.token = Some(token.into());
        self
    }
    /// Time between background refreshes (default 30 s).
    pub fn ttl(mut self, ttl: Duration) -> Builder {
        self.ttl = ttl;
        self
    }
    /// Limit on any one request to the server (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = timeout;
        self
    }
    /// Where last-known-good copies are kept (none by default).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.disk = Some(dir.into());
        self
    }
    /// Listen to the server's event stream for instant invalidation (default on).
    pub fn push(mut self, on: bool) -> Builder {
        self.push = on;
        self
    }

    /// Build the client and start its background tasks (call inside a tokio runtime).
    pub fn build(self) -> Result<Client> {
        // A secret in the URL would be repeated by every message that names the server.
        match reqwest::Url::parse(&self.base) {
            Ok(u) if u.username().is_empty() && u.password().is_none() => {}
            Ok(_) => {
                return Err(Error::usage(
                    "the registry URL carries credentials: give the token with `.token(…)`",
                ));
            }
            Err(e) => {
                return Err(Error::usage(format!("not a registry URL: {e}"))
                    .with_hint("e.g. `http://127.0.0.1:7070`"));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| Error::usage(format!("cannot build the HTTP client: {e}")))?;
        let client = Client {
            inner: Arc::new(Inner {
                base: Some(self.base.trim_end_matches('/').to_string()),
                token: self.token,
                http,
                entries: RwLock::new(HashMap::new()),
                ttl: self.ttl,
                disk_tx: self.disk.as_ref().map(|_| {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(disk_writer(rx));
                    tx
                }),
                disk: self.disk,
            }),
        };
        let weak = Arc::downgrade(&client.inner);
        tokio::spawn(refresh_loop(weak.clone()));
        if self.push {
            tokio::spawn(event_loop(weak));
        }
        Ok(client)
    }
}

impl Client {
    pub fn builder(base_url: impl Into<String>) -> Builder {
        Builder {
            base: base_url.into(),
            token: None,
            ttl: DEFAULT_TTL,
            timeout: DEFAULT_TIMEOUT,
            disk: None,
            push: true,
        }
    }

    /// A client over a bundle file: every label of every prompt, no server, no refresh.
    pub fn from_bundle(path: &Path) -> Result<Client> {
        let b = Bundle::load(path)?;
        let mut entries: Entries = HashMap::new();
        for (name, p) in b.prompts {
            for (label, target) in p.labels {
                let mut versions = HashMap::new();
                for id in target.versions() {
                    if let Some(v) = p.versions.iter().find(|v| v.version_id == id) {
                        versions.insert(
                            id.to_string(),
                            Arc::new(Resolved {
                                name: name.clone(),
                                label: label.clone(),
                                version_id: v.version_id.clone(),
                                hash: v.hash.clone(),
                                artifact: v.artifact.clone(),
                            }),
                        );
                    }
                }
                entries.entry(name.clone()).or_default().insert(
                    label,
                    Arc::new(LabelState {
                        target,
                        etag: None,
                        versions,
                    }),
                );
            }
        }
        Ok(Client {
            inner: Arc::new(Inner {
                base: None,
                token: None,
                http: reqwest::Client::new(),
                entries: RwLock::new(entries),
                ttl: DEFAULT_TTL,
                disk: None,
                disk_tx: None,
            }),
        })
    }

    /// From memory only: `None` if this label was never fetched. Never waits on the network
    /// and allocates nothing (the result is an `Arc` clone).
    pub fn cached(
        &self,
        name: &str,
        label: &str,
        routing_key: Option<&str>,
    ) -> Option<Arc<Resolved>> {
        let entries = self.inner.entries.read().ok()?;
        let state = entries.get(name)?.get(label)?;
        let id = state.target.assign(label, routing_key);
        state.versions.get(id).cloned()
    }

    /// The version `label` of `name` serves to `routing_key` (a user or session id; `None`
    /// for a label's primary version). From memory when cached; else fetched (within the
    /// timeout), and if the server cannot be reached, the last-known-good copy on disk.
    pub async fn get(
        &self,
        name: &str,
        label: &str,
        routing_key: Option<&str>,
    ) -> Result<Arc<Resolved>> {
        if let Some(r) = self.cached(name, label, routing_key) {
            return Ok(r);
        }
        let fetched = fetch(&self.inner, name, label, None).await;
        let state = match fetched {
            Ok(Some(state)) => state,
            // Without an ETag the server cannot answer "not modified".
            Ok(None) => {
                return Err(infra(format!(
                    "`{name}@{label}`: the registry sent nothing"
                )));
            }
            // The server answered: what it said stands (a copy on disk would be stale).
            Err(e) if matches!(e.kind(), ErrorKind::Usage | ErrorKind::NotFound) => return Err(e),
            Err(e) => match load_disk(&self.inner, name, label).await {
                Some(s) => s,
                None => {
                    return Err(e.with_hint(
                        "the server is unreachable and there is no last-known-good copy on disk (set `cache_dir`)",
                    ));
                }
            },
        };
        let state = Arc::new(state);
        if let Ok(mut entries) = self.inner.entries.write() {
            entries
                .entry(name.to_string())
                .or_default()
                .insert(label.to_string(), state.clone());
        }
        let id = state.target.assign(label, routing_key);
        state.versions.get(id).cloned().ok_or_else(|| {
            Error::usage(format!(
                "`{name}@{label}` serves `{id}`, which was not fetched"
            ))
        })
    }

    /// Wait until every last-known-good copy fetched so far is on disk (before a planned
    /// shutdown, say). Copies are written in the background, off the request path.
    pub async fn flush_disk(&self) {
        if let Some(tx) = &self.inner.disk_tx {
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx.send(DiskOp::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Fetch every cached label again now (what the background refresh does every TTL).
    pub async fn refresh(&self) {
        refresh_all(&self.inner).await;
    }
}

fn infra(msg: String) -> Error {
    Error::new(ErrorKind::Infrastructure, Diagnostic::error(msg))
}

fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Deserialize)]
struct VersionBody {
    name: String,
    version_id: String,
    hash: String,
    #[serde(default)]
    split: Option<Target>,
    artifact: Artifact,
}

async fn get_json(
    inner: &Inner,
    path: &str,
    etag: Option<&str>,
) -> Result<Option<(VersionBody, Option<String>)>> {
    let base = inner.base.as_deref().unwrap_or_default();
    let mut rb = inner.http.get(format!("{base}{path}"));
    if let Some(t) = &inner.token {
        rb = rb.bearer_auth(t);
    }
    if let Some(e) = etag {
        rb = rb.header(reqwest::header::IF_NONE_MATCH, e);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| infra(format!("cannot reach the registry at {base}: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    let etag = resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp
        .text()
        .await
        .map_err(|e| infra(format!("the registry's answer was cut: {e}")))?;
    if status == reqwest::StatusCode::NOT_FOUND {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(Error::not_found(msg));
    }
    if !status.is_success() {
        return Err(infra(format!(
            "the registry answered {status}: {}",
            text.trim()
        )));
    }
    let body: VersionBody = serde_json::from_str(&text)
        .map_err(|e| infra(format!("the registry's answer is not a version: {e}")))?;
    // The artifact must be what its hash says.
    if body.artifact.content_hash().ok().as_deref() != Some(body.hash.as_str()) {
        return Err(infra(format!(
            "`{}@{}` does not match its hash",
            body.name, body.version_id
        )));
    }
    Ok(Some((body, etag)))
}

/// Fetch a label (and, for a split, each of its versions). `Ok(None)`: not modified.
async fn fetch(
    inner: &Inner,
    name: &str,
    label: &str,
    etag: Option<&str>,
) -> Result<Option<LabelState>> {
    let path = format!("/v1/prompts/{}?label={}", url_part(name), url_part(label));
    let Some((body, etag)) = get_json(inner, &path, etag).await? else {
        return Ok(None);
    };
    let target = body
        .split
        .clone()
        .unwrap_or_else(|| Target::One(body.version_id.clone()));
    let mut versions = HashMap::new();
    let make = |b: VersionBody| {
        Arc::new(Resolved {
            name: name.to_string(),
            label: label.to_string(),
            version_id: b.version_id,
            hash: b.hash,
            artifact: b.artifact,
        })
    };
    let first = body.version_id.clone();
    versions.insert(first.clone(), make(body));
    for id in target.versions() {
        if id == first {
            continue;
        }
        let path = format!("/v1/prompts/{}/versions/{}", url_part(name), url_part(id));
        if let Some((b, _)) = get_json(inner, &path, None).await? {
            versions.insert(id.to_string(), make(b));
        }
    }
    let state = LabelState {
        target,
        etag,
        versions,
    };
    save_disk(inner, name, label, &state);
    Ok(Some(state))
}

fn disk_path(inner: &Inner, name: &str, label: &str) -> Option<PathBuf> {
    let dir = inner.disk.as_ref()?;
    Some(dir.join(format!("{}@{}.json", url_part(name), url_part(label))))
}

/// Queue the last-known-good copy of a label for the disk writer.
fn save_disk(inner: &Inner, name: &str, label: &str, state: &LabelState) {
    if let (Some(p), Some(tx)) = (disk_path(inner, name, label), &inner.disk_tx)
        && let Ok(text) = serde_json::to_vec(state)
    {
        let _ = tx.send(DiskOp::Write(p, text));
    }
}

/// The last-known-good copy of a label, read and verified on the blocking pool.
async fn load_disk(inner: &Inner, name: &str, label: &str) -> Option<LabelState> {
    let p = disk_path(inner, name, label)?;
    tokio::task::spawn_blocking(move || {
        let text = std::fs::read(p).ok()?;
        let state: LabelState = serde_json::from_slice(&text).ok()?;
        // A copy whose artifacts do not match their hashes is not good.
        state
            .versions
            .values()
            .all(|r| r.artifact.content_hash().ok().as_deref() == Some(r.hash.as_str()))
            .then_some(state)
    })
    .await
    .ok()
    .flatten()
}

/// Refetch every cached label (conditionally); keep what we have on any error.
async fn refresh_all(inner: &Inner) {
    let keys: Vec<(String, String, Option<String>)> = match inner.entries.read() {
        Ok(e) => e
            .iter()
            .flat_map(|(n, ls)| {
                ls.iter()
                    .map(|(l, s)| (n.clone(), l.clone(), s.etag.clone()))
            })
            .collect(),
        Err(_) => return,
    };
    for (name, label, etag) in keys {
        refresh_one(inner, &name, &label, etag.as_deref()).await;
    }
}

/// Refetch one label; keep what we have on any error — except the server saying the prompt or
/// label is gone: then it stops being served, from memory and from disk, instead of forever.
async fn refresh_one(inner: &Inner, name: &str, label: &str, etag: Option<&str>) {
    match fetch(inner, name, label, etag).await {
        Ok(Some(state)) => {
            if let Ok(mut entries) = inner.entries.write() {
                entries
                    .entry(name.to_string())
                    .or_default()
                    .insert(label.to_string(), Arc::new(state));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Ok(mut entries) = inner.entries.write()
                && let Some(labels) = entries.get_mut(name)
            {
                labels.remove(label);
                if labels.is_empty() {
                    entries.remove(name);
                }
            }
            if let (Some(p), Some(tx)) = (disk_path(inner, name, label), &inner.disk_tx) {
                let _ = tx.send(DiskOp::Remove(p));
            }
        }
        _ => {}
    }
}

async fn refresh_loop(inner: std::sync::Weak<Inner>) {
    loop {
        let ttl = match inner.upgrade() {
            Some(i) => i.ttl,
            None => return,
        };
        tokio::time::sleep(ttl).await;
        let Some(i) = inner.upgrade() else { return };
        refresh_all(&i).await;
    }
}

/// Follow `/v1/events`; a label event for a cached label refetches it at once, a `reset`
/// refetches everything. Reconnects with `Last-Event-ID` after a break.
async fn event_loop(inner: std::sync::Weak<Inner>) {
    let mut last_id: Option<String> = None;
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(i) = inner.upgrade() else { return };
        let base = i.base.clone().unwrap_or_default();
        // A separate client: the event stream must not be cut by the request timeout.
        let http = reqwest::Client::new();
        let mut rb = http
            .get(format!("{base}/v1/events"))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = &i.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(id) = &last_id {
            rb = rb.header("Last-Event-ID", id);
        }
        drop(i);
        if let Ok(mut resp) = rb.send().await
            && resp.status().is_success()
        {
            delay = Duration::from_millis(100);
            // Anything missed while disconnected.
            if last_id.is_some()
                && let Some(i) = inner.upgrade()
            {
                refresh_all(&i).await;
            }
            let mut buf = String::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let (mut kind, mut data) = ("message".to_string(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            kind = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            last_id = Some(v.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    let Some(i) = inner.upgrade() else { return };
                    match kind.as_str() {
                        "label" => {
                            let v: Value = serde_json::from_str(&data).unwrap_or_default();
                            let (Some(p), Some(l)) = (v["prompt"].as_str(), v["label"].as_str())
                            else {
                                continue;
                            };
                            let cached = i
                                .entries
                                .read()
                                .map(|e| e.get(p).is_some_and(|m| m.contains_key(l)))
                                .unwrap_or(false);
                            if cached {
                                refresh_one(&i, p, l, None).await;
                            }
                        }
                        "reset" => refresh_all(&i).await,
                        _ => {}
                    }
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_or_none_at_all_is_refused_at_build() {
        let e = Client::builder("http://ci:s3cret-pw@127.0.0.1:7070")
            .build()
            .err()
            .expect("refused")
            .to_string();
        assert!(!e.contains("s3cret-pw") && e.contains(".token("), "{e}");
        let e = Client::builder("127.0.0.1:7070")
            .build()
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("not a registry URL"), "{e}");
    }
}
