//! `admin_audit`: one row per manual action taken in the admin UI.

use rusqlite::{Connection, params};

use super::DbError;

/// One manual action, as the audit page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Its id.
    pub id: i64,
    /// UTC.
    pub created_at: String,
    /// Who.
    pub username: String,
    /// From which address (`''` from the CLI).
    pub ip: String,
    /// What: `resend`, `resend-all`, `logout`, ...
    pub action: String,
    /// Which rows or how many.
    pub detail: String,
}

/// Records a manual action.
pub fn insert_audit(conn: &Connection, a: &AuditRow) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO admin_audit (created_at, username, ip, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![a.created_at, a.username, a.ip, a.action, a.detail])?;
    Ok(())
}

/// Up to `limit` manual actions older than id `before` (all with `None`), newest first.
pub fn audit(
    conn: &Connection,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<AuditRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, username, ip, action, detail FROM admin_audit
         WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
        Ok(AuditRow {
            id: r.get(0)?,
            created_at: r.get(1)?,
            username: r.get(2)?,
            ip: r.get(3)?,
            action: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
