//! A small OpenAI- and Anthropic-compatible HTTP server on 127.0.0.1 (ephemeral port) for
//! tests, benchmarks and recording the example's cassette: configurable latency, injected
//! faults (429 with `Retry-After`, 500, a hang past the client's timeout, a body cut short,
//! malformed JSON), and counters of requests and peak concurrency.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use promptgate_core::artifact::canonical;

/// A fault the server can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` (or `retry-after-ms` when the delay is under a second).
    RateLimit,
    /// 500.
    ServerError,
    /// Sleep for [`Config::hang`] before answering.
    Hang,
    /// Start a 200 response and cut the connection mid-body.
    Truncate,
    /// A 200 whose body is not JSON.
    Malformed,
    /// This status (a client error such as 400, 401, 403 or 404) with a JSON error body.
    Status(u16),
}

/// What the server answers: the assistant's text, optional tool calls `(name, arguments)`.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub content: String,
    pub tool_calls: Vec<(String, Value)>,
}

/// Builds an answer from the request body (OpenAI or Anthropic shape).
pub type Responder = Arc<dyn Fn(&Value) -> Answer + Send + Sync>;

/// Answers some requests with an error of its own: given the request body and the credential
/// header it came with, a status and a body (or `None` to answer normally).
pub type Refusal = Arc<dyn Fn(&Value, Option<&str>) -> Option<(u16, String)> + Send + Sync>;

/// Server settings.
#[derive(Clone)]
pub struct Config {
    pub latency: Duration,
    /// Probability that a request gets a fault.
    pub fault_rate: f64,
    /// Faults drawn uniformly when one is injected.
    pub faults: Vec<Fault>,
    pub retry_after: Duration,
    pub hang: Duration,
    pub seed: u64,
    pub responder: Responder,
    /// Requests refused by rule (before any random fault).
    pub refuse: Option<Refusal>,
    /// Keep a log of every request ([`Stats::seen`]); benchmarks turn it off.
    pub record: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            latency: Duration::ZERO,
            fault_rate: 0.0,
            faults: vec![],
            retry_after: Duration::from_millis(50),
            hang: Duration::from_secs(5),
            seed: 7,
            responder: Arc::new(echo),
            refuse: None,
            record: true,
        }
    }
}

/// The default answer: "echo: " and the last user message.
pub fn echo(body: &Value) -> Answer {
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Answer {
        content: format!("echo: {last_user}"),
        tool_calls: vec![],
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// Hash of the request body: the same call retried has the same key.
    pub key: String,
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub authorization: Option<String>,
}

/// Counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub log: Mutex<Vec<Seen>>,
}

impl Stats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

struct Shared {
    config: Config,
    stats: Arc<Stats>,
    rng: Mutex<fastrand::Rng>,
}

/// A running stub server. Dropping it stops the server.
pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Start on its own runtime thread (usable from synchronous tests and benchmarks).
    pub fn start(config: Config) -> std::io::Result<Server> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            config,
            stats: stats.clone(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                    return;
                };
                let app = Router::new()
                    .route("/v1/chat/completions", post(chat))
                    .route("/v1/messages", post(messages))
                    .route("/v1/embeddings", post(embeddings))
                    .with_state(shared);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Ok(Server {
            addr,
            stats,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Hanging handlers may keep the runtime busy; don't wait for them.
        drop(self.thread.take());
    }
}

struct InFlight(Arc<Stats>);
impl InFlight {
    fn enter(stats: &Arc<Stats>) -> InFlight {
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats.clone())
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy)]
enum Shape {
    OpenAi,
    Anthropic,
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(s, headers, body, Shape::OpenAi).await
}

async fn messages(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(s, headers, body, Shape::Anthropic).await
}

fn token_count(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

async fn handle(s: Arc<Shared>, headers: HeaderMap, body: Bytes, shape: Shape) -> Response {
    let _guard = InFlight::enter(&s.stats);
    let key = if s.config.record {
        canonical::sha256_hex(&body)
    } else {
        String::new()
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let fault = if s.config.faults.is_empty() {
        None
    } else {
        let mut rng = s.rng.lock().unwrap_or_else(|e| e.into_inner());
        (!s.config.faults.is_empty() && rng.f64() < s.config.fault_rate)
            .then(|| s.config.faults[rng.usize(..s.config.faults.len())])
    };
    let log = |status: u16, retry_after: Option<Duration>| {
        if !s.config.record {
            return;
        }
        if let Ok(mut l) = s.stats.log.lock() {
            l.push(Seen {
                at: Instant::now(),
                key: key.clone(),
                status,
                retry_after,
                authorization: authorization.clone(),
            });
        }
    };
    if !s.config.latency.is_zero() {
        tokio::time::sleep(s.config.latency).await;
    }
    if let Some(refuse) = &s.config.refuse {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some((code, text)) = refuse(&request, authorization.as_deref()) {
            log(code, None);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, text).into_response();
        }
    }
    match fault {
        Some(Fault::RateLimit) => {
            let ra = s.config.retry_after;
            log(429, Some(ra));
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                "{\"error\":{\"message\":\"rate limited\"}}",
            )
                .into_response();
            let h = resp.headers_mut();
            if ra.subsec_millis() == 0 {
                h.insert(
                    "retry-after",
                    ra.as_secs().to_string().parse().expect("header value"),
                );
            } else {
                h.insert(
                    "retry-after-ms",
                    ra.as_millis().to_string().parse().expect("header value"),
                );
            }
            return resp;
        }
        Some(Fault::ServerError) => {
            log(500, None);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "{\"error\":{\"message\":\"boom\"}}",
            )
                .into_response();
        }
        Some(Fault::Hang) => {
            log(0, None);
            tokio::time::sleep(s.config.hang).await;
        }
        Some(Fault::Malformed) => {
            log(200, None);
            return (StatusCode::OK, "{\"choices\": [ {\"mess").into_response();
        }
        Some(Fault::Status(code)) => {
            log(code, None);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, "{\"error\":{\"message\":\"refused\"}}").into_response();
        }
        _ => {}
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = (s.config.responder)(&request);
    let prompt_tokens: u64 = request
        .get("messages")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(token_count)
                .sum()
        })
        .unwrap_or(0);
    let completion_tokens = token_count(&answer.content);
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let payload = match shape {
        Shape::OpenAi => {
            let calls: Vec<Value> = answer
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
                .collect();
            let mut message = json!({"role": "assistant", "content": answer.content});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls);
            }
            json!({
                "id": "chatcmpl-stub", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if answer.tool_calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
            })
        }
        Shape::Anthropic => {
            let mut content = vec![json!({"type": "text", "text": answer.content})];
            for (i, (name, args)) in answer.tool_calls.iter().enumerate() {
                content.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": args}));
            }
            json!({
                "id": "msg_stub", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if answer.tool_calls.is_empty() { "end_turn" } else { "tool_use" },
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            })
        }
    };
    let bytes = serde_json::to_vec(&payload).unwrap_or_default();
    if fault == Some(Fault::Truncate) {
        log(200, None);
        // Send half the body, then fail the stream: the connection is cut mid-body.
        let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let stream = futures_stream(half);
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, bytes.len().to_string())
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if fault != Some(Fault::Hang) {
        log(200, None);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

/// A body stream that yields `first`, then an error.
fn futures_stream(
    first: Bytes,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct TwoStep(Option<Bytes>, bool);
    impl futures_core::Stream for TwoStep {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if let Some(b) = self.0.take() {
                return std::task::Poll::Ready(Some(Ok(b)));
            }
            if !self.1 {
                self.1 = true;
                return std::task::Poll::Ready(Some(Err(std::io::Error::other("cut"))));
            }
            std::task::Poll::Ready(None)
        }
    }
    TwoStep(Some(first), false)
}

/// `/v1/embeddings`: a deterministic bag-of-words embedding (64 dimensions), so texts that
/// share words are similar.
async fn embeddings(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let _guard = InFlight::enter(&s.stats);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "{\"error\":{\"message\":\"input required\"}}",
            )
                .into_response();
        }
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": bag_of_words(t)}))
        .collect();
    let tokens: u64 = inputs.iter().map(|t| token_count(t)).sum();
    (StatusCode::OK, axum::Json(json!({"object": "list", "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))).into_response()
}

fn bag_of_words(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; 64];
    let mut counts: HashMap<String, f64> = HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(w.to_lowercase()).or_default() += 1.0;
    }
    for (w, c) in counts {
        let h = canonical::sha256_hex(w.as_bytes());
        let idx = usize::from_str_radix(&h[..4], 16).unwrap_or(0) % 64;
        v[idx] += c;
    }
    v
}
