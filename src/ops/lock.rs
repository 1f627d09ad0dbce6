//! One gateway per database: an exclusive OS file lock beside the SQLite file.
//!
//! Two processes serving one database would both run the webhook worker, whose claims are in
//! memory, and deliver every payment twice. `serve` (and anything else that needs the
//! database to itself, such as `migrate` or an import) holds [`DatabaseLock`] for its
//! lifetime. The kernel releases it on any exit, `kill -9` included, so a stale lock file
//! never blocks a restart: only a live holder does.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The exclusive lock on a database, held until it is dropped (or the process ends).
#[derive(Debug)]
pub struct DatabaseLock {
    // Never read: holding the open file is what holds the lock.
    _file: File,
    path: PathBuf,
}

impl DatabaseLock {
    /// The lock file, `<database>.lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: a gateway is serving this database.
    #[error("{} is in use by another qiwi-gateway{}: it holds the lock {}", .database.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), .lock.display())]
    Held {
        /// The database file.
        database: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder's process id, as it wrote it into the lock file (when it could be read).
        pid: Option<u32>,
    },
    /// The lock file could not be created or locked (the folder is missing or read-only...).
    // The cause is part of the message and deliberately not a `#[source]`: said once.
    // Permission denied, read-only, no space: said as the data folder's problem, with the uid
    // and the fix (issue 10 point 2).
    #[error("cannot lock {}: {}", .lock.display(), crate::ops::startup::write_problem(.lock.parent().unwrap_or(.lock), .reason))]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// The operating system's reason.
        reason: std::io::Error,
    },
}

/// The lock file of `database`: the same path with `.lock` appended (`qiwi.db.lock`).
pub fn lock_path(database: &Path) -> PathBuf {
    let mut s = database.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the exclusive lock on `database` without waiting (creating the lock file and its
/// folder when missing) and writes this process's id into the lock file. Errors: [`LockError::Held`]
/// when another process holds it, naming that process when its id can be read;
/// [`LockError::Io`] when the file cannot be created. Uses `flock(2)` via `File::try_lock`.
pub fn lock_database(database: &Path) -> Result<DatabaseLock, LockError> {
    let lock = lock_path(database);
    let io = |reason| LockError::Io {
        lock: lock.clone(),
        reason,
    };
    if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Not truncated on open: the holder's pid must stay readable by whoever fails to lock.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                database: database.to_owned(),
                pid: read_pid(&mut file),
                lock,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let write_pid = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()
    };
    write_pid(&mut file).map_err(io)?;
    Ok(DatabaseLock {
        _file: file,
        path: lock,
    })
}

/// Who holds the lock on `database` right now: `Some(pid)` (0 when the holder's id is
/// unknown) while a process holds it, `None` when nobody does or the lock file cannot be
/// opened. Probing takes the lock for an instant, so call it only where that is harmless.
pub fn holder(database: &Path) -> Option<u32> {
    let mut file = File::open(lock_path(database)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(read_pid(&mut file).unwrap_or(0)),
        Err(TryLockError::Error(_)) => None,
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_naming_the_file_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/qiwi.db");
        assert_eq!(holder(&db), None);
        let first = lock_database(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("sub/qiwi.db.lock"));
        assert_eq!(holder(&db), Some(std::process::id()));
        // flock locks belong to the open file: a second open in this process conflicts too.
        let err = lock_database(&db).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Held { pid: Some(p), .. } if p == std::process::id()));
        assert!(msg.contains("qiwi.db.lock"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        assert_eq!(holder(&db), None);
        let again = lock_database(&db).unwrap();
        drop(again);
    }

    #[test]
    fn an_unwritable_folder_is_an_io_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = lock_database(&file.join("qiwi.db")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
        assert!(err.to_string().contains("qiwi.db.lock"), "{err}");
    }
}
