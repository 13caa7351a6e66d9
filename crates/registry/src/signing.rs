//! Signed audit entries. An unkeyed hash chain detects accidents, not forgery: anyone who can
//! write `audit.jsonl` can append an entry with a correct hash. So each entry may carry an
//! Ed25519 signature by the key of whoever wrote it — a CI job, an operator, a `serve`
//! instance — over the entry's hash; `promptgate.yaml` lists the public keys trusted to sign
//! (with ids, each retirable from a date on). The private key never lives in the repository:
//! it comes from `PROMPTGATE_SIGNING_KEY` or the file `PROMPTGATE_SIGNING_KEY_FILE` names.
//! `docs/threat-model.md` says what the chain detects, what the signatures add, and what
//! neither can.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::audit::Entry;
use promptgate_core::config::AuditConfig;
use promptgate_core::error::{Diagnostic, Error, Result};

/// The environment variable holding a signing key (`<id>:<base64 seed>`).
pub const KEY_ENV: &str = "PROMPTGATE_SIGNING_KEY";
/// The environment variable naming a file that holds one.
pub const KEY_FILE_ENV: &str = "PROMPTGATE_SIGNING_KEY_FILE";
/// What a signature covers, before the entry's hash: a signature made for anything else can
/// never pass for an audit entry's.
const DOMAIN: &str = "promptgate audit entry v1\n";

/// An entry's signature: the key's id and the Ed25519 signature of its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sig {
    pub key: String,
    /// Base64 of the 64-byte signature.
    pub ed25519: String,
}

/// The keys a repository trusts, decoded.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub require: bool,
    keys: Vec<(String, VerifyingKey, Option<String>)>,
}

impl Trust {
    /// Decode `audit:` (every key checked: a malformed one is a configuration error).
    pub fn from_config(cfg: Option<&AuditConfig>) -> Result<Trust> {
        let Some(cfg) = cfg else {
            return Ok(Trust::default());
        };
        let mut keys = Vec::new();
        for k in &cfg.keys {
            let bytes = B64.decode(k.public_key.trim()).ok();
            let key = bytes
                .as_deref()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .ok_or_else(|| {
                    Error::usage(format!(
                        "`audit.keys` in promptgate.yaml: key `{}` is not a base64 Ed25519 public key",
                        k.id
                    ))
                    .with_hint("paste the `public_key` line `promptgate keygen` printed")
                })?;
            if let Some(r) = &k.retired_from
                && timestamp(r).is_none()
            {
                return Err(Error::usage(format!(
                    "`audit.keys` in promptgate.yaml: key `{}` has `retired_from: {r}`, which is not a time",
                    k.id
                ))
                .with_hint("write an RFC 3339 time in UTC, e.g. `2026-12-01T00:00:00Z`"));
            }
            if keys.iter().any(|(id, _, _)| id == &k.id) {
                return Err(Error::usage(format!(
                    "`audit.keys` in promptgate.yaml: the key id `{}` is listed twice",
                    k.id
                )));
            }
            keys.push((k.id.clone(), key, k.retired_from.clone()));
        }
        Ok(Trust {
            require: cfg.require_signatures,
            keys,
        })
    }

    /// Whether any key is trusted (a signed log).
    pub fn is_signed(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Why `e`'s signature does not verify, if it does not. `None` for a valid signature, and
    /// for an unsigned entry (whether that is allowed is the log's business, see
    /// [`super::audit::parse_with`]).
    pub fn problem(&self, e: &Entry) -> Option<String> {
        let sig = e.sig.as_ref()?;
        let Some((_, key, retired)) = self.keys.iter().find(|(id, _, _)| id == &sig.key) else {
            return Some(format!(
                "it is signed by `{}`, which is not a trusted key in promptgate.yaml",
                sig.key
            ));
        };
        let bytes = B64.decode(sig.ed25519.trim()).ok();
        let Some(signature) = bytes
            .as_deref()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
        else {
            return Some("its signature is not base64 of 64 bytes".into());
        };
        if key.verify(message(&e.hash).as_bytes(), &signature).is_err() {
            return Some(format!(
                "its signature by `{}` does not match its content",
                sig.key
            ));
        }
        if let Some(r) = retired
            && after_or_at(&e.ts, r)
        {
            return Some(format!(
                "it is signed by `{}`, retired from {r}, but dated {}",
                sig.key, e.ts
            ));
        }
        None
    }

    /// Whether the signer's id is trusted with exactly its public key.
    pub fn trusts(&self, signer: &Signer) -> bool {
        let public = signer.key.verifying_key();
        self.keys
            .iter()
            .any(|(id, key, _)| id == &signer.id && key == &public)
    }

    /// The retirement instant of a key, if it is retired.
    pub fn retired_from(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _, _)| k == id)
            .and_then(|(_, _, r)| r.as_deref())
    }
}

fn timestamp(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok()
}

/// Whether instant `a` is at or after instant `b` (unparsable: yes, fail closed).
pub fn after_or_at(a: &str, b: &str) -> bool {
    match (timestamp(a), timestamp(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => true,
    }
}

fn message(hash: &str) -> String {
    format!("{DOMAIN}{hash}")
}

/// A private signing key and its id.
pub struct Signer {
    pub id: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, ***)", self.id)
    }
}

impl Signer {
    /// The key from `PROMPTGATE_SIGNING_KEY`, or the file `PROMPTGATE_SIGNING_KEY_FILE` names;
    /// `None` when neither is set.
    pub fn from_env() -> Result<Option<Signer>> {
        let (text, place) = match (std::env::var(KEY_ENV), std::env::var(KEY_FILE_ENV)) {
            (Ok(v), _) if !v.trim().is_empty() => (v, format!("${KEY_ENV}")),
            (_, Ok(path)) if !path.trim().is_empty() => {
                let p = std::path::Path::new(path.trim());
                (
                    promptgate_core::fsutil::read_to_string(p)?,
                    p.display().to_string(),
                )
            }
            _ => return Ok(None),
        };
        // A key file may hold what `promptgate keygen` printed: its comments, and the key
        // as an assignment.
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        let line = line
            .strip_prefix(KEY_ENV)
            .and_then(|r| r.strip_prefix('='))
            .unwrap_or(line);
        Signer::parse(line, &place).map(Some)
    }

    /// `<id>:<base64 of the 32-byte seed>`.
    pub fn parse(text: &str, place: &str) -> Result<Signer> {
        let bad = || {
            Error::usage(format!(
                "{place} is not a promptgate signing key (`<id>:<base64 key>`)"
            ))
            .with_hint("create one with `promptgate keygen --id NAME`")
        };
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let seed = B64
            .decode(secret.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(bad)?;
        promptgate_core::redact::register(secret.trim());
        let id = id.trim();
        if id.is_empty() {
            return Err(bad());
        }
        Ok(Signer {
            id: id.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A fresh key from the operating system's random source.
    pub fn generate(id: &str) -> Result<Signer> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            Error::new(
                promptgate_core::error::ErrorKind::Infrastructure,
                Diagnostic::error(format!("no randomness from the operating system: {e}")),
            )
        })?;
        Ok(Signer {
            id: id.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The secret, as `PROMPTGATE_SIGNING_KEY` takes it.
    pub fn secret_line(&self) -> String {
        format!("{}:{}", self.id, B64.encode(self.key.to_bytes()))
    }

    /// The public key, as `audit.keys[].public_key` takes it.
    pub fn public_key(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }

    /// Sign an entry whose hash is computed.
    pub fn sign(&self, e: &mut Entry) {
        let s = self.key.sign(message(&e.hash).as_bytes());
        e.sig = Some(Sig {
            key: self.id.clone(),
            ed25519: B64.encode(s.to_bytes()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promptgate_core::config::KeySpec;

    fn trust(signer: &Signer, retired: Option<&str>) -> Trust {
        Trust::from_config(Some(&AuditConfig {
            require_signatures: false,
            keys: vec![KeySpec {
                id: signer.id.clone(),
                public_key: signer.public_key(),
                retired_from: retired.map(str::to_string),
            }],
        }))
        .unwrap()
    }

    fn entry(ts: &str) -> Entry {
        serde_json::from_value(serde_json::json!({
            "seq": 1, "ts": ts, "actor": "a", "action": "label_set", "prompt": "p",
            "label": "production", "to": "v1-abc", "prev": super::super::audit::GENESIS,
        }))
        .unwrap()
    }

    #[test]
    fn a_signature_covers_the_entry_and_names_a_trusted_key() {
        let ci = Signer::generate("ci").unwrap();
        let mut e = entry("2026-12-01T10:00:00Z");
        e.hash = e.compute_hash();
        ci.sign(&mut e);
        assert_eq!(trust(&ci, None).problem(&e), None);
        // The hash does not depend on the signature.
        assert_eq!(e.compute_hash(), e.hash);
        // Another key with the same id: the signature does not verify.
        let impostor = Signer::generate("ci").unwrap();
        let p = trust(&impostor, None).problem(&e).unwrap();
        assert!(p.contains("does not match"), "{p}");
        // Edited content (and a recomputed hash): the old signature no longer matches.
        let mut edited = e.clone();
        edited.label = Some("canary".into());
        edited.hash = edited.compute_hash();
        assert!(trust(&ci, None).problem(&edited).is_some());
        // An unknown key id.
        let other = Signer::generate("bob").unwrap();
        let mut by_bob = e.clone();
        other.sign(&mut by_bob);
        let p = trust(&ci, None).problem(&by_bob).unwrap();
        assert!(p.contains("`bob`, which is not a trusted key"), "{p}");
        // Retired: valid before the date, refused from it on.
        assert_eq!(trust(&ci, Some("2026-12-02T00:00:00Z")).problem(&e), None);
        let p = trust(&ci, Some("2026-12-01T00:00:00Z"))
            .problem(&e)
            .unwrap();
        assert!(p.contains("retired from"), "{p}");
        // The secret round-trips through its line.
        let again = Signer::parse(&ci.secret_line(), "test").unwrap();
        assert_eq!(again.public_key(), ci.public_key());
        assert!(Signer::parse("no-colon", "test").is_err());
        assert!(Signer::parse("ci:not base64", "test").is_err());
    }
}
