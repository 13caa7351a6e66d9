//! The HTTP handlers: reads (by label, id or hash, rendering), writes (label moves,
//! registration), the event stream, health, metrics; and the one mapping of errors to answers.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::auth::{Denied, Grant};
use promptgate_core::config::Scope;
use promptgate_core::error::{Error, Result};
use promptgate_registry::promotion::{self, Rollback};
use promptgate_registry::{self as registry, Expect, LabelMove, Target};

use crate::OPENAPI;
use crate::state::*;

/// A JSON error response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>, extra: Value) -> Response {
    let mut body = json!({ "error": message.into() });
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            b.insert(k.clone(), v.clone());
        }
    }
    // An error can quote what a client sent: no secret goes back out.
    promptgate_core::redact::json(&mut body);
    (status, Json(body)).into_response()
}

/// Why a request is not answered as asked, as the response that says so. Handlers return
/// [`Answer`] and use `?`: on a library [`Error`] (mapped once, by [`ApiError`]), on a refusal
/// made here (no token, a bad header), on a blocking task that did not finish.
pub(crate) struct Refused(Box<Response>);

/// What a handler returns.
pub(crate) type Answer = std::result::Result<Response, Refused>;

impl Refused {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>, extra: Value) -> Refused {
        Refused(Box::new(error(status, message, extra)))
    }
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused(Box::new(ApiError(e).into_response()))
    }
}

impl From<Denied> for Refused {
    fn from(d: Denied) -> Refused {
        Refused(Box::new(denied(d)))
    }
}

impl From<tokio::task::JoinError> for Refused {
    fn from(e: tokio::task::JoinError) -> Refused {
        Refused::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request did not finish: {e}"),
            Value::Null,
        )
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub(crate) fn denied(d: Denied) -> Response {
    match d {
        Denied::Unauthenticated(why) => {
            let mut r = error(StatusCode::UNAUTHORIZED, why, Value::Null);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"promptgate\""),
            );
            r
        }
        Denied::Forbidden(why) => error(StatusCode::FORBIDDEN, why, Value::Null),
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The grant for a read of `prompt` (or the refusal).
pub(crate) fn read_access<'a>(
    app: &'a App,
    headers: &HeaderMap,
    prompt: Option<&str>,
) -> std::result::Result<Option<&'a Grant>, Refused> {
    Ok(app.auth.check(bearer(headers), Scope::Read, prompt, None)?)
}

pub(crate) fn unknown_prompt(snap: &Snapshot, name: &str) -> Refused {
    let names: Vec<&String> = snap.prompts.keys().take(100).collect();
    Refused::new(
        StatusCode::NOT_FOUND,
        format!("no prompt `{name}`"),
        json!({ "prompts": names }),
    )
}

pub(crate) fn unknown_selector(s: &Served, name: &str, what: &str, sel: &str) -> Refused {
    let labels: Vec<&String> = s.doc.labels.keys().collect();
    let versions: Vec<&String> = s.doc.versions.iter().map(|v| &v.version_id).collect();
    Refused::new(
        StatusCode::NOT_FOUND,
        format!("`{name}` has no {what} `{sel}`"),
        json!({ "labels": labels, "versions": versions }),
    )
}

/// Whether `If-None-Match` matches the strong ETag of `hash`.
pub(crate) fn not_modified(headers: &HeaderMap, hash: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/").trim_matches('"') == hash
    })
}

/// The JSON of a resolved version: name, label (and its split), id, number, hash, artifact.
pub(crate) fn body_of(name: &str, s: &Served, id: &str, label: Option<(&str, &Target)>) -> String {
    let Some(v) = s.doc.versions.iter().find(|v| v.version_id == id) else {
        return "null".into();
    };
    let artifact = s
        .artifacts
        .get(id)
        .cloned()
        .unwrap_or_else(|| "null".into());
    let mut body = String::with_capacity(artifact.len() + 256);
    body.push_str("{\"name\":");
    body.push_str(&serde_json::to_string(name).unwrap_or_default());
    if let Some((l, t)) = label {
        body.push_str(",\"label\":");
        body.push_str(&serde_json::to_string(l).unwrap_or_default());
        if t.single().is_none() {
            body.push_str(",\"split\":");
            body.push_str(&serde_json::to_string(t).unwrap_or_default());
        }
    }
    body.push_str(",\"version_id\":");
    body.push_str(&serde_json::to_string(&v.version_id).unwrap_or_default());
    body.push_str(&format!(",\"number\":{},\"hash\":\"{}\"", v.number, v.hash));
    body.push_str(",\"artifact\":");
    body.push_str(&artifact);
    body.push('}');
    body
}

/// A resolved version as a response, with its strong `ETag` (304 when the caller has it).
pub(crate) fn version_response(
    headers: &HeaderMap,
    name: &str,
    s: &Served,
    id: &str,
    label: Option<(&str, &Target)>,
) -> Response {
    let Some(v) = s.doc.versions.iter().find(|v| v.version_id == id) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("`{name}@{id}` is missing from the snapshot"),
            Value::Null,
        );
    };
    let etag = format!("\"{}\"", v.hash);
    if not_modified(headers, &v.hash) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, "no-cache".into()),
            ],
        )
            .into_response();
    }
    let cached = s
        .bodies
        .get(label.map(|(l, _)| l).unwrap_or(""))
        .and_then(|m| m.get(id));
    let body = match cached {
        Some(b) => b.clone(),
        None => Bytes::from(body_of(name, s, id, label)),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".into()),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Selector {
    pub(crate) label: Option<String>,
    pub(crate) version: Option<String>,
    /// The caller's routing key (user or session id) for a label that splits its traffic.
    pub(crate) key: Option<String>,
}

/// A resolved version id, and the label (with its target) it was reached through.
pub(crate) type Resolution<'a> = (String, Option<(&'a str, &'a Target)>);

/// Resolve `?label=` (with `?key=`), `?version=`, or neither (the latest version).
pub(crate) fn resolve<'a>(
    s: &'a Served,
    name: &str,
    q: &'a Selector,
) -> std::result::Result<Resolution<'a>, Refused> {
    if let Some(l) = &q.label {
        return match s.doc.labels.get(l) {
            Some(t) => Ok((
                t.assign(l, q.key.as_deref()).to_string(),
                Some((l.as_str(), t)),
            )),
            None => Err(unknown_selector(s, name, "label", l)),
        };
    }
    let sel = q.version.as_deref();
    match s.prompt.resolve(sel) {
        Ok((v, _)) => Ok((v.id.clone(), None)),
        Err(_) => Err(unknown_selector(
            s,
            name,
            "version",
            sel.unwrap_or("latest"),
        )),
    }
}

pub(crate) async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let grant = read_access(&app, &headers, None)?;
    let snap = app.snapshot();
    let prompts: Vec<Value> = snap
        .prompts
        .iter()
        .filter(|(n, _)| app.auth.can_read(grant, n))
        .map(|(n, s)| {
            json!({
                "name": n,
                "labels": s.doc.labels,
                "latest": s.doc.latest,
                "versions": s.doc.versions.len(),
            })
        })
        .collect();
    Ok(Json(json!({ "prompts": prompts })).into_response())
}

/// The prompt a read names, if the caller may read it (else the response to send).
pub(crate) fn readable(
    app: &App,
    headers: &HeaderMap,
    name: &str,
) -> std::result::Result<Arc<Served>, Refused> {
    read_access(app, headers, Some(name))?;
    let snap = app.snapshot();
    snap.prompts
        .get(name)
        .cloned()
        .ok_or_else(|| unknown_prompt(&snap, name))
}

pub(crate) async fn get_prompt(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<Selector>,
    headers: HeaderMap,
) -> Answer {
    let s = readable(&app, &headers, &name)?;
    let (id, label) = resolve(&s, &name, &q)?;
    Ok(version_response(&headers, &name, &s, &id, label))
}

pub(crate) async fn get_version(
    State(app): State<Arc<App>>,
    UrlPath((name, sel)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let s = readable(&app, &headers, &name)?;
    // A full hash is a hash prefix too; labels are not versions.
    if s.doc.labels.contains_key(&sel) {
        return Err(unknown_selector(&s, &name, "version", &sel));
    }
    match s.prompt.resolve(Some(&sel)) {
        Ok((v, _)) => Ok(version_response(&headers, &name, &s, &v.id, None)),
        Err(_) => Err(unknown_selector(&s, &name, "version", &sel)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenderBody {
    #[serde(default)]
    pub(crate) variables: serde_json::Map<String, Value>,
}

pub(crate) async fn render(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<Selector>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let s = readable(&app, &headers, &name)?;
    let vars: RenderBody = if body.iter().all(u8::is_ascii_whitespace) {
        RenderBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Refused::new(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"variables\": {{…}}}}: {e}"),
                Value::Null,
            )
        })?
    };
    let (id, _) = resolve(&s, &name, &q)?;
    let Some(v) = s.doc.versions.iter().find(|v| v.version_id == id) else {
        return Err(unknown_selector(&s, &name, "version", &id));
    };
    let req = promptgate_core::render::render_variables(&v.artifact, &name, &id, &vars.variables)?;
    Ok(Json(req).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// A version (`v3`, an id, a hash prefix) or a split (`v3:90,v4:10`).
    pub to: String,
    pub reason: String,
}

/// The body of `PUT /v1/prompts/{name}/labels/{label}`, or why it is not one.
pub fn parse_move_body(bytes: &[u8]) -> std::result::Result<MoveBody, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("the body must be {{\"to\": VERSION, \"reason\": WHY}}: {e}"))
}

pub(crate) fn actor_of(grant: Option<&Grant>, headers: &HeaderMap) -> String {
    let token = grant
        .map(|g| format!("token:{}", g.name))
        .unwrap_or_else(|| "anonymous".into());
    match headers
        .get("x-promptgate-actor")
        .and_then(|v| v.to_str().ok())
    {
        Some(a) if !a.trim().is_empty() => format!("{} via {token}", a.trim()),
        _ => token,
    }
}

/// The diagnostics are written for the command line: over HTTP, a retry names the header.
pub(crate) fn http(text: String) -> String {
    text.replace("retry with `--expect ", "retry with `If-Match: ")
        .replace(
            "create it with `--expect none`",
            "create it with `If-Match: none`",
        )
        .replace("`--expect`", "`If-Match`")
}

/// A library error as an HTTP answer: the one mapping of errors to statuses (the exit codes
/// are [`Error::kind`]'s). The body says what is wrong with the hints written for HTTP, never a
/// server path: a file the server could not read or write is only said to be one.
pub struct ApiError(pub Error);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::PRECONDITION_FAILED,
            Error::Provider { .. } => StatusCode::BAD_GATEWAY,
            Error::Io { .. } | Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = &self.0;
        if let Error::Io { source, .. } = e {
            return error(
                self.status(),
                "the registry could not read or write its files",
                json!({ "details": source.kind().to_string() }),
            );
        }
        let mut extra = json!({ "details": http(e.to_string()) });
        // A lost compare-and-swap says what the label points at now (as the store saw it).
        if let Some(current) = e.current() {
            extra["current"] = json!(current.unwrap_or("none"));
        }
        error(
            self.status(),
            http(
                e.diagnostics()
                    .first()
                    .map(|d| d.message.clone())
                    .unwrap_or_default(),
            ),
            extra,
        )
    }
}

/// The grant for a write, or the refusal (no token or scope: 401 or 403; a read-only store:
/// 405).
pub(crate) fn writable<'a>(
    app: &'a App,
    headers: &HeaderMap,
    prompt: &str,
    label: Option<&str>,
) -> std::result::Result<Option<&'a Grant>, Refused> {
    let grant = app
        .auth
        .check(bearer(headers), Scope::Write, Some(prompt), label)?;
    if app.store.read_only() {
        return Err(Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this server serves a bundle, which is read-only",
            Value::Null,
        ));
    }
    Ok(grant)
}

/// `If-Match`: what the caller saw the label point at (a version, or `none`).
fn if_match(headers: &HeaderMap) -> Option<Expect> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| Expect::parse(v.trim().trim_matches('"')))
}

/// Run a store write where blocking is allowed, and reload the prompt it changed before
/// answering: the caller's next read sees its own write.
async fn write<T: Send + 'static>(
    app: &Arc<App>,
    prompt: &str,
    f: impl FnOnce(&App) -> Result<T> + Send + 'static,
) -> std::result::Result<T, Refused> {
    let app = app.clone();
    let prompt = prompt.to_string();
    let done = tokio::task::spawn_blocking(move || {
        let r = f(&app);
        if r.is_ok() {
            app.reload(Some(&prompt), true);
        }
        r
    })
    .await??;
    Ok(done)
}

/// Log a label move (the service log), the actor redacted and on one line.
fn log_move(entry: &registry::audit::Entry) {
    eprintln!(
        "promptgate serve: {}@{} {} → {} by {} ({})",
        entry.prompt,
        entry.label.as_deref().unwrap_or_default(),
        registry::target::show(entry.from.as_ref(), "(new)"),
        registry::target::show(entry.to.as_ref(), "?"),
        promptgate_core::safe::line(&promptgate_core::redact::text(&entry.actor)),
        entry.action.as_str()
    );
}

pub(crate) async fn put_label(
    State(app): State<Arc<App>>,
    UrlPath((name, label)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let grant = writable(&app, &headers, &name, Some(&label))?;
    let Some(expect) = if_match(&headers) else {
        return Err(Refused::new(
            StatusCode::PRECONDITION_REQUIRED,
            "a label move needs `If-Match`: the version the label points at now, or `none`",
            Value::Null,
        ));
    };
    let body = parse_move_body(&body)
        .map_err(|e| Refused::new(StatusCode::BAD_REQUEST, e, Value::Null))?;
    let mv = LabelMove::set(
        name.clone(),
        label,
        body.to,
        expect,
        actor_of(grant, &headers),
        body.reason,
    );
    let entry = write(&app, &name, move |app| app.store.move_label(&mv)).await?;
    log_move(&entry);
    Ok(Json(entry).into_response())
}

/// The body of `POST /v1/prompts/{name}/labels/{label}/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Where to; by default where the label was before its last move.
    #[serde(default)]
    pub to: Option<String>,
    pub reason: String,
}

/// Roll a label back through the promotion service (what `promptgate rollback` does): to
/// `to` or to its previous target from the verified audit log; with `If-Match`, only if the
/// label still points where the caller saw it.
pub(crate) async fn post_rollback(
    State(app): State<Arc<App>>,
    UrlPath((name, label)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let grant = writable(&app, &headers, &name, Some(&label))?;
    let body: RollbackBody = serde_json::from_slice(&body).map_err(|e| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be {{\"reason\": WHY}} or {{\"to\": VERSION, \"reason\": WHY}}: {e}"
            ),
            Value::Null,
        )
    })?;
    if body.reason.trim().is_empty() {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "a rollback needs a reason: it goes into the audit log",
            Value::Null,
        ));
    }
    let r = Rollback {
        prompt: name.clone(),
        label,
        to: body.to,
        expect: if_match(&headers),
        actor: actor_of(grant, &headers),
        reason: body.reason,
    };
    let entry = write(&app, &name, move |app| promotion::rollback(&*app.store, &r)).await?;
    log_move(&entry);
    Ok(Json(entry).into_response())
}

pub(crate) async fn post_version(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let grant = writable(&app, &headers, &name, None)?;
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "the body must be the version file (YAML, UTF-8)",
            Value::Null,
        ));
    };
    let actor = actor_of(grant, &headers);
    let prompt = name.clone();
    let registered = write(&app, &name, move |app| {
        let repo = app.repo.as_ref().ok_or_else(|| {
            Error::usage("this server has no repository to check a new version against")
        })?;
        // Parsed in memory: no temporary path reaches an error message.
        repo.add_text(&prompt, "the POSTed version", text, &actor)
    })
    .await?;
    let versions: Vec<Value> = registered
        .iter()
        .map(|r| {
            json!({
                "version_id": r.id,
                "file": r.path.file_name().map(|f| f.to_string_lossy().into_owned()),
                "warnings": r.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "registered": versions }))).into_response())
}

pub(crate) async fn events(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let grant = read_access(&app, &headers, None)?.cloned();
    // A slot, or 503: every open stream holds a task and buffers, so they are capped.
    let max = app.max_streams.load(Ordering::SeqCst);
    if app
        .metrics
        .streams_open
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .is_err()
    {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{max} event streams are open, the most this server keeps (`serve.max_streams`)"
            ),
            json!({ "hint": "retry later, or raise `serve.max_streams` in promptgate.yaml" }),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return Err(Refused(Box::new(r)));
    }
    let slot = StreamSlot(app.clone());
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Subscribe before reading the history, so nothing falls between the two.
    let rx = app.tx.subscribe();
    let (backlog, reset, after) = {
        let log = match app.events.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let newest = log.next - 1;
        let oldest = log.ring.front().map(|c| c.seq).unwrap_or(log.next);
        match last.as_deref().map(|l| parse_event_id(l, app.boot)) {
            None => (vec![], false, newest),
            Some(Some(seq)) if seq + 1 >= oldest && seq <= newest => (
                log.ring.iter().filter(|c| c.seq > seq).cloned().collect(),
                false,
                seq,
            ),
            // From another server instance, or older than the history: the client must
            // refetch what it holds.
            Some(_) => (vec![], true, newest),
        }
    };
    let app2 = app.clone();
    let shutdown = app.shutdown.clone();
    let mut first: VecDeque<SseEvent> = VecDeque::new();
    if reset {
        first.push_back(
            SseEvent::default()
                .event("reset")
                .id(format!("{}-{after}", app.boot))
                .data("{\"reason\":\"events were missed: fetch every prompt again\"}"),
        );
    }
    let visible = move |c: &Change| app2.auth.can_read(grant.as_ref(), &c.prompt);
    for c in backlog.iter().filter(|c| visible(c)) {
        first.push_back(sse_of(c));
    }
    let app3 = app.clone();
    let stream = futures_util::stream::unfold(
        (rx, first, after, false, slot),
        move |(mut rx, mut first, mut after, done, slot)| {
            let visible = visible.clone();
            let app3 = app3.clone();
            let mut shutdown = shutdown.clone();
            async move {
                if done {
                    return None;
                }
                if let Some(e) = first.pop_front() {
                    app3.metrics.events_sent.fetch_add(1, Ordering::Relaxed);
                    return Some((Ok::<_, Infallible>(e), (rx, first, after, false, slot)));
                }
                loop {
                    tokio::select! {
                        r = rx.recv() => match r {
                            Ok(c) if c.seq > after => {
                                after = c.seq;
                                if visible(&c) {
                                    app3.metrics.events_sent.fetch_add(1, Ordering::Relaxed);
                                    return Some((Ok(sse_of(&c)), (rx, first, after, false, slot)));
                                }
                            }
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                let e = SseEvent::default().event("reset").data(
                                    "{\"reason\":\"events were missed: fetch every prompt again\"}",
                                );
                                return Some((Ok(e), (rx, first, after, false, slot)));
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                        _ = shutdown.wait_for(|s| *s) => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

pub(crate) fn parse_event_id(id: &str, boot: u64) -> Option<u64> {
    let (b, seq) = id.split_once('-')?;
    (b.parse::<u64>().ok()? == boot).then_some(())?;
    seq.parse().ok()
}

pub(crate) fn sse_of(c: &Change) -> SseEvent {
    SseEvent::default()
        .event(c.kind)
        .id(c.id.clone())
        .data(serde_json::to_string(c).unwrap_or_default())
}

/// The signals' lock was poisoned by a panic: nothing to count into.
fn unavailable() -> Refused {
    Refused::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "signals unavailable",
        Value::Null,
    )
}

/// `POST /v1/traces`: OTLP/HTTP spans, aggregated into the signals of the versions they name.
pub(crate) async fn post_traces(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    app.auth
        .check(bearer(&headers), Scope::Ingest, None, None)?;
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let refuse = |b: crate::ingest::Bad| Refused::new(b.status, b.message, Value::Null);
    let encoding = crate::ingest::encoding(text(header::CONTENT_TYPE)).map_err(refuse)?;
    let request =
        crate::ingest::decode(encoding, text(header::CONTENT_ENCODING), &body).map_err(refuse)?;
    let now = promptgate_core::clock::now_unix_s();
    let mut signals = app.signals.lock().map_err(|_| unavailable())?;
    let (observations, ignored) = crate::ingest::observations(&request, &signals, now);
    for o in &observations {
        signals.record(&o.key, &o.observation);
    }
    drop(signals);
    if let Ok(mut traces) = app.recent_traces.lock() {
        traces.note(&observations);
    }
    if !observations.is_empty() {
        app.signals_dirty.store(true, Ordering::SeqCst);
    }
    app.spans_ignored
        .fetch_add(ignored as u64, Ordering::Relaxed);
    Ok((
        [(header::CONTENT_TYPE, encoding.content_type())],
        crate::ingest::response_body(encoding),
    )
        .into_response())
}

/// `POST /v1/feedback`: late signals (a user's rating, say) for a version, named directly or
/// through a trace it served; one object or a list of them, all counted or none.
pub(crate) async fn post_feedback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    app.auth
        .check(bearer(&headers), Scope::Ingest, None, None)?;
    let items: Vec<crate::ingest::Feedback> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(_)) => serde_json::from_slice(&body),
        Ok(_) => serde_json::from_slice(&body).map(|f| vec![f]),
        Err(e) => Err(e),
    }
    .map_err(|e| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"metric\": NAME, \"value\": NUMBER, \"trace_id\": HEX}} (or `prompt` and `version_id` instead of `trace_id`), or a list of them: {e}"),
            Value::Null,
        )
    })?;
    let now = promptgate_core::clock::now_unix_s();
    let mut signals = app.signals.lock().map_err(|_| unavailable())?;
    let traces = app.recent_traces.lock().map_err(|_| unavailable())?;
    let mut observed = Vec::with_capacity(items.len());
    for (i, f) in items.iter().enumerate() {
        let o = crate::ingest::feedback(f, &traces, &signals, now).map_err(|why| {
            Refused::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                if items.len() > 1 {
                    format!("item {i}: {why}")
                } else {
                    why
                },
                Value::Null,
            )
        })?;
        observed.push(o);
    }
    drop(traces);
    for (key, o) in &observed {
        signals.record(key, o);
    }
    drop(signals);
    app.signals_dirty.store(true, Ordering::SeqCst);
    Ok(Json(json!({ "accepted": observed.len() })).into_response())
}

#[derive(Deserialize)]
pub(crate) struct SignalsQuery {
    prompt: Option<String>,
    /// Only windows from this many seconds ago on (default: every window kept).
    since: Option<u64>,
}

/// `GET /v1/signals`: what the signals hold, per version heard from.
pub(crate) async fn get_signals(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<SignalsQuery>,
) -> Answer {
    let grant = read_access(&app, &headers, q.prompt.as_deref())?;
    let now = promptgate_core::clock::now_unix_s();
    let from = q.since.map_or(0, |s| now.saturating_sub(s));
    let signals = app.signals.lock().map_err(|_| unavailable())?;
    let versions: Vec<Value> = signals
        .keys()
        .filter(|k| q.prompt.as_ref().is_none_or(|p| *p == k.prompt))
        // A token limited to some prompts sees only their signals.
        .filter(|k| grant.is_none_or(|g| g.allows(Scope::Read, Some(&k.prompt), None)))
        .map(|k| {
            let w = signals.since(k, from);
            let metrics: serde_json::Map<String, Value> = w
                .metrics
                .iter()
                .map(|(name, m)| (name.clone(), json!({ "n": m.n, "mean": m.mean })))
                .collect();
            json!({
                "prompt": k.prompt,
                "label": k.label,
                "version_id": k.version_id,
                "calls": w.calls,
                "errors": w.errors,
                "error_rate": (w.calls > 0).then(|| w.errors as f64 / w.calls as f64),
                "latency_ms": {
                    "mean": (w.latency_ms.n > 0).then_some(w.latency_ms.mean),
                    "p50": w.latency_quantile(0.50),
                    "p95": w.latency_quantile(0.95),
                    "p99": w.latency_quantile(0.99),
                },
                "input_tokens": w.input_tokens,
                "output_tokens": w.output_tokens,
                "metrics": metrics,
            })
        })
        .collect();
    Ok(Json(json!({
        "window_secs": promptgate_core::signals::WINDOW_SECS,
        "spans_ignored": app.spans_ignored.load(Ordering::Relaxed),
        "versions": versions,
    }))
    .into_response())
}

pub(crate) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let snap = app.snapshot();
    let h = app.health.lock().map(|h| h.clone()).unwrap_or_default();
    Json(json!({
        "status": if h.problems.is_empty() { "ok" } else { "degraded" },
        "prompts": snap.prompts.len(),
        "source": app.shown,
        "last_reload": h.last_reload,
        "problems": h.problems,
        // `leading`: this server runs the rollout guard; `standby`: another one does.
        "guard": if app.repo.is_none() {
            "off"
        } else if app.guard_leading.load(Ordering::SeqCst) {
            "leading"
        } else {
            "standby"
        },
    }))
    .into_response()
}

pub(crate) async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.snapshot().prompts.len()),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Count and time every request by its route template.
pub(crate) async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let t = Instant::now();
    let resp = next.run(req).await;
    app.metrics.observe(
        route.as_ref().map(|m| m.as_str()).unwrap_or("(unmatched)"),
        resp.status().as_u16(),
        t.elapsed(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use promptgate_core::error::{Diagnostic, ErrorKind};
    use std::path::Path;

    /// The conditional-fetch vectors every client checks (`clients/vectors/etag.json`).
    #[test]
    fn if_none_match_follows_the_shared_vectors() {
        let text = include_str!("../../../clients/vectors/etag.json");
        let doc: Value = serde_json::from_str(text).unwrap();
        let hash = "9f2c1ab".repeat(9) + "0";
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 8);
        for v in vectors {
            let header = v["if_none_match"]
                .as_str()
                .unwrap()
                .replace("{hash}", &hash)
                .replace("{prefix}", &hash[..12]);
            let mut h = HeaderMap::new();
            if !header.is_empty() {
                h.insert(header::IF_NONE_MATCH, header.parse().unwrap());
            }
            let want = v["status"].as_u64() == Some(304);
            assert_eq!(not_modified(&h, &hash), want, "{header}");
        }
    }

    fn body(r: Response) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn each_error_has_one_status_and_no_server_path_leaves() {
        let d = |m: &str| Diagnostic::error(m);
        let io = Error::io(
            Path::new("/srv/prompts/p/registry.yaml"),
            "write",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let cases = [
            (Error::usage("bad body"), StatusCode::UNPROCESSABLE_ENTITY),
            (Error::not_found("no prompt `p`"), StatusCode::NOT_FOUND),
            (
                Error::conflict(d("moved first"), Some("v2-abc".into())),
                StatusCode::PRECONDITION_FAILED,
            ),
            (
                Error::provider(d("401 from the model")),
                StatusCode::BAD_GATEWAY,
            ),
            (io.clone(), StatusCode::INTERNAL_SERVER_ERROR),
            (
                Error::new(ErrorKind::Infrastructure, d("panicked")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError(e.clone()).status(), status, "{e:?}");
            assert_eq!(ApiError(e).into_response().status(), status);
        }
        let conflict = body(ApiError(Error::conflict(d("moved"), None)).into_response());
        assert_eq!(conflict["current"], "none");
        let text = body(ApiError(io).into_response()).to_string();
        assert!(
            !text.contains("/srv"),
            "a server path in the answer: {text}"
        );
        assert!(text.contains("could not read or write"), "{text}");
    }
}
