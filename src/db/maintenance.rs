//! Operations on the database as a whole: readiness probe, webhook backlog, request log
//! retention, checkpoints, and online backups.

use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::DbError;

/// Rows of `qiwi_http_log` deleted by one statement: small, so the write lock is held for
/// milliseconds and payments queued behind it barely notice.
pub const PRUNE_BATCH: i64 = 500;

/// Undelivered webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// How many payments still have a delivery due.
    pub pending: u64,
    /// When the oldest of them was stored.
    pub oldest: Option<DateTime<Utc>>,
}

/// The webhook backlog: payments whose delivery is still due (the partial index on
/// `delivery_due_ms` makes this cost what the backlog is, not what the table is).
pub fn backlog(conn: &Connection) -> Result<Backlog, DbError> {
    let (pending, oldest): (i64, Option<String>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(created_at) FROM qiwi_transaction
             WHERE delivery_due_ms IS NOT NULL",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Backlog {
        pending: u64::try_from(pending).unwrap_or(0),
        oldest: oldest.as_deref().and_then(parse_time),
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Deletes up to [`PRUNE_BATCH`] of the oldest `qiwi_http_log` rows created before `cutoff`
/// and returns how many went. It looks only at the oldest rows by id (ids grow with time), so
/// each call touches a bounded number of rows however large the table; the caller repeats
/// it, each in its own transaction, until it returns 0. Transactions are never touched.
pub fn prune_http_log(conn: &Connection, cutoff: DateTime<Utc>) -> Result<usize, DbError> {
    let n = conn
        .prepare_cached(
            "DELETE FROM qiwi_http_log
             WHERE id IN (SELECT id FROM qiwi_http_log ORDER BY id LIMIT ?1)
               AND created_at < ?2",
        )?
        .execute(params![PRUNE_BATCH, super::format_time(cutoff)])?;
    Ok(n)
}

/// Lets SQLite refresh its query planner statistics where they are stale, bounded in work.
pub fn optimize(conn: &Connection) -> Result<(), DbError> {
    conn.pragma_update(None, "analysis_limit", 400)?;
    conn.execute_batch("PRAGMA optimize")?;
    Ok(())
}

/// What a checkpoint did, in WAL frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Whether it could not run to the end because a reader or writer was in the way.
    pub busy: bool,
    /// Frames in the WAL.
    pub log: i64,
    /// Frames copied into the database file.
    pub checkpointed: i64,
}

/// A PASSIVE checkpoint: copies what it can from the WAL into the database file without
/// waiting for, or blocking, any reader or writer. It never resets the WAL under a reader,
/// so it is safe next to Litestream, which holds a read transaction for that purpose.
/// Must run outside a transaction: on its own connection, not the writer's.
pub fn checkpoint_passive(conn: &Connection) -> Result<Checkpoint, DbError> {
    let c = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpoint {
            busy: r.get::<_, i64>(0)? != 0,
            log: r.get(1)?,
            checkpointed: r.get(2)?,
        })
    })?;
    Ok(c)
}

/// Opens a connection for checkpoints (outside the writer, which is always in a transaction).
pub fn open_for_checkpoints(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    super::configure(&conn)?;
    // This connection must never be the one to checkpoint on close behind the writer's back.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// Writes a consistent copy of the database at `source` to `target` with `VACUUM INTO`, on a
/// read-only connection of its own: one read transaction, a snapshot, which in WAL mode
/// blocks no writer, so payments go on being stored while it runs. The copy is written to a
/// temporary file beside `target`, synced, and renamed into place, so `target` is either
/// absent or complete. `target` must not exist.
pub fn backup(source: &Path, target: &Path) -> Result<BackupInfo, DbError> {
    backup_watched(source, target, &|_, _| {})
}

/// [`backup`], calling `watch(written, expected)` about every 200 ms while the copy is
/// written: bytes in the partial copy so far, and the bytes in use in the source (its pages
/// minus its free list), which the copy approaches.
pub fn backup_watched(
    source: &Path,
    target: &Path,
    watch: &(dyn Fn(u64, u64) + Sync),
) -> Result<BackupInfo, DbError> {
    let failed = |reason: String| DbError::Backup {
        path: target.to_owned(),
        reason,
    };
    let io = |e: std::io::Error| failed(crate::ops::startup::os_text(&e));
    if !source.is_file() {
        return Err(DbError::Open {
            path: source.to_owned(),
            reason: "no database here; fix: set DATABASE_PATH (or --config) to the gateway's"
                .into(),
        });
    }
    if target.exists() {
        return Err(failed(
            "the file already exists; choose a new file name".into(),
        ));
    }
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(failed(format!(
            "the folder {} does not exist; fix: create it first (mkdir -p)",
            dir.display()
        )));
    }
    crate::ops::startup::check_writable_folder(dir).map_err(failed)?;
    let file_name = target
        .file_name()
        .ok_or_else(|| failed("not a file name".into()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".partial");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);

    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    let tmp_text = tmp
        .to_str()
        .ok_or_else(|| failed("the path is not valid UTF-8".into()))?;
    let expected: i64 = conn.query_row(
        "SELECT (page_count - freelist_count) * page_size
         FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
        [],
        |r| r.get(0),
    )?;
    let expected = u64::try_from(expected).unwrap_or(0);
    let copying = std::sync::atomic::AtomicBool::new(true);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while copying.load(std::sync::atomic::Ordering::Relaxed) {
                let written = std::fs::metadata(&tmp).map_or(0, |m| m.len());
                watch(written, expected);
                std::thread::park_timeout(std::time::Duration::from_millis(200));
            }
        });
        let result = conn.execute("VACUUM INTO ?1", [tmp_text]);
        copying.store(false, std::sync::atomic::Ordering::Relaxed);
        result
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        // SQLite's words name the temporary file; the operator asked for `target`.
        return Err(failed(super::open_problem(target, &e)));
    }
    drop(conn);

    let copy = Connection::open_with_flags(&tmp, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let info = BackupInfo {
        transactions: copy.query_row("SELECT COUNT(*) FROM qiwi_transaction", [], |r| r.get(0))?,
        last_transaction_id: copy
            .query_row("SELECT MAX(id) FROM qiwi_transaction", [], |r| r.get(0))
            .optional()?
            .flatten(),
        bytes: std::fs::metadata(&tmp).map_err(io)?.len(),
    };
    drop(copy);
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, target).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(info)
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    /// Payments in the copy.
    pub transactions: i64,
    /// The newest payment's id in the copy.
    pub last_transaction_id: Option<i64>,
    /// The copy's size.
    pub bytes: u64,
}

/// The schema version (`PRAGMA user_version`): how many migrations are applied.
pub fn schema_version(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        super::super::migrations::run(&mut conn).unwrap();
        (dir, conn)
    }

    fn log_at(conn: &Connection, t: DateTime<Utc>) {
        conn.execute(
            "INSERT INTO qiwi_http_log (ip, url, method, headers, created_at, status)
             VALUES ('127.0.0.1', '/payment', 'GET', '{}', ?1, 200)",
            [super::super::format_time(t)],
        )
        .unwrap();
    }

    #[test]
    fn pruning_takes_only_old_rows_in_bounded_batches() {
        let (_dir, conn) = db();
        let now = Utc::now();
        for _ in 0..(PRUNE_BATCH + 20) {
            log_at(&conn, now - Duration::days(100));
        }
        for _ in 0..5 {
            log_at(&conn, now - Duration::days(1));
        }
        conn.execute(
            "INSERT INTO qiwi_transaction (account, code, sum, created_at, sum_minor, txn_date)
             VALUES ('a', '1', 1.0, '2000-01-01 00:00:00', 100, '20000101000000')",
            [],
        )
        .unwrap();
        let cutoff = now - Duration::days(90);
        assert_eq!(prune_http_log(&conn, cutoff).unwrap() as i64, PRUNE_BATCH);
        assert_eq!(prune_http_log(&conn, cutoff).unwrap(), 20);
        assert_eq!(prune_http_log(&conn, cutoff).unwrap(), 0);
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM qiwi_http_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 5);
        let txns: i64 = conn
            .query_row("SELECT COUNT(*) FROM qiwi_transaction", [], |r| r.get(0))
            .unwrap();
        assert_eq!(txns, 1);
    }

    #[test]
    fn backlog_counts_due_deliveries_and_their_oldest() {
        let (_dir, conn) = db();
        assert_eq!(
            backlog(&conn).unwrap(),
            Backlog {
                pending: 0,
                oldest: None
            }
        );
        for (code, at, due) in [
            ("1", "2024-01-01 10:00:00", None),
            ("2", "2024-01-02 10:00:00", Some(1)),
            ("3", "2024-01-03 10:00:00", Some(2)),
        ] {
            conn.execute(
                "INSERT INTO qiwi_transaction
                     (account, code, sum, created_at, sum_minor, txn_date, delivery_due_ms)
                 VALUES ('a', ?1, 1.0, ?2, 100, '20240101000000', ?3)",
                params![code, at, due],
            )
            .unwrap();
        }
        let b = backlog(&conn).unwrap();
        assert_eq!(b.pending, 2);
        assert_eq!(b.oldest, parse_time("2024-01-02 10:00:00"));
    }

    #[test]
    fn backup_refuses_to_overwrite_and_copies_everything() {
        let (dir, conn) = db();
        log_at(&conn, Utc::now());
        let target = dir.path().join("copy.db");
        let info = backup(&dir.path().join("t.db"), &target).unwrap();
        assert_eq!(info.transactions, 0);
        let copy = Connection::open(&target).unwrap();
        let n: i64 = copy
            .query_row("SELECT COUNT(*) FROM qiwi_http_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert!(backup(&dir.path().join("t.db"), &target).is_err());
        assert!(!dir.path().join(".copy.db.partial").exists());
    }
}
