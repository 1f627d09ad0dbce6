//! `qiwi_http_log`: one row for every request that reaches `/payment`.

use rusqlite::{Connection, params};

use super::DbError;

/// One request as it is logged, with what the gateway answered.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    /// The sender's address.
    pub ip: String,
    /// Path and query as called.
    pub url: String,
    /// The request method.
    pub method: String,
    /// The headers as a JSON object, secrets masked.
    pub headers: String,
    /// The body (empty when it was refused for its size).
    pub body: String,
    /// UTC time the request arrived.
    pub created_at: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The answer body.
    pub response: String,
    /// The request's `txn_id`, when it had one.
    pub txn_id: Option<String>,
    /// The protocol result code, when the request got one.
    pub result: Option<i32>,
}

/// Inserts one log row and returns its id.
pub fn insert(conn: &Connection, e: &LogEntry) -> Result<i64, DbError> {
    conn.prepare_cached(
        "INSERT INTO qiwi_http_log
             (ip, url, method, headers, body, created_at, status, response, txn_id, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        e.ip,
        e.url,
        e.method,
        e.headers,
        e.body,
        e.created_at,
        e.status,
        e.response,
        e.txn_id,
        e.result
    ])?;
    Ok(conn.last_insert_rowid())
}
