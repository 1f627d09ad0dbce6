//! `readiness_heartbeat`: the bounded write `/readyz` makes (one row, replaced each time).

use rusqlite::{Connection, params};

use super::DbError;

/// Bytes of padding in a heartbeat row: over half of SQLite's default 4 KiB page, so the new
/// row and the old one never share a page and each probe needs a page of its own, as a pay
/// does; still stored in the page itself (under SQLite's ~4 KiB local payload limit).
pub const PADDING: i64 = 3000;

/// Writes a heartbeat at `now_text` and deletes the earlier ones: the table keeps one row.
/// Fails (`SQLITE_FULL`, an I/O error) when the database cannot grow or write.
pub fn beat(conn: &Connection, now_text: &str) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO readiness_heartbeat (beat_at, padding) VALUES (?1, zeroblob(?2))",
    )?
    .execute(params![now_text, PADDING])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("DELETE FROM readiness_heartbeat WHERE id < ?1")?
        .execute([id])?;
    Ok(())
}
