//! The one redactor: every secret in play — provider keys read from the environment, `serve`'s
//! bearer tokens, signing keys, OTLP headers — is registered here when it is read, and every
//! string promptgate stores or shows that could carry one passes through [`text`]: what a
//! provider or a collector sends back (errors and answers, where they enter the engine, so no
//! later sink can forget), the messages promptgate prints, and what `serve` answers and logs.
//! Besides the registered values it strips anything credential-shaped (`Bearer …`, `sk-…`, an
//! `x-api-key` or `authorization` value) that a server or proxy echoes.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a redacted secret becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: they would match ordinary text.
const SHORTEST: usize = 8;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Register a secret's value: from now on it is replaced wherever [`text`] looks.
pub fn register(secret: &str) {
    if secret.len() < SHORTEST {
        return;
    }
    if let Ok(mut s) = SECRETS.write()
        && !s.iter().any(|x| x == secret)
    {
        s.push(secret.to_string());
        // Longest first, so that a secret containing another is replaced whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

fn shapes() -> &'static regex::Regex {
    static SHAPES: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    SHAPES.get_or_init(|| {
        regex::Regex::new(
            r#"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk-|sk_|pk-|ghp_|ghs_|gho_|xox[bp]-)[A-Za-z0-9._-]{8,}|((?:x-api-key|api[-_]key|authorization|x-goog-api-key)"?\s*[:=]\s*"?)[^"\s,}]{8,}"#,
        )
        .expect("a valid pattern")
    })
}

/// `s` without any registered secret or credential-shaped value.
pub fn text(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    if let Ok(secrets) = SECRETS.read() {
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
    }
    if shapes().is_match(&out) {
        let replaced = shapes()
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let keep = (1..=3)
                    .find_map(|i| c.get(i))
                    .map(|m| m.as_str())
                    .unwrap_or("");
                format!("{keep}{REDACTED}")
            })
            .into_owned();
        out = Cow::Owned(replaced);
    }
    out
}

/// [`text`] in place.
pub fn string(s: &mut String) {
    if let Cow::Owned(r) = text(s) {
        *s = r;
    }
}

/// Every string inside a JSON value (tool-call arguments), in place.
pub fn json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => string(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(json),
        serde_json::Value::Object(map) => {
            // Keys too: an echoed header can arrive as `{"Authorization": …}`.
            let redacted: Vec<(String, serde_json::Value)> = std::mem::take(map)
                .into_iter()
                .map(|(mut k, mut v)| {
                    string(&mut k);
                    json(&mut v);
                    (k, v)
                })
                .collect();
            map.extend(redacted);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_credential_shapes_are_redacted() {
        register("hunter2-secret-key");
        register("short");
        let echoed = r#"HTTP 401: {"error": "bad key", "headers": {"authorization": "Bearer hunter2-secret-key", "x-api-key": "abcdefgh12345678"}, "seen": "sk-proj-AAAAAAAAAAAAAAAA", "k": "hunter2-secret-key"}"#;
        let out = text(echoed);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("abcdefgh12345678"), "{out}");
        assert!(!out.contains("AAAAAAAA"), "{out}");
        assert!(out.contains("\"x-api-key\": \"[REDACTED]"), "{out}");
        assert!(out.contains("HTTP 401"), "{out}");
        // Ordinary words survive, and short values are never registered.
        assert_eq!(
            text("the model `gpt-4o` does not exist"),
            "the model `gpt-4o` does not exist"
        );
        assert_eq!(text("a short answer"), "a short answer");
        let mut v = serde_json::json!({"q": ["hunter2-secret-key"], "hunter2-secret-key": 1});
        json(&mut v);
        assert_eq!(v, serde_json::json!({"q": ["[REDACTED]"], "[REDACTED]": 1}));
    }
}
