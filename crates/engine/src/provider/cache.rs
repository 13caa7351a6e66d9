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
//!
//! An answer, once stored, stays: a normal store is `INSERT OR IGNORE` (the first answer to a
//! request is the cached one, whoever wrote it), and only `--refresh` replaces answers. Every
//! replacement or deletion bumps a *generation* kept in the file next to a random id of the
//! file, so a [`Stamp`] that has not changed proves that no stored answer has (the plan cache's
//! answer snapshots rely on this).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params_from_iter};

use super::Completion;
use promptgate_core::artifact::canonical;

/// The cache file inside the cache directory.
pub const FILE: &str = "responses.sqlite3";

/// A response cache stored in one SQLite file.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
    /// Set when an answer given to a [`Writer`] of this cache (or a clone) did not become the
    /// stored one: another process had stored its own first, or the write failed.
    diverged: Arc<AtomicBool>,
}

/// Which cache file, and how many times its stored answers have been replaced or deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub id: String,
    pub generation: u64,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache {
            path: dir.join(FILE),
            diverged: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether every answer written through this cache's writers is the stored one.
    pub fn diverged(&self) -> bool {
        self.diverged.load(Ordering::Relaxed)
    }

    /// The file's id and generation, creating the file if needed. `None` if it cannot be read.
    pub fn stamp(&self) -> Option<Stamp> {
        // A plain reader when the file has its id already; else create what is missing.
        let stamp = |conn: rusqlite::Result<Connection>| conn.ok().and_then(read_stamp);
        stamp(self.open_reader()).or_else(|| stamp(self.open()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cache key of one call: SHA-256 of `endpoint`, `request_hash` and `sample`, each
    /// followed by a newline.
    pub fn key(endpoint: &str, request_hash: &super::ContentHash, sample: u32) -> String {
        canonical::sha256_hex(format!("{endpoint}\n{request_hash}\n{sample}\n").as_bytes())
    }

    /// Open (creating the file and schema if need be). Connections racing to set up a new
    /// file can get SQLITE_BUSY without the busy handler being asked (switching to WAL, and
    /// upgrading a read lock inside the schema's implicit transaction): they try again.
    fn open(&self) -> rusqlite::Result<Connection> {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut tries = 0;
        loop {
            match self.open_once() {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && tries < 200 =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(5 + fastrand::u64(0..10)));
                }
                other => return other,
            }
        }
    }

    fn open_once(&self) -> rusqlite::Result<Connection> {
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
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS responses (
                 key TEXT PRIMARY KEY,
                 completion TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (
                 key TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE TRIGGER IF NOT EXISTS responses_deleted AFTER DELETE ON responses BEGIN
                 UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation';
             END;
             CREATE TRIGGER IF NOT EXISTS responses_updated AFTER UPDATE ON responses BEGIN
                 UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation';
             END;
             INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');",
        )?;
        // The file's id, chosen once: a cache deleted and created again starts over at
        // generation 0 with another id.
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('id', ?1)",
            [promptgate_core::clock::random_id(16)],
        )?;
        conn.execute_batch("COMMIT;")?;
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
        // Grown with the hits, not sized for the keys: a cold run has none, and room for
        // every key cost 200 bytes a key.
        let mut out = HashMap::new();
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
    /// `replace`: answers replace stored ones (`--refresh`); otherwise a stored answer stays.
    pub fn writer(&self, replace: bool) -> rusqlite::Result<Writer> {
        let conn = self.open().inspect_err(|_| {
            // What would have been written will not be stored.
            self.diverged.store(true, Ordering::Relaxed);
        })?;
        Ok(Writer {
            conn,
            pending: Vec::new(),
            replace,
            diverged: self.diverged.clone(),
        })
    }

    /// Store one answer now (a stored one stays).
    pub fn put(&self, key: &str, completion: &Completion) -> rusqlite::Result<()> {
        let mut w = self.writer(false)?;
        w.put(key, completion);
        w.flush()
    }
}

/// The stamp stored in an open cache file.
fn read_stamp(conn: Connection) -> Option<Stamp> {
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta WHERE key IN ('id', 'generation')")
        .ok()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .ok()?;
    let (mut id, mut generation) = (None, None);
    for (k, v) in rows.flatten() {
        match k.as_str() {
            "id" => id = Some(v),
            _ => generation = v.parse().ok(),
        }
    }
    Some(Stamp {
        id: id?,
        generation: generation?,
    })
}

/// Buffers answers and writes them in one transaction per flush.
pub struct Writer {
    conn: Connection,
    pending: Vec<(String, String)>,
    replace: bool,
    diverged: Arc<AtomicBool>,
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

    /// Commit what is pending. A failure leaves the answers pending (and marks the cache as
    /// [`Cache::diverged`]).
    pub fn flush(&mut self) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.commit();
        if r.is_err() {
            self.diverged.store(true, Ordering::Relaxed);
        }
        r
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let mut ignored = false;
        {
            let sql = if self.replace {
                "INSERT OR REPLACE INTO responses (key, completion) VALUES (?1, ?2)"
            } else {
                "INSERT OR IGNORE INTO responses (key, completion) VALUES (?1, ?2)"
            };
            let mut stmt = tx.prepare_cached(sql)?;
            for (k, v) in &self.pending {
                ignored |= stmt.execute([k, v])? == 0;
            }
            if self.replace {
                // A replacement is a change no trigger sees (REPLACE deletes silently).
                tx.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'",
                    [],
                )?;
            }
        }
        tx.commit()?;
        if ignored {
            self.diverged.store(true, Ordering::Relaxed);
        }
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
        let abc = crate::provider::ContentHash::of(b"abc");
        let key = Cache::key("openai http://x", &abc, 0);
        assert!(cache.get(&key).is_none());
        let c = Completion {
            content: "hi".into(),
            ..Completion::default()
        };
        cache.put(&key, &c).unwrap();
        assert_eq!(cache.get(&key), Some(c.clone()));
        assert_ne!(key, Cache::key("openai http://x", &abc, 1));
        let mut w = cache.writer(false).unwrap();
        let keys: Vec<String> = (0..1200)
            .map(|i| {
                Cache::key(
                    "e",
                    &crate::provider::ContentHash::of(i.to_string().as_bytes()),
                    0,
                )
            })
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
                    let mut w = cache.writer(false).unwrap();
                    for i in 0..200 {
                        let c = Completion {
                            content: format!("{t}-{i}"),
                            ..Completion::default()
                        };
                        let h = crate::provider::ContentHash::of(format!("{t}-{i}").as_bytes());
                        w.put(&Cache::key("e", &h, 0), &c);
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
                let h = crate::provider::ContentHash::of(format!("{t}-{i}").as_bytes());
                let got = cache.get(&Cache::key("e", &h, 0)).unwrap();
                assert_eq!(got.content, format!("{t}-{i}"));
            }
        }
    }

    #[test]
    fn stamp_changes_only_when_a_stored_answer_does() {
        let dir = tempfile::tempdir().unwrap();
        // A cache whose folder does not exist yet is created.
        let cache = Cache::new(&dir.path().join("not/yet"));
        let first = cache.stamp().unwrap();
        assert_eq!(first.generation, 0);
        assert_eq!(first.id.len(), 32);
        let answer = |s: &str| Completion {
            content: s.into(),
            ..Completion::default()
        };
        // New answers do not change what is stored: same stamp.
        cache.put("k1", &answer("one")).unwrap();
        cache.put("k2", &answer("two")).unwrap();
        assert_eq!(cache.stamp().unwrap(), first);
        assert!(!cache.diverged());
        // Another answer to a stored request stays out, and the writer learns it.
        let other = Cache::new(&dir.path().join("not/yet"));
        other.put("k1", &answer("uno")).unwrap();
        assert_eq!(cache.get("k1").unwrap().content, "one");
        assert!(other.diverged());
        assert!(!cache.diverged());
        assert_eq!(cache.stamp().unwrap(), first);
        // --refresh replaces, and says so.
        let mut w = cache.writer(true).unwrap();
        w.put("k1", &answer("uno"));
        w.flush().unwrap();
        assert_eq!(cache.get("k1").unwrap().content, "uno");
        assert_eq!(cache.stamp().unwrap().generation, 1);
        // So does an edit by hand.
        let conn = Connection::open(cache.path()).unwrap();
        conn.execute("DELETE FROM responses WHERE key = 'k2'", [])
            .unwrap();
        conn.execute("UPDATE responses SET completion = completion", [])
            .unwrap();
        drop(conn);
        assert_eq!(cache.stamp().unwrap().generation, 3);
        // A cache deleted and created again is another cache.
        std::fs::remove_dir_all(dir.path()).unwrap();
        let again = Cache::new(&dir.path().join("not/yet")).stamp().unwrap();
        assert_eq!(again.generation, 0);
        assert_ne!(again.id, first.id);
    }
}
