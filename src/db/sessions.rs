//! `admin_session` and the stored hash of the generated admin password.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Who logged in.
    pub username: String,
    /// The token every form of this session carries.
    pub csrf_token: String,
}

/// Stores a new session and drops the expired ones.
pub fn insert_session(
    conn: &Connection,
    token_hash: &str,
    s: &SessionRow,
    now_text: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM admin_session WHERE expires_at_ms <= ?1")?
        .execute([now_ms])?;
    conn.prepare_cached(
        "INSERT INTO admin_session (token_hash, username, csrf_token, created_at, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        token_hash,
        s.username,
        s.csrf_token,
        now_text,
        expires_at_ms
    ])?;
    Ok(())
}

/// The unexpired session whose token hashes to `token_hash`.
pub fn session(
    conn: &Connection,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<SessionRow>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT username, csrf_token FROM admin_session
             WHERE token_hash = ?1 AND expires_at_ms > ?2",
        )?
        .query_row(params![token_hash, now_ms], |r| {
            Ok(SessionRow {
                username: r.get(0)?,
                csrf_token: r.get(1)?,
            })
        })
        .optional()?)
}

/// Ends a session.
pub fn delete_session(conn: &Connection, token_hash: &str) -> Result<(), DbError> {
    conn.prepare_cached("DELETE FROM admin_session WHERE token_hash = ?1")?
        .execute([token_hash])?;
    Ok(())
}

/// The stored hash of the generated admin password.
pub fn password_hash(conn: &Connection) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT password_hash FROM admin_password WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// Stores the hash of a generated admin password unless one is stored already; returns the
/// hash in force (the earlier one if there was one).
pub fn store_password_hash(
    conn: &Connection,
    hash: &str,
    now_text: &str,
) -> Result<String, DbError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO admin_password (id, password_hash, created_at) VALUES (1, ?1, ?2)",
    )?
    .execute([hash, now_text])?;
    Ok(password_hash(conn)?.unwrap_or_else(|| hash.to_owned()))
}

/// Replaces the stored admin password hash and deletes every session.
pub fn replace_password_hash(conn: &Connection, hash: &str, now_text: &str) -> Result<(), DbError> {
    conn.execute(
        "INSERT OR REPLACE INTO admin_password (id, password_hash, created_at) VALUES (1, ?1, ?2)",
        [hash, now_text],
    )?;
    conn.execute("DELETE FROM admin_session", [])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_password_is_stored_once() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut c).unwrap();
        assert_eq!(password_hash(&c).unwrap(), None);
        assert_eq!(store_password_hash(&c, "h1", "t").unwrap(), "h1");
        assert_eq!(store_password_hash(&c, "h2", "t").unwrap(), "h1");
    }
}
