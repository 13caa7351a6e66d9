//! The content-addressed response cache under `.promptgate/cache/`.
//!
//! Layout: `v1/<k[0..2]>/<k[2..4]>/<k>.json`, where `k` is the SHA-256 of the endpoint, the
//! request hash and the sample index. Why files and not an embedded store: a write is a temp
//! file renamed into place, which is atomic, so any number of promptgate processes can write
//! at once without a lock or a server; a read is one `open`. Two levels of 256-way fan-out keep
//! every directory small (a million entries is about 15 files per directory), so lookups do
//! not slow down as the cache grows.
//!
//! Entries are not fsynced — a lost entry only costs a repeated call — but every entry carries
//! its own key and is parsed in full on read, so a torn or foreign file is a miss, never a wrong
//! answer. Errors are never cached.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Completion;
use crate::artifact::canonical;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    completion: Completion,
}

/// A response cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache {
            root: dir.join("v1"),
        }
    }

    /// The cache key of one call.
    pub fn key(endpoint: &str, request_hash: &str, sample: u32) -> String {
        let v = json!({"endpoint": endpoint, "request": request_hash, "sample": sample});
        canonical::content_hash(&v).unwrap_or_default()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root
            .join(&key[..2])
            .join(&key[2..4])
            .join(format!("{key}.json"))
    }

    /// The cached answer, if there is a whole, matching one.
    pub fn get(&self, key: &str) -> Option<Completion> {
        if key.len() < 4 {
            return None;
        }
        let bytes = fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        (entry.key == key).then_some(entry.completion)
    }

    /// Store an answer (atomically: temp file, then rename).
    pub fn put(&self, key: &str, completion: &Completion) -> std::io::Result<()> {
        if key.len() < 4 {
            return Ok(());
        }
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        let entry = Entry {
            key: key.to_string(),
            completion: completion.clone(),
        };
        tmp.write_all(&serde_json::to_vec(&entry).map_err(std::io::Error::other)?)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_entries_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let key = Cache::key("openai http://x", "abc", 0);
        assert!(cache.get(&key).is_none());
        let c = Completion {
            content: "hi".into(),
            ..Completion::default()
        };
        cache.put(&key, &c).unwrap();
        assert_eq!(cache.get(&key), Some(c));
        // A torn file is a miss.
        let p = cache.path(&key);
        let text = fs::read(&p).unwrap();
        fs::write(&p, &text[..text.len() / 2]).unwrap();
        assert!(cache.get(&key).is_none());
        // Different sample, different key.
        assert_ne!(key, Cache::key("openai http://x", "abc", 1));
    }
}
