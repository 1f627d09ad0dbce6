//! What the admin UI reads and writes: dashboard figures, keyset-paged lists of transactions
//! and requests, single rows with their history, sessions and the generated admin password.
//!
//! Lists are ordered newest first by `(created_at, id)` and paged by keyset: a cursor is the id
//! of a row, and the next page starts strictly after that row's `(created_at, id)`. Never
//! `OFFSET`, which makes SQLite step over every skipped row.
//!
//! Each list query is driven by one index chosen here (`INDEXED BY`, so a plan cannot silently
//! change): the index of the most selective equality filter, whose order is already the page's
//! order, so an index-only filter costs one seek and `PAGE_SIZE + 1` steps. Filters no index
//! serves in that order (a sum range, text in a request) are tested row by row in Rust as the
//! index is walked, and one page walks at most `SCAN_BUDGET` rows or `SCAN_TIME`: a rare match
//! deep in the table then yields a short page with a cursor to go on from, not a slow page.

use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::DbError;

/// Rows on one list page.
pub const PAGE_SIZE: usize = 50;
/// Most rows one page walks to find its matches when a filter is tested row by row.
pub const SCAN_BUDGET: usize = 20_000;
/// Longest one page walks rows to find its matches when a filter is tested row by row.
pub const SCAN_TIME: Duration = Duration::from_millis(25);

/// Which way a page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Rows older than the row with this id.
    After(i64),
    /// Rows newer than the row with this id.
    Before(i64),
}

/// One page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows, newest first.
    pub rows: Vec<T>,
    /// Cursor (`After`) for the next, older page; `None` at the end.
    pub older: Option<i64>,
    /// Cursor (`Before`) for the previous, newer page; `None` on the first page.
    pub newer: Option<i64>,
    /// The page stopped after walking `SCAN_BUDGET` rows: there may be more matches beyond.
    pub budget_hit: bool,
}

/// A transaction's delivery state, as the list filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// `status = 0`: the backend has not acknowledged it (yet).
    Undelivered,
    /// `status = 1`: acknowledged.
    Delivered,
    /// Undelivered after at least one failed attempt.
    Failing,
}

/// Filters of the transactions list. Times are UTC `YYYY-MM-DD HH:MM:SS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnFilter {
    /// Delivery state.
    pub state: Option<TxnState>,
    /// Account prefix (`7999` finds `79991234567`; an exact account is its own prefix).
    pub account: Option<String>,
    /// Exact QIWI `txn_id`.
    pub code: Option<String>,
    /// `created_at >= from`.
    pub from: Option<String>,
    /// `created_at < until`.
    pub until: Option<String>,
    /// `sum_minor >= min_minor`.
    pub min_minor: Option<i64>,
    /// `sum_minor <= max_minor`.
    pub max_minor: Option<i64>,
    /// `Some(true)`: only test payments; `Some(false)`: none of them (migration 0007).
    pub test: Option<bool>,
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

/// A transaction as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRow {
    /// Our id.
    pub id: i64,
    /// QIWI's `txn_id`.
    pub code: String,
    /// The customer's account.
    pub account: String,
    /// Exact sum in kopecks.
    pub sum_minor: i64,
    /// 0 received, 1 acknowledged by the backend.
    pub status: i64,
    /// UTC.
    pub created_at: String,
    /// Webhook attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// UTC time of the last attempt.
    pub last_attempt_at: Option<String>,
    /// UTC time the backend acknowledged it.
    pub delivered_at: Option<String>,
    /// QIWI's `txn_date` as received.
    pub txn_date: String,
    /// When the next delivery attempt is due (Unix ms); `None` when none is scheduled
    /// (delivered, or given up after `webhook_max_attempts`).
    pub delivery_due_ms: Option<i64>,
    /// The other request parameters (JSON); filled only for the CSV export.
    pub extra: String,
}

/// Every column of one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnDetail {
    /// The list columns.
    pub row: TxnRow,
    /// The other request parameters, a JSON object.
    pub extra: String,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Its id.
    pub id: i64,
    /// UTC.
    pub created_at: String,
    /// The backend's HTTP status, when it answered.
    pub http_status: Option<i64>,
    /// The failure, `None` on success.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// The start of the backend's answer.
    pub response_body: String,
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

/// Count and sum of payments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// How many.
    pub count: i64,
    /// Their exact sum in kopecks: `i128`, as 1,025 payments of the largest sum already exceed
    /// `i64` (issue 19.5).
    pub sum_minor: i128,
}

/// Count and sum of the transactions a filter selects, found with bounded work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilteredTotals {
    /// Matching rows (among those walked).
    pub count: i64,
    /// Their exact sum in kopecks.
    pub sum_minor: i128,
    /// `false` when the walk stopped at [`TOTALS_BUDGET`] rows: both figures are then lower
    /// bounds.
    pub exact: bool,
}

/// Most rows the count and total of a filtered list walk (newest first); beyond, the page
/// says its figures are lower bounds. Keeps the page fast on a table of 10 million rows.
pub const TOTALS_BUDGET: i64 = 10_000;

/// Money columns are summed in two integer halves, `sum_minor / SPLIT` and `sum_minor %
/// SPLIT`, each of which SQLite's 64-bit `sum()` can add for ~10^9 rows of the largest sum
/// (9.0e15 kopecks) without overflow; they are joined exactly in `i128`. Never a float.
const SPLIT: i64 = 1_000_000_000;

/// `SELECT` terms that sum `col` without overflow, read back by [`joined_sum`].
fn split_sum(col: &str) -> String {
    format!("coalesce(sum({col} / {SPLIT}), 0), coalesce(sum({col} % {SPLIT}), 0)")
}

/// The exact sum from the two halves of [`split_sum`] at columns `i` and `i + 1`.
fn joined_sum(r: &Row<'_>, i: usize) -> rusqlite::Result<i128> {
    let hi: i64 = r.get(i)?;
    let lo: i64 = r.get(i + 1)?;
    Ok(i128::from(hi) * i128::from(SPLIT) + i128::from(lo))
}

/// The dashboard's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    /// Payments since `since[0]`, `since[1]`, `since[2]` (today, 7 days, 30 days).
    pub totals: [Totals; 3],
    /// Undelivered transactions.
    pub pending: i64,
    /// `created_at` of the oldest undelivered transaction.
    pub oldest_pending: Option<String>,
    /// Undelivered transactions with at least one failed attempt.
    pub failing: i64,
    /// The most recent of those.
    pub failing_rows: Vec<TxnRow>,
    /// `created_at` of the last request to `/payment`.
    pub last_request: Option<String>,
    /// The newest of the last [`RECENT_ATTEMPTS`] webhook attempts that got a 2xx the worker
    /// does not count as delivered (not in `webhook_success_statuses`): its status and UTC time.
    pub unaccepted_2xx: Option<(i64, String)>,
}

/// How many of the newest webhook attempts the dashboard looks at for answers such as 204.
pub const RECENT_ATTEMPTS: i64 = 1000;

/// How many failing deliveries the dashboard lists.
const DASHBOARD_FAILING: usize = 10;

/// A list query under construction: numbered parameters, so conditions can be written in any
/// order.
#[derive(Default)]
struct Query {
    params: Vec<Value>,
    /// Conditions the driving index serves.
    indexed: Vec<String>,
    /// Conditions tested row by row (the `hit` column).
    residual: Vec<String>,
}

impl Query {
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    fn range(&mut self, from: &Option<String>, until: &Option<String>) {
        if let Some(f) = from {
            let p = self.bind(f.clone());
            self.indexed.push(format!("created_at >= {p}"));
        }
        if let Some(u) = until {
            let p = self.bind(u.clone());
            self.indexed.push(format!("created_at < {p}"));
        }
    }

    /// `SELECT hit, id, {columns} FROM {from} WHERE ... ORDER BY ...` from `cursor` on.
    fn sql(&mut self, columns: &str, from: &str, cursor: Option<(Cursor, &str)>) -> (String, bool) {
        let mut wh = self.indexed.clone();
        let mut desc = true;
        if let Some((c, created_at)) = cursor {
            let (op, id) = match c {
                Cursor::After(id) => ("<", id),
                Cursor::Before(id) => {
                    desc = false;
                    (">", id)
                }
            };
            let t = self.bind(created_at.to_owned());
            let i = self.bind(id);
            wh.push(format!("(created_at, id) {op} ({t}, {i})"));
        }
        let hit = if self.residual.is_empty() {
            "1".to_owned()
        } else {
            format!("({})", self.residual.join(") AND ("))
        };
        let wh = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let dir = if desc { "DESC" } else { "ASC" };
        (
            format!(
                "SELECT {hit}, id, {columns} FROM {from} {wh} \
                 ORDER BY created_at {dir}, id {dir}"
            ),
            desc,
        )
    }
}

/// What walking an index found.
struct Scan<T> {
    hits: Vec<(i64, T)>,
    /// Where to go on from, in the same direction; `None` when the walk reached the end.
    more: Option<i64>,
    budget_hit: bool,
}

/// Walks `sql`'s rows (`hit, id, ...`), keeping up to `limit` hits. With a `budget` it also
/// stops after that many rows or `SCAN_TIME`, whichever comes first: the time bound keeps a
/// page fast on slow hardware too, and the cursor still resumes exactly where the walk stopped.
fn scan<T>(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    limit: usize,
    budget: Option<usize>,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Scan<T>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut hits = Vec::new();
    let mut walked = 0;
    let started = Instant::now();
    while let Some(row) = rows.next()? {
        let hit: bool = row.get(0)?;
        let id: i64 = row.get(1)?;
        if hit {
            if hits.len() == limit {
                // One more match exists: the page is full, and the next one starts after its
                // last row.
                let more = hits.last().map(|(id, _)| *id);
                return Ok(Scan {
                    hits,
                    more,
                    budget_hit: false,
                });
            }
            hits.push((id, map(row)?));
        }
        walked += 1;
        let out_of_time = || walked % 256 == 0 && started.elapsed() >= SCAN_TIME;
        if budget.is_some_and(|b| walked >= b || out_of_time()) {
            return Ok(Scan {
                hits,
                more: Some(id),
                budget_hit: true,
            });
        }
    }
    Ok(Scan {
        hits,
        more: None,
        budget_hit: false,
    })
}

/// The `created_at` of row `id` of `table`, which a cursor names.
fn cursor_time(conn: &Connection, table: &str, id: i64) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT created_at FROM {table} WHERE id = ?1"))?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Runs a list query from `cursor` and assembles the page.
#[allow(clippy::too_many_arguments)]
fn page<T>(
    conn: &Connection,
    table: &str,
    mut q: Query,
    columns: &str,
    from: &str,
    cursor: Option<Cursor>,
    budget: usize,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Page<T>, DbError> {
    let time = match cursor {
        None => None,
        Some(Cursor::After(id) | Cursor::Before(id)) => match cursor_time(conn, table, id)? {
            Some(t) => Some(t),
            // A cursor naming no row: there is nothing to page from.
            None => {
                return Ok(Page {
                    rows: Vec::new(),
                    older: None,
                    newer: None,
                    budget_hit: false,
                });
            }
        },
    };
    let budget = (!q.residual.is_empty()).then_some(budget);
    let (sql, desc) = q.sql(columns, from, cursor.zip(time.as_deref()));
    let s = scan(conn, &sql, &q.params, PAGE_SIZE, budget, map)?;
    let ids: Vec<i64> = s.hits.iter().map(|(id, _)| *id).collect();
    let mut rows: Vec<T> = s.hits.into_iter().map(|(_, r)| r).collect();
    Ok(match cursor {
        None => Page {
            rows,
            older: s.more,
            newer: None,
            budget_hit: s.budget_hit,
        },
        Some(Cursor::After(from_id)) => Page {
            newer: Some(ids.first().copied().unwrap_or(from_id)),
            rows,
            older: s.more,
            budget_hit: s.budget_hit,
        },
        Some(Cursor::Before(from_id)) => {
            debug_assert!(!desc);
            rows.reverse();
            Page {
                older: Some(ids.first().copied().unwrap_or(from_id)),
                newer: s.more,
                rows,
                budget_hit: s.budget_hit,
            }
        }
    })
}

const TXN_COLUMNS: &str = "code, account, sum_minor, status, created_at, attempts, last_error, \
                           last_attempt_at, delivered_at, txn_date, delivery_due_ms";

fn txn_row(r: &Row<'_>, with_extra: bool) -> rusqlite::Result<TxnRow> {
    Ok(TxnRow {
        id: r.get(1)?,
        code: r.get(2)?,
        account: r.get(3)?,
        sum_minor: r.get(4)?,
        status: r.get(5)?,
        created_at: r.get(6)?,
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        last_attempt_at: r.get(9)?,
        delivered_at: r.get(10)?,
        txn_date: r.get(11)?,
        delivery_due_ms: r.get(12)?,
        extra: if with_extra {
            r.get(13)?
        } else {
            String::new()
        },
    })
}

/// The query of the transactions list, with the index that drives it.
fn txn_query(f: &TxnFilter) -> (Query, String) {
    let mut q = Query::default();
    let index = if let Some(code) = &f.code {
        // `code` is unique: at most one row, whatever else is asked, so everything is a plain
        // condition and SQLite's own choice (the unique index) is right.
        let p = q.bind(code.clone());
        q.indexed.push(format!("code = {p}"));
        None
    } else if let Some(account) = &f.account {
        let (lo, hi) = prefix_range(account);
        let (lo, hi) = (q.bind(lo), q.bind(hi));
        q.indexed
            .push(format!("account >= {lo} AND account < {hi}"));
        Some("qiwi_transaction_account")
    } else if f.test == Some(true) && f.state.is_none() {
        // Test payments are few: their partial index drives the page.
        q.indexed.push("test = 1".into());
        Some("qiwi_transaction_test")
    } else if f.state == Some(TxnState::Failing) {
        // The partial index's own condition, word for word, so SQLite may use it.
        q.indexed.push("status = 0 AND attempts > 0".into());
        Some("qiwi_transaction_failing")
    } else if let Some(state) = f.state {
        let p = q.bind(i64::from(state == TxnState::Delivered));
        q.indexed.push(format!("status = {p}"));
        Some("qiwi_transaction_status")
    } else {
        Some("qiwi_transaction_created")
    };
    q.range(&f.from, &f.until);
    let driving_code = f.code.is_some();
    let cond = |q: &mut Query, c: String| {
        if driving_code {
            q.indexed.push(c);
        } else {
            q.residual.push(c);
        }
    };
    if let (Some(_), Some(account)) = (&f.code, &f.account) {
        let (lo, hi) = prefix_range(account);
        let (lo, hi) = (q.bind(lo), q.bind(hi));
        cond(&mut q, format!("account >= {lo} AND account < {hi}"));
    }
    if f.code.is_some() || f.account.is_some() {
        match f.state {
            Some(TxnState::Failing) => cond(&mut q, "status = 0 AND attempts > 0".into()),
            Some(s) => {
                let p = q.bind(i64::from(s == TxnState::Delivered));
                cond(&mut q, format!("status = {p}"));
            }
            None => {}
        }
    }
    if let Some(t) = f.test
        && index != Some("qiwi_transaction_test")
    {
        let p = q.bind(i64::from(t));
        cond(&mut q, format!("test = {p}"));
    }
    if let Some(min) = f.min_minor {
        let p = q.bind(min);
        cond(&mut q, format!("sum_minor >= {p}"));
    }
    if let Some(max) = f.max_minor {
        let p = q.bind(max);
        cond(&mut q, format!("sum_minor <= {p}"));
    }
    let from = match index {
        Some(i) => format!("qiwi_transaction INDEXED BY {i}"),
        None => "qiwi_transaction".to_owned(),
    };
    (q, from)
}

/// The text range holding every account that starts with `prefix`: `[prefix, prefix +
/// U+10FFFF)` in SQLite's byte order. U+10FFFF is a non-character no account pattern admits.
fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}\u{10FFFF}"))
}

/// How many index entries an account prefix may match before the list walks by time instead
/// of sorting the prefix's rows.
const PREFIX_SORT_LIMIT: i64 = 20_000;

/// Whether `prefix` matches few enough rows (at most [`PREFIX_SORT_LIMIT`], counted on the
/// index only) for the account index to drive the list, its matches sorted by time.
fn prefix_is_narrow(conn: &Connection, prefix: &str) -> Result<bool, DbError> {
    let (lo, hi) = prefix_range(prefix);
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM qiwi_transaction
                 INDEXED BY qiwi_transaction_account
             WHERE account >= ?1 AND account < ?2 LIMIT ?3)",
        )?
        .query_row(params![lo, hi, PREFIX_SORT_LIMIT + 1], |r| r.get(0))?;
    Ok(n <= PREFIX_SORT_LIMIT)
}

/// The list query for `f` on `conn`: a wide account prefix (one that would sort many rows)
/// is tested row by row along the time index instead, where dense matches fill a page fast.
fn txn_query_on(conn: &Connection, f: &TxnFilter) -> Result<(Query, String), DbError> {
    if let (None, Some(prefix)) = (&f.code, &f.account)
        && !prefix_is_narrow(conn, prefix)?
    {
        let wide = TxnFilter {
            account: None,
            ..f.clone()
        };
        let (mut q, from) = txn_query(&wide);
        let (lo, hi) = prefix_range(prefix);
        let (lo, hi) = (q.bind(lo), q.bind(hi));
        q.residual
            .push(format!("account >= {lo} AND account < {hi}"));
        return Ok((q, from));
    }
    Ok(txn_query(f))
}

/// Count and exact total of the transactions `f` selects, walking at most [`TOTALS_BUDGET`]
/// rows of the driving index, newest first.
pub fn transaction_totals(conn: &Connection, f: &TxnFilter) -> Result<FilteredTotals, DbError> {
    let (mut q, from) = txn_query_on(conn, f)?;
    let hit = if q.residual.is_empty() {
        "1".to_owned()
    } else {
        format!("({})", q.residual.join(") AND ("))
    };
    let wh = if q.indexed.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", q.indexed.join(" AND "))
    };
    let limit = q.bind(TOTALS_BUDGET);
    let sql = format!(
        "SELECT count(*), coalesce(sum(hit), 0), {} FROM (
             SELECT {hit} AS hit, CASE WHEN {hit} THEN sum_minor ELSE 0 END AS m
             FROM {from} {wh} ORDER BY created_at DESC, id DESC LIMIT {limit})",
        split_sum("m")
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(q.params.iter()), |r| {
            let walked: i64 = r.get(0)?;
            Ok(FilteredTotals {
                count: r.get(1)?,
                sum_minor: joined_sum(r, 2)?,
                exact: walked < TOTALS_BUDGET,
            })
        })?)
}

/// One page of transactions matching `f`, newest first.
pub fn transactions(
    conn: &Connection,
    f: &TxnFilter,
    cursor: Option<Cursor>,
) -> Result<Page<TxnRow>, DbError> {
    transactions_within(conn, f, cursor, SCAN_BUDGET)
}

fn transactions_within(
    conn: &Connection,
    f: &TxnFilter,
    cursor: Option<Cursor>,
    budget: usize,
) -> Result<Page<TxnRow>, DbError> {
    let (q, from) = txn_query_on(conn, f)?;
    let map = |r: &Row<'_>| txn_row(r, false);
    page(
        conn,
        "qiwi_transaction",
        q,
        TXN_COLUMNS,
        &from,
        cursor,
        budget,
        map,
    )
}

/// Up to `limit` transactions matching `f` after `after`, with the cursor to go on from
/// (`None` at the end). Like a list page it walks at most `SCAN_BUDGET` rows or `SCAN_TIME`
/// (a batch may then hold fewer rows, even none, and still a cursor), so one batch of an
/// export no index serves holds a read connection no longer than a page does.
pub fn export_batch(
    conn: &Connection,
    f: &TxnFilter,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<TxnRow>, Option<i64>), DbError> {
    let (mut q, from) = txn_query_on(conn, f)?;
    let time = match after {
        None => None,
        Some(id) => match cursor_time(conn, "qiwi_transaction", id)? {
            Some(t) => Some(t),
            None => return Ok((Vec::new(), None)),
        },
    };
    let cursor = after.map(Cursor::After);
    let (sql, _) = q.sql(
        &format!("{TXN_COLUMNS}, extra"),
        &from,
        cursor.zip(time.as_deref()),
    );
    let budget = (!q.residual.is_empty()).then_some(SCAN_BUDGET);
    let s = scan(conn, &sql, &q.params, limit, budget, |r| txn_row(r, true))?;
    Ok((s.hits.into_iter().map(|(_, r)| r).collect(), s.more))
}

/// One transaction with every column.
pub fn transaction(conn: &Connection, id: i64) -> Result<Option<TxnDetail>, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT 1, id, {TXN_COLUMNS}, extra FROM qiwi_transaction \
             WHERE id = ?1"
        ))?
        .query_row([id], |r| {
            Ok(TxnDetail {
                row: txn_row(r, false)?,
                extra: r.get(13)?,
            })
        })
        .optional()?)
}

/// The id of the transaction with QIWI `txn_id` `code`.
pub fn transaction_id_by_code(conn: &Connection, code: &str) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT id FROM qiwi_transaction WHERE code = ?1")?
        .query_row([code], |r| r.get(0))
        .optional()?)
}

/// The newest `limit` webhook attempts of a transaction, newest first.
pub fn attempts(
    conn: &Connection,
    transaction_id: i64,
    limit: usize,
) -> Result<Vec<AttemptRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, http_status, error, duration_ms, response_body
         FROM qiwi_webhook_attempt WHERE transaction_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![transaction_id, limit as i64], |r| {
        Ok(AttemptRow {
            id: r.get(0)?,
            created_at: r.get(1)?,
            http_status: r.get(2)?,
            error: r.get(3)?,
            duration_ms: r.get(4)?,
            response_body: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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

/// The dashboard's figures; `since` are the UTC starts of today, 7 days and 30 days ago.
/// `accepted` are the statuses the worker counts as delivered (`webhook_success_statuses`):
/// any other 2xx among the newest attempts is reported in [`Dashboard::unaccepted_2xx`].
pub fn dashboard(
    conn: &Connection,
    since: [&str; 3],
    accepted: &[u16],
) -> Result<Dashboard, DbError> {
    let mut totals = [Totals::default(); 3];
    for (t, s) in totals.iter_mut().zip(since) {
        *t = conn
            .prepare_cached(&format!(
                "SELECT count(*), {}
                 FROM qiwi_transaction INDEXED BY qiwi_transaction_created
                 WHERE created_at >= ?1 AND test = 0",
                split_sum("sum_minor")
            ))?
            .query_row([s], |r| {
                Ok(Totals {
                    count: r.get(0)?,
                    sum_minor: joined_sum(r, 1)?,
                })
            })?;
    }
    let (pending, oldest_pending) = conn
        .prepare_cached(
            "SELECT count(*), min(created_at)
             FROM qiwi_transaction INDEXED BY qiwi_transaction_status WHERE status = 0",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let failing = conn
        .prepare_cached(
            "SELECT count(*) FROM qiwi_transaction INDEXED BY qiwi_transaction_failing
             WHERE status = 0 AND attempts > 0",
        )?
        .query_row([], |r| r.get(0))?;
    let filter = TxnFilter {
        state: Some(TxnState::Failing),
        ..TxnFilter::default()
    };
    let (failing_rows, _) = export_batch(conn, &filter, None, DASHBOARD_FAILING)?;
    let last_request = conn
        .prepare_cached("SELECT max(created_at) FROM qiwi_http_log")?
        .query_row([], |r| r.get(0))?;
    // Typed numbers (200-299, validated by the configuration), so written into the SQL.
    let accepted = accepted
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let unaccepted_2xx = conn
        .prepare_cached(&format!(
            "SELECT http_status, created_at FROM (
                 SELECT http_status, created_at FROM qiwi_webhook_attempt
                 ORDER BY id DESC LIMIT ?1)
             WHERE http_status BETWEEN 200 AND 299 AND http_status NOT IN ({accepted})
             LIMIT 1"
        ))?
        .query_row([RECENT_ATTEMPTS], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(Dashboard {
        unaccepted_2xx,
        totals,
        pending,
        oldest_pending,
        failing,
        failing_rows,
        last_request,
    })
}

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

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut c).unwrap();
        c
    }

    fn add_txn(c: &Connection, code: &str, account: &str, minor: i64, status: i64, at: &str) {
        c.execute(
            "INSERT INTO qiwi_transaction
                 (account, code, sum, status, created_at, sum_minor, txn_date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, '20240101120000')",
            params![account, code, minor as f64 / 100.0, status, at, minor],
        )
        .unwrap();
    }

    fn all_pages(c: &Connection, f: &TxnFilter) -> Vec<i64> {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let p = transactions(c, f, cursor).unwrap();
            seen.extend(p.rows.iter().map(|r| r.id));
            match p.older {
                Some(id) => cursor = Some(Cursor::After(id)),
                None => return seen,
            }
        }
    }

    #[test]
    fn pages_walk_newest_first_and_back() {
        let c = db();
        // Equal created_at for many rows: the id breaks the tie.
        for i in 0..130 {
            let at = format!("2024-01-01 00:00:{:02}", i / 10);
            add_txn(&c, &i.to_string(), "a", 100, i % 2, &at);
        }
        let ids = all_pages(&c, &TxnFilter::default());
        let want: Vec<i64> = (1..=130).rev().collect();
        assert_eq!(ids, want);

        let first = transactions(&c, &TxnFilter::default(), None).unwrap();
        assert_eq!(first.rows.len(), PAGE_SIZE);
        assert_eq!(first.newer, None);
        let second =
            transactions(&c, &TxnFilter::default(), first.older.map(Cursor::After)).unwrap();
        let back =
            transactions(&c, &TxnFilter::default(), second.newer.map(Cursor::Before)).unwrap();
        assert_eq!(
            back.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            first.rows.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        assert_eq!(back.newer, None);
    }

    #[test]
    fn filters_select_exactly_the_matching_rows() {
        type Rec = (i64, String, i64, i64, String);
        let c = db();
        for i in 0..300i64 {
            let at = format!("2024-01-{:02} 10:00:00", 1 + i % 28);
            add_txn(
                &c,
                &format!("c{i}"),
                &format!("acc{}", i % 7),
                i * 10,
                i % 3 % 2,
                &at,
            );
        }
        let rows: Vec<Rec> = c
            .prepare("SELECT id, account, sum_minor, status, created_at FROM qiwi_transaction")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let check = |f: TxnFilter, pred: &dyn Fn(&Rec) -> bool| {
            let mut got = all_pages(&c, &f);
            got.sort_unstable();
            let want: Vec<i64> = rows.iter().filter(|r| pred(r)).map(|r| r.0).collect();
            assert_eq!(got, want, "{f:?}");
        };
        check(
            TxnFilter {
                account: Some("acc3".into()),
                min_minor: Some(500),
                ..Default::default()
            },
            &|r| r.1 == "acc3" && r.2 >= 500,
        );
        check(
            TxnFilter {
                state: Some(TxnState::Delivered),
                from: Some("2024-01-05 00:00:00".into()),
                until: Some("2024-01-10 00:00:00".into()),
                ..Default::default()
            },
            &|r| r.3 == 1 && r.4.as_str() >= "2024-01-05" && r.4.as_str() < "2024-01-10",
        );
        check(
            TxnFilter {
                min_minor: Some(1000),
                max_minor: Some(2000),
                ..Default::default()
            },
            &|r| (1000..=2000).contains(&r.2),
        );
        check(
            TxnFilter {
                code: Some("c42".into()),
                ..Default::default()
            },
            &|r| r.0 == 43,
        );
        check(
            TxnFilter {
                code: Some("c42".into()),
                state: Some(TxnState::Delivered),
                ..Default::default()
            },
            &|_| false,
        );
    }

    #[test]
    fn pages_cut_short_by_the_scan_budget_still_cover_every_match_once() {
        let c = db();
        for i in 0..500i64 {
            add_txn(&c, &i.to_string(), "a", i % 7, 0, "2024-01-01 00:00:00");
        }
        // One match in seven, walked 13 rows at a time: most pages end on the budget.
        let f = TxnFilter {
            min_minor: Some(3),
            max_minor: Some(3),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut short_pages = 0;
        loop {
            let p = transactions_within(&c, &f, cursor, 13).unwrap();
            short_pages += usize::from(p.budget_hit);
            seen.extend(p.rows.iter().map(|r| r.id));
            match p.older {
                Some(id) => cursor = Some(Cursor::After(id)),
                None => break,
            }
        }
        assert!(short_pages > 10, "{short_pages}");
        // ids are 1-based: row i has id i + 1.
        let want: Vec<i64> = (0..500)
            .rev()
            .filter(|i| i % 7 == 3)
            .map(|i| i + 1)
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn totals_of_the_largest_sums_do_not_overflow() {
        let c = db();
        // 1,025 payments of the largest sum exceed i64 (issue 19.5).
        let max = 9_007_199_254_740_991i64;
        for i in 0..1025 {
            add_txn(
                &c,
                &i.to_string(),
                "79991234567",
                max,
                0,
                "2024-01-01 00:00:00",
            );
        }
        let d = dashboard(&c, ["2023-01-01 00:00:00"; 3], &[200, 201]).unwrap();
        assert_eq!(d.totals[0].count, 1025);
        assert_eq!(d.totals[0].sum_minor, 1025 * i128::from(max));
        assert!(d.totals[0].sum_minor > i128::from(i64::MAX));
        let t = transaction_totals(&c, &TxnFilter::default()).unwrap();
        assert_eq!(
            (t.count, t.sum_minor, t.exact),
            (1025, 1025 * i128::from(max), true)
        );
    }

    #[test]
    fn filtered_totals_count_only_matches_and_say_when_they_are_bounds() {
        let c = db();
        for i in 0..40i64 {
            add_txn(
                &c,
                &i.to_string(),
                &format!("7999{i:03}"),
                100 + i,
                i % 2,
                "2024-01-01 00:00:00",
            );
        }
        add_txn(&c, "x", "8800", 5, 0, "2024-01-01 00:00:00");
        let f = TxnFilter {
            account: Some("7999".into()),
            min_minor: Some(130),
            ..Default::default()
        };
        let t = transaction_totals(&c, &f).unwrap();
        assert_eq!(t.count, 10);
        assert_eq!(t.sum_minor, (130..140).sum::<i64>().into());
        assert!(t.exact);
        // A prefix finds longer accounts; the page and the totals agree.
        let prefix = TxnFilter {
            account: Some("799903".into()),
            ..Default::default()
        };
        assert_eq!(all_pages(&c, &prefix).len(), 10);
        assert_eq!(transaction_totals(&c, &prefix).unwrap().count, 10);
    }

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn a_generated_password_is_stored_once() {
        let c = db();
        assert_eq!(password_hash(&c).unwrap(), None);
        assert_eq!(store_password_hash(&c, "h1", "t").unwrap(), "h1");
        assert_eq!(store_password_hash(&c, "h2", "t").unwrap(), "h1");
    }
}
