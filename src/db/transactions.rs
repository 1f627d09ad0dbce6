//! `qiwi_transaction`: one row per payment, which is also the webhook outbox entry; and the
//! transactions list, its totals and export batches the admin UI reads (keyset-paged, see
//! [`super::pager`]).

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::DbError;
use super::pager::{
    Cursor, Page, Query, SCAN_BUDGET, cursor_time, joined_sum, page, scan, split_sum,
};

/// A payment to store, already validated by the protocol layer.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// QIWI's `txn_id` (column `code`).
    pub code: String,
    /// The customer's account.
    pub account: String,
    /// The exact sum in minor units (kopecks).
    pub sum_minor: i64,
    /// QIWI's `txn_date` as received.
    pub txn_date: String,
    /// The other request parameters, as a JSON object.
    pub extra: String,
}

/// A stored payment as the protocol answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Our id, `prv_txn` in answers.
    pub id: i64,
    /// The stored account.
    pub account: String,
    /// The stored sum in minor units.
    pub sum_minor: i64,
}

/// What storing a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A new row was stored; its webhook delivery is due.
    Created(Stored),
    /// The same `txn_id` with the same account and sum was stored before: nothing changed.
    Repeated(Stored),
    /// The `txn_id` was stored before with another account or sum: nothing changed.
    Conflict(Stored),
    /// New payments are refused (maintenance) and this one was not stored before.
    Refused,
}

/// Stores `p` unless its `code` is known, in which case the earlier row decides the outcome.
/// The new row's webhook delivery is due at `now_ms` in the same transaction, so a payment
/// never exists without its pending delivery.
///
/// The lookup comes first on purpose: an `INSERT ... ON CONFLICT DO NOTHING` that meets a
/// known `code` still advances `AUTOINCREMENT`'s counter, so every repeated pay would skip a
/// `prv_txn` and the ids would stop following the payments one by one.
pub fn store(
    conn: &Connection,
    p: &NewPayment,
    accept_new: bool,
    now_text: &str,
    now_ms: i64,
) -> Result<StoreOutcome, DbError> {
    let existing = conn
        .prepare_cached("SELECT id, account, sum_minor FROM qiwi_transaction WHERE code = ?1")?
        .query_row([&p.code], |r| {
            Ok(Stored {
                id: r.get(0)?,
                account: r.get(1)?,
                sum_minor: r.get(2)?,
            })
        })
        .optional()?;
    if let Some(s) = existing {
        return Ok(if s.account == p.account && s.sum_minor == p.sum_minor {
            StoreOutcome::Repeated(s)
        } else {
            StoreOutcome::Conflict(s)
        });
    }
    if !accept_new {
        return Ok(StoreOutcome::Refused);
    }
    conn.prepare_cached(
        "INSERT INTO qiwi_transaction
             (account, code, sum, status, created_at, sum_minor, txn_date, extra, delivery_due_ms)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        p.account,
        p.code,
        // The float column is the original product's; sum_minor is exact.
        p.sum_minor as f64 / 100.0,
        now_text,
        p.sum_minor,
        p.txn_date,
        p.extra,
        now_ms
    ])?;
    Ok(StoreOutcome::Created(Stored {
        id: conn.last_insert_rowid(),
        account: p.account.clone(),
        sum_minor: p.sum_minor,
    }))
}

/// Makes webhook deliveries due at `now_ms`: of one transaction (delivered or not: it is sent
/// once more), or with `None` of undelivered ones: the next `CHUNK` of them after row
/// `after` (see [`super::Db::make_due`], which walks them all without holding the writer).
/// Returns how many were made due, and the last row id touched.
pub fn make_due(
    conn: &Connection,
    id: Option<i64>,
    after: i64,
    now_ms: i64,
) -> Result<(usize, i64), DbError> {
    match id {
        Some(id) => {
            let n = conn.execute(
                "UPDATE qiwi_transaction SET delivery_due_ms = ?1 WHERE id = ?2",
                params![now_ms, id],
            )?;
            Ok((n, id))
        }
        None => {
            let ids: Vec<i64> = conn
                .prepare_cached(
                    "UPDATE qiwi_transaction SET delivery_due_ms = ?1
                     WHERE id IN (SELECT id FROM qiwi_transaction
                                  WHERE status = 0 AND id > ?2 ORDER BY id LIMIT ?3)
                     RETURNING id",
                )?
                .query_map(params![now_ms, after, CHUNK as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok((ids.len(), ids.iter().copied().max().unwrap_or(after)))
        }
    }
}

/// Rows a bulk resend updates per writer job, so payments never wait behind a huge UPDATE.
pub const CHUNK: usize = 1000;

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
        q.presort = Some("qiwi_transaction");
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
    q.limit = Some(limit + 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dashboard::dashboard;
    use crate::db::pager::PAGE_SIZE;

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

    #[test]
    fn repeats_and_conflicts_do_not_use_up_ids() {
        let c = db();
        let pay = |code: &str, minor: i64| NewPayment {
            code: code.into(),
            account: "acc".into(),
            sum_minor: minor,
            txn_date: "20240101120000".into(),
            extra: "{}".into(),
        };
        let id = |o: StoreOutcome| match o {
            StoreOutcome::Created(s) | StoreOutcome::Repeated(s) | StoreOutcome::Conflict(s) => {
                s.id
            }
            StoreOutcome::Refused => panic!("refused"),
        };
        let first = id(store(&c, &pay("1", 100), true, "2024-01-01 00:00:00", 0).unwrap());
        for _ in 0..3 {
            let again = store(&c, &pay("1", 100), true, "2024-01-01 00:00:00", 0).unwrap();
            assert!(matches!(again, StoreOutcome::Repeated(_)), "{again:?}");
        }
        let conflict = store(&c, &pay("1", 200), true, "2024-01-01 00:00:00", 0).unwrap();
        assert!(
            matches!(conflict, StoreOutcome::Conflict(_)),
            "{conflict:?}"
        );
        let next = id(store(&c, &pay("2", 100), true, "2024-01-01 00:00:00", 0).unwrap());
        assert_eq!(
            next,
            first + 1,
            "the next new payment's prv_txn follows the last one"
        );
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

    /// A narrow account prefix sorts on the account index alone (migration 0008): its pages,
    /// both ways, are exactly the matches by time then id, and the plan reads the table only
    /// for the page's ids.
    #[test]
    fn a_narrow_prefix_pages_by_time_from_the_index_alone() {
        let c = db();
        for i in 0..400i64 {
            // Times out of account order, many equal: the id breaks ties.
            let at = format!("2024-01-{:02} 10:00:00", 1 + (i * 7) % 20);
            add_txn(
                &c,
                &i.to_string(),
                &format!("7999{:03}", (i * 13) % 150),
                100 + i,
                i % 2,
                &at,
            );
        }
        let f = TxnFilter {
            account: Some("79990".into()),
            ..TxnFilter::default()
        };
        let mut want: Vec<(String, i64)> = c
            .prepare("SELECT created_at, id FROM qiwi_transaction WHERE account LIKE '79990%'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        want.sort();
        want.reverse();
        let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
        assert!(want.len() > 2 * PAGE_SIZE, "{}", want.len());
        assert_eq!(all_pages(&c, &f), want);
        // And back from the last page.
        let mut cursor = None;
        let last = loop {
            let p = transactions(&c, &f, cursor).unwrap();
            match p.older {
                Some(id) => cursor = Some(Cursor::After(id)),
                None => break p,
            }
        };
        let back = transactions(&c, &f, last.newer.map(Cursor::Before)).unwrap();
        let n = want.len() - last.rows.len();
        assert_eq!(
            back.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            want[n - PAGE_SIZE..n]
        );
        let totals = transaction_totals(&c, &f).unwrap();
        assert_eq!(totals.count, want.len() as i64);
        // The plan: the sort is on the covering index, the table is read by id.
        let (mut q, from) = txn_query(&f);
        q.limit = Some(PAGE_SIZE + 1);
        let (sql, _) = q.sql(TXN_COLUMNS, &from, None);
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params_from_iter(q.params.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("COVERING INDEX qiwi_transaction_account"),
            "{plan}"
        );
        assert!(plan.contains("INTEGER PRIMARY KEY (rowid=?)"), "{plan}");
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
}
