//! Spans: one per call, written as JSONL in the run folder with the prompt's identity and the
//! OpenTelemetry GenAI attributes, and optionally exported to an OTLP/HTTP (JSON) endpoint.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// One span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub name: String,
    pub start_unix_nano: u128,
    pub end_unix_nano: u128,
    /// `ok` or `error`.
    pub status: String,
    pub attributes: Map<String, Value>,
}

fn otlp_value(v: &Value) -> Value {
    match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        other => json!({"stringValue": other.to_string()}),
    }
}

/// The OTLP/HTTP JSON body (`ExportTraceServiceRequest`) for spans.
pub fn otlp_body(spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let attrs: Vec<Value> = s
                .attributes
                .iter()
                .map(|(k, v)| json!({"key": k, "value": otlp_value(v)}))
                .collect();
            json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                "kind": 3, // SPAN_KIND_CLIENT
                "startTimeUnixNano": s.start_unix_nano.to_string(),
                "endTimeUnixNano": s.end_unix_nano.to_string(),
                "attributes": attrs,
                "status": {"code": if s.status == "ok" { 1 } else { 2 }},
            })
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "promptgate"}}]},
            "scopeSpans": [{"scope": {"name": "promptgate", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
        }]
    })
}

/// Send spans to `{endpoint}/v1/traces` in batches.
pub async fn export_otlp(endpoint: &str, spans: &[Span]) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let headers = otlp_headers();
    for chunk in spans.chunks(512) {
        let mut rb = http.post(&url).json(&otlp_body(chunk));
        for (k, v) in &headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        let resp = rb.send().await.map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            // A collector may echo the request's headers: nothing of them goes further.
            return Err(promptgate_core::redact::text(&format!(
                "OTLP endpoint answered HTTP {status}: {}",
                body.trim()
            ))
            .into_owned());
        }
    }
    Ok(())
}

/// `%20` → ` `: header values in `OTEL_EXPORTER_OTLP_HEADERS` are percent-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The headers of `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,key2=value2`, the OpenTelemetry
/// convention), e.g. a collector's bearer token: their values are secrets.
fn otlp_headers() -> Vec<(String, String)> {
    let Ok(spec) = std::env::var("OTEL_EXPORTER_OTLP_HEADERS") else {
        return vec![];
    };
    spec.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let (k, v) = (k.trim().to_string(), percent_decode(v.trim()));
            promptgate_core::redact::register(&v);
            if let Some(token) = v.strip_prefix("Bearer ") {
                promptgate_core::redact::register(token.trim());
            }
            (!k.is_empty()).then_some((k, v))
        })
        .collect()
}
