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

/// Random lowercase hex of `bytes` bytes (trace ids are 16 bytes, span ids 8).
pub fn random_id(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
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
    for chunk in spans.chunks(512) {
        let resp = http
            .post(&url)
            .json(&otlp_body(chunk))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!(
                "OTLP endpoint answered HTTP {}",
                resp.status().as_u16()
            ));
        }
    }
    Ok(())
}
