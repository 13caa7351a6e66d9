//! Bearer tokens for `promptgate serve`: where their secrets come from, their scopes, and the
//! constant-time check. Only SHA-256 digests of the secrets are kept in memory.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use promptgate_core::config::{Scope, Serve, TokenSpec};
use promptgate_core::error::{Diagnostic, Error, Result};

/// One token's grant.
#[derive(Debug, Clone)]
pub struct Grant {
    pub name: String,
    digest: [u8; 32],
    pub scope: Scope,
    prompts: Vec<String>,
    labels: Vec<String>,
}

impl Grant {
    /// Whether this token may act on `prompt` (and, for a write, move `label`).
    pub fn allows(&self, need: Scope, prompt: Option<&str>, label: Option<&str>) -> bool {
        let listed = |list: &[String], x: Option<&str>| {
            list.is_empty() || x.is_none_or(|x| list.iter().any(|l| l == "*" || l == x))
        };
        self.scope >= need
            && listed(&self.prompts, prompt)
            && (need == Scope::Read || listed(&self.labels, label))
    }
}

/// The server's access rules.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Reads without a token are allowed.
    pub open_reads: bool,
    grants: Vec<Grant>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that matches no grant: 401.
    Unauthenticated(&'static str),
    /// A valid token without the scope: 403.
    Forbidden(String),
}

fn sha(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Auth {
    /// Build from `promptgate.yaml`'s `serve:` section, reading secrets from the environment
    /// and the tokens file. With no token configured at all, reads are open (and writes
    /// impossible).
    pub fn from_config(cfg: Option<&Serve>, repo_root: &Path) -> Result<Auth> {
        let Some(cfg) = cfg else {
            return Ok(Auth {
                open_reads: true,
                grants: vec![],
            });
        };
        let mut grants = Vec::new();
        for t in &cfg.tokens {
            let Some(var) = &t.env else {
                return Err(Error::usage(format!(
                    "token `{}` in promptgate.yaml names no `env`",
                    t.name
                ))
                .with_hint("secrets never live in the repository: set `env: VARIABLE` and export the token in it, or move the token to `tokens_file`"));
            };
            if t.token.is_some() {
                return Err(Error::usage(format!(
                    "token `{}` in promptgate.yaml holds its secret",
                    t.name
                ))
                .with_hint("remove `token:` from promptgate.yaml (and rotate it): use `env:` or `tokens_file`"));
            }
            match std::env::var(var) {
                Ok(secret) if !secret.is_empty() => grants.push(grant(t, &secret)),
                _ => {
                    return Err(Error::usage(format!(
                        "token `{}`: the environment variable `{var}` is not set",
                        t.name
                    ))
                    .with_hint(format!("export {var}=… before `promptgate serve`")));
                }
            }
        }
        if let Some(file) = &cfg.tokens_file {
            let path = if Path::new(file).is_absolute() {
                Path::new(file).to_path_buf()
            } else {
                repo_root.join(file)
            };
            let text = promptgate_core::fsutil::read_to_string(&path)?;
            promptgate_core::yaml::bounded(&path, &text)?;
            let de = serde_yaml_ng::Deserializer::from_str(&text);
            let specs: Vec<TokenSpec> =
                serde_path_to_error::deserialize(de).map_err(|e: serde_path_to_error::Error<_>| {
                    Error::from(
                        Diagnostic::error(format!("cannot read the tokens file: {}", e.inner()))
                            .in_context(format!("{} at `{}`", path.display(), e.path()))
                            .hint("a list of `{ name, token, scope: read|ingest|write, prompts: [..], labels: [..] }`"),
                    )
                })?;
            for t in &specs {
                let Some(secret) = t.token.as_deref().filter(|s| !s.is_empty()) else {
                    return Err(Error::usage(format!(
                        "{}: token `{}` has no `token:`",
                        path.display(),
                        t.name
                    )));
                };
                grants.push(grant(t, secret));
            }
        }
        Ok(Auth {
            open_reads: cfg.open_reads || grants.is_empty(),
            grants,
        })
    }

    /// Grants from (name, secret, scope) triples, for tests and embedding.
    pub fn with_tokens(open_reads: bool, tokens: &[(&str, &str, Scope)]) -> Auth {
        Auth {
            open_reads,
            grants: tokens
                .iter()
                .map(|(name, secret, scope)| Grant {
                    name: name.to_string(),
                    digest: sha(secret),
                    scope: *scope,
                    prompts: vec![],
                    labels: vec![],
                })
                .collect(),
        }
    }

    pub fn has_tokens(&self) -> bool {
        !self.grants.is_empty()
    }

    /// The grant of a presented token. Every grant is compared (in constant time, digest
    /// against digest), so the time taken says nothing about which one matched.
    fn find(&self, token: &str) -> Option<&Grant> {
        let d = sha(token);
        let mut hit = None;
        for g in &self.grants {
            if bool::from(g.digest.ct_eq(&d)) {
                hit = Some(g);
            }
        }
        hit
    }

    /// Check a request's `Authorization` header value for an action.
    pub fn check(
        &self,
        header: Option<&str>,
        need: Scope,
        prompt: Option<&str>,
        label: Option<&str>,
    ) -> Result<Option<&Grant>, Denied> {
        let token = match header {
            None => None,
            Some(h) => match h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
            {
                Some(t) => Some(t.trim()),
                None => return Err(Denied::Unauthenticated("use `Authorization: Bearer TOKEN`")),
            },
        };
        let Some(token) = token else {
            if need == Scope::Read && self.open_reads {
                return Ok(None);
            }
            if self.grants.is_empty() && need == Scope::Ingest {
                return Err(Denied::Unauthenticated(
                    "sending signals needs a bearer token, and this server has none configured: add an ingest token under `serve.tokens` in promptgate.yaml, e.g. `{ name: collector, env: PROMPTGATE_INGEST_TOKEN, scope: ingest }`, export its secret in that variable, and restart `serve`",
                ));
            }
            if self.grants.is_empty() {
                return Err(Denied::Unauthenticated(
                    "writes need a bearer token, and this server has none configured: add a write token under `serve.tokens` in promptgate.yaml, e.g. `{ name: ci, env: PROMPTGATE_CI_TOKEN, scope: write }`, export its secret in that variable, and restart `serve`",
                ));
            }
            return Err(Denied::Unauthenticated("this needs a bearer token"));
        };
        let Some(g) = self.find(token) else {
            return Err(Denied::Unauthenticated("the bearer token is not valid"));
        };
        if !g.allows(need, prompt, label) {
            let what = match (need, label) {
                (Scope::Write, Some(l)) => format!(
                    "token `{}` may not move `{}@{l}`",
                    g.name,
                    prompt.unwrap_or("?")
                ),
                (Scope::Write, None) => format!(
                    "token `{}` may not write to `{}`",
                    g.name,
                    prompt.unwrap_or("?")
                ),
                (Scope::Ingest, _) => format!(
                    "token `{}` may not send signals (it needs `scope: ingest` or `write`)",
                    g.name
                ),
                (Scope::Read, _) => format!(
                    "token `{}` may not read `{}`",
                    g.name,
                    prompt.unwrap_or("?")
                ),
            };
            return Err(Denied::Forbidden(what));
        }
        Ok(Some(g))
    }

    /// Whether a request may see `prompt` at all (for listings and the event stream).
    pub fn can_read(&self, grant: Option<&Grant>, prompt: &str) -> bool {
        match grant {
            Some(g) => g.allows(Scope::Read, Some(prompt), None),
            None => self.open_reads,
        }
    }
}

/// A grant for a token's secret; the secret itself is redacted from everything printed.
fn grant(t: &TokenSpec, secret: &str) -> Grant {
    // Redacted from every message and response from here on.
    promptgate_core::redact::register(secret);
    Grant {
        name: t.name.clone(),
        digest: sha(secret),
        scope: t.scope,
        prompts: t.prompts.clone(),
        labels: t.labels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_limits() {
        let mut auth = Auth::with_tokens(
            false,
            &[
                ("r", "read-secret", Scope::Read),
                ("w", "write-secret", Scope::Write),
            ],
        );
        assert!(matches!(
            auth.check(None, Scope::Read, Some("p"), None),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(
            auth.check(Some("Bearer read-secret"), Scope::Read, Some("p"), None)
                .is_ok()
        );
        assert!(matches!(
            auth.check(
                Some("Bearer read-secret"),
                Scope::Write,
                Some("p"),
                Some("x")
            ),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            auth.check(Some("Bearer nope"), Scope::Read, Some("p"), None),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(
            auth.check(
                Some("Bearer write-secret"),
                Scope::Write,
                Some("p"),
                Some("x")
            )
            .is_ok()
        );
        auth.grants[1].labels = vec!["canary".into()];
        auth.grants[1].prompts = vec!["p".into()];
        assert!(matches!(
            auth.check(
                Some("Bearer write-secret"),
                Scope::Write,
                Some("p"),
                Some("production")
            ),
            Err(Denied::Forbidden(_))
        ));
        assert!(
            auth.check(
                Some("Bearer write-secret"),
                Scope::Write,
                Some("p"),
                Some("canary")
            )
            .is_ok()
        );
        assert!(matches!(
            auth.check(Some("Bearer write-secret"), Scope::Read, Some("q"), None),
            Err(Denied::Forbidden(_))
        ));
        auth.open_reads = true;
        assert!(auth.check(None, Scope::Read, Some("q"), None).is_ok());
    }
}
