//! The only place with SQL. One writer thread owns the single read-write connection and
//! commits whatever is queued in one transaction (group commit); reads go through a pool of
//! read-only connections. Nothing here blocks an async runtime thread.

pub mod audit;
pub mod charts;
mod checkpointer;
pub mod dashboard;
pub mod heartbeat;
pub mod http_log;
pub mod import;
pub mod maintenance;
mod migrations;
pub mod outbox;
pub mod pager;
pub mod reconcile;
pub mod seed;
pub mod sessions;
pub mod test_payments;
pub mod transactions;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

pub use writer::Writer;

/// Read-only connections in the pool.
const READERS: u32 = 8;
/// Read connections [`Db::read_bulk`] callers (admin pages, CSV exports) may never take
/// together: kept for the payment path, the webhook worker and session checks (issue 19.5).
pub const READERS_RESERVED: usize = 2;

/// How long a connection waits for SQLite's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the storage layer. Each text carries its cause and no variant also exposes it as
/// `source()`, so a printed chain (`{:#}`) says every cause once (issue 15 point 4).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused or failed.
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    /// No read connection could be had.
    #[error("connection pool: {0}")]
    Pool(r2d2::Error),
    /// The writer queue stayed full for too long (backpressure).
    #[error("the database writer is overloaded")]
    Busy,
    /// The batch this change was part of could not be committed.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer thread has stopped.
    #[error("the database writer has stopped")]
    WriterGone,
    /// A blocking task could not complete.
    #[error("blocking task failed: {0}")]
    Join(tokio::task::JoinError),
    /// Opening or preparing the database file failed: `reason` says why and the fix, once.
    #[error("cannot open the database {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why, in one line, with the fix.
        reason: String,
    },
    /// A backup could not be written to `path`: `reason` says why, once.
    #[error("cannot write the backup {path}: {reason}")]
    Backup {
        /// The backup file asked for.
        path: PathBuf,
        /// Why, in one line.
        reason: String,
    },
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError::Sqlite(e)
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> DbError {
        DbError::Pool(e)
    }
}

impl From<tokio::task::JoinError> for DbError {
    fn from(e: tokio::task::JoinError) -> DbError {
        DbError::Join(e)
    }
}

/// Why SQLite could not open or prepare `path`, in words an operator can act on. A refusal to
/// open is looked into on the file system (permissions, read-only, space) since SQLite only
/// says "unable to open database file".
pub(crate) fn open_problem(path: &Path, e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    let code = e.sqlite_error_code();
    match code {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => format!(
            "the file is not an SQLite database or is damaged ({}); fix: restore it from a \
             backup (see `qiwi-gateway backup`), or move it away to start with an empty database",
            sqlite_words(e)
        ),
        Some(ErrorCode::DiskFull) => crate::ops::startup::write_problem(
            path,
            &std::io::Error::from(std::io::ErrorKind::StorageFull),
        ),
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure,
        ) => writable_problem(path).unwrap_or_else(|| sqlite_words(e)),
        _ => sqlite_words(e),
    }
}

/// SQLite's message for `e` without the path it repeats (the caller names the path).
fn sqlite_words(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg)) => {
            let msg = msg.split(": /").next().unwrap_or(msg);
            if msg.is_empty() {
                err.to_string()
            } else {
                msg.to_owned()
            }
        }
        other => other.to_string(),
    }
}

/// Why the database at `path` cannot be written: its folder does not take new files (the
/// WAL and shared-memory files live beside it), or the file itself is not writable.
pub(crate) fn writable_problem(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Err(problem) = crate::ops::startup::check_writable_folder(dir) {
        return Some(problem);
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Some(crate::ops::startup::write_problem(path, &e))
        }
        _ => None,
    }
}

/// The database: a writer for every change and a read-only pool for queries.
#[derive(Clone)]
pub struct Db {
    writer: Writer,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Permits for [`Db::read_bulk`]: `READERS - READERS_RESERVED`.
    bulk_reads: Arc<tokio::sync::Semaphore>,
    /// Whether the checkpointer thread checkpoints; it stops once every clone is gone.
    checkpoints: Arc<AtomicBool>,
}

impl Db {
    /// Opens (creating it and its folder if needed) and migrates the database file.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_with(path, &mut |_, _| {})
    }

    /// [`Db::open`], calling `on_migration(applied, pending)` before the first pending
    /// migration (with 0) and after each one, so a long upgrade can show its progress.
    pub fn open_with(
        path: &Path,
        on_migration: &mut dyn FnMut(usize, usize),
    ) -> Result<Db, DbError> {
        let open_err = |reason: String| DbError::Open {
            path: path.to_owned(),
            reason,
        };
        let sqlite_err = |e: rusqlite::Error| open_err(open_problem(path, &e));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_err(crate::ops::startup::write_problem(dir, &e)))?;
        }
        // Said before SQLite tries: it would only say "unable to open database file".
        if let Some(problem) = writable_problem(path) {
            return Err(open_err(problem));
        }
        let mut conn = Connection::open(path).map_err(sqlite_err)?;
        configure(&conn).map_err(sqlite_err)?;
        // WAL is a property of the file: set once by the writer, readers inherit it.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite_err)?;
        // The writer never checkpoints (that would stall every waiting request behind an
        // fsync of the main file); the checkpointer thread does it beside it.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sqlite_err)?;
        // After the checkpointer restarts the WAL, the file is cut back to this size.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(sqlite_err)?;
        migrations::run_with(&mut conn, on_migration).map_err(sqlite_err)?;

        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|c| configure(c));
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(manager)?;
        let checkpoints = Arc::new(AtomicBool::new(true));
        let restart_wal = Arc::new(AtomicBool::new(false));
        checkpointer::start(path, Arc::downgrade(&checkpoints), restart_wal.clone())
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Db {
            writer: Writer::start(conn, restart_wal),
            readers,
            bulk_reads: Arc::new(tokio::sync::Semaphore::new(
                READERS as usize - READERS_RESERVED,
            )),
            checkpoints,
        })
    }

    /// Turns the background PASSIVE checkpoints on or off (off when Litestream checkpoints).
    pub fn set_background_checkpoints(&self, on: bool) {
        self.checkpoints.store(on, Ordering::Relaxed);
    }

    /// Whether the background checkpoints are on.
    pub fn background_checkpoints(&self) -> bool {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// The single writer.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Makes webhook deliveries due now: of transaction `id`, or with `None` of every
    /// undelivered one, a chunk per writer job. Returns how many were made due.
    pub async fn make_due(&self, id: Option<i64>) -> Result<usize, DbError> {
        self.make_due_watched(id, &mut |_| {}).await
    }

    /// [`Db::make_due`], calling `on_chunk(n)` after each chunk of `n` rows is made due.
    pub async fn make_due_watched(
        &self,
        id: Option<i64>,
        on_chunk: &mut (dyn FnMut(usize) + Send),
    ) -> Result<usize, DbError> {
        let now = chrono::Utc::now().timestamp_millis();
        let (mut total, mut after) = (0, 0);
        loop {
            let (n, last) = self
                .writer
                .write(move |c| transactions::make_due(c, id, after, now))
                .await?;
            total += n;
            after = last;
            on_chunk(n);
            if id.is_some() || n < transactions::CHUNK {
                return Ok(total);
            }
        }
    }

    /// How many transactions are not delivered yet (`status = 0`): what `resend --all` walks.
    pub async fn undelivered(&self) -> Result<u64, DbError> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM qiwi_transaction WHERE status = 0",
                [],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Runs `f` on a read-only connection off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await?
    }
}

impl Db {
    /// Like [`Db::read`], for work an operator asks for (admin pages, exports): waits for one
    /// of `READERS - READERS_RESERVED` permits first, so however many such reads run at once,
    /// [`READERS_RESERVED`] connections stay free for payments, the worker and sessions.
    pub async fn read_bulk<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        // Acquiring fails only on a closed semaphore, and this one is never closed.
        let _permit = self.bulk_reads.acquire().await.ok();
        self.read(f).await
    }
}

/// Pragmas every connection gets. `synchronous=FULL` makes each commit durable on disk in WAL
/// mode before it returns: a pay is answered 0 only after that.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The current UTC time as stored in text columns.
pub fn now_text() -> String {
    format_time(chrono::Utc::now())
}

/// Formats a UTC time as stored in text columns: `YYYY-MM-DD HH:MM:SS`.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written field by field: `format()` parses its pattern on every call, on every request.
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_bulk_resend_reaches_every_undelivered_row_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::Db::open(&dir.path().join("q.db")).unwrap();
        let rows = 2 * super::transactions::CHUNK + 17;
        db.writer()
            .write(move |c| {
                for i in 0..rows {
                    c.execute(
                        "INSERT INTO qiwi_transaction
                             (account, code, sum, status, created_at, sum_minor, txn_date)
                         VALUES ('a', ?1, 1.0, ?2, '2024-01-01 00:00:00', 100, '')",
                        rusqlite::params![i.to_string(), i64::from(i % 10 == 0)],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let undelivered = rows - rows.div_ceil(10);
        assert_eq!(db.make_due(None).await.unwrap(), undelivered);
        let due: i64 = db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM qiwi_transaction WHERE delivery_due_ms IS NOT NULL",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(due, undelivered as i64);
        assert_eq!(db.make_due(Some(1)).await.unwrap(), 1);
        assert_eq!(db.make_due(Some(999_999)).await.unwrap(), 0);
    }

    /// Power-loss safety rests on every read-write connection committing with
    /// `synchronous=FULL` (2): the writer (every payment), the checkpointer, and the one that
    /// checkpoints at shutdown. `scripts/durability-test` shows the resulting fsyncs.
    #[tokio::test]
    async fn every_read_write_connection_syncs_fully() {
        const FULL: i64 = 2;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let db = super::Db::open(&path).unwrap();
        let synchronous = |c: &rusqlite::Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        let writer = db
            .writer()
            .write(move |c| Ok(synchronous(c)))
            .await
            .unwrap();
        assert_eq!(writer, FULL, "the writer's connection");
        let checkpointer = super::checkpointer::open(&path).unwrap();
        assert_eq!(
            synchronous(&checkpointer),
            FULL,
            "the checkpointer's connection"
        );
        let shutdown = super::maintenance::open_for_checkpoints(&path).unwrap();
        assert_eq!(
            synchronous(&shutdown),
            FULL,
            "the shutdown checkpoint's connection"
        );
    }

    #[test]
    fn times_are_stored_as_utc_text() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-02-29T23:05:09.999+03:00").unwrap();
        assert_eq!(super::format_time(t.to_utc()), "2024-02-29 20:05:09");
    }
}
