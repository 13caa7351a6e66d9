//! The content-addressed response cache: `.promptgate/cache/responses.sqlite3`.
//!
//! Key: the SHA-256 of the endpoint, the request hash and the sample index (errors are never
//! stored). Why SQLite and not a file per entry: creating a file per answer was measured to
//! dominate a cold run (10,000 answers took 2 s of file-system work on the reference machine)
//! and a million files strain any directory layout. SQLite in WAL mode gives what the cache
//! needs from one file: a B-tree whose lookups stay fast at a million entries; atomic
//! transactions, so a crash never leaves a torn entry; and file locking with a busy timeout,
//! so several promptgate processes can read and write at once. `synchronous = NORMAL`: after a
//! power loss the last answers may be missing (they cost a repeated call), never corrupted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params_from_iter};

use super::Completion;
use crate::artifact::canonical;

/// The cache file inside the cache directory.
pub const FILE: &str = "responses.sqlite3";

/// A response cache stored in one SQLite file.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache {
            path: dir.join(FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cache key of one call: SHA-256 of `endpoint`, `request_hash` and `sample`, each
    /// followed by a newline.
    pub fn key(endpoint: &str, request_hash: &str, sample: u32) -> String {
        canonical::sha256_hex(format!("{endpoint}\n{request_hash}\n{sample}\n").as_bytes())
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS responses (
                 key TEXT PRIMARY KEY,
                 completion TEXT NOT NULL
             ) WITHOUT ROWID;",
        )?;
        Ok(conn)
    }

    /// Look up many keys at once. Entries that do not parse are misses.
    pub fn get_many(&self, keys: &[&str]) -> HashMap<String, Completion> {
        use rayon::prelude::*;
        if keys.is_empty() || !self.path.exists() {
            return HashMap::new();
        }
        // One connection per worker: WAL readers do not block each other, and parsing the
        // answers is most of the work.
        let per_worker = keys.len().div_ceil(rayon::current_num_threads()).max(500);
        keys.par_chunks(per_worker)
            .map(|part| self.get_part(part))
            .reduce(HashMap::new, |mut a, b| {
                a.extend(b);
                a
            })
    }

    fn get_part(&self, keys: &[&str]) -> HashMap<String, Completion> {
        let mut out = HashMap::with_capacity(keys.len());
        let Ok(conn) = self.open_reader() else {
            return out;
        };
        for chunk in keys.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql =
                format!("SELECT key, completion FROM responses WHERE key IN ({placeholders})");
            let Ok(mut stmt) = conn.prepare_cached(&sql) else {
                continue;
            };
            let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| {
                let key = r.get::<_, String>(0)?;
                let c = serde_json::from_str::<Completion>(r.get_ref(1)?.as_str()?).ok();
                Ok((key, c))
            });
            if let Ok(rows) = rows {
                for (k, c) in rows.flatten() {
                    if let Some(c) = c {
                        out.insert(k, c);
                    }
                }
            }
        }
        out
    }

    /// A connection for reading: no schema to create, no journal mode to set (the file exists
    /// and is in WAL mode already). Read-write because a WAL reader may need to create the
    /// shared-memory file.
    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Ok(conn)
    }

    /// One entry.
    pub fn get(&self, key: &str) -> Option<Completion> {
        self.get_many(&[key]).remove(key)
    }

    /// A writer that stores answers in batches (one transaction per [`Writer::flush`]).
    pub fn writer(&self) -> rusqlite::Result<Writer> {
        Ok(Writer {
            conn: self.open()?,
            pending: Vec::new(),
        })
    }

    /// Store one answer now.
    pub fn put(&self, key: &str, completion: &Completion) -> rusqlite::Result<()> {
        let mut w = self.writer()?;
        w.put(key, completion);
        w.flush()
    }
}

/// Buffers answers and writes them in one transaction per flush.
pub struct Writer {
    conn: Connection,
    pending: Vec<(String, String)>,
}

impl Writer {
    pub fn put(&mut self, key: &str, completion: &Completion) {
        if let Ok(json) = serde_json::to_string(completion) {
            self.pending.push((key.to_string(), json));
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Commit what is pending (`--refresh` replaces existing answers).
    pub fn flush(&mut self) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO responses (key, completion) VALUES (?1, ?2)",
            )?;
            for (k, v) in &self.pending {
                stmt.execute([k, v])?;
            }
        }
        tx.commit()?;
        self.pending.clear();
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_batches_and_distinct_samples() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let key = Cache::key("openai http://x", "abc", 0);
        assert!(cache.get(&key).is_none());
        let c = Completion {
            content: "hi".into(),
            ..Completion::default()
        };
        cache.put(&key, &c).unwrap();
        assert_eq!(cache.get(&key), Some(c.clone()));
        assert_ne!(key, Cache::key("openai http://x", "abc", 1));
        let mut w = cache.writer().unwrap();
        let keys: Vec<String> = (0..1200)
            .map(|i| Cache::key("e", &i.to_string(), 0))
            .collect();
        for k in &keys {
            w.put(k, &c);
        }
        w.flush().unwrap();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(cache.get_many(&refs).len(), 1200);
    }

    #[test]
    fn concurrent_writers_from_separate_connections() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let mut w = cache.writer().unwrap();
                    for i in 0..200 {
                        let c = Completion {
                            content: format!("{t}-{i}"),
                            ..Completion::default()
                        };
                        w.put(&Cache::key("e", &format!("{t}-{i}"), 0), &c);
                        if i % 50 == 0 {
                            w.flush().unwrap();
                        }
                    }
                    w.flush().unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for t in 0..4 {
            for i in 0..200 {
                let got = cache.get(&Cache::key("e", &format!("{t}-{i}"), 0)).unwrap();
                assert_eq!(got.content, format!("{t}-{i}"));
            }
        }
    }
}
