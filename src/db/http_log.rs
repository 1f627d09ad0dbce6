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

/// Bytes of a request's URL (path and query) or body that `/payment` takes and its log row
/// keeps whole. Real QIWI requests are under 2 KiB; a request with a longer URL or body is not
/// QIWI's and is answered 300 (`qiwi::handler`), so every request answered 0 or a business
/// code is logged whole.
pub const FIELD_CAP: usize = 4096;

/// Bytes kept of a URL or body over [`FIELD_CAP`]: enough to see what was sent (command,
/// `txn_id`, the start of the junk), followed by [`cut_marker`].
pub const CUT_HEAD: usize = 1024;

/// A request's URL or body (`raw`, as received) as its log row keeps it, and whether it was
/// cut: whole (invalid UTF-8 shown as U+FFFD) when at most [`FIELD_CAP`] bytes, else its first
/// [`CUT_HEAD`] bytes followed by [`cut_marker`] with the received length.
pub fn stored_field(raw: &[u8]) -> (String, bool) {
    if raw.len() <= FIELD_CAP {
        return (String::from_utf8_lossy(raw).into_owned(), false);
    }
    let mut kept = String::from_utf8_lossy(&raw[..CUT_HEAD]).into_owned();
    kept.push_str(&cut_marker(raw.len() - CUT_HEAD, raw.len()));
    (kept, true)
}

/// The text that ends a cut field: `[… 38,012 bytes not stored of 39,036 received]`.
pub fn cut_marker(not_stored: usize, received: usize) -> String {
    format!(
        "[… {} bytes not stored of {} received]",
        grouped(not_stored),
        grouped(received)
    )
}

/// `n` with a comma between groups of three digits (`38,012`).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
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

/// A filter column whose index keeps only the rows without the column's usual value
/// (migration 0010). `cond` is the index's `WHERE` word for word: a query names it so SQLite
/// can use the index (`db::http_log::tests::rare_conditions_are_the_indexes_own`).
struct Rare {
    col: &'static str,
    usual: Usual,
    cond: &'static str,
    index: &'static str,
}

/// The value most rows hold in a [`Rare`] column.
enum Usual {
    Int(i64),
    Text(&'static str),
}

const RARE_METHOD: Rare = Rare {
    col: "method",
    usual: Usual::Text("GET"),
    cond: "method <> 'GET'",
    index: "qiwi_http_log_method_rare",
};
const RARE_STATUS: Rare = Rare {
    col: "status",
    usual: Usual::Int(200),
    cond: "status <> 200",
    index: "qiwi_http_log_status_rare",
};
const RARE_RESULT: Rare = Rare {
    col: "result",
    usual: Usual::Int(0),
    cond: "result <> 0",
    index: "qiwi_http_log_result_rare",
};

impl Rare {
    /// The index that serves a filter on `v`, with its condition: none for the usual value.
    fn index_for(&self, v: &Value) -> Option<(&'static str, Option<&'static str>)> {
        let usual = match (&self.usual, v) {
            (Usual::Int(u), Value::Integer(i)) => u == i,
            (Usual::Text(u), Value::Text(t)) => u == t,
            _ => false,
        };
        (!usual).then_some((self.index, Some(self.cond)))
    }
}

/// One page of logged requests matching `f`, newest first.
///
/// An equality filter drives the page through its index when it has one: `txn_id` and `ip`
/// always, `method`, `status` and `result` when the value is not the column's usual one
/// (`GET`, 200, 0; their indexes hold only the other rows, migration 0010). A usual value is
/// tested row by row along the time index like the text filter, so a page stops after
/// [`SCAN_BUDGET`] rows (or the pager's time bound) even when the value is absent, with a
/// cursor to go on from.
pub fn requests(
    conn: &Connection,
    f: &LogFilter,
    cursor: Option<Cursor>,
) -> Result<Page<LogRow>, DbError> {
    debug_assert!(LOG_COLUMNS.contains(&LIST_URL_CHARS.to_string()));
    let mut q = Query::default();
    // The most selective equality drives; the others are tested row by row.
    let mut driver: Option<&str> = None;
    // `index`: the index that serves this value, with the condition it is partial on.
    let mut eq = |q: &mut Query,
                  col: &str,
                  v: Value,
                  index: Option<(&'static str, Option<&'static str>)>| {
        let p = q.bind(v);
        match index {
            Some((index, partial)) if driver.is_none() => {
                driver = Some(index);
                q.indexed.push(format!("{col} = {p}"));
                q.indexed.extend(partial.map(str::to_owned));
            }
            _ => q.residual.push(format!("{col} = {p}")),
        }
    };
    if let Some(t) = &f.txn_id {
        eq(
            &mut q,
            "txn_id",
            t.clone().into(),
            Some(("qiwi_http_log_txn_id", None)),
        );
    }
    if let Some(ip) = &f.ip {
        eq(
            &mut q,
            "ip",
            ip.clone().into(),
            Some(("qiwi_http_log_ip", None)),
        );
    }
    for (rare, v) in [
        (RARE_STATUS, f.status.map(Value::from)),
        (RARE_RESULT, f.result.map(Value::from)),
        (RARE_METHOD, f.method.clone().map(Value::from)),
    ] {
        if let Some(v) = v {
            let index = rare.index_for(&v);
            eq(&mut q, rare.col, v, index);
        }
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
    use crate::db::pager::PAGE_SIZE;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut c).unwrap();
        c
    }

    fn add(c: &Connection, method: &str, status: u16, result: Option<i32>, at: &str) -> i64 {
        insert(
            c,
            &LogEntry {
                ip: "10.0.0.1".into(),
                url: "/payment?command=pay".into(),
                method: method.into(),
                headers: "{}".into(),
                created_at: at.into(),
                status,
                response: "<response/>".into(),
                result,
                ..LogEntry::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn fields_over_the_cap_keep_their_head_and_say_what_was_cut() {
        let whole = "a".repeat(FIELD_CAP);
        assert_eq!(stored_field(whole.as_bytes()), (whole.clone(), false));
        let raw = "b".repeat(39_036);
        let (kept, cut) = stored_field(raw.as_bytes());
        assert!(cut);
        assert_eq!(
            kept,
            format!(
                "{}[… 38,012 bytes not stored of 39,036 received]",
                "b".repeat(CUT_HEAD)
            )
        );
        // A character split at the cut and invalid UTF-8 never panic.
        let mut raw = "é".repeat(FIELD_CAP).into_bytes();
        raw.push(0xFF);
        let (kept, cut) = stored_field(&raw);
        assert!(cut && kept.len() < CUT_HEAD + 64, "{}", kept.len());
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn rare_conditions_are_the_indexes_own() {
        let c = db();
        for rare in [RARE_METHOD, RARE_STATUS, RARE_RESULT] {
            let sql: String = c
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    [rare.index],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(sql.ends_with(&format!("WHERE {}", rare.cond)), "{sql}");
            assert!(
                sql.contains(&format!("({}, created_at)", rare.col)),
                "{sql}"
            );
        }
        // The full indexes they replace are gone: a usual value is not indexed at all.
        let full: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN
                     ('qiwi_http_log_method', 'qiwi_http_log_status', 'qiwi_http_log_result')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(full, 0);
    }

    /// Every value of every skewed filter, usual or rare, present or absent, alone or with
    /// another filter, lists exactly the rows a plain query finds, newest first.
    #[test]
    fn skewed_filters_list_what_a_plain_query_finds() {
        let c = db();
        let methods = ["GET", "POST"];
        let statuses = [200u16, 401, 413];
        let results = [Some(0), Some(5), None];
        let mut n = 0;
        for m in methods {
            for s in statuses {
                for r in results {
                    n += 1;
                    add(&c, m, s, r, &format!("2026-01-01 00:00:{n:02}"));
                }
            }
        }
        assert!(n < PAGE_SIZE, "one page holds every match");
        let cases: Vec<LogFilter> = [None, Some("GET"), Some("POST"), Some("PUT")]
            .into_iter()
            .flat_map(|m| {
                [None, Some(200), Some(401), Some(500)]
                    .into_iter()
                    .flat_map(move |s| {
                        [None, Some(0), Some(5), Some(79)]
                            .into_iter()
                            .map(move |r| LogFilter {
                                method: m.map(str::to_owned),
                                status: s,
                                result: r,
                                ..LogFilter::default()
                            })
                    })
            })
            .collect();
        let mut nonempty = 0;
        for f in &cases {
            let got: Vec<i64> = requests(&c, f, None)
                .unwrap()
                .rows
                .iter()
                .map(|r| r.id)
                .collect();
            let want: Vec<i64> = c
                .prepare(
                    "SELECT id FROM qiwi_http_log
                     WHERE (?1 IS NULL OR method = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR result = ?3)
                     ORDER BY created_at DESC, id DESC",
                )
                .unwrap()
                .query_map(params![f.method, f.status, f.result], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, want, "{f:?}");
            nonempty += usize::from(!want.is_empty());
        }
        assert!(nonempty > 20, "the cases find rows: {nonempty}");
    }

    /// A usual value buried under rows that lack it walks at most the scan budget per page and
    /// says where to go on; a rare value, present or absent, is answered whole from its index.
    #[test]
    fn an_absent_usual_value_stops_at_the_budget_and_a_rare_one_is_one_seek() {
        let mut c = db();
        let tx = c.transaction().unwrap();
        for i in 0..10 {
            add(
                &tx,
                "GET",
                200,
                Some(0),
                &format!("2026-01-01 00:00:{i:02}"),
            );
        }
        // A flood of refused POSTs after them: the newest rows hold none of the usual values.
        for i in 0..SCAN_BUDGET + 500 {
            let at = format!(
                "2026-01-02 {:02}:{:02}:{:02}",
                i / 3600,
                i / 60 % 60,
                i % 60
            );
            add(&tx, "POST", 401, None, &at);
        }
        tx.commit().unwrap();

        for f in [
            LogFilter {
                status: Some(500),
                ..LogFilter::default()
            },
            LogFilter {
                method: Some("PUT".into()),
                ..LogFilter::default()
            },
            LogFilter {
                result: Some(5),
                ..LogFilter::default()
            },
        ] {
            let p = requests(&c, &f, None).unwrap();
            assert!(
                p.rows.is_empty() && p.older.is_none() && !p.budget_hit,
                "{f:?}"
            );
        }
        let p = requests(
            &c,
            &LogFilter {
                status: Some(401),
                ..LogFilter::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(p.rows.len(), PAGE_SIZE);
        assert!(!p.budget_hit && p.rows.iter().all(|r| r.status == 401));

        for f in [
            LogFilter {
                status: Some(200),
                ..LogFilter::default()
            },
            LogFilter {
                method: Some("GET".into()),
                ..LogFilter::default()
            },
            LogFilter {
                result: Some(0),
                ..LogFilter::default()
            },
        ] {
            let first = requests(&c, &f, None).unwrap();
            assert!(first.budget_hit && first.rows.is_empty(), "{f:?}");
            let mut found = Vec::new();
            let mut cursor = first.older;
            let mut pages = 1;
            while let Some(id) = cursor {
                let p = requests(&c, &f, Some(Cursor::After(id))).unwrap();
                found.extend(p.rows.iter().map(|r| r.id));
                cursor = p.older;
                pages += 1;
                assert!(pages < 1000, "the cursor moves on");
            }
            assert_eq!(found, (1..=10).rev().collect::<Vec<i64>>(), "{f:?}");
        }
    }
}
