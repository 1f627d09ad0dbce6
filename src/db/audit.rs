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
    /// From which address (`local` from the CLI).
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

/// Who runs the CLI, as the audit names them: `cli:<OS user>` (from `USER` or `LOGNAME`, as
/// POSIX login sets them; `cli:unknown` when neither is set).
pub fn cli_user() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli:{user}")
}

/// The address the audit gives actions taken with the CLI on the gateway's own machine.
pub const CLI_ADDRESS: &str = "local";

/// Records `action` taken with the CLI by [`cli_user`] from [`CLI_ADDRESS`].
pub async fn record_cli(db: &super::Db, action: &str, detail: String) -> Result<(), DbError> {
    let row = AuditRow {
        id: 0,
        created_at: super::now_text(),
        username: cli_user(),
        ip: CLI_ADDRESS.to_owned(),
        action: action.to_owned(),
        detail,
    };
    db.writer().write(move |c| insert_audit(c, &row)).await
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
