//! Crash-safe file writes and advisory locks: every write is temp file, fsync, rename, fsync of
//! the directory, so a crash at any instant leaves the old or the new file, never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Prefix of temporary files; `init` puts it in `.gitignore` and writers ignore stale ones.
pub const TEMP_PREFIX: &str = ".promptgate-tmp-";

/// Read a file to a string, naming the path on error.
pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))
}

/// Atomically replace `path` with `contents`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, "create a temporary file in", e))?;
    tmp.write_all(contents)
        .map_err(|e| Error::io(tmp.path(), "write", e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), "fsync", e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(path, "rename into place", e.error))?;
    sync_dir(dir)
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| Error::io(dir, "open", e))?;
        d.sync_all().map_err(|e| Error::io(dir, "fsync", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Create a directory and its parents, naming the path on error.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))
}

/// Copy a directory tree, skipping entries named in `skip` (e.g. `.promptgate`).
pub fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    create_dir_all(to)?;
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, "list", e))? {
        let entry = entry.map_err(|e| Error::io(from, "list", e))?;
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst, skip)?;
        } else {
            fs::copy(&src, &dst).map_err(|e| Error::io(&src, "copy", e))?;
        }
    }
    Ok(())
}

/// An exclusive advisory lock held until dropped (released by the OS if the process dies).
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl LockGuard {
    /// Block until the exclusive lock on `path` (created if missing) is ours.
    pub fn acquire(path: &Path) -> Result<LockGuard> {
        if let Some(dir) = path.parent() {
            create_dir_all(dir)?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open lock file", e))?;
        file.lock().map_err(|e| Error::io(path, "lock", e))?;
        Ok(LockGuard { file })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
