//! The SQLite side of `import-original` (issue 18): payments and requests of the original
//! container written into `qiwi_transaction` and `qiwi_http_log` inside the caller's one
//! transaction, each imported payment marked with its run (`import_run`, migration 0009).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{Db, DbError};

/// Opens the database for an import: created and migrated like `serve` does, then one plain
/// connection the import holds alone (the caller holds the lock, so no gateway runs).
pub fn open(path: &Path) -> Result<Connection, DbError> {
    drop(Db::open(path)?);
    let conn = Connection::open(path).map_err(DbError::Sqlite)?;
    super::configure(&conn).map_err(DbError::Sqlite)?;
    // A bigger page cache for one long transaction (64 MiB: bounded whatever the row count).
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(DbError::Sqlite)?;
    Ok(conn)
}

/// How many payments a database holds, and their total in kopecks.
pub fn payment_totals(conn: &Connection) -> Result<(i64, i64), DbError> {
    Ok(conn.query_row(
        "SELECT count(*), coalesce(sum(sum_minor), 0) FROM qiwi_transaction",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// The payments run `run` added and their total in kopecks, as SQLite counts them.
pub fn run_totals(conn: &Connection, run: i64) -> Result<(i64, i64), DbError> {
    Ok(conn.query_row(
        "SELECT count(*), coalesce(sum(sum_minor), 0) FROM qiwi_transaction WHERE import_id = ?1",
        [run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// The id of an earlier run that imported the original's request log, if any.
pub fn log_imported_by(conn: &Connection) -> Result<Option<i64>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id FROM import_run WHERE log_rows > 0 ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Starts a run's record (`source` names the server without credentials); returns its id.
pub fn start_run(conn: &Connection, created_at: &str, source: &str) -> Result<i64, DbError> {
    conn.execute(
        "INSERT INTO import_run (created_at, source) VALUES (?1, ?2)",
        params![created_at, source],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Completes a run's record with what it added and the report it printed.
pub fn finish_run(
    conn: &Connection,
    run: i64,
    payments: i64,
    log_rows: i64,
    summary: &str,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE import_run SET payments = ?2, log_rows = ?3, summary = ?4 WHERE id = ?1",
        params![run, payments, log_rows, summary],
    )?;
    Ok(())
}

/// One payment of the original, converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The original's id: the `prv_txn` it answered, kept as ours.
    pub id: i64,
    /// `code` as the original stored it.
    pub code: String,
    /// Its canonical form ([`crate::qiwi::txn_id::canonical`]): what a repeat is looked up by.
    pub canonical: String,
    /// The customer's account.
    pub account: String,
    /// The sum in kopecks.
    pub sum_minor: i64,
    /// `true` when the original's webhook was acknowledged (status 1), or `--no-deliver`.
    pub delivered: bool,
    /// UTC `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// QIWI's `txn_date` (`YYYYMMDDHHMMSS`, Moscow), or its stand-in.
    pub txn_date: String,
    /// A JSON object: the original's other columns.
    pub extra: String,
}

/// What placing one payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Stored under its own id and canonical `txn_id`.
    Inserted,
    /// Its canonical `txn_id` was taken by an earlier row of this run (the original kept
    /// `000123` and `123` apart): stored under its code exactly as the original had it, as
    /// migration 0004 does with such rows, for the merchant to settle.
    InsertedAsStored,
    /// The gateway has this `txn_id` with the same account and sum (`--merge`): skipped.
    Same {
        /// The gateway's row.
        id: i64,
    },
    /// The gateway has this `txn_id` with another account or sum: not imported.
    Different {
        /// The gateway's row.
        id: i64,
        /// Its account.
        account: String,
        /// Its sum in kopecks.
        sum_minor: i64,
    },
    /// The original has this exact code twice: the later row is not imported.
    Duplicate {
        /// The row that has it.
        id: i64,
    },
    /// Its id is a different payment of the gateway's (`--merge`): to be stored under a new
    /// id once every other row is in ([`insert_renumbered`]).
    IdTaken,
}

/// Places `p` (run `run`; `due_ms` when its delivery is due, `None` when delivered): the
/// decision a repeated `pay` would make ([`super::transactions::store`]), taken by `txn_id`.
pub fn place(
    conn: &Connection,
    run: i64,
    p: &Payment,
    due_ms: Option<i64>,
) -> Result<Placed, DbError> {
    match insert(conn, Some(p.id), &p.canonical, p, run, due_ms) {
        Ok(true) => return Ok(Placed::Inserted),
        // The txn_id is taken: decided below.
        Ok(false) => {}
        // The id is taken; whether the txn_id is too decides (SQLite may check either first).
        Err(e) if is_primary_key(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let found: Option<(i64, String, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT id, account, sum_minor, import_id FROM qiwi_transaction WHERE code = ?1",
        )?
        .query_row([&p.canonical], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, account, sum_minor, import_id)) = found else {
        return Ok(Placed::IdTaken);
    };
    if import_id != Some(run) {
        return Ok(if account == p.account && sum_minor == p.sum_minor {
            Placed::Same { id }
        } else {
            Placed::Different {
                id,
                account,
                sum_minor,
            }
        });
    }
    if p.code != p.canonical {
        match insert(conn, Some(p.id), &p.code, p, run, due_ms) {
            Ok(true) => return Ok(Placed::InsertedAsStored),
            Ok(false) => {}
            Err(e) if is_primary_key(&e) => return Ok(Placed::IdTaken),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Placed::Duplicate { id })
}

/// Stores a payment whose id was taken under a new id (above every other); returns it.
pub fn insert_renumbered(
    conn: &Connection,
    run: i64,
    p: &Payment,
    due_ms: Option<i64>,
) -> Result<Option<i64>, DbError> {
    Ok(insert(conn, None, &p.canonical, p, run, due_ms)?.then(|| conn.last_insert_rowid()))
}

fn insert(
    conn: &Connection,
    id: Option<i64>,
    code: &str,
    p: &Payment,
    run: i64,
    due_ms: Option<i64>,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO qiwi_transaction
                 (id, account, code, sum, status, created_at, sum_minor, txn_date, extra,
                  delivery_due_ms, import_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (code) DO NOTHING",
        )?
        .execute(params![
            id,
            p.account,
            code,
            // The float column is the original product's; sum_minor is exact.
            p.sum_minor as f64 / 100.0,
            i64::from(p.delivered),
            p.created_at,
            p.sum_minor,
            p.txn_date,
            p.extra,
            due_ms,
            run
        ])?;
    Ok(n == 1)
}

fn is_primary_key(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// Counts imported payments that arrived acknowledged in the charts' `acked` figure per UTC
/// hour (`YYYY-MM-DD HH` → payments), as migration 0007 counted the rows it found.
pub fn add_acked(conn: &Connection, hours: &HashMap<String, i64>) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO stats_hour (hour, acked) VALUES (?1, ?2)
         ON CONFLICT (hour) DO UPDATE SET acked = acked + excluded.acked",
    )?;
    for (hour, n) in hours {
        stmt.execute(params![hour, n])?;
    }
    Ok(())
}

/// Drops `table`'s secondary indexes (those with SQL: the implicit UNIQUE index on `code`,
/// which decides repeats, stays) and returns their SQL for [`create_indexes`]. Inside the
/// import's transaction, so a failed import keeps them: building an index once over sorted
/// rows is several times cheaper than a million random insertions into each.
pub fn drop_indexes(conn: &Connection, table: &str) -> Result<Vec<String>, DbError> {
    let indexes: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema
             WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL ORDER BY name",
        )?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(indexes.into_iter().map(|(_, sql)| sql).collect())
}

/// Recreates the indexes [`drop_indexes`] dropped, from their own SQL.
pub fn create_indexes(conn: &Connection, sqls: &[String]) -> Result<(), DbError> {
    for sql in sqls {
        conn.execute_batch(sql)?;
    }
    Ok(())
}

/// Copies what a WAL holds into the database file and empties it, after a large import.
pub fn checkpoint(conn: &Connection) -> Result<(), DbError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(id: i64, code: &str, account: &str, sum_minor: i64) -> Payment {
        Payment {
            id,
            code: code.into(),
            canonical: crate::qiwi::txn_id::canonical(code).into(),
            account: account.into(),
            sum_minor,
            delivered: false,
            created_at: "2024-01-01 12:00:00".into(),
            txn_date: "20240101150000".into(),
            extra: "{}".into(),
        }
    }

    #[test]
    fn placing_decides_like_a_repeated_pay() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("q.db")).unwrap();
        let gateway = crate::db::transactions::NewPayment {
            code: "500".into(),
            account: "a".into(),
            sum_minor: 100,
            txn_date: String::new(),
            extra: "{}".into(),
        };
        crate::db::transactions::store(&conn, &gateway, true, "2024-01-02 00:00:00", 0).unwrap();
        let run = start_run(&conn, "2024-01-03 00:00:00", "test").unwrap();
        let place = |p: &Payment| place(&conn, run, p, Some(0)).unwrap();
        assert_eq!(place(&payment(10, "123", "a", 100)), Placed::Inserted);
        assert_eq!(
            place(&payment(11, "000123", "a", 100)),
            Placed::InsertedAsStored
        );
        assert_eq!(
            place(&payment(12, "000123", "a", 100)),
            Placed::Duplicate { id: 10 }
        );
        assert_eq!(place(&payment(13, "500", "a", 100)), Placed::Same { id: 1 });
        assert_eq!(
            place(&payment(14, "500", "b", 100)),
            Placed::Different {
                id: 1,
                account: "a".into(),
                sum_minor: 100
            }
        );
        assert_eq!(place(&payment(1, "600", "a", 100)), Placed::IdTaken);
        let new = insert_renumbered(&conn, run, &payment(1, "600", "a", 100), None).unwrap();
        // Above every id tried, 14 included: SQLite's AUTOINCREMENT counts ids it was given
        // even when the row was not stored.
        assert_eq!(new, Some(15));
        assert_eq!(run_totals(&conn, run).unwrap(), (3, 300));
        assert_eq!(payment_totals(&conn).unwrap(), (4, 400));
    }
}
