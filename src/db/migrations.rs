//! Schema migrations: plain `.sql` files compiled in, applied in order at start, each in its
//! own transaction and recorded in `PRAGMA user_version`, so an existing file is upgraded.

use rusqlite::Connection;

/// Every migration, in order; the database's `user_version` counts how many are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_admin.sql"),
    include_str!("../../migrations/0003_heartbeat.sql"),
    include_str!("../../migrations/0004_canonical_txn_id.sql"),
    include_str!("../../migrations/0005_reconcile.sql"),
    include_str!("../../migrations/0006_admin_ui.sql"),
    include_str!("../../migrations/0007_seeit.sql"),
    include_str!("../../migrations/0008_attempt_requests.sql"),
    include_str!("../../migrations/0009_import.sql"),
    include_str!("../../migrations/0010_log_rare_indexes.sql"),
];

/// Applies the migrations the database does not have yet.
#[cfg(test)]
pub fn run(conn: &mut Connection) -> rusqlite::Result<()> {
    run_with(conn, &mut |_, _| {})
}

/// [`run`], calling `on_step(applied, pending)` before the first pending migration and after
/// each one (`applied` counts this run's migrations).
pub fn run_with(
    conn: &mut Connection,
    on_step: &mut dyn FnMut(usize, usize),
) -> rusqlite::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if usize::try_from(applied).is_ok_and(|a| a > MIGRATIONS.len()) {
        // A newer gateway wrote this file: running old code on it could corrupt its meaning.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the database has schema version {applied}, newer than this gateway knows ({}); \
                 run the newer gateway or restore a backup",
                MIGRATIONS.len()
            )),
        ));
    }
    let skip = usize::try_from(applied).unwrap_or(0);
    let pending = MIGRATIONS.len().saturating_sub(skip);
    if pending > 0 {
        on_step(0, pending);
    }
    for (done, (i, sql)) in (1..).zip((1..).zip(MIGRATIONS).skip(skip)) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i)?;
        tx.commit()?;
        tracing::info!(migration = i, "applied database migration");
        on_step(done, pending);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_record_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        conn.pragma_update(None, "user_version", v + 1).unwrap();
        let err = run(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
        // The column names the original product fixes.
        conn.prepare("SELECT id, ip, url, method, headers, body, created_at FROM qiwi_http_log")
            .unwrap();
        conn.prepare("SELECT id, account, code, sum, status FROM qiwi_transaction")
            .unwrap();
    }
}
