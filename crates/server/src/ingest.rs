//! OTLP/HTTP trace ingest (`POST /v1/traces`): an OpenTelemetry Collector's `otlphttp`
//! exporter, or an SDK's, points at `serve`, and every span that carries `prompt.name` and
//! `prompt.version_id` (what the runtime clients hand out with a prompt) becomes an
//! observation of its version's signals: a call, an error if its status is ERROR, its
//! duration, its `gen_ai.usage.*` tokens and the numeric attributes being tracked. Other spans
//! are counted and dropped. Both encodings of the OTLP specification are read — binary
//! protobuf (`application/x-protobuf`) and JSON (`application/json`), gzip-compressed or not —
//! with the `opentelemetry-proto` crate's generated types, not a decoder of our own.

use std::io::Read;

use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;

use promptgate_core::signals::{Key, Observation, Signals};

/// The largest body taken, compressed or not (a batch of 512 spans is about 150 KB).
pub const MAX_BODY: usize = 8 << 20;
/// The largest body once decompressed: a small gzip body cannot expand without bound.
pub const MAX_DECOMPRESSED: usize = 32 << 20;

/// How a payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a payload is refused: its HTTP status and a sentence for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub status: StatusCode,
    pub message: String,
}

fn bad(status: StatusCode, message: impl Into<String>) -> Bad {
    Bad {
        status,
        message: message.into(),
    }
}

/// The encoding a `Content-Type` names (parameters such as `; charset=utf-8` ignored).
pub fn encoding(content_type: Option<&str>) -> Result<Encoding, Bad> {
    let base = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "OTLP/HTTP bodies are `application/x-protobuf` or `application/json`, not `{}`",
                if other.is_empty() { "(none)" } else { other }
            ),
        )),
    }
}

/// Decode a request body: decompress it if `Content-Encoding` says gzip, then parse it.
pub fn decode(
    encoding: Encoding,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<ExportTraceServiceRequest, Bad> {
    let inflated;
    let bytes = match content_encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => body,
        Some(e) if e.is_empty() || e == "identity" => body,
        Some(e) if e == "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("not valid gzip: {e}")))?;
            if out.len() > MAX_DECOMPRESSED {
                return Err(bad(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body inflates to more than {} MB: send smaller batches",
                        MAX_DECOMPRESSED >> 20
                    ),
                ));
            }
            inflated = out;
            &inflated
        }
        Some(other) => {
            return Err(bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("`Content-Encoding: {other}` is not supported: send gzip or nothing"),
            ));
        }
    };
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes).map_err(|e| {
            bad(
                StatusCode::BAD_REQUEST,
                format!("not an OTLP ExportTraceServiceRequest in protobuf: {e}"),
            )
        }),
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| {
            bad(
                StatusCode::BAD_REQUEST,
                format!("not an OTLP ExportTraceServiceRequest in JSON: {e}"),
            )
        }),
    }
}

/// What one span said about its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed<'a> {
    pub key: Key,
    pub observation: Observation,
    /// Its trace, for feedback that names the trace.
    pub trace_id: &'a [u8],
}

/// What the request's spans say: one observation per span that names a prompt version, and
/// how many spans did not.
pub fn observations<'a>(
    req: &'a ExportTraceServiceRequest,
    signals: &Signals,
    now_unix_s: u64,
) -> (Vec<Observed<'a>>, usize) {
    let mut out = Vec::new();
    let mut ignored = 0;
    for span in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let attr = |name: &str| span.attributes.iter().find(|kv| kv.key == name);
        let text = |name: &str| attr(name).and_then(string_of);
        let (Some(prompt), Some(version_id)) = (text("prompt.name"), text("prompt.version_id"))
        else {
            ignored += 1;
            continue;
        };
        let key = Key {
            prompt: prompt.to_string(),
            label: text("prompt.label").map(str::to_string),
            version_id: version_id.to_string(),
        };
        let count = |name: &str| {
            attr(name)
                .and_then(number_of)
                .filter(|n| *n >= 0.0)
                .map_or(0, |n| n as u64)
        };
        let ended = span.end_time_unix_nano / 1_000_000_000;
        let latency_ms = (span.end_time_unix_nano >= span.start_time_unix_nano
            && span.start_time_unix_nano > 0)
            .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);
        let error = span
            .status
            .as_ref()
            .is_some_and(|s| s.code == SpanStatus::Error as i32);
        let metrics = span
            .attributes
            .iter()
            .filter(|kv| signals.tracks(&kv.key))
            .filter_map(|kv| Some((kv.key.clone(), number_of(kv)?)))
            .collect();
        out.push(Observed {
            key,
            trace_id: &span.trace_id,
            observation: Observation {
                // A span from the future or with no end counts now.
                at_unix_s: if ended == 0 || ended > now_unix_s {
                    now_unix_s
                } else {
                    ended
                },
                call: true,
                error,
                latency_ms,
                input_tokens: count("gen_ai.usage.input_tokens"),
                output_tokens: count("gen_ai.usage.output_tokens"),
                metrics,
            },
        });
    }
    (out, ignored)
}

/// The versions of recently seen traces, so that late feedback can name a trace instead of a
/// version: the newest [`TRACES_KEPT`] only, so memory does not grow with traffic.
#[derive(Debug, Default)]
pub struct RecentTraces {
    by_id: std::collections::HashMap<Vec<u8>, Key>,
    order: std::collections::VecDeque<Vec<u8>>,
}

/// Traces whose version is remembered for feedback.
pub const TRACES_KEPT: usize = 65_536;

impl RecentTraces {
    /// Remember the trace of every span that named a version.
    pub fn note(&mut self, observed: &[Observed<'_>]) {
        for o in observed {
            if o.trace_id.is_empty() || self.by_id.contains_key(o.trace_id) {
                continue;
            }
            self.by_id.insert(o.trace_id.to_vec(), o.key.clone());
            self.order.push_back(o.trace_id.to_vec());
            while self.order.len() > TRACES_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.by_id.remove(&old);
                }
            }
        }
    }

    /// The version of trace `hex` (32 hex digits), if it was seen recently.
    pub fn get(&self, hex: &str) -> Option<&Key> {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        self.by_id.get(&bytes?)
    }
}

/// One piece of late feedback (`POST /v1/feedback`): a metric of a version, named directly or
/// through a trace the version served.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub metric: String,
    pub value: f64,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

/// The version a piece of feedback is about, and its observation; or why it cannot count.
pub fn feedback(
    f: &Feedback,
    traces: &RecentTraces,
    signals: &Signals,
    now_unix_s: u64,
) -> Result<(Key, Observation), String> {
    if !signals.tracks(&f.metric) {
        return Err(format!(
            "metric `{}` is not one the rollout policy compares, so it would not be kept: add it to `rollout.metrics` in promptgate.yaml",
            f.metric
        ));
    }
    if !f.value.is_finite() {
        return Err(format!(
            "metric `{}`: the value must be a finite number",
            f.metric
        ));
    }
    let key = match (&f.trace_id, &f.prompt, &f.version_id) {
        (Some(t), None, None) => traces.get(t).cloned().ok_or_else(|| {
            format!(
                "trace `{t}` is not among the last {TRACES_KEPT} traces seen: send `prompt` and `version_id` instead"
            )
        })?,
        (None, Some(p), Some(v)) => Key {
            prompt: p.clone(),
            label: f.label.clone(),
            version_id: v.clone(),
        },
        _ => {
            return Err(
                "name the version: either `trace_id`, or `prompt` and `version_id` (with `label` if it was fetched by one)"
                    .into(),
            );
        }
    };
    Ok((
        key,
        Observation {
            at_unix_s: now_unix_s,
            metrics: vec![(f.metric.clone(), f.value)],
            ..Observation::default()
        },
    ))
}

fn value(kv: &KeyValue) -> Option<&any_value::Value> {
    kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref())
}

fn string_of(kv: &KeyValue) -> Option<&str> {
    match value(kv)? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A numeric reading of an attribute: a number, a boolean (1 or 0), or text holding a number.
fn number_of(kv: &KeyValue) -> Option<f64> {
    let n = match value(kv)? {
        any_value::Value::IntValue(i) => *i as f64,
        any_value::Value::DoubleValue(d) => *d,
        any_value::Value::BoolValue(b) => f64::from(u8::from(*b)),
        any_value::Value::StringValue(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// The answer OTLP/HTTP expects: an `ExportTraceServiceResponse` in the request's encoding
/// (empty: every span was accepted; those without prompt attributes are not rejected, only
/// not aggregated).
pub fn response_body(encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => Vec::new(),
        Encoding::Json => b"{}".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        }
    }

    fn s(text: &str) -> any_value::Value {
        any_value::Value::StringValue(text.into())
    }

    fn span(version: &str, error: bool, ms: u64) -> Span {
        let start = 1_800_000_000_000_000_000u64;
        Span {
            name: "chat".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + ms * 1_000_000,
            attributes: vec![
                kv("prompt.name", s("support")),
                kv("prompt.version_id", s(version)),
                kv("prompt.label", s("production")),
                kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(12)),
                kv("app.tool_call.ok", any_value::Value::BoolValue(!error)),
            ],
            status: Some(Status {
                code: if error {
                    SpanStatus::Error
                } else {
                    SpanStatus::Ok
                } as i32,
                message: String::new(),
            }),
            ..Span::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn spans_naming_a_version_become_observations_and_others_are_counted() {
        let mut plain = span("v1", false, 5);
        plain.attributes.clear();
        let req = request(vec![span("v1", false, 20), span("v2", true, 40), plain]);
        let signals = Signals::tracking(["app.tool_call.ok".to_string()]);
        let (obs, ignored) = observations(&req, &signals, 1_900_000_000);
        assert_eq!((obs.len(), ignored), (2, 1));
        let (k, o) = (&obs[1].key, &obs[1].observation);
        assert_eq!(
            (k.prompt.as_str(), k.version_id.as_str(), k.label.as_deref()),
            ("support", "v2", Some("production"))
        );
        assert!(o.error && o.call);
        assert_eq!(o.latency_ms, Some(40.0));
        assert_eq!(o.input_tokens, 12);
        assert_eq!(o.at_unix_s, 1_800_000_000);
        assert_eq!(o.metrics, vec![("app.tool_call.ok".to_string(), 0.0)]);
        // Untracked attributes are not kept; a span ending in the future counts now.
        let (obs, _) = observations(&req, &Signals::default(), 1_700_000_000);
        assert!(obs[0].observation.metrics.is_empty());
        assert_eq!(obs[0].observation.at_unix_s, 1_700_000_000);
    }

    #[test]
    fn protobuf_gzip_and_json_decode_to_the_same_request() {
        let req = request(vec![span("v1", false, 20), span("v1", true, 30)]);
        let proto = req.encode_to_vec();
        assert_eq!(decode(Encoding::Protobuf, None, &proto).unwrap(), req);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &proto).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode(Encoding::Protobuf, Some("gzip"), &gz).unwrap(), req);
        let json = serde_json::to_vec(&req).unwrap();
        assert_eq!(
            decode(Encoding::Json, Some("identity"), &json).unwrap(),
            req
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let status = |r: Result<ExportTraceServiceRequest, Bad>| r.unwrap_err().status;
        assert_eq!(
            status(decode(Encoding::Protobuf, None, b"\xff\xff\xff")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(decode(Encoding::Json, None, b"{\"resourceSpans\": 3}")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(decode(Encoding::Json, Some("gzip"), b"not gzip")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(decode(Encoding::Json, Some("br"), b"{}")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            encoding(Some("text/plain")).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            encoding(None).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            encoding(Some("application/json; charset=utf-8")),
            Ok(Encoding::Json)
        );
        // A gzip bomb: 40 MB of zeros in a few KB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![0u8; 40 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 100 << 10);
        assert_eq!(
            status(decode(Encoding::Protobuf, Some("gzip"), &bomb)),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    /// The OTLP specification's own example (opentelemetry-proto's `examples/trace.json`) with
    /// the prompt attributes added: ids in hex, times as numbers, `kind` as an integer.
    #[test]
    fn the_specifications_json_example_decodes() {
        let json = include_str!("../tests/data/otlp_trace.json");
        let req = decode(Encoding::Json, None, json.as_bytes()).unwrap();
        let (obs, ignored) = observations(&req, &Signals::default(), u64::MAX);
        assert_eq!((obs.len(), ignored), (1, 0));
        assert_eq!(obs[0].key.version_id, "v3-1a2b3c4");
        assert_eq!(obs[0].observation.latency_ms, Some(1000.0));
        assert_eq!(obs[0].observation.output_tokens, 42);
        // Feedback can name its trace (hex, as OTLP/JSON writes it).
        let mut traces = RecentTraces::default();
        traces.note(&obs);
        let key = traces.get("5b8efff798038103d269b633813fc60c").unwrap();
        assert_eq!(key.version_id, "v3-1a2b3c4");
        assert!(traces.get("5b8e").is_none() && traces.get("zz").is_none());
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
    }
}

#[cfg(test)]
mod feedback_tests {
    use super::*;

    fn fb(json: &str) -> Feedback {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn feedback_names_its_version_or_trace_and_a_tracked_metric() {
        let signals = Signals::tracking(["app.feedback.score".to_string()]);
        let traces = RecentTraces::default();
        let (key, o) = feedback(
            &fb(r#"{"metric": "app.feedback.score", "value": 0.5, "prompt": "p", "version_id": "v2", "label": "canary"}"#),
            &traces,
            &signals,
            1_800_000_000,
        )
        .unwrap();
        assert_eq!(
            (key.version_id.as_str(), key.label.as_deref()),
            ("v2", Some("canary"))
        );
        assert_eq!(o.metrics, vec![("app.feedback.score".to_string(), 0.5)]);
        assert!(!o.call);
        let refused = |json: &str| feedback(&fb(json), &traces, &signals, 0).unwrap_err();
        assert!(
            refused(r#"{"metric": "other", "value": 1, "prompt": "p", "version_id": "v2"}"#)
                .contains("add it to `rollout.metrics`")
        );
        assert!(
            refused(r#"{"metric": "app.feedback.score", "value": 1}"#).contains("name the version")
        );
        assert!(
            refused(r#"{"metric": "app.feedback.score", "value": 1, "trace_id": "00ff"}"#)
                .contains("is not among the last")
        );
        assert!(
            serde_json::from_str::<Feedback>(r#"{"metric": "m", "value": 1, "score": 2}"#).is_err()
        );
    }

    #[test]
    fn only_the_newest_traces_are_remembered() {
        let mut traces = RecentTraces::default();
        let key = Key {
            prompt: "p".into(),
            label: None,
            version_id: "v1".into(),
        };
        let ids: Vec<[u8; 16]> = (0..TRACES_KEPT as u32 + 10)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                id
            })
            .collect();
        let observed: Vec<Observed> = ids
            .iter()
            .map(|id| Observed {
                key: key.clone(),
                observation: Observation::default(),
                trace_id: id,
            })
            .collect();
        traces.note(&observed);
        assert_eq!(traces.by_id.len(), TRACES_KEPT);
        assert!(
            traces.get(&"00".repeat(16)).is_none(),
            "the oldest went first"
        );
        let newest: String = ids
            .last()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(traces.get(&newest).is_some());
    }
}
