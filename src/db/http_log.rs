//! `qiwi_http_log`: one row for every request that reaches `/payment`, and the request-log
//! list and detail the admin UI reads (keyset-paged, see [`super::pager`]).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;
use super::pager::{Cursor, Page, Query, SCAN_BUDGET, page};

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

/// Filters of the request log. Times are UTC `YYYY-MM-DD HH:MM:SS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Exact HTTP method.
    pub method: Option<String>,
    /// Exact sender address.
    pub ip: Option<String>,
    /// HTTP status answered.
    pub status: Option<i64>,
    /// Protocol result code answered.
    pub result: Option<i64>,
    /// Exact `txn_id`.
    pub txn_id: Option<String>,
    /// Text contained in the URL or the body (case-insensitive for ASCII).
    pub text: Option<String>,
    /// `created_at >= from`.
    pub from: Option<String>,
    /// `created_at < until`.
    pub until: Option<String>,
}

/// A logged request as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Its id.
    pub id: i64,
    /// UTC.
    pub created_at: String,
    /// The sender.
    pub ip: String,
    /// The method.
    pub method: String,
    /// The start of the URL (path and query).
    pub url: String,
    /// HTTP status answered.
    pub status: i64,
    /// Protocol result code, when the request got one.
    pub result: Option<i64>,
    /// The request's `txn_id`.
    pub txn_id: Option<String>,
}

/// Every column of one logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDetail {
    /// The list columns (with the whole URL).
    pub row: LogRow,
    /// Headers, a JSON object.
    pub headers: String,
    /// The body.
    pub body: String,
    /// The answer body.
    pub response: String,
}

/// How many characters of a URL a list shows.
const LIST_URL_CHARS: i64 = 200;

const LOG_COLUMNS: &str = "created_at, ip, method, substr(url, 1, 200), status, result, txn_id";

fn log_row(r: &Row<'_>) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        id: r.get(1)?,
        created_at: r.get(2)?,
        ip: r.get(3)?,
        method: r.get(4)?,
        url: r.get(5)?,
        status: r.get(6)?,
        result: r.get(7)?,
        txn_id: r.get(8)?,
    })
}

/// Escapes `%`, `_` and `\` for `LIKE ... ESCAPE '\'` and wraps the text in `%`.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// One page of logged requests matching `f`, newest first.
pub fn requests(
    conn: &Connection,
    f: &LogFilter,
    cursor: Option<Cursor>,
) -> Result<Page<LogRow>, DbError> {
    debug_assert!(LOG_COLUMNS.contains(&LIST_URL_CHARS.to_string()));
    let mut q = Query::default();
    // The most selective equality drives; the others are tested row by row.
    let mut driver: Option<&str> = None;
    let mut eq = |q: &mut Query, col: &str, v: Value, index: &'static str| {
        let p = q.bind(v);
        if driver.is_none() {
            driver = Some(index);
            q.indexed.push(format!("{col} = {p}"));
        } else {
            q.residual.push(format!("{col} = {p}"));
        }
    };
    if let Some(t) = &f.txn_id {
        eq(&mut q, "txn_id", t.clone().into(), "qiwi_http_log_txn_id");
    }
    if let Some(ip) = &f.ip {
        eq(&mut q, "ip", ip.clone().into(), "qiwi_http_log_ip");
    }
    if let Some(s) = f.status {
        eq(&mut q, "status", s.into(), "qiwi_http_log_status");
    }
    if let Some(r) = f.result {
        eq(&mut q, "result", r.into(), "qiwi_http_log_result");
    }
    if let Some(m) = &f.method {
        eq(&mut q, "method", m.clone().into(), "qiwi_http_log_method");
    }
    let index = driver.unwrap_or("qiwi_http_log_created");
    q.range(&f.from, &f.until);
    if let Some(text) = &f.text {
        let p = q.bind(like_pattern(text));
        q.residual.push(format!(
            "url LIKE {p} ESCAPE '\\' OR body LIKE {p} ESCAPE '\\'"
        ));
    }
    let from = format!("qiwi_http_log INDEXED BY {index}");
    page(
        conn,
        "qiwi_http_log",
        q,
        LOG_COLUMNS,
        &from,
        cursor,
        SCAN_BUDGET,
        log_row,
    )
}

/// One logged request with every column.
pub fn request(conn: &Connection, id: i64) -> Result<Option<LogDetail>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1, id, created_at, ip, method, url, status, result, txn_id,
                    headers, body, response
             FROM qiwi_http_log WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(LogDetail {
                row: log_row(r)?,
                headers: r.get(9)?,
                body: r.get(10)?,
                response: r.get(11)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
