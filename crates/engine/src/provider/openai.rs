//! The OpenAI Chat Completions client, which also speaks to vLLM, Ollama, llama.cpp server
//! and LiteLLM through `base_url`.

use serde_json::{Map, Value, json};

use super::{BoxFuture, CallError, CallKey, Completion, ErrorClass, Provider, ToolCall};
use promptgate_core::config::{MaxTokensField, ProviderConfig};
use promptgate_core::error::Result;
use promptgate_core::render::Request;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    ep: super::HttpEndpoint,
    /// The configured field for the output-token limit (`None`: by model family).
    max_tokens_field: Option<MaxTokensField>,
}

impl OpenAi {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<OpenAi> {
        Ok(OpenAi {
            ep: super::HttpEndpoint::new(name, config, DEFAULT_BASE_URL, "chat/completions")?,
            max_tokens_field: config.max_tokens_field,
        })
    }
}

/// The field that carries the output-token limit for `model`: OpenAI's reasoning models (the
/// o-series and gpt-5) refuse `max_tokens` and want `max_completion_tokens`; other
/// OpenAI-compatible servers (vLLM, Ollama, llama.cpp) know only `max_tokens`. A provider's
/// `max_tokens_field` overrides the guess.
pub fn max_tokens_field(model: &str, configured: Option<MaxTokensField>) -> MaxTokensField {
    if let Some(f) = configured {
        return f;
    }
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let reasoning = ["o1", "o3", "o4", "gpt-5"].iter().any(|family| {
        name.strip_prefix(family)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.']))
    });
    if reasoning {
        MaxTokensField::MaxCompletionTokens
    } else {
        MaxTokensField::MaxTokens
    }
}

/// The OpenAI-compatible `/v1/embeddings` client, as a [`Provider`] so embeddings go through
/// the engine like completions (cache, retries, concurrency, rate limits). The request's model
/// is the embedding model and its first message the text; the answer's content is the vector
/// as a JSON array.
pub struct OpenAiEmbeddings {
    ep: super::HttpEndpoint,
}

impl OpenAiEmbeddings {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<OpenAiEmbeddings> {
        Ok(OpenAiEmbeddings {
            ep: super::HttpEndpoint::new(name, config, DEFAULT_BASE_URL, "embeddings")?,
        })
    }
}

impl Provider for OpenAiEmbeddings {
    fn name(&self) -> &str {
        &self.ep.name
    }
    fn system(&self) -> &str {
        "openai"
    }
    fn endpoint(&self) -> String {
        format!("openai-embeddings {}", self.ep.base_url)
    }
    fn operation(&self) -> &'static str {
        "embeddings"
    }
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        _key: &'a CallKey,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(async move {
            let headers = self.ep.bearer();
            let text = request
                .messages
                .first()
                .map(|m| m.content.as_str())
                .unwrap_or("");
            let body = json!({"model": request.model, "input": [text]});
            let bytes = post(
                &self.ep.http,
                self.ep.url.clone(),
                headers,
                &body,
                self.ep.timeout,
            )
            .await?;
            decode_embedding(&bytes)
        })
    }
}

/// Decode an embeddings response: the first vector, as JSON text.
pub fn decode_embedding(body: &[u8]) -> Result<Completion, CallError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        CallError::new(
            ErrorClass::Malformed,
            format!("embeddings response is not JSON ({e}): {}", snippet(body)),
        )
    })?;
    let vector = v
        .pointer("/data/0/embedding")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.iter().all(Value::is_number))
        .ok_or_else(|| {
            CallError::new(
                ErrorClass::Malformed,
                format!("no `data[0].embedding` vector in: {}", snippet(body)),
            )
        })?;
    Ok(Completion {
        content: Value::Array(vector.clone()).to_string(),
        tool_calls: vec![],
        finish_reason: None,
        input_tokens: v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        output_tokens: 0,
    })
}

/// The Chat Completions request body; `max_tokens` travels in the field `field` names.
pub fn encode(req: &Request, field: MaxTokensField) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), json!(req.messages));
    for (k, v) in &req.params {
        let key = match (k.as_str(), field) {
            ("max_tokens", MaxTokensField::MaxCompletionTokens) => "max_completion_tokens",
            _ => k.as_str(),
        };
        body.insert(key.to_string(), v.clone());
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(rf) = &req.response_format {
        body.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": rf.name, "schema": rf.schema, "strict": rf.strict}}),
        );
    }
    Value::Object(body)
}

/// Decode a Chat Completions response body.
pub fn decode(body: &[u8]) -> Result<Completion, CallError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        CallError::new(
            ErrorClass::Malformed,
            format!("response is not JSON ({e}): {}", snippet(body)),
        )
    })?;
    let choice = v.get("choices").and_then(|c| c.get(0)).ok_or_else(|| {
        CallError::new(
            ErrorClass::Malformed,
            format!("response has no `choices[0]`: {}", snippet(body)),
        )
    })?;
    let message = choice
        .get("message")
        .ok_or_else(|| CallError::new(ErrorClass::Malformed, "`choices[0]` has no `message`"))?;
    let content = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| {
                    let f = c.get("function")?;
                    let name = f.get("name")?.as_str()?.to_string();
                    let arguments = match f.get("arguments") {
                        Some(Value::String(s)) => {
                            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                        }
                        Some(other) => other.clone(),
                        None => Value::Null,
                    };
                    Some(ToolCall { name, arguments })
                })
                .collect()
        })
        .unwrap_or_default();
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
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        input_tokens: tokens("prompt_tokens"),
        output_tokens: tokens("completion_tokens"),
    })
}

pub(super) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// Send a JSON body and return the response bytes, classifying every failure.
pub(super) async fn post(
    http: &reqwest::Client,
    url: reqwest::Url,
    headers: Vec<(&'static str, String)>,
    body: &Value,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, CallError> {
    let mut rb = http.post(url).json(body);
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| super::call_error(&e, timeout))?;
    let status = resp.status().as_u16();
    let retry_after = super::retry_after(resp.headers());
    // A body cut short surfaces here as a transport error: classified, so it is retried.
    let bytes = resp.bytes().await.map_err(|e| {
        let mut err = super::call_error(&e, timeout);
        if err.class == ErrorClass::Malformed {
            err.class = ErrorClass::Connection;
        }
        err.message = format!("response body interrupted: {}", err.message);
        err
    })?;
    if !(200..300).contains(&status) {
        return Err(CallError::from_status(
            status,
            &String::from_utf8_lossy(&bytes),
            retry_after,
        ));
    }
    Ok(bytes.to_vec())
}

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.ep.name
    }

    fn system(&self) -> &str {
        "openai"
    }

    fn endpoint(&self) -> String {
        format!("openai {}", self.ep.base_url)
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        _key: &'a CallKey,
    ) -> BoxFuture<'a, Result<Completion, CallError>> {
        Box::pin(async move {
            let headers = self.ep.bearer();
            let bytes = post(
                &self.ep.http,
                self.ep.url.clone(),
                headers,
                &encode(
                    request,
                    max_tokens_field(&request.model, self.max_tokens_field),
                ),
                self.ep.timeout,
            )
            .await?;
            decode(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promptgate_core::render::{ChatMessage, ResponseFormat, ToolSpec};

    #[test]
    fn encodes_tools_and_response_format() {
        let req = Request {
            prompt: "p".into(),
            version_id: "v1".into(),
            provider: "openai".into(),
            model: "m".into(),
            params: [("temperature".to_string(), json!(0.2))].into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            tools: vec![ToolSpec {
                name: "t".into(),
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
        let body = encode(&req, MaxTokensField::MaxTokens);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "t");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    }

    #[test]
    fn decodes_tool_calls_and_classifies_garbage() {
        let body = br#"{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"t","arguments":"{\"q\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let c = decode(body).unwrap();
        assert_eq!(c.content, "");
        assert_eq!(c.tool_calls[0].arguments["q"], 1);
        assert_eq!((c.input_tokens, c.output_tokens), (3, 4));
        assert_eq!(
            decode(b"{\"choices\": [").unwrap_err().class,
            ErrorClass::Malformed
        );
        assert_eq!(
            decode(b"{\"error\": 1}").unwrap_err().class,
            ErrorClass::Malformed
        );
        assert_eq!(
            CallError::from_status(401, "no", None).class,
            ErrorClass::Fatal
        );
        assert_eq!(
            CallError::from_status(503, "", None).class,
            ErrorClass::Server
        );
        assert!(CallError::from_status(429, "", None).class.transient());
    }
}

#[cfg(test)]
mod body_snapshots {
    use super::*;

    fn body(model: &str, schema: &str) -> String {
        let yaml = format!(
            "model: {{ provider: openai, name: {model}, temperature: 0.2, max_tokens: 300 }}\n\
             variables: {{ question: {{}} }}\n\
             messages: [ {{ role: user, content: \"{{{{ question }}}}\" }} ]\n\
             output_schema: {schema}\n"
        );
        let a = promptgate_core::artifact::load(std::path::Path::new("v.yaml"), &yaml)
            .unwrap()
            .artifact;
        let vars = serde_json::json!({"question": "Where is my invoice?"});
        let req =
            promptgate_core::render::render_variables(&a, "p", "v1-abc", vars.as_object().unwrap())
                .unwrap();
        let field = max_tokens_field(&req.model, None);
        serde_json::to_string_pretty(&encode(&req, field)).unwrap()
    }

    const STRICT: &str = "{ type: object, properties: { answer: { type: string } }, required: [answer], additionalProperties: false }";
    const LOOSE: &str = "{ type: object, properties: { answer: { type: string }, note: { type: string } }, required: [answer] }";

    #[test]
    fn a_gpt_4o_class_model_with_a_strict_schema() {
        insta::assert_snapshot!(body("gpt-4o-mini", STRICT));
    }

    #[test]
    fn an_o_series_model_with_a_non_strict_schema() {
        insta::assert_snapshot!(body("o3-mini", LOOSE));
    }

    #[test]
    fn the_token_field_follows_the_model_family_unless_configured() {
        use MaxTokensField::*;
        for (model, field) in [
            ("gpt-4o", MaxTokens),
            ("gpt-4.1-mini", MaxTokens),
            ("o1", MaxCompletionTokens),
            ("o3-mini", MaxCompletionTokens),
            ("o4-mini-2025-04-16", MaxCompletionTokens),
            ("gpt-5", MaxCompletionTokens),
            ("gpt-5-mini", MaxCompletionTokens),
            ("openai/gpt-5.1", MaxCompletionTokens),
            ("omni-moderation", MaxTokens),
            ("llama3.1:8b", MaxTokens),
        ] {
            assert_eq!(max_tokens_field(model, None), field, "{model}");
        }
        assert_eq!(max_tokens_field("o3", Some(MaxTokens)), MaxTokens);
        assert_eq!(
            max_tokens_field("llama3", Some(MaxCompletionTokens)),
            MaxCompletionTokens
        );
    }
}
