//! Test payments sent from the admin UI (`test_payment`, migration 0007): the reservation of
//! their `txn_id` (which marks the stored row `test = 1`), what each step answered, and what
//! the page shows of the stored row and its webhook attempts.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A test payment as reserved, with the answers recorded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestPayment {
    /// The reserved `txn_id`.
    pub code: String,
    /// The account tried.
    pub account: String,
    /// The sum, kopecks.
    pub sum_minor: i64,
    /// When it was sent, UTC `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// The admin who sent it.
    pub username: String,
    /// The check backend's HTTP status when it was called directly; `None` without one.
    pub check_status: Option<i64>,
    /// The start of the check backend's answer, or why there was none.
    pub check_body: Option<String>,
    /// `/payment`'s answer to `check`, as received.
    pub check_answer: Option<String>,
    /// `/payment`'s answer to `pay`, as received.
    pub pay_answer: Option<String>,
}

/// The stored payment a test produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// `qiwi_transaction.id` (the `prv_txn`).
    pub id: i64,
    /// 0 received, 1 webhook acknowledged.
    pub status: i64,
    /// When stored, UTC.
    pub created_at: String,
    /// The sum, kopecks.
    pub sum_minor: i64,
    /// Whether the row is marked a test payment.
    pub test: bool,
    /// Webhook attempts so far.
    pub attempts: i64,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// When the webhook was first acknowledged.
    pub delivered_at: Option<String>,
}

/// One webhook attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When, UTC.
    pub created_at: String,
    /// The merchant's HTTP status, `None` without an answer.
    pub http_status: Option<i64>,
    /// `None` on success, else the kind of failure.
    pub error: Option<String>,
    /// How long it took, ms.
    pub duration_ms: i64,
    /// The start of the merchant's answer.
    pub response_body: String,
}

/// Reserves `t.code` for a test payment (before it is sent). Fails if the `txn_id` exists.
pub fn reserve(conn: &Connection, t: &TestPayment) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO test_payment (code, account, sum_minor, created_at, username)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![t.code, t.account, t.sum_minor, t.created_at, t.username],
    )?;
    Ok(())
}

/// Records what the steps answered.
pub fn record(conn: &Connection, t: &TestPayment) -> Result<(), DbError> {
    conn.execute(
        "UPDATE test_payment SET check_status = ?2, check_body = ?3, check_answer = ?4,
                                 pay_answer = ?5
         WHERE code = ?1",
        params![
            t.code,
            t.check_status,
            t.check_body,
            t.check_answer,
            t.pay_answer
        ],
    )?;
    Ok(())
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TestPayment> {
    Ok(TestPayment {
        code: r.get(0)?,
        account: r.get(1)?,
        sum_minor: r.get(2)?,
        created_at: r.get(3)?,
        username: r.get(4)?,
        check_status: r.get(5)?,
        check_body: r.get(6)?,
        check_answer: r.get(7)?,
        pay_answer: r.get(8)?,
    })
}

const COLUMNS: &str = "code, account, sum_minor, created_at, username, check_status, \
                       check_body, check_answer, pay_answer";

/// One test payment, its stored row and its webhook attempts (oldest first).
#[allow(clippy::type_complexity)]
pub fn get(
    conn: &Connection,
    code: &str,
) -> Result<Option<(TestPayment, Option<StoredRow>, Vec<Attempt>)>, DbError> {
    let Some(t) = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM test_payment WHERE code = ?1"),
            [code],
            from_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let row = conn
        .query_row(
            "SELECT id, status, created_at, sum_minor, test, attempts, last_error, delivered_at
             FROM qiwi_transaction WHERE code = ?1",
            [code],
            |r| {
                Ok(StoredRow {
                    id: r.get(0)?,
                    status: r.get(1)?,
                    created_at: r.get(2)?,
                    sum_minor: r.get(3)?,
                    test: r.get(4)?,
                    attempts: r.get(5)?,
                    last_error: r.get(6)?,
                    delivered_at: r.get(7)?,
                })
            },
        )
        .optional()?;
    let attempts = match &row {
        None => Vec::new(),
        Some(row) => conn
            .prepare(
                "SELECT created_at, http_status, error, duration_ms, response_body
                 FROM qiwi_webhook_attempt WHERE transaction_id = ?1 ORDER BY id LIMIT 50",
            )?
            .query_map([row.id], |r| {
                Ok(Attempt {
                    created_at: r.get(0)?,
                    http_status: r.get(1)?,
                    error: r.get(2)?,
                    duration_ms: r.get(3)?,
                    response_body: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?,
    };
    Ok(Some((t, row, attempts)))
}

/// The newest `limit` test payments.
pub fn recent(conn: &Connection, limit: usize) -> Result<Vec<TestPayment>, DbError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM test_payment ORDER BY created_at DESC, code DESC LIMIT ?1"
        ))?
        .query_map([limit], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Which of `ids` are test payments (a list page's rows: at most a page of lookups by key).
pub fn test_ids(conn: &Connection, ids: &[i64]) -> Result<std::collections::HashSet<i64>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT test FROM qiwi_transaction WHERE id = ?1")?;
    let mut out = std::collections::HashSet::new();
    for &id in ids {
        let test: Option<bool> = stmt.query_row([id], |r| r.get(0)).optional()?;
        if test == Some(true) {
            out.insert(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::transactions::{TxnFilter, TxnState, transactions};

    #[test]
    fn test_payments_are_marked_and_filtered_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        super::super::migrations::run(&mut conn).unwrap();
        reserve(
            &conn,
            &TestPayment {
                code: "9000000000000000001".into(),
                account: "a".into(),
                sum_minor: 100,
                created_at: "2024-01-01 00:00:00".into(),
                username: "admin".into(),
                ..TestPayment::default()
            },
        )
        .unwrap();
        for (i, code) in ["1", "9000000000000000001", "3"].iter().enumerate() {
            conn.execute(
                "INSERT INTO qiwi_transaction (account, code, sum, created_at, sum_minor, txn_date)
                 VALUES ('a', ?1, 1.0, ?2, 100, '20240101000000')",
                params![code, format!("2024-01-01 00:00:0{i}")],
            )
            .unwrap();
        }
        let codes = |f: TxnFilter| -> Vec<String> {
            transactions(&conn, &f, None)
                .unwrap()
                .rows
                .into_iter()
                .map(|r| r.code)
                .collect()
        };
        assert_eq!(
            codes(TxnFilter {
                test: Some(true),
                ..TxnFilter::default()
            }),
            ["9000000000000000001"]
        );
        assert_eq!(
            codes(TxnFilter {
                test: Some(false),
                ..TxnFilter::default()
            }),
            ["3", "1"]
        );
        assert_eq!(
            codes(TxnFilter {
                test: Some(true),
                account: Some("a".into()),
                state: Some(TxnState::Undelivered),
                ..TxnFilter::default()
            }),
            ["9000000000000000001"]
        );
        assert_eq!(codes(TxnFilter::default()).len(), 3);
        let ids: Vec<i64> = vec![1, 2, 3];
        assert_eq!(test_ids(&conn, &ids).unwrap(), [2].into_iter().collect());
        let (t, row, _) = get(&conn, "9000000000000000001").unwrap().unwrap();
        assert_eq!(t.account, "a");
        assert!(row.unwrap().test);
    }
}
