//! What one model call gives back: a completion (text, tool calls, token counts) or an error
//! classified once — transient or fatal — so that retry policy is explicit.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the model answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Completion {
    /// The text of the answer (empty when the model only called tools).
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// The arguments, parsed as JSON when they are JSON text.
    pub arguments: Value,
}

/// Why a call failed, classified once so retry policy is explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 429: back off and retry (honouring `Retry-After`).
    RateLimited,
    /// 5xx or 408: retry.
    Server,
    /// No answer within the timeout: retry.
    Timeout,
    /// Connection refused, reset, or the body cut short: retry.
    Connection,
    /// A 200 whose body is not what the protocol says: retry, then give up.
    Malformed,
    /// 400/401/403/404/422 and other client errors: retrying cannot help.
    Fatal,
    /// Replay has no recording for this request.
    ReplayMiss,
}

impl ErrorClass {
    pub fn transient(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Server
                | ErrorClass::Timeout
                | ErrorClass::Connection
                | ErrorClass::Malformed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Server => "server",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::Malformed => "malformed",
            ErrorClass::Fatal => "fatal",
            ErrorClass::ReplayMiss => "replay_miss",
        }
    }
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallError {
    pub class: ErrorClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: String,
    /// How long the server asked us to wait (`Retry-After`, `retry-after-ms`).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl CallError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> CallError {
        CallError {
            class,
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classify an HTTP error status.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> CallError {
        let class = match status {
            429 => ErrorClass::RateLimited,
            408 | 500..=599 => ErrorClass::Server,
            _ => ErrorClass::Fatal,
        };
        let snippet: String = body.chars().take(300).collect();
        CallError {
            class,
            status: Some(status),
            message: format!("HTTP {status}: {}", snippet.trim()),
            retry_after,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.message)
    }
}
