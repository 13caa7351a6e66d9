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

/// Atomically replace `path` with `contents`. A new file gets the mode the umask gives (as
/// any other program's would: `registry.yaml` stays readable by a `serve` running as another
/// user); a replaced file keeps its mode.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(contents))
}

/// [`write_atomic`] for contents written piece by piece through a buffer, never whole in
/// memory (a run's `checks.jsonl`).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    if let Err(e) = write(&mut file) {
        return Err(Error::io(&file.tmp_path, "write", e));
    }
    file.commit()
}

/// A file written in full before it replaces `path`: a temporary file beside it, fsynced and
/// renamed into place (keeping `path`'s permissions), then the folder fsynced. Dropped without
/// [`AtomicFile::commit`], the temporary file goes and `path` is untouched.
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp_path: std::path::PathBuf,
    buf: Option<std::io::BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tmp_path, tmp) = create_temp(dir, &name)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp_path,
            buf: Some(std::io::BufWriter::with_capacity(1 << 16, tmp)),
        })
    }

    /// Put the file in place.
    pub fn commit(mut self) -> Result<()> {
        let (path, tmp_path) = (self.path.clone(), self.tmp_path.clone());
        let Some(buf) = self.buf.take() else {
            return Ok(());
        };
        let written = (|| -> Result<()> {
            let tmp = buf
                .into_inner()
                .map_err(|e| Error::io(&tmp_path, "write", e.into_error()))?;
            if let Ok(meta) = fs::metadata(&path) {
                fs::set_permissions(&tmp_path, meta.permissions())
                    .map_err(|e| Error::io(&tmp_path, "set the permissions of", e))?;
            }
            tmp.sync_all()
                .map_err(|e| Error::io(&tmp_path, "fsync", e))?;
            fs::rename(&tmp_path, &path).map_err(|e| Error::io(&path, "rename into place", e))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        written?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        sync_dir(dir)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self.buf.as_mut() {
            Some(b) => b.write(data),
            None => Err(std::io::Error::other("the file was already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.buf.as_mut().map_or(Ok(()), |b| b.flush())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.buf.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// A new temporary file in `dir` for replacing `name`: `.promptgate-tmp-<name>-<random>`,
/// created exclusively with mode 0666 less the umask.
fn create_temp(dir: &Path, name: &str) -> Result<(std::path::PathBuf, File)> {
    let mut tries = 0;
    loop {
        let candidate = dir.join(format!("{TEMP_PREFIX}{name}-{:016x}", fastrand::u64(..)));
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o666);
        }
        match opts.open(&candidate) {
            Ok(f) => return Ok((candidate, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            Err(e) => return Err(Error::io(dir, "create a temporary file in", e)),
        }
    }
}

/// Remove temporary files a killed writer left in `dir` (call under the lock that serializes
/// the writers of that folder: any temporary file then is a leftover). Returns how many.
pub fn remove_stale_temps(dir: &Path) -> usize {
    stale_temps(dir)
        .into_iter()
        .filter(|p| fs::remove_file(p).is_ok())
        .count()
}

/// Temporary files in `dir` (left by a killed writer, or being written right now).
pub fn stale_temps(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<std::path::PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
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
    /// The lock file at `path`, created (with its folder) if missing.
    fn open(path: &Path) -> Result<File> {
        if let Some(dir) = path.parent() {
            create_dir_all(dir)?;
        }
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open lock file", e))
    }

    /// Block until the exclusive lock on `path` (created if missing) is ours.
    pub fn acquire(path: &Path) -> Result<LockGuard> {
        let file = LockGuard::open(path)?;
        file.lock().map_err(|e| Error::io(path, "lock", e))?;
        Ok(LockGuard { file })
    }

    /// The exclusive lock on `path` if no one holds it now (`None`: someone does).
    pub fn try_acquire(path: &Path) -> Result<Option<LockGuard>> {
        let file = LockGuard::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(path, "lock", e)),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
