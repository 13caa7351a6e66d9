//! The Anthropic Messages API client: system messages go to `system`, tools to `tools` with
//! `input_schema`, and `max_tokens` is required (default 1024).

use serde_json::{Map, Value, json};

use super::openai::{post, snippet};
use super::{BoxFuture, CallError, CallKey, Completion, ErrorClass, Provider, ToolCall};
use promptgate_core::config::ProviderConfig;
use promptgate_core::error::Result;
use promptgate_core::render::Request;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";
pub const API_VERSION: &str = "2023-06-01";
/// The Messages API requires `max_tokens`; used when the version sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

pub struct Anthropic {
    ep: super::HttpEndpoint,
}

impl Anthropic {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<Anthropic> {
        Ok(Anthropic {
            ep: super::HttpEndpoint::new(name, config, DEFAULT_BASE_URL, "messages")?,
        })
    }
}

/// The Messages API request body. The output schema, which the API has no field for, is
/// appended to the system prompt as an instruction.
pub fn encode(req: &Request) -> Value {
    let mut system: Vec<&str> = Vec::new();
    let mut messages = Vec::new();
    for m in &req.messages {
        if m.role == "system" {
            system.push(&m.content);
        } else {
            messages.push(json!({"role": m.role, "content": m.content}));
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    let mut system_text = system.join("\n\n");
    if let Some(rf) = &req.response_format {
        if !system_text.is_empty() {
            system_text.push_str("\n\n");
        }
        system_text.push_str(&format!(
            "Respond with only a JSON value that satisfies this JSON Schema:\n{}",
            serde_json::to_string(&rf.schema).unwrap_or_default()
        ));
    }
    if !system_text.is_empty() {
        body.insert("system".into(), json!(system_text));
    }
    body.insert("messages".into(), Value::Array(messages));
    for (k, v) in &req.params {
        match k.as_str() {
            "stop" => {
                body.insert("stop_sequences".into(), v.clone());
            }
            "seed" => {} // not supported by the Messages API
            _ => {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    body.entry("max_tokens")
        .or_insert(json!(DEFAULT_MAX_TOKENS));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

/// Decode a Messages API response body.
pub fn decode(body: &[u8]) -> Result<Completion, CallError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        CallError::new(
            ErrorClass::Malformed,
            format!("response is not JSON ({e}): {}", snippet(body)),
        )
    })?;
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| {
        CallError::new(
            ErrorClass::Malformed,
            format!("response has no `content` array: {}", snippet(body)),
        )
    })?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                arguments: b.get("input").cloned().unwrap_or(Value::Null),
            }),
            _ => {}
        }
    }
    let usage = v.get("usage");
    let tokens = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Completion {
        content,
        tool_calls,
        finish_reason: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
    })
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.ep.name
    }

    fn system(&self) -> &str {
        "anthropic"
    }

    fn endpoint(&self) -> String {
        format!("anthropic {}", self.ep.base_url)
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        _key: &'a CallKey,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(async move {
            let mut headers = vec![("anthropic-version", API_VERSION.to_string())];
            if let Some(k) = &self.ep.key {
                headers.push(("x-api-key", k.expose().to_string()));
            }
            let bytes = post(
                &self.ep.http,
                self.ep.url.clone(),
                headers,
                &encode(request),
                self.ep.timeout,
            )
            .await?;
            decode(&bytes)
        })
    }
}
