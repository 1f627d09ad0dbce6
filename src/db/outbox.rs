//! The webhook outbox: `qiwi_transaction` rows whose delivery is due, and the outcome of each
//! attempt (`qiwi_webhook_attempt` plus the row's delivery state).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbError;

/// A delivery that is due: what the worker needs to send it and to judge its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// `qiwi_transaction.id`.
    pub id: i64,
    /// The customer's account.
    pub account: String,
    /// QIWI's `txn_id`.
    pub code: String,
    /// The exact sum in minor units.
    pub sum_minor: i64,
    /// When the payment was stored, UTC `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// QIWI's `txn_date` as received.
    pub txn_date: String,
    /// The extra request parameters, a JSON object.
    pub extra: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// `delivery_due_ms` when the row was read.
    pub due_ms: i64,
    /// A test payment sent from the admin UI (`qiwi_transaction.test`, migration 0007).
    pub test: bool,
}

impl Due {
    /// This row's place in the due order.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            due_ms: self.due_ms,
            id: self.id,
        }
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Due> {
        Ok(Due {
            id: r.get(0)?,
            account: r.get(1)?,
            code: r.get(2)?,
            sum_minor: r.get(3)?,
            created_at: r.get(4)?,
            attempts: r.get(5)?,
            due_ms: r.get(6)?,
            test: r.get(7)?,
            txn_date: r.get(8)?,
            extra: r.get(9)?,
        })
    }
}

/// A position in the due order `(delivery_due_ms, id)`: a page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `delivery_due_ms` of the last row seen.
    pub due_ms: i64,
    /// `id` of the last row seen.
    pub id: i64,
}

impl Cursor {
    /// Before every row.
    pub const START: Cursor = Cursor {
        due_ms: i64::MIN,
        id: i64::MIN,
    };
}

/// Up to `limit` deliveries due at `now_ms`, oldest due first, after `after`. Paging by key
/// (not OFFSET) walks the partial index once however long the backlog is.
pub fn due_page(
    conn: &Connection,
    now_ms: i64,
    after: Cursor,
    limit: usize,
) -> Result<Vec<Due>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, account, code, sum_minor, created_at, attempts, delivery_due_ms, test,
                txn_date, extra
         FROM qiwi_transaction
         WHERE delivery_due_ms <= ?1 AND (delivery_due_ms, id) > (?2, ?3)
         ORDER BY delivery_due_ms, id
         LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(
        params![now_ms, after.due_ms, after.id, limit],
        Due::from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The earliest `delivery_due_ms` after `now_ms`, if any delivery is scheduled.
pub fn next_due_after(conn: &Connection, now_ms: i64) -> Result<Option<i64>, DbError> {
    let next = conn
        .prepare_cached(
            "SELECT delivery_due_ms FROM qiwi_transaction
             WHERE delivery_due_ms > ?1 ORDER BY delivery_due_ms LIMIT 1",
        )?
        .query_row([now_ms], |r| r.get(0))
        .optional()?;
    Ok(next)
}

/// What an attempt makes of its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledged (200 or 201): `status` 1, nothing more due.
    Delivered,
    /// Not acknowledged: retried at `next_due_ms`, or never again (`None`: given up).
    Failed {
        /// When to try again; `None` gives up.
        next_due_ms: Option<i64>,
        /// The row's `last_error`.
        last_error: String,
    },
}

/// One finished attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The transaction delivered.
    pub transaction_id: i64,
    /// The row's `delivery_due_ms` when the attempt was claimed. Should it have changed since
    /// (a resend while the attempt was in flight), the new due time is kept.
    pub claimed_due_ms: i64,
    /// When the attempt started, UTC `YYYY-MM-DD HH:MM:SS`.
    pub at: String,
    /// The HTTP status answered, if an answer came.
    pub http_status: Option<u16>,
    /// `None` on success, else the kind of failure with its detail.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// The first KiB of the answer's body.
    pub response_body: String,
    /// The request as sent (`None`: not known).
    pub request: Option<AttemptRequest>,
    /// What becomes of the delivery.
    pub verdict: Verdict,
}

/// A webhook request as sent (migration 0008).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptRequest {
    /// The URL, credentials and query values masked (`ops::redact::url`).
    pub url: String,
    /// The headers the gateway set, one `name: value` a line, in the order sent.
    pub headers: String,
    /// The JSON body, byte for byte.
    pub body: String,
}

/// Records `a` in the history and in the transaction's delivery state. A delivered row keeps
/// its first `delivered_at`: a resend is an extra attempt, not a new delivery.
pub fn record(conn: &Connection, a: &Attempt) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO qiwi_webhook_attempt
             (transaction_id, created_at, http_status, error, duration_ms, response_body,
              request_url, request_headers, request_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        a.transaction_id,
        a.at,
        a.http_status,
        a.error,
        a.duration_ms,
        a.response_body,
        a.request.as_ref().map(|r| &r.url),
        a.request.as_ref().map(|r| &r.headers),
        a.request.as_ref().map(|r| &r.body),
    ])?;
    match &a.verdict {
        Verdict::Delivered => conn
            .prepare_cached(
                "UPDATE qiwi_transaction
                 SET status = 1, delivered_at = COALESCE(delivered_at, ?2),
                     attempts = attempts + 1, last_error = NULL, last_attempt_at = ?2,
                     delivery_due_ms = CASE WHEN delivery_due_ms = ?3 THEN NULL
                                            ELSE delivery_due_ms END
                 WHERE id = ?1",
            )?
            .execute(params![a.transaction_id, a.at, a.claimed_due_ms])?,
        Verdict::Failed {
            next_due_ms,
            last_error,
        } => conn
            .prepare_cached(
                "UPDATE qiwi_transaction
                 SET attempts = attempts + 1, last_error = ?4, last_attempt_at = ?2,
                     delivery_due_ms = CASE WHEN delivery_due_ms = ?3 THEN ?5
                                            ELSE delivery_due_ms END
                 WHERE id = ?1",
            )?
            .execute(params![
                a.transaction_id,
                a.at,
                a.claimed_due_ms,
                last_error,
                next_due_ms
            ])?,
    };
    Ok(())
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
    /// The request as sent; `None` for attempts made before migration 0008.
    pub request: Option<AttemptRequest>,
}

/// The newest `limit` webhook attempts of a transaction, newest first.
pub fn attempts(
    conn: &Connection,
    transaction_id: i64,
    limit: usize,
) -> Result<Vec<AttemptRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, http_status, error, duration_ms, response_body,
                request_url, request_headers, request_body
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
            request: match (r.get(6)?, r.get(7)?, r.get(8)?) {
                (Some(url), Some(headers), Some(body)) => {
                    Some(AttemptRequest { url, headers, body })
                }
                _ => None,
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::transactions::{self, NewPayment};

    fn db_with(n: i64, due_ms: impl Fn(i64) -> i64) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations::run(&mut conn).unwrap();
        for i in 1..=n {
            let p = NewPayment {
                code: format!("{}", 100 + i),
                account: "acc".into(),
                sum_minor: 100 * i,
                txn_date: "20240101120000".into(),
                extra: "{}".into(),
            };
            transactions::store(&conn, &p, true, "2024-01-01 12:00:00", due_ms(i)).unwrap();
        }
        conn
    }

    fn ids(page: &[Due]) -> Vec<i64> {
        page.iter().map(|d| d.id).collect()
    }

    #[test]
    fn pages_walk_the_due_rows_in_order_once() {
        // Due times out of id order, two of them equal, one not due yet.
        let due = [0, 30, 10, 10, 20, 99];
        let conn = db_with(6, |i| due[(i - 1) as usize]);
        let first = due_page(&conn, 50, Cursor::START, 2).unwrap();
        assert_eq!(ids(&first), [1, 3]);
        let second = due_page(&conn, 50, first[1].cursor(), 2).unwrap();
        assert_eq!(ids(&second), [4, 5]);
        let third = due_page(&conn, 50, second[1].cursor(), 2).unwrap();
        assert_eq!(ids(&third), [2]);
        assert_eq!(next_due_after(&conn, 50).unwrap(), Some(99));
        assert_eq!(next_due_after(&conn, 99).unwrap(), None);
    }

    #[test]
    fn the_due_query_uses_the_partial_index() {
        let conn = db_with(1, |_| 0);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN
                 SELECT id FROM qiwi_transaction
                 WHERE delivery_due_ms <= 1 AND (delivery_due_ms, id) > (0, 0)
                 ORDER BY delivery_due_ms, id LIMIT 10",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("qiwi_transaction_due"), "{plan}");
    }

    fn attempt(verdict: Verdict, claimed_due_ms: i64) -> Attempt {
        Attempt {
            transaction_id: 1,
            claimed_due_ms,
            at: "2024-01-01 12:00:05".into(),
            http_status: Some(500),
            error: Some("status: 500".into()),
            duration_ms: 3,
            response_body: "oops".into(),
            request: None,
            verdict,
        }
    }

    type State = (i64, i64, Option<String>, Option<i64>, Option<String>);

    fn state(conn: &Connection) -> State {
        conn.query_row(
            "SELECT status, attempts, last_error, delivery_due_ms, delivered_at
             FROM qiwi_transaction WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
    }

    #[test]
    fn a_failure_reschedules_and_a_success_completes() {
        let conn = db_with(1, |_| 1000);
        let failed = Verdict::Failed {
            next_due_ms: Some(6000),
            last_error: "status: 500".into(),
        };
        record(&conn, &attempt(failed, 1000)).unwrap();
        assert_eq!(
            state(&conn),
            (0, 1, Some("status: 500".into()), Some(6000), None)
        );
        record(&conn, &attempt(Verdict::Delivered, 6000)).unwrap();
        assert_eq!(
            state(&conn),
            (1, 2, None, None, Some("2024-01-01 12:00:05".into()))
        );
        let history: i64 = conn
            .query_row("SELECT COUNT(*) FROM qiwi_webhook_attempt", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(history, 2);
    }

    #[test]
    fn a_resend_during_the_attempt_stays_due() {
        let conn = db_with(1, |_| 1000);
        // The attempt was claimed at 1000; a resend made it due at 2000 meanwhile.
        transactions::make_due(&conn, Some(1), 0, 2000).unwrap();
        record(&conn, &attempt(Verdict::Delivered, 1000)).unwrap();
        assert_eq!(state(&conn).3, Some(2000));
        let failed = Verdict::Failed {
            next_due_ms: Some(9000),
            last_error: "x".into(),
        };
        record(&conn, &attempt(failed, 1000)).unwrap();
        assert_eq!(state(&conn).3, Some(2000));
    }

    #[test]
    fn a_later_success_keeps_the_first_delivery_time() {
        let conn = db_with(1, |_| 1000);
        record(&conn, &attempt(Verdict::Delivered, 1000)).unwrap();
        transactions::make_due(&conn, Some(1), 0, 2000).unwrap();
        let mut again = attempt(Verdict::Delivered, 2000);
        again.at = "2024-01-02 00:00:00".into();
        record(&conn, &again).unwrap();
        assert_eq!(
            state(&conn),
            (1, 2, None, None, Some("2024-01-01 12:00:05".into()))
        );
    }

    #[test]
    fn giving_up_leaves_nothing_due_and_status_zero() {
        let conn = db_with(1, |_| 1000);
        let gave_up = Verdict::Failed {
            next_due_ms: None,
            last_error: "gave up".into(),
        };
        record(&conn, &attempt(gave_up, 1000)).unwrap();
        assert_eq!(state(&conn), (0, 1, Some("gave up".into()), None, None));
        assert!(
            due_page(&conn, i64::MAX, Cursor::START, 10)
                .unwrap()
                .is_empty()
        );
    }
}
